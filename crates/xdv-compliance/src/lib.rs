//! The compliance report: the items of XDV-014 §12 that a trace can show, each checked from the
//! recorded events (and a replay) with its evidence.
//!
//! A reader of traces, above the hypervisor: it verifies the trace (`xdv-trace`), replays and
//! re-derives it (`xdv-hv`'s replay driver) and checks the properties over the events.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use xdv_core::cap::Object;
use xdv_core::event::{Event, EventKind, HypercallRecord, Resource};
use xdv_core::{Domain, VhmId};
use xdv_hv::replay::{replay_trace, replay_trace_with, ReplayOptions, ReplayReport};
use xdv_hv::HvError;
use xdv_trace::{PublicKey, SignatureStatus, TraceReader, VerifyOptions, VerifyReport};

/// One compliance item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Its number in §12.
    pub number: u32,
    /// What it requires.
    pub requirement: &'static str,
    /// Whether the trace shows it.
    pub pass: bool,
    /// What was checked and found.
    pub evidence: Vec<String>,
}

/// The compliance report of a trace: the §12 items, whether the run finished, and its signature.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The §12 items.
    pub items: Vec<Item>,
    /// `false` when the trace was cut short: its end is not recorded, so it cannot be compliant.
    pub complete: bool,
    /// The signature as `trace verify` found it.
    pub signature: SignatureStatus,
}

impl Report {
    /// `true` when every item passes (a cut-short trace fails §12.4).
    pub fn compliant(&self) -> bool {
        self.items.iter().all(|i| i.pass)
    }
}

/// Checks the §12 items on a trace.
///
/// # Errors
///
/// [`HvError`] when the trace cannot be read or its stored manifest does not parse.
pub fn compliance(path: &Path) -> Result<Vec<Item>, HvError> {
    Ok(report(path, None)?.items)
}

/// Checks the §12 items on a trace, and its signature; with `key`, a valid signature by that key
/// is required (§12.2 fails without one). Runs three checks besides the events' own: `trace
/// verify` (with this xdv's engine), a replay from the trace alone (no provider), and a
/// re-deriving replay (the providers and the Φ executor run from the trace's seeds, and their
/// outcomes and captures must equal the recorded ones).
///
/// # Errors
///
/// [`HvError`] when the trace cannot be read or its stored manifest does not parse.
pub fn report(path: &Path, key: Option<PublicKey>) -> Result<Report, HvError> {
    let reader = TraceReader::open(path)?;
    let events = reader.events()?;
    let verify = reader.verify_with(&VerifyOptions {
        engine: Some(xdv_k::ENGINE_ID.to_string()),
        key,
    })?;
    // Port names by index, from the manifest the trace holds (releases name ports by index).
    let (manifest, _, _) = xdv_hv::replay::load_from_trace(&reader, &path.display().to_string())?;
    let ports: Vec<String> = manifest
        .host
        .phi_ports
        .iter()
        .map(|p| p.name.clone())
        .collect();
    drop(reader);
    let replay = replay_trace(path).map_err(|e| e.to_string());
    let rederived = replay_trace_with(
        path,
        &ReplayOptions {
            rederive: true,
            phi_tolerance: 0,
        },
    )
    .map_err(|e| e.to_string());
    Ok(Report {
        items: vec![
            isolation(&events, &ports),
            deterministic(&replay, &rederived, &verify),
            nesting(&events),
            reconstruction(&events, &replay, &verify),
            domains(&events),
        ],
        complete: verify.complete,
        signature: verify.signature,
    })
}

fn item(
    number: u32,
    requirement: &'static str,
    problems: Vec<String>,
    mut evidence: Vec<String>,
) -> Item {
    let pass = problems.is_empty();
    evidence.extend(problems.into_iter().map(|p| format!("VIOLATION: {p}")));
    Item {
        number,
        requirement,
        pass,
        evidence,
    }
}

