//! `xdv phi run` and `xdv phi plot`: one transform, standalone, on a window of a port.

use crate::table;
use crate::Outcome;
use anyhow::{bail, Context as _, Result};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xdv_phi::{execute, Context, Execution, Freq, Port, Program, WindowSpec, WindowState};

/// The port and window a standalone transform runs on.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WindowArgs {
    /// The port's name (what `newframe` names).
    #[arg(long, default_value = "q0")]
    port: String,
    /// The window, `START:END` in ns.
    #[arg(long, default_value = "0:100000")]
    window: String,
    /// The window's band, `LOW:HIGH` in Hz.
    #[arg(long, default_value = "4e9:6e9")]
    band: String,
    /// The window's amplitude cap (0 to 1).
    #[arg(long, default_value_t = 1.0)]
    amp: f64,
    /// The port's time granularity, ns.
    #[arg(long, default_value_t = 1)]
    granularity: u64,
    /// The port's coherence limit T2, ns.
    #[arg(long, default_value_t = 1_000_000)]
    t2: u64,
    /// Seed of the capture noise and dephasing stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn pair(s: &str, what: &str) -> Result<(f64, f64)> {
    let (a, b) = s
        .split_once(':')
        .with_context(|| format!("--{what} is LOW:HIGH, got {s:?}"))?;
    let p = |x: &str| {
        x.trim()
            .parse::<f64>()
            .with_context(|| format!("--{what}: {x:?} is not a number"))
    };
    Ok((p(a)?, p(b)?))
}

fn setup(args: &WindowArgs) -> Result<(Port, WindowState)> {
    let (t0, t1) = pair(&args.window, "window")?;
    let (lo, hi) = pair(&args.band, "band")?;
    let (Some(lo), Some(hi)) = (Freq::from_hz(lo), Freq::from_hz(hi)) else {
        bail!("--band: not frequencies");
    };
    if !(t0 >= 0.0 && t1 > t0 && t1 < 1e18) || t0.fract() != 0.0 || t1.fract() != 0.0 {
        bail!(
            "--window: START:END in whole ns with START < END, got {:?}",
            args.window
        );
    }
    let Some(cap) = xdv_phi::units::amplitude_ppm(args.amp) else {
        bail!("--amp is between 0 and 1, got {}", args.amp);
    };
    let port = Port {
        name: args.port.clone(),
        granularity_ns: args.granularity.max(1),
        band: (lo, hi),
        max_amp: 1_000_000,
        t2_ns: args.t2.max(1),
    };
    let spec = WindowSpec {
        port: 0,
        t0: t0 as u64,
        t1: t1 as u64,
        band: (lo, hi),
        max_amp: cap,
        shared: false,
    };
    // The same checks a granted window passes.
    let mut table = xdv_phi::WindowTable::new(vec![port.clone()]);
    table
        .allocate(0, spec, None)
        .map_err(|e| anyhow::anyhow!("window: {e}"))?;
    Ok((port, WindowState::new(spec)))
}

/// Largest transform file `xdv phi run` and `xdv phi plot` read.
const MAX_TRANSFORM_FILE: u64 = 64 << 20;

fn load(path: &Path, args: &WindowArgs) -> Result<(Execution, WindowState)> {
    let bytes = xdv_manifest::read_regular(path, MAX_TRANSFORM_FILE, "a transform file", "64 MiB")
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).with_context(|| format!("reading {}", path.display()))?;
    let program = Program::parse(&text, &path.display().to_string())?;
    let (port, mut w) = setup(args)?;
    let visible = BTreeMap::new();
    let cx = Context {
        port: &port,
        visible: &visible,
        now: 0,
        delegated: &[],
        max_samples: xdv_phi::exec::MAX_TRANSFORM_SAMPLES,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let e = execute(&program, &mut w, &cx, &mut rng)?;
    Ok((e, w))
}

/// `xdv phi run`.
pub(crate) fn run(path: &Path, args: &WindowArgs, samples: bool, as_json: bool) -> Result<Outcome> {
    let (e, w) = load(path, args)?;
    if as_json {
        print_json(path, &e, &w, samples)?;
    } else {
        print_frames(path, args, &e, &w);
        print_plays(&e);
        print_captures(&e);
    }
    Ok(Outcome::Ok)
}

