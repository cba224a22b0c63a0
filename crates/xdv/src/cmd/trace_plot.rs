//! `xdv trace plot TRACE --vhm NAME`: what a VHM actually ran on its coherence windows, drawn
//! from the trace alone.
//!
//! The trace holds each transform's text (by the hash its `phi_executed` event names), the
//! window it ran on, the frames after it and its captures. Each transform is executed again
//! on its window, with the frames the trace recorded after the one before it, to get its
//! plays' samples; the captures drawn are the recorded values. A transform whose re-execution
//! does not give the recorded extent and capture count is listed and left out of the drawing.

use crate::plot::{Figure, Lane, Mark, Trace};
use crate::Outcome;
use anyhow::{bail, Result};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xdv_core::{EventKind, VhmId};
use xdv_phi::{execute, Context, Execution, Freq, Phase, Program, WindowSpec, WindowState};

/// One transform the VHM ran, executed again.
struct Ran {
    window: u32,
    execution: Execution,
    /// The recorded captures, in order.
    captures: Vec<(i64, i64)>,
}

/// Frames as `phi_executed` records them: (name, Hz, phase, clock, defined).
type Frames = [(String, i64, u64, u64, bool)];

fn restore(state: &mut WindowState, frames: &Frames) {
    state.frames = frames
        .iter()
        .map(|(name, hz, phase, clock, defined)| {
            (
                name.clone(),
                xdv_phi::exec::Frame {
                    freq: Freq(*hz),
                    phase: Phase(*phase),
                    clock: *clock,
                    defined: *defined,
                },
            )
        })
        .collect();
}

pub(crate) fn plot(
    trace: &Path,
    vhm: &str,
    output: Option<PathBuf>,
    png: bool,
    force: bool,
) -> Result<Outcome> {
    let Some(reader) = super::trace::open_checked(trace, force)? else {
        return Ok(Outcome::Problem);
    };
    let names: BTreeMap<VhmId, String> = reader.vhm_names()?.into_iter().collect();
    let id = super::trace::vhm_by_name(trace, &names, vhm)?;
    let header = reader.header()?;
    let manifest = xdv_manifest::Manifest::parse(&header.manifest_text, "the trace's manifest")?;
    let ports = xdv_hv::phi_ports(&manifest.host.phi_ports);
    let mut windows: BTreeMap<u32, (usize, WindowState)> = BTreeMap::new();
    let mut ran: Vec<Ran> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    reader.for_each_event(|s| {
        if s.event.vhm != Some(id) {
            return Ok(true);
        }
        match &s.event.kind {
            EventKind::PhiWindowGranted {
                window,
                port,
                t0,
                t1,
                band,
                max_amp,
                shared,
                ..
            } => {
                if let Some(p) = ports.iter().position(|p| &p.name == port) {
                    let spec = WindowSpec {
                        port: p as u32,
                        t0: *t0,
                        t1: *t1,
                        band: (Freq(band.0), Freq(band.1)),
                        max_amp: *max_amp,
                        shared: *shared,
                    };
                    windows.insert(*window, (p, WindowState::new(spec)));
                }
            }
            EventKind::PhiDecohered { window, .. } | EventKind::LegacyPhiDecohered { window, .. } => {
                if let Some((_, w)) = windows.get_mut(window) {
                    w.decohere();
                }
            }
            EventKind::PhiExecuted {
                window,
                program,
                start,
                end,
                frames,
                captures,
                ..
            } => {
                let Some((p, state)) = windows.get_mut(window) else {
                    return Ok(true);
                };
                let redone = reader
                    .text(program)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| "the trace does not hold its text (a release before texts were stored)".to_string())
                    .and_then(|text| Program::parse(&text, "transform.phi").map_err(|e| e.to_string()))
                    .and_then(|prog| {
                        let visible = BTreeMap::new();
                        let cx = Context {
                            port: &ports[*p],
                            visible: &visible,
                            now: *start,
                            delegated: &[],
                            max_samples: xdv_phi::exec::MAX_TRANSFORM_SAMPLES,
                        };
                        let mut rng = ChaCha20Rng::seed_from_u64(0);
                        execute(&prog, state, &cx, &mut rng).map_err(|e| e.to_string())
                    });
                match redone {
                    Ok(e) if e.start == *start && e.end == *end && e.captures.len() == captures.len() => {
                        ran.push(Ran { window: *window, execution: e, captures: captures.clone() });
                    }
                    Ok(e) => skipped.push(format!(
                        "event {}: transform {} on window {window}: executed again it spans [{}, {}) with {} captures, the trace says [{start}, {end}) with {}",
                        s.seq, program.short(), e.start, e.end, e.captures.len(), captures.len()
                    )),
                    Err(why) => skipped.push(format!(
                        "event {}: transform {} on window {window}: {why}",
                        s.seq,
                        program.short()
                    )),
                }
                // The recorded frames are what the next transform on the window starts from.
                restore(state, frames);
            }
            _ => {}
        }
        Ok(true)
    })?;
    for line in &skipped {
        eprintln!("note: {}: not drawn: {line}", trace.display());
    }
    if ran.is_empty() {
        bail!(
            "{}: {vhm} ran no Φ transform the trace can draw{}",
            trace.display(),
            if skipped.is_empty() {
                ""
            } else {
                " (see the notes above)"
            }
        );
    }
    let figure = figure(trace, vhm, &ran);
    let png = png
        || output
            .as_ref()
            .is_some_and(|o| o.extension().is_some_and(|x| x == "png"));
    let out = output
        .unwrap_or_else(|| PathBuf::from(format!("{vhm}.{}", if png { "png" } else { "svg" })));
    figure.write(&out, png)?;
    outln!(
        "{}: {} transform(s) of {vhm} on {} window(s)",
        out.display(),
        ran.len(),
        ran.iter()
            .map(|r| r.window)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    Ok(if skipped.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Problem
    })
}

/// One lane per (window, frame), over the span of every transform drawn.
fn figure<'a>(trace: &Path, vhm: &str, ran: &'a [Ran]) -> Figure<'a> {
    let mut lanes: BTreeMap<(u32, String), Lane<'a>> = BTreeMap::new();
    for r in ran {
        let lane = |lanes: &mut BTreeMap<(u32, String), Lane<'a>>, frame: &str| {
            let key = (r.window, frame.to_string());
            lanes.entry(key).or_insert_with(|| Lane {
                name: format!("w{} {frame}", r.window),
                plays: Vec::new(),
                captures: Vec::new(),
            });
            (r.window, frame.to_string())
        };
        for p in &r.execution.plays {
            let k = lane(&mut lanes, &p.frame);
            lanes.get_mut(&k).expect("made").plays.push(Trace {
                start: p.start,
                samples: &p.samples,
                label: format!("{} φ={:.3} rad", p.envelope, p.phase.radians()),
            });
        }
        for ((frame, c), (i, q)) in r.execution.captures.iter().zip(&r.captures) {
            let k = lane(&mut lanes, frame);
            lanes.get_mut(&k).expect("made").captures.push(Mark {
                start: c.start,
                duration: c.duration,
                i: *i,
                q: *q,
            });
        }
    }
    let start = ran.iter().map(|r| r.execution.start).min().unwrap_or(0);
    let end = ran.iter().map(|r| r.execution.end).max().unwrap_or(1);
    Figure {
        title: format!(
            "{} — what {vhm} ran on its windows: {} transform(s), [{start}, {end}) ns; captures as recorded",
            trace.display(),
            ran.len()
        ),
        start,
        end,
        lanes: lanes.into_values().collect(),
    }
}
