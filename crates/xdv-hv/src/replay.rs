//! Replay: re-execute a trace from the trace alone and compare every event.
//!
//! A plain replay injects the measured inputs the trace records (Q job outcomes, Φ captures)
//! instead of running providers, after checking each against its job ([`InputCheck`]: one
//! outcome per shot, every outcome word below 2^clbits). A re-deriving replay
//! ([`ReplayOptions::rederive`]) injects nothing: it runs the Q providers and the Φ executor
//! live, from the seeds in the trace, and so also checks that the recorded inputs are the ones
//! the run produced.
//!
//! The replay is a [`Driver`] of the hypervisor that streams the trace through an
//! [`EventCursor`]: each replayed event is compared with the next recorded one, and each
//! measured input is read from the recorded event about to be compared. Its memory does not
//! grow with the trace's length.

use crate::driver::{recorded_captures, recorded_outcomes, recorded_pause, Driver, Pause, QJobRun};
use crate::hypervisor::Hypervisor;
use crate::HvError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use xdv_core::event::{Event, EventKind, EventSink, SinkError};
use xdv_core::VhmId;
use xdv_manifest::{LoadedModule, Manifest};
use xdv_trace::{EventCursor, InputCheck, TraceError, TraceReader};

/// The first event where a replay and its trace differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// Sequence number of the event.
    pub seq: u64,
    /// The recorded event, `None` when the replay produced more events than recorded.
    pub recorded: Option<Event>,
    /// The replayed event, `None` when the replay ended before the recording.
    pub replayed: Option<Event>,
    /// What differs, in words, where it can be said more precisely than by the two events:
    /// which job of which VHM and which shot, which capture of which transform, or why a
    /// recorded input does not fit its job.
    pub reason: Option<String>,
}

/// How [`replay_trace_with`] replays.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Run the Q providers and the Φ executor instead of injecting the recorded outcomes and
    /// captures, and compare what they give with what the trace records.
    pub rederive: bool,
    /// With `rederive`: accept a re-derived Φ capture that differs from the recorded one by at
    /// most this many µ in I and in Q (0: exactly equal). The guest then reads the re-derived
    /// value; a guest that acts on it differently shows as a divergence later on.
    pub phi_tolerance: u64,
}

/// The outcome of [`replay_trace`].
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Events compared and found identical.
    pub events_matched: u64,
    /// Events in the trace.
    pub events_recorded: u64,
    /// `false` when the trace was cut short (the writer was killed); the replay then matches its
    /// committed prefix.
    pub trace_complete: bool,
    /// The first difference, `None` when identical.
    pub divergence: Option<Divergence>,
    /// Q jobs a provider executed during the replay: 0 in a plain replay (outcomes come from
    /// the trace), one per completed job when re-deriving.
    pub provider_runs: u64,
    /// `true` when the Q outcomes and Φ captures were re-derived rather than injected.
    pub rederived: bool,
    /// `q_job_done` events reproduced (re-derived outcomes when `rederived`).
    pub q_jobs_checked: u64,
    /// `phi_executed` events reproduced (re-derived captures when `rederived`).
    pub phi_transforms_checked: u64,
    /// `phi_executed` events accepted within the Φ tolerance although not equal.
    pub phi_within_tolerance: Vec<u64>,
    /// Why the trace was not replayed (a header naming another engine, or an older event
    /// schema); the replay did not run.
    pub problem: Option<String>,
    /// The trace's format and event schema.
    pub format_version: u32,
    /// The event schema of its bodies.
    pub event_schema: u32,
}

impl ReplayReport {
    /// `true` when every recorded event was reproduced exactly.
    pub fn identical(&self) -> bool {
        self.divergence.is_none() && self.problem.is_none()
    }
}

struct Checker<'r> {
    reader: &'r TraceReader,
    recorded: EventCursor<'r>,
    pos: u64,
    complete: bool,
    divergence: Option<Divergence>,
    buf: Vec<u8>,
    inputs: InputCheck,
    names: BTreeMap<u32, String>,
    transforms: BTreeMap<u32, u64>,
    rederive: bool,
    tolerance: u64,
    within: Vec<u64>,
    q_jobs: u64,
    phi: u64,
    provider_runs: u64,
}