/// `xdv phi run --json`: the frames, plays (with their samples when asked) and captures.
fn print_json(path: &Path, e: &Execution, w: &WindowState, samples: bool) -> Result<()> {
    let frames: BTreeMap<&String, serde_json::Value> = w
        .frames
        .iter()
        .map(|(n, f)| {
            (
                n,
                json!({
                    "frequency_hz": f.freq.0,
                    "phase": f.phase.0,
                    "phase_rad": f.defined.then(|| f.phase.radians()),
                    "clock_ns": f.clock,
                    "defined": f.defined,
                }),
            )
        })
        .collect();
    let plays: Vec<_> = e
        .plays
        .iter()
        .map(|p| {
            let mut v = json!({
                "frame": p.frame, "envelope": p.envelope, "start_ns": p.start,
                "samples": p.samples.len(),
            });
            if samples {
                v["iq"] = json!(p.samples.iter().map(|s| [s.0, s.1]).collect::<Vec<_>>());
            }
            v
        })
        .collect();
    let captures: Vec<_> = e
        .captures
        .iter()
        .map(|(f, c)| json!({"frame": f, "start_ns": c.start, "duration_ns": c.duration, "i_micro": c.i, "q_micro": c.q}))
        .collect();
    outln!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "transform": path.display().to_string(),
            "start_ns": e.start, "end_ns": e.end,
            "frames": frames, "plays": plays, "captures": captures,
            "dephased": e.dephased,
        }))?
    );
    Ok(())
}

/// The execution's interval and window, and its frames as a table.
fn print_frames(path: &Path, args: &WindowArgs, e: &Execution, w: &WindowState) {
    outln!(
        "{}: [{}, {}) ns on window [{}, {}) of {}{}",
        path.display(),
        e.start,
        e.end,
        w.spec.t0,
        w.spec.t1,
        args.port,
        if e.dephased {
            " — the window DEPHASED afterwards"
        } else {
            ""
        }
    );
    let rows: Vec<Vec<String>> = w
        .frames
        .iter()
        .map(|(n, f)| {
            vec![
                n.clone(),
                f.freq.0.to_string(),
                if f.defined {
                    format!("{:.9}", f.phase.radians())
                } else {
                    "undefined".into()
                },
                f.clock.to_string(),
            ]
        })
        .collect();
    out!(
        "{}",
        table::render(&["frame", "frequency_hz", "phase_rad", "clock_ns"], &rows)
    );
}

/// The plays as a table, with each one's peak amplitude.
fn print_plays(e: &Execution) {
    if !e.plays.is_empty() {
        let rows: Vec<Vec<String>> = e
            .plays
            .iter()
            .map(|p| {
                let peak = p
                    .samples
                    .iter()
                    .map(|s| (s.0 * s.0 + s.1 * s.1).sqrt())
                    .fold(0.0, f64::max);
                vec![
                    p.frame.clone(),
                    p.envelope.to_string(),
                    p.start.to_string(),
                    p.samples.len().to_string(),
                    format!("{peak:.6}"),
                ]
            })
            .collect();
        outln!();
        out!(
            "{}",
            table::render(&["play", "envelope", "start_ns", "samples", "peak"], &rows)
        );
    }
}

/// The captures as a table.
fn print_captures(e: &Execution) {
    if !e.captures.is_empty() {
        let rows: Vec<Vec<String>> = e
            .captures
            .iter()
            .map(|(f, c)| {
                vec![
                    f.clone(),
                    c.start.to_string(),
                    c.duration.to_string(),
                    c.i.to_string(),
                    c.q.to_string(),
                ]
            })
            .collect();
        outln!();
        out!(
            "{}",
            table::render(
                &["capture", "start_ns", "duration_ns", "I (µ)", "Q (µ)"],
                &rows
            )
        );
    }
}

/// `xdv phi plot`: an SVG with one lane per frame — I (solid) and Q (dashed) of every play over
/// time, the frame's phase at each play, captures as shaded spans.
pub(crate) fn plot(
    path: &Path,
    args: &WindowArgs,
    output: Option<PathBuf>,
    png: bool,
) -> Result<Outcome> {
    let (e, _) = load(path, args)?;
    let png = png
        || output
            .as_ref()
            .is_some_and(|o| o.extension().is_some_and(|x| x == "png"));
    let out = output.unwrap_or_else(|| path.with_extension(if png { "png" } else { "svg" }));
    let mut names: Vec<&str> = e.plays.iter().map(|p| p.frame.as_str()).collect();
    names.extend(e.captures.iter().map(|(f, _)| f.as_str()));
    names.sort();
    names.dedup();
    let lanes = names
        .iter()
        .map(|name| crate::plot::Lane {
            name: (*name).to_string(),
            plays: e
                .plays
                .iter()
                .filter(|p| p.frame == *name)
                .map(|p| crate::plot::Trace {
                    start: p.start,
                    samples: &p.samples,
                    label: format!("{} φ={:.3} rad", p.envelope, p.phase.radians()),
                })
                .collect(),
            captures: e
                .captures
                .iter()
                .filter(|(f, _)| f == name)
                .map(|(_, c)| crate::plot::Mark {
                    start: c.start,
                    duration: c.duration,
                    i: c.i,
                    q: c.q,
                })
                .collect(),
        })
        .collect();
    let figure = crate::plot::Figure {
        title: format!(
            "{} on port {}, window {}: its extent [{}, {}) ns",
            path.display(),
            args.port,
            args.window,
            e.start,
            e.end
        ),
        start: e.start,
        end: e.end,
        lanes,
    };
    figure.write(&out, png)?;
    outln!("{}", out.display());
    Ok(Outcome::Ok)
}