/// Each VHM's parent, as the trace records it.
type Parents = BTreeMap<VhmId, Option<VhmId>>;

/// The parent of each VHM.
fn parents(events: &[Event]) -> Parents {
    events
        .iter()
        .filter_map(|e| match (&e.kind, e.vhm) {
            (EventKind::VhmCreated { parent, .. }, Some(v)) => Some((v, *parent)),
            _ => None,
        })
        .collect()
}

fn descends(parents: &Parents, v: VhmId, of: VhmId) -> bool {
    let mut at = parents.get(&v).copied().flatten();
    while let Some(p) = at {
        if p == of {
            return true;
        }
        at = parents.get(&p).copied().flatten();
    }
    false
}

/// §12.1: capabilities name only what their holder may hold; Q containers and exclusive Φ
/// windows never overlap; a fault stops only the faulting VHM and its subtree.
fn isolation(events: &[Event], ports: &[String]) -> Item {
    let parents = parents(events);
    let mut problems = Vec::new();
    let (caps, faults) = cap_and_fault_isolation(events, &parents, &mut problems);
    let containers = q_isolation(events, &parents, &mut problems);
    let windows = phi_isolation(events, ports, &mut problems);
    item(
        1,
        "VHMs are fully isolated",
        problems,
        vec![
            format!("{caps} capabilities created, each naming only objects its holder may hold"),
            format!("{containers} Q containers placed, no qubit held by two unrelated VHMs"),
            format!("{windows} Φ windows granted, no exclusive overlap within a scope"),
            format!("{faults} faults, each stopping only the faulting VHM and its subtree"),
        ],
    )
}

/// The capability and fault part of [`isolation`]: objects tied to a VHM held by it alone,
/// handles on a VHM minted only for its parent, a fault stopping only its VHM's subtree. How
/// many capabilities and faults it looked at.
fn cap_and_fault_isolation(
    events: &[Event],
    parents: &Parents,
    problems: &mut Vec<String>,
) -> (u64, u64) {
    let (mut caps, mut faults) = (0u64, 0u64);
    for (i, e) in events.iter().enumerate() {
        let Some(holder) = e.vhm else { continue };
        if let EventKind::CapCreated { object, from, .. } = &e.kind {
            caps += 1;
            // Objects tied to a VHM are held by that VHM only (their rights exclude transfer).
            let owner = match object {
                Object::Budget(v)
                | Object::Vcpu(v, _)
                | Object::QContainer(v)
                | Object::QJob(v, _)
                | Object::PhiWindow(v, _) => Some(*v),
                _ => None,
            };
            if owner.is_some_and(|o| o != holder) {
                problems.push(format!("event {i}: {holder} holds {object}"));
            }
            // The hypervisor mints a handle on a VHM only for its parent; others get one only
            // by an explicit transfer (`from` names it).
            if let (Object::Vhm(child), None) = (object, from) {
                if parents.get(child).copied().flatten() != Some(holder) {
                    problems.push(format!(
                        "event {i}: {holder} was given a handle on {child}, not its child"
                    ));
                }
            }
        }
        if let EventKind::Fault { .. } | EventKind::LegacyFault { .. } = &e.kind {
            faults += 1;
            // Every VHM that stops before the faulting VHM's exit belongs to its subtree.
            for later in &events[i + 1..] {
                if let (EventKind::VhmExited { .. }, Some(v)) = (&later.kind, later.vhm) {
                    if v == holder {
                        break;
                    }
                    if !descends(parents, v, holder) {
                        problems.push(format!("event {i}: the fault of {holder} stopped {v}"));
                    }
                }
            }
        }
    }
    (caps, faults)
}