impl<'r> Checker<'r> {
    fn new(reader: &'r TraceReader, complete: bool, opts: &ReplayOptions) -> Self {
        Self {
            reader,
            recorded: reader.cursor(),
            pos: 0,
            complete,
            divergence: None,
            buf: Vec::with_capacity(256),
            inputs: InputCheck::default(),
            names: BTreeMap::new(),
            transforms: BTreeMap::new(),
            rederive: opts.rederive,
            tolerance: opts.phi_tolerance,
            within: Vec::new(),
            q_jobs: 0,
            phi: 0,
            provider_runs: 0,
        }
    }

    fn diverge(
        &mut self,
        recorded: Option<Event>,
        replayed: &Event,
        reason: Option<String>,
    ) -> SinkError {
        let seq = self.pos;
        self.divergence = Some(Divergence {
            seq,
            recorded,
            replayed: Some(replayed.clone()),
            reason,
        });
        SinkError::Diverged { seq }
    }

    /// The recorded event the next replayed one is compared with.
    fn next_recorded(&mut self) -> Result<Option<&Event>, SinkError> {
        self.recorded.peek().map_err(store)
    }

    /// Counts and names what a matched event shows.
    fn matched(&mut self, e: &Event) {
        if let Some(v) = e.vhm {
            match &e.kind {
                EventKind::VhmCreated { name, .. } => {
                    self.names.insert(v.0, name.clone());
                }
                EventKind::QJobDone { .. } => self.q_jobs += 1,
                EventKind::PhiExecuted { .. } => {
                    self.phi += 1;
                    *self.transforms.entry(v.0).or_insert(0) += 1;
                }
                _ => {}
            }
        }
        self.pos += 1;
    }

    fn who(&self, e: &Event) -> String {
        match e.vhm {
            Some(v) => match self.names.get(&v.0) {
                Some(n) => format!("VHM {n:?} ({v})"),
                None => v.to_string(),
            },
            None => "the host".into(),
        }
    }

    /// Says precisely what differs between a recorded and a replayed input event.
    fn explain(&self, recorded: &Event, replayed: &Event) -> Option<String> {
        let how = if self.rederive {
            "re-derived"
        } else {
            "replayed"
        };
        match (&recorded.kind, &replayed.kind) {
            (
                EventKind::QJobDone { job, outcomes: r },
                EventKind::QJobDone {
                    job: job2,
                    outcomes: d,
                },
            ) if job == job2 && recorded.vhm == replayed.vhm => {
                let who = self.who(recorded);
                if r.len() != d.len() {
                    return Some(format!(
                        "q job {job} of {who}: {} outcomes recorded, {} {how}",
                        r.len(),
                        d.len()
                    ));
                }
                let shot = r.iter().zip(d).position(|(a, b)| a != b)?;
                Some(format!(
                    "q job {job} of {who}, shot {shot}: outcome {} recorded, {} {how} ({} of {} shots differ)",
                    r[shot],
                    d[shot],
                    r.iter().zip(d).filter(|(a, b)| a != b).count(),
                    r.len()
                ))
            }
            (
                EventKind::PhiExecuted { captures: r, .. },
                EventKind::PhiExecuted { captures: d, .. },
            ) if recorded.vhm == replayed.vhm => {
                let n = recorded
                    .vhm
                    .and_then(|v| self.transforms.get(&v.0))
                    .copied()
                    .unwrap_or(0);
                let who = self.who(recorded);
                if r.len() != d.len() {
                    return Some(format!(
                        "Φ transform {n} of {who}: {} captures recorded, the transform makes {}",
                        r.len(),
                        d.len()
                    ));
                }
                if only_captures_differ(recorded, replayed) {
                    let k = r.iter().zip(d).position(|(a, b)| a != b)?;
                    return Some(format!(
                        "Φ transform {n} of {who}, capture {k}: ({}, {}) µ recorded, ({}, {}) µ {how}",
                        r[k].0, r[k].1, d[k].0, d[k].1
                    ));
                }
                None
            }
            _ => None,
        }
    }

    /// A re-derived `phi_executed` that differs from the recorded one only in captures, each
    /// within the tolerance.
    fn within_tolerance(&self, recorded: &Event, replayed: &Event) -> bool {
        if !self.rederive || self.tolerance == 0 || !only_captures_differ(recorded, replayed) {
            return false;
        }
        match (&recorded.kind, &replayed.kind) {
            (
                EventKind::PhiExecuted { captures: r, .. },
                EventKind::PhiExecuted { captures: d, .. },
            ) => {
                r.len() == d.len()
                    && r.iter().zip(d).all(|(a, b)| {
                        a.0.abs_diff(b.0) <= self.tolerance && a.1.abs_diff(b.1) <= self.tolerance
                    })
            }
            _ => false,
        }
    }
}

