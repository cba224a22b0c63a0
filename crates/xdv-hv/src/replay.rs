//! Replay: re-execute a trace from the trace alone and compare every event.

use crate::hypervisor::Hypervisor;
use crate::HvError;
use serde::Serialize;
use std::path::Path;
use xdv_core::event::{Event, EventKind, EventSink, SinkError};
use xdv_core::trace::{TraceError, TraceReader};
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
    /// Q jobs a provider executed during the replay: always 0, outcomes come from the trace.
    pub provider_runs: u64,
}

impl ReplayReport {
    /// `true` when every recorded event was reproduced exactly.
    pub fn identical(&self) -> bool {
        self.divergence.is_none()
    }
}

struct Checker {
    recorded: Vec<(Event, Vec<u8>)>,
    pos: usize,
    complete: bool,
    divergence: Option<Divergence>,
    buf: Vec<u8>,
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
                });
                return Err(SinkError::Diverged { seq });
            }
            return Err(SinkError::Stopped(
                "reached the end of a trace that was cut short".into(),
            ));
        };
        self.buf.clear();
        event.encode_into(&mut self.buf);
        if self.buf != *body {
            self.divergence = Some(Divergence {
                seq,
                recorded: Some(recorded.clone()),
                replayed: Some(event.clone()),
            });
            return Err(SinkError::Diverged { seq });
        }
        self.pos += 1;
        Ok(())
    }
}

/// The job outcomes a recording holds, by (VHM id, job number).
pub(crate) fn recorded_outcomes(
    recorded: &[(Event, Vec<u8>)],
) -> std::collections::BTreeMap<(u32, u32), Vec<u64>> {
    recorded
        .iter()
        .filter_map(|(e, _)| match (&e.kind, e.vhm) {
            (EventKind::QJobDone { job, outcomes }, Some(v)) => {
                Some(((v.0, *job), outcomes.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Φ captures from a recording: (VHM id, the VHM's transform number) → each capture's (I, Q).
pub type RecordedCaptures = std::collections::BTreeMap<(u32, u64), Vec<(i64, i64)>>;

/// The Φ captures a recording holds, by (VHM id, the VHM's transform number).
pub(crate) fn recorded_captures(recorded: &[(Event, Vec<u8>)]) -> RecordedCaptures {
    let mut count: std::collections::BTreeMap<u32, u64> = Default::default();
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
/// its header) and compares every event byte for byte with the recorded one.
pub fn replay_trace(path: &Path) -> Result<ReplayReport, HvError> {
    let reader = TraceReader::open(path)?;
    let label = path.display().to_string();
    let (manifest, modules, seed) = load_from_trace(&reader, &label)?;
    let mut recorded = Vec::new();
    reader.for_each_event(|s| {
        recorded.push((s.event, s.body));
        Ok(true)
    })?;
    let complete = reader.is_complete()?;
    let events_recorded = recorded.len() as u64;
    let mut checker = Checker {
        recorded,
        pos: 0,
        complete,
        divergence: None,
        buf: Vec::with_capacity(256),
    };
    // Job outcomes come from the recording: replay reproduces the guests' behaviour without
    // running any provider.
    let outcomes = checker
        .recorded
        .iter()
        .filter_map(|(e, _)| match (&e.kind, e.vhm) {
            (EventKind::QJobDone { job, outcomes }, Some(v)) => {
                Some(((v.0, *job), outcomes.clone()))
            }
            _ => None,
        })
        .collect();
    let mut hv = Hypervisor::new(&manifest, &modules, seed)?;
    hv.use_recorded_outcomes(outcomes);
    hv.use_recorded_captures(recorded_captures(&checker.recorded));
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
        });
    }
    Ok(ReplayReport {
        events_matched: checker.pos as u64,
        events_recorded,
        trace_complete: complete,
        divergence: checker.divergence,
        provider_runs: hv.provider_runs(),
    })
}
