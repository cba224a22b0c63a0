//! Replay: re-execute a trace from the trace alone and compare every event.
//!
//! A plain replay injects the measured inputs the trace records (Q job outcomes, Φ captures)
//! instead of running providers, after checking each against its job ([`InputCheck`]: one
//! outcome per shot, every outcome word below 2^clbits). A re-deriving replay
//! ([`ReplayOptions::rederive`]) injects nothing: it runs the Q providers and the Φ executor
//! live, from the seeds in the trace, and so also checks that the recorded inputs are the ones
//! the run produced.

use crate::hypervisor::Hypervisor;
use crate::HvError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use xdv_core::event::{Event, EventKind, EventSink, SinkError};
use xdv_core::trace::{InputCheck, TraceError, TraceReader};
use xdv_manifest::{LoadedModule, Manifest};

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
    /// the trace), one per admitted job when re-deriving.
    pub provider_runs: u64,
    /// `true` when the Q outcomes and Φ captures were re-derived rather than injected.
    pub rederived: bool,
    /// `q_job_done` events reproduced (re-derived outcomes when `rederived`).
    pub q_jobs_checked: u64,
    /// `phi_executed` events reproduced (re-derived captures when `rederived`).
    pub phi_transforms_checked: u64,
    /// `phi_executed` events accepted within the Φ tolerance although not equal.
    pub phi_within_tolerance: Vec<u64>,
    /// Why the replay is not evidence although it may not have diverged (a header naming
    /// another engine); the replay did not run.
    pub problem: Option<String>,
    /// The trace's format and event schema.
    pub format_version: u32,
    /// The event schema of its bodies.
    pub event_schema: u32,
    /// Set when the trace was recorded by an older event schema: a divergence may then come
    /// from hypervisor behaviour that changed since, not from an edit.
    pub note: Option<String>,
}

impl ReplayReport {
    /// `true` when every recorded event was reproduced exactly.
    pub fn identical(&self) -> bool {
        self.divergence.is_none() && self.problem.is_none()
    }
}

struct Checker {
    recorded: Vec<(Event, Vec<u8>)>,
    pos: usize,
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
}

impl Checker {
    fn new(recorded: Vec<(Event, Vec<u8>)>, complete: bool, opts: &ReplayOptions) -> Self {
        Self {
            recorded,
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
        }
    }

    fn diverge(&mut self, replayed: &Event, reason: Option<String>) -> SinkError {
        let seq = self.pos as u64;
        self.divergence = Some(Divergence {
            seq,
            recorded: self.recorded.get(self.pos).map(|(e, _)| e.clone()),
            replayed: Some(replayed.clone()),
            reason,
        });
        SinkError::Diverged { seq }
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

impl EventSink for Checker {
    fn emit(&mut self, event: &Event) -> Result<(), SinkError> {
        let seq = self.pos as u64;
        let Some((recorded, body)) = self.recorded.get(self.pos) else {
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
        // Every earlier event matched, so the recorded job of a recorded outcome is the real one.
        if let Err(why) = self.inputs.observe(recorded) {
            return Err(self.diverge(
                event,
                Some(format!("the recorded {}: {why}", recorded.kind.name())),
            ));
        }
        self.buf.clear();
        event.encode_into(&mut self.buf);
        if self.buf == *body {
            self.matched(event);
            return Ok(());
        }
        let recorded = recorded.clone();
        if self.within_tolerance(&recorded, event) {
            self.within.push(seq);
            self.matched(event);
            return Ok(());
        }
        let reason = self.explain(&recorded, event);
        Err(self.diverge(event, reason))
    }
}

/// The job outcomes a recording holds, by (VHM id, job number): only those that fit their job
/// (one per shot, each below 2^clbits of its `q_job_submitted`). A recorded outcome that does
/// not fit is never injected: the run computes the job's outcome instead (a provider in a
/// resume, zeros in a replay, which reports the misfit), so the recorded event diverges.
pub(crate) fn recorded_outcomes(recorded: &[(Event, Vec<u8>)]) -> BTreeMap<(u32, u32), Vec<u64>> {
    let mut check = InputCheck::default();
    recorded
        .iter()
        .filter_map(|(e, _)| {
            let fits = check.observe(e).is_ok();
            match (&e.kind, e.vhm) {
                (EventKind::QJobDone { job, outcomes }, Some(v)) if fits => {
                    Some(((v.0, *job), outcomes.clone()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Φ captures from a recording: (VHM id, the VHM's transform number) → each capture's (I, Q).
pub type RecordedCaptures = BTreeMap<(u32, u64), Vec<(i64, i64)>>;

/// The Φ captures a recording holds, by (VHM id, the VHM's transform number). The hypervisor
/// injects them only where their count is the transform's.
pub(crate) fn recorded_captures(recorded: &[(Event, Vec<u8>)]) -> RecordedCaptures {
    let mut count: BTreeMap<u32, u64> = Default::default();
    recorded
        .iter()
        .filter_map(|(e, _)| match (&e.kind, e.vhm) {
            (EventKind::PhiExecuted { captures, .. }, Some(v)) => {
                let n = count.entry(v.0).or_insert(0);
                *n += 1;
                Some(((v.0, *n - 1), captures.clone()))
            }
            _ => None,
        })
        .collect()
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
    let mut recorded = Vec::new();
    reader.for_each_event(|s| {
        recorded.push((s.event, s.body));
        Ok(true)
    })?;
    let complete = reader.is_complete()?;
    let events_recorded = recorded.len() as u64;
    let note = (header.event_schema < xdv_core::EVENT_SCHEMA_VERSION).then(|| {
        format!(
            "recorded with event schema {} (this xdv writes {}): a divergence may come from hypervisor behaviour changed since, not from an edit",
            header.event_schema,
            xdv_core::EVENT_SCHEMA_VERSION
        )
    });
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
        note,
    };
    if header.engine != xdv_k::ENGINE_ID {
        out.problem = Some(format!(
            "the trace names engine `{}`; this xdv runs `{}`: its replay would not be evidence of the recorded run",
            header.engine,
            xdv_k::ENGINE_ID
        ));
        return Ok(out);
    }
    let mut hv = Hypervisor::new(&manifest, &modules, seed)?;
    if !opts.rederive {
        // Job outcomes and captures come from the recording: the replay reproduces the guests'
        // behaviour without running any provider.
        hv.use_recorded_outcomes(recorded_outcomes(&recorded));
        hv.use_recorded_captures(recorded_captures(&recorded));
    }
    let mut checker = Checker::new(recorded, complete, opts);
    match hv.run(&mut checker) {
        Ok(_) => {}
        Err(HvError::Sink(SinkError::Diverged { .. } | SinkError::Stopped(_))) => {}
        Err(e) => return Err(e),
    }
    if checker.divergence.is_none() && checker.pos < checker.recorded.len() {
        let (ev, _) = &checker.recorded[checker.pos];
        checker.divergence = Some(Divergence {
            seq: checker.pos as u64,
            recorded: Some(ev.clone()),
            replayed: None,
            reason: None,
        });
    }
    out.events_matched = checker.pos as u64;
    out.divergence = checker.divergence;
    out.provider_runs = hv.provider_runs();
    out.q_jobs_checked = checker.q_jobs;
    out.phi_transforms_checked = checker.phi;
    out.phi_within_tolerance = checker.within;
    Ok(out)
}