/// `true` when two `phi_executed` events are equal but for their captures.
fn only_captures_differ(a: &Event, b: &Event) -> bool {
    let mut b2 = b.clone();
    match (&a.kind, &mut b2.kind) {
        (
            EventKind::PhiExecuted { captures: r, .. },
            EventKind::PhiExecuted { captures: d, .. },
        ) => {
            d.clone_from(r);
            *a == b2
        }
        _ => false,
    }
}

fn store(e: TraceError) -> SinkError {
    SinkError::Store(e.to_string())
}

impl EventSink for Checker<'_> {
    fn emit(&mut self, event: &Event) -> Result<(), SinkError> {
        let seq = self.pos;
        let Some(xdv_trace::RawEvent { body, decoded, .. }) =
            self.recorded.next_body().map_err(store)?
        else {
            if self.complete {
                self.divergence = Some(Divergence {
                    seq,
                    recorded: None,
                    replayed: Some(event.clone()),
                    reason: None,
                });
                return Err(SinkError::Diverged { seq });
            }
            return Err(SinkError::Stopped(
                "reached the end of a trace that was cut short".into(),
            ));
        };
        self.buf.clear();
        event.encode_into(&mut self.buf);
        if self.buf == body {
            // Equal bytes: the replayed event is the recorded one, so it is what the input
            // check reads (no decoding).
            if let Err(why) = self.inputs.observe(event) {
                let reason = format!("the recorded {}: {why}", event.kind.name());
                return Err(self.diverge(Some(event.clone()), event, Some(reason)));
            }
            self.matched(event);
            return Ok(());
        }
        let recorded = match decoded {
            Some(e) => e,
            None => Event::decode(&body).map_err(|e| {
                SinkError::Store(format!(
                    "event {seq}: the recorded body does not decode: {e}"
                ))
            })?,
        };
        // Every earlier event matched, so the recorded job of a recorded outcome is the real one.
        if let Err(why) = self.inputs.observe(&recorded) {
            let reason = format!("the recorded {}: {why}", recorded.kind.name());
            return Err(self.diverge(Some(recorded), event, Some(reason)));
        }
        if self.within_tolerance(&recorded, event) {
            self.within.push(seq);
            self.matched(event);
            return Ok(());
        }
        let reason = self.explain(&recorded, event);
        Err(self.diverge(Some(recorded), event, reason))
    }
}

impl Driver for Checker<'_> {
    /// A plain replay runs no provider: the outcomes are the recorded `q_job_done`'s, about to
    /// be compared; zeros when the recording has none that fits (a trace cut short before the
    /// job completed, or a forged one), so the comparison shows the misfit.
    fn q_outcomes(&mut self, job: &QJobRun<'_>) -> Result<Vec<u64>, SinkError> {
        if self.rederive {
            self.provider_runs += 1;
            return Ok(job.execute());
        }
        let next = self.next_recorded()?;
        Ok(recorded_outcomes(next, job)
            .unwrap_or_else(|| vec![0; usize::try_from(job.shots).unwrap_or(0)]))
    }

    fn phi_captures(
        &mut self,
        vhm: VhmId,
        computed: Vec<(i64, i64)>,
    ) -> Result<Vec<(i64, i64)>, SinkError> {
        if self.rederive {
            return Ok(computed);
        }
        let next = self.next_recorded()?;
        Ok(recorded_captures(next, vhm, computed))
    }

    /// The recorded request at this pause, or the next horizon.
    fn at_pause(&mut self, pause: &Pause) -> Result<Option<crate::Input>, SinkError> {
        let reader = self.reader;
        let next = self.next_recorded()?;
        Ok(recorded_pause(next, pause, |h| {
            reader.module(h).ok().flatten()
        }))
    }
}

/// The oldest event schema this hypervisor re-executes: schema 6 records refusals and faults
/// as codes where older ones wrote words; schema 7 only appended the service's requests, which
/// a schema 6 trace has none of.
pub const OLDEST_REEXECUTED_SCHEMA: u32 = 6;

/// Why a trace of an older event schema is not re-executed: its events could never equal this
/// hypervisor's. Such a trace still verifies and reads (`trace verify`, `show`, `accounting`,
/// `export`).
pub(crate) fn older_schema(header: &xdv_trace::TraceHeader) -> Option<String> {
    (header.event_schema < OLDEST_REEXECUTED_SCHEMA).then(|| {
        format!(
            "recorded with event schema {} by xdv {}; this xdv re-executes event schemas {OLDEST_REEXECUTED_SCHEMA} to {} only (schema 6 records refusals and faults as codes, not words). trace verify, show, accounting and export still read it",
            header.event_schema,
            header.xdv_version,
            xdv_core::EVENT_SCHEMA_VERSION
        )
    })
}