/// The Q part of [`isolation`]: physical qubits held by one live container at a time (per
/// device), except a child's, carved from its parent's. How many containers were placed.
fn q_isolation(events: &[Event], parents: &Parents, problems: &mut Vec<String>) -> u64 {
    let mut containers = 0u64;
    // Q containers: physical qubits held by one live container at a time (per device), except
    // a child's, carved from its parent's.
    let mut held: BTreeMap<(String, u32), VhmId> = BTreeMap::new();
    let mut placed: BTreeMap<VhmId, (String, Vec<u32>)> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let Some(v) = e.vhm else { continue };
        match &e.kind {
            EventKind::QContainerPlaced {
                device,
                physical,
                from_parent,
            } => {
                containers += 1;
                for &q in physical {
                    if let Some(other) = held.get(&(device.clone(), q)) {
                        let nested = *from_parent && descends(parents, v, *other);
                        if !nested {
                            problems.push(format!("event {i}: qubit {q} of {device} given to {v} while {other} holds it"));
                        }
                    }
                    held.insert((device.clone(), q), v);
                }
                placed.insert(v, (device.clone(), physical.clone()));
            }
            EventKind::QScrubbed { device, physical } => {
                for &q in physical {
                    if held.get(&(device.clone(), q)) == Some(&v) {
                        // Back to the parent, if the qubits came from it.
                        let back = parents.get(&v).copied().flatten().filter(|p| {
                            placed
                                .get(p)
                                .is_some_and(|(d, ph)| d == device && ph.contains(&q))
                        });
                        match back {
                            Some(p) => held.insert((device.clone(), q), p),
                            None => held.remove(&(device.clone(), q)),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    containers
}

/// The Φ part of [`isolation`]: exclusive windows of one scope never overlap. How many windows
/// were granted.
fn phi_isolation(events: &[Event], ports: &[String], problems: &mut Vec<String>) -> u64 {
    // Φ windows: exclusive windows of one scope never overlap. A release closes its holder's
    // window of that port and interval.
    let mut live: BTreeMap<u32, (VhmId, LiveWindow)> = BTreeMap::new();
    let mut windows = 0u64;
    for (i, e) in events.iter().enumerate() {
        match &e.kind {
            EventKind::PhiWindowGranted {
                window,
                port,
                t0,
                t1,
                band,
                shared,
                parent,
                ..
            } => {
                windows += 1;
                for (w, (_, (p, a, b, s, par, bd))) in &live {
                    let overlap = p == port && par == parent && *a < *t1 && *t0 < *b;
                    let allowed = *s && *shared && (bd.1 < band.0 || band.1 < bd.0);
                    if overlap && !allowed {
                        problems.push(format!(
                            "event {i}: window {window} overlaps window {w} on {port}"
                        ));
                    }
                }
                let holder = e.vhm.unwrap_or(VhmId(u32::MAX));
                live.insert(
                    *window,
                    (holder, (port.clone(), *t0, *t1, *shared, *parent, *band)),
                );
            }
            EventKind::Released {
                domain: Domain::Phi,
                resource: Resource::Window { port, t0, t1 },
                ..
            } => {
                let w = live
                    .iter()
                    .find(|(_, (h, (p, a, b, ..)))| {
                        Some(*h) == e.vhm
                            && ports.get(*port as usize) == Some(p)
                            && a == t0
                            && b == t1
                    })
                    .map(|(w, _)| *w);
                if let Some(w) = w {
                    live.remove(&w);
                }
            }
            _ => {}
        }
    }
    windows
}

/// A granted window as the isolation check tracks it: (port, t0, t1, shared, parent, band).
type LiveWindow = (String, u64, u64, bool, Option<u32>, (i64, i64));

/// A divergence in words: where, and what differs.
fn diverged(what: &str, r: &ReplayReport) -> Option<String> {
    if let Some(p) = &r.problem {
        return Some(format!("{what}: {p}"));
    }
    r.divergence.as_ref().map(|d| {
        format!(
            "{what} diverges at event {}{}",
            d.seq,
            d.reason
                .as_ref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        )
    })
}

/// §12.2: the run re-executes from its trace alone to the same events, and its measured inputs
/// are the ones the providers give from its seeds.
fn deterministic(
    replay: &Result<ReplayReport, String>,
    rederived: &Result<ReplayReport, String>,
    verify: &VerifyReport,
) -> Item {
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    if let Some(p) = &verify.problem {
        problems.push(format!("the trace does not verify: {p}"));
    }
    match replay {
        Ok(r) => {
            problems.extend(diverged("replay", r));
            if r.provider_runs != 0 {
                problems.push("the replay needed a Q provider".into());
            }
            if r.problem.is_none() {
                evidence.push(format!(
                "{}replay from the trace alone reproduced {} of {} events byte for byte{}, with no Q provider",
                if verify.intact() { "hash chain intact; " } else { "" },
                r.events_matched,
                r.events_recorded,
                if r.trace_complete { "" } else { " (trace cut short)" }
            ));
            }
        }
        Err(e) => problems.push(format!("the trace does not replay: {e}")),
    }
    match rederived {
        Ok(r) => {
            problems.extend(diverged(
                "re-deriving the Q outcomes and Φ captures from the seeds",
                r,
            ));
            if r.identical() {
                evidence.push(format!(
                    "the Q providers and the Φ executor, re-run from the trace's seeds, gave the recorded outcomes of {} jobs and captures of {} transforms",
                    r.q_jobs_checked, r.phi_transforms_checked
                ));
            }
        }
        Err(e) => problems.push(format!("the trace does not re-derive: {e}")),
    }
    evidence.push(match &verify.signature {
        SignatureStatus::Valid { public_key } => {
            format!("signed by {public_key}: the signature verifies")
        }
        SignatureStatus::Unsigned => {
            "unsigned: nothing proves its holder did not edit it and re-chain it".into()
        }
        other => other.describe(),
    });
    item(
        2,
        "Domain resources are virtualized deterministically",
        problems,
        evidence,
    )
}

/// §12.3: levels, carving and giving back, nested containers and windows inside their parents',
/// budgets within their allocations.
fn nesting(events: &[Event]) -> Item {
    let mut problems = Vec::new();
    let mut level: BTreeMap<VhmId, u8> = BTreeMap::new();
    let (mut nested, mut carved, mut given) = (0u64, 0u64, 0u64);
    let mut open: BTreeSet<VhmId> = BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        let Some(v) = e.vhm else { continue };
        match &e.kind {
            EventKind::VhmCreated {
                parent, level: l, ..
            } => {
                level.insert(v, *l);
                match parent {
                    None if *l != 1 => {
                        problems.push(format!("event {i}: {v} has no parent but level {l}"))
                    }
                    Some(p) => {
                        nested += 1;
                        if level.get(p).map(|pl| pl + 1) != Some(*l) || *l > 8 {
                            problems.push(format!("event {i}: {v} at level {l} under {p}"));
                        }
                    }
                    _ => {}
                }
            }
            EventKind::Carved { child, .. } => {
                carved += 1;
                open.insert(*child);
            }
            EventKind::GivenBack { child, .. } => {
                given += 1;
                if !open.remove(child) {
                    problems.push(format!(
                        "event {i}: {child}'s quota given back without being carved"
                    ));
                }
            }
            EventKind::Released {
                resource: Resource::Decoherence(b) | Resource::Fuel(b),
                used: Some(u),
                ..
            } if u > b => {
                problems.push(format!("event {i}: {v} used {u} of {b}"));
            }
            _ => {}
        }
    }
    item(
        3,
        "Nested execution preserves invariants",
        problems,
        vec![
            format!("{nested} nested VHMs, each one level below its parent, none deeper than L8"),
            format!("{carved} quotas carved, {given} given back, none given back twice"),
            "fuel and decoherence used within every allocation".into(),
        ],
    )
}

/// §12.4: creation, allocation, nesting and termination, in their order, reproduced by replay.
fn reconstruction(
    events: &[Event],
    replay: &Result<ReplayReport, String>,
    verify: &VerifyReport,
) -> Item {
    let count = |f: fn(&EventKind) -> bool| events.iter().filter(|e| f(&e.kind)).count();
    let created = count(|k| matches!(k, EventKind::VhmCreated { .. }));
    let allocated = count(|k| {
        matches!(
            k,
            EventKind::Allocated { .. }
                | EventKind::QContainerPlaced { .. }
                | EventKind::PhiWindowGranted { .. }
        )
    });
    let nested = count(|k| matches!(k, EventKind::Carved { .. }));
    let ended = count(|k| matches!(k, EventKind::VhmExited { .. } | EventKind::Released { .. }));
    let mut problems = Vec::new();
    let replayed = replay.as_ref().is_ok_and(ReplayReport::identical);
    if !replayed {
        problems.push("replay does not reproduce the recorded order".into());
    }
    if !verify.complete {
        problems.push(format!(
            "the trace was CUT SHORT after {} events (its run did not finish, or its end was removed): it records no end of the run, no final status and no signature, so nothing proves that no events were removed from its end",
            verify.events_verified
        ));
    }
    item(
        4,
        "Replay reconstructs virtualization decisions",
        problems,
        vec![format!(
            "{created} creations, {allocated} allocations, {nested} nestings and {ended} terminations and releases{}",
            if replayed {
                " reproduced in order by the replay"
            } else {
                " recorded"
            }
        )],
    )
}

/// §12.5: every resource is accounted in its own domain, and the calls of a domain act only on
/// that domain's objects.
fn domains(events: &[Event]) -> Item {
    let mut problems = Vec::new();
    let mut objects: BTreeMap<(VhmId, u64), Object> = BTreeMap::new();
    let (mut resources, mut calls) = (0u64, 0u64);
    for (i, e) in events.iter().enumerate() {
        let Some(v) = e.vhm else { continue };
        match &e.kind {
            EventKind::CapCreated { cap, object, .. } => {
                objects.insert((v, cap.0), *object);
            }
            EventKind::Allocated {
                domain, resource, ..
            }
            | EventKind::Released {
                domain, resource, ..
            } => {
                resources += 1;
                let expected = match resource {
                    Resource::Vcpu(_) | Resource::Memory(_) | Resource::Fuel(_) => Domain::K,
                    Resource::Qubits(_) | Resource::Decoherence(_) => Domain::Q,
                    Resource::Window { .. } => Domain::Phi,
                };
                if *domain != expected {
                    problems.push(format!(
                        "event {i}: {resource} accounted in domain {domain}"
                    ));
                }
            }
            EventKind::Hypercall { call, ret, .. } if *ret >= 0 => {
                let (handle, want): (u64, fn(&Object) -> bool) = match call {
                    HypercallRecord::QSubmit { container, .. } => {
                        (*container, |o| matches!(o, Object::QContainer(_)))
                    }
                    HypercallRecord::QResult { job, .. } | HypercallRecord::QWait { job } => {
                        (*job, |o| matches!(o, Object::QJob(..)))
                    }
                    HypercallRecord::PhiExec { window, .. } => {
                        (*window, |o| matches!(o, Object::PhiWindow(..)))
                    }
                    _ => continue,
                };
                calls += 1;
                match objects.get(&(v, handle)) {
                    Some(o) if want(o) => {}
                    other => {
                        problems.push(format!("event {i}: {} succeeded on {other:?}", call.name()))
                    }
                }
            }
            _ => {}
        }
    }
    item(
        5,
        "No domain semantics are collapsed under virtualization",
        problems,
        vec![
            format!("{resources} allocations and releases, each in its own domain (K: vCPUs, memory, fuel; Q: qubits, decoherence; Φ: windows)"),
            format!("{calls} successful Q and Φ calls, each on an object of its own domain"),
        ],
    )
}