/// Loads the manifest and modules stored in a trace.
///
/// # Errors
///
/// [`HvError::Manifest`] when the stored manifest does not parse; [`HvError::Trace`] when a
/// module it names is not listed in the header or not stored.
pub fn load_from_trace(
    reader: &TraceReader,
    label: &str,
) -> Result<(Manifest, Vec<LoadedModule>, u64), HvError> {
    let header = reader.header()?;
    let manifest = Manifest::parse(
        &header.manifest_text,
        &format!("{label} (stored manifest {})", header.manifest_name),
    )?;
    let mut modules = Vec::new();
    for (name, _, _) in manifest.module_paths() {
        let entry = header
            .modules
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| TraceError::NotATrace {
                path: label.to_string(),
                reason: format!("the header lists no module {name}"),
            })?;
        let bytes = reader
            .module(&entry.hash)?
            .ok_or_else(|| TraceError::NotATrace {
                path: label.to_string(),
                reason: format!(
                    "module {} ({}) is not stored",
                    entry.name,
                    entry.hash.short()
                ),
            })?;
        modules.push(LoadedModule {
            name: entry.name.clone(),
            bytes,
        });
    }
    Ok((manifest, modules, header.seed))
}

/// Re-executes the run recorded in `path` from the trace alone (manifest, modules and seed from
/// its header) and compares every event byte for byte with the recorded one, injecting the
/// recorded Q outcomes and Φ captures after checking them against their jobs.
///
/// # Errors
///
/// [`HvError`] when the trace cannot be read or its manifest and modules cannot be loaded; a
/// difference is a [`Divergence`] in the report.
pub fn replay_trace(path: &Path) -> Result<ReplayReport, HvError> {
    replay_trace_with(path, &ReplayOptions::default())
}

/// [`replay_trace`], as `opts` asks: with `rederive`, the Q providers and the Φ executor run
/// live and their outcomes and captures are compared with the recorded ones.
///
/// # Errors
///
/// As [`replay_trace`].
pub fn replay_trace_with(path: &Path, opts: &ReplayOptions) -> Result<ReplayReport, HvError> {
    let reader = TraceReader::open(path)?;
    let label = path.display().to_string();
    let header = reader.header()?;
    let (manifest, modules, seed) = load_from_trace(&reader, &label)?;
    let complete = reader.is_complete()?;
    let events_recorded = reader.event_count()?;
    let mut out = ReplayReport {
        events_matched: 0,
        events_recorded,
        trace_complete: complete,
        divergence: None,
        provider_runs: 0,
        rederived: opts.rederive,
        q_jobs_checked: 0,
        phi_transforms_checked: 0,
        phi_within_tolerance: Vec::new(),
        problem: None,
        format_version: header.format_version,
        event_schema: header.event_schema,
    };
    if let Some(problem) = older_schema(&header) {
        out.problem = Some(problem);
        return Ok(out);
    }
    if header.engine != xdv_k::ENGINE_ID {
        out.problem = Some(format!(
            "the trace names engine `{}`; this xdv runs `{}`: its replay would not be evidence of the recorded run",
            header.engine,
            xdv_k::ENGINE_ID
        ));
        return Ok(out);
    }
    let mut hv =
        Hypervisor::new(&manifest, &modules, seed)?.recorded_with_schema(header.event_schema);
    let mut checker = Checker::new(&reader, complete, opts);
    match hv.run_driven(&mut checker) {
        Ok(_) => {}
        Err(HvError::Sink(SinkError::Diverged { .. } | SinkError::Stopped(_))) => {}
        Err(e) => return Err(e),
    }
    if checker.divergence.is_none() {
        if let Some(ev) = checker.recorded.next_event()? {
            checker.divergence = Some(Divergence {
                seq: checker.pos,
                recorded: Some(ev),
                replayed: None,
                reason: None,
            });
        }
    }
    out.events_matched = checker.pos;
    out.divergence = checker.divergence;
    out.provider_runs = checker.provider_runs;
    out.q_jobs_checked = checker.q_jobs;
    out.phi_transforms_checked = checker.phi;
    out.phi_within_tolerance = checker.within;
    Ok(out)
}
