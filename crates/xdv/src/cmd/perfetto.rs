//! `xdv trace export --format perfetto`: Chrome/Perfetto trace JSON (`{"traceEvents": […]}`,
//! times in µs) that the Perfetto UI and `trace_processor` load.
//!
//! Tracks, each named once:
//!
//! - process 1 `K: vCPUs`, one thread per vCPU: its run from start to halt (or its VHM's exit),
//!   each scheduling slice inside it, and hypercalls as instants (`log` ones carry the text);
//! - one process per Q device (`Q device NAME`), one thread per VHM's container on it: each
//!   job from the end of its queueing to its completion, so jobs that share a device sit side
//!   by side;
//! - one process per Φ port (`Φ port NAME`), one thread per VHM holding windows on it: each
//!   granted window over its interval, the transforms run in it nested inside.
//!
//! A slice lasts what its fuel buys, `fuel × ns_per_fuel / weight` virtual ns, ending when the
//! trace says it ended; slices on one thread are kept from overlapping (the JSON importer needs
//! slices on a thread to nest).

use crate::Outcome;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use xdv_core::{EventKind, HypercallRecord, VhmId};

/// The first pid of the Q device processes and of the Φ port processes.
const Q_PIDS: u64 = 100;
const PHI_PIDS: u64 = 10_000;

/// The exporter's state while the events stream past.
struct Exporter {
    out: Vec<Value>,
    names: BTreeMap<VhmId, String>,
    ns_per_fuel: u64,
    weights: BTreeMap<VhmId, u64>,
    /// Tracks already named, so each gets one `thread_name` / `process_name`.
    named_threads: BTreeSet<(u64, u64)>,
    named_processes: BTreeSet<u64>,
    /// Each running vCPU's run start.
    started: BTreeMap<(VhmId, u32), u64>,
    /// Where each vCPU's last slice ended: the next may not begin before it.
    slice_floor: BTreeMap<(VhmId, u32), u64>,
    /// Q device of each VHM's container, and its pid.
    q_device: BTreeMap<VhmId, u64>,
    devices: BTreeMap<String, u64>,
    /// Admitted jobs: (start, end) of each.
    jobs: BTreeMap<(VhmId, u32), (u64, u64)>,
    /// Φ port pid of each port, and of each window.
    ports: BTreeMap<String, u64>,
    window_port: BTreeMap<u32, u64>,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn tid(v: VhmId, vcpu: u32) -> u64 {
    u64::from(v.0) * 1000 + u64::from(vcpu)
}

impl Exporter {
    fn name(&self, v: Option<VhmId>) -> String {
        v.and_then(|v| self.names.get(&v).cloned())
            .unwrap_or_else(|| "host".into())
    }

    fn process(&mut self, pid: u64, name: &str) {
        if self.named_processes.insert(pid) {
            self.out.push(
                json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}}),
            );
        }
    }

    fn thread(&mut self, pid: u64, tid: u64, name: String) {
        if self.named_threads.insert((pid, tid)) {
            self.out.push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}));
        }
    }

    fn slice(&mut self, pid: u64, tid: u64, name: String, from: u64, to: u64, args: Value) {
        self.out.push(json!({"ph": "X", "name": name, "pid": pid, "tid": tid, "ts": us(from), "dur": us(to.saturating_sub(from)), "args": args}));
    }

    fn instant(&mut self, pid: u64, tid: u64, name: String, at: u64, args: Value) {
        self.out.push(json!({"ph": "i", "s": "t", "name": name, "pid": pid, "tid": tid, "ts": us(at), "args": args}));
    }

    /// Ends `v`'s open vCPU runs at `t`, named `label`.
    fn end_runs(&mut self, v: VhmId, vcpu: Option<u32>, t: u64, label: String) {
        let open: Vec<(VhmId, u32)> = self
            .started
            .keys()
            .filter(|(x, c)| *x == v && vcpu.is_none_or(|n| n == *c))
            .copied()
            .collect();
        for k in open {
            let t0 = self.started.remove(&k).expect("listed");
            self.slice(1, tid(k.0, k.1), label.clone(), t0, t, json!({}));
        }
    }

    fn k_event(&mut self, kind: &EventKind, v: VhmId, t: u64) {
        match kind {
            EventKind::VhmCreated { weight, .. } => {
                self.weights.insert(v, u64::from(*weight).max(1));
            }
            EventKind::VcpuStarted { vcpu } => {
                self.started.insert((v, *vcpu), t);
                self.slice_floor.insert((v, *vcpu), t);
                let name = format!("{} vcpu {vcpu}", self.name(Some(v)));
                self.thread(1, tid(v, *vcpu), name);
            }
            EventKind::VcpuHalted { vcpu } => self.end_runs(v, Some(*vcpu), t, "run".into()),
            EventKind::VhmExited { reason, .. } => {
                self.end_runs(v, None, t, format!("run ({reason})"))
            }
            EventKind::SliceEnded { vcpu, fuel } => {
                let w = self.weights.get(&v).copied().unwrap_or(1);
                let dur = fuel.saturating_mul(self.ns_per_fuel) / w;
                let floor = self.slice_floor.get(&(v, *vcpu)).copied().unwrap_or(0);
                let from = t.saturating_sub(dur).max(floor).min(t);
                self.slice_floor.insert((v, *vcpu), t);
                self.slice(
                    1,
                    tid(v, *vcpu),
                    "slice".into(),
                    from,
                    t,
                    json!({"fuel": fuel}),
                );
            }
            EventKind::Hypercall { vcpu, call, ret } => {
                let args = match call {
                    HypercallRecord::Log { bytes, .. } => {
                        json!({"ret": ret, "text": String::from_utf8_lossy(bytes)})
                    }
                    _ => json!({"ret": ret}),
                };
                self.instant(1, tid(v, *vcpu), call.name().to_string(), t, args);
            }
            _ => {}
        }
    }

    fn q_event(&mut self, kind: &EventKind, v: VhmId, t: u64) {
        match kind {
            EventKind::QContainerPlaced { device, .. } => {
                let n = Q_PIDS + self.devices.len() as u64;
                let pid = *self.devices.entry(device.clone()).or_insert(n);
                self.process(pid, &format!("Q device {device}"));
                let name = format!("{} container", self.name(Some(v)));
                self.thread(pid, u64::from(v.0), name);
                self.q_device.insert(v, pid);
            }
            EventKind::QJobSubmitted {
                job,
                queued_ns,
                duration_ns,
                ..
            } => {
                let start = t + queued_ns;
                self.jobs.insert((v, *job), (start, start + duration_ns));
            }
            EventKind::QJobDone { job, outcomes } => {
                if let (Some((a, b)), Some(&pid)) =
                    (self.jobs.remove(&(v, *job)), self.q_device.get(&v))
                {
                    let name = format!("job {job} of {}", self.name(Some(v)));
                    self.slice(
                        pid,
                        u64::from(v.0),
                        name,
                        a,
                        b,
                        json!({"shots": outcomes.len()}),
                    );
                }
            }
            _ => {}
        }
    }

    fn phi_event(&mut self, kind: &EventKind, v: Option<VhmId>, t: u64) {
        let thread = v.map_or(0, |v| u64::from(v.0));
        match kind {
            EventKind::PhiWindowGranted {
                window,
                port,
                t0,
                t1,
                shared,
                ..
            } => {
                let n = PHI_PIDS + self.ports.len() as u64;
                let pid = *self.ports.entry(port.clone()).or_insert(n);
                self.process(pid, &format!("Φ port {port}"));
                let name = format!("{} windows", self.name(v));
                self.thread(pid, thread, name);
                self.window_port.insert(*window, pid);
                let name = format!("window {window}{}", if *shared { " (shared)" } else { "" });
                self.slice(pid, thread, name, *t0, *t1, json!({}));
            }
            EventKind::PhiExecuted {
                window,
                start,
                end,
                plays,
                captures,
                ..
            } => {
                if let Some(&pid) = self.window_port.get(window) {
                    let name = format!("transform ({plays} plays, {} captures)", captures.len());
                    let captures: Vec<Value> = captures
                        .iter()
                        .map(|(i, q)| json!({"i": i, "q": q}))
                        .collect();
                    self.slice(
                        pid,
                        thread,
                        name,
                        *start,
                        *end,
                        json!({"captures": captures}),
                    );
                }
            }
            EventKind::PhiDecohered { window, cause } => {
                if let Some(&pid) = self.window_port.get(window) {
                    let name = format!("window {window} decohered");
                    self.instant(pid, thread, name, t, json!({"cause": cause.to_string()}));
                }
            }
            EventKind::LegacyPhiDecohered { window, cause } => {
                if let Some(&pid) = self.window_port.get(window) {
                    let name = format!("window {window} decohered");
                    self.instant(pid, thread, name, t, json!({"cause": cause}));
                }
            }
            _ => {}
        }
    }
}

/// Writes the Perfetto JSON of `trace` to `output` (stdout when `None`).
pub(crate) fn export(trace: &Path, output: Option<&Path>, force: bool) -> Result<Outcome> {
    let Some(reader) = super::trace::open_checked(trace, force)? else {
        return Ok(Outcome::Problem);
    };
    let header = reader.header()?;
    // Releases store the manifest they ran; one that no longer parses keeps the default.
    let ns_per_fuel = xdv_manifest::Manifest::parse(&header.manifest_text, "the trace's manifest")
        .map_or(1, |m| m.host.ns_per_fuel.max(1));
    let mut x = Exporter {
        out: Vec::new(),
        names: reader.vhm_names()?.into_iter().collect(),
        ns_per_fuel,
        weights: BTreeMap::new(),
        named_threads: BTreeSet::new(),
        named_processes: BTreeSet::new(),
        started: BTreeMap::new(),
        slice_floor: BTreeMap::new(),
        q_device: BTreeMap::new(),
        devices: BTreeMap::new(),
        jobs: BTreeMap::new(),
        ports: BTreeMap::new(),
        window_port: BTreeMap::new(),
    };
    x.process(1, "K: vCPUs");
    let bar = crate::progress::bar(reader.event_count()?, "exporting", "events");
    reader.for_each_event(|s| {
        bar.inc(1);
        let (kind, t) = (&s.event.kind, s.event.time_ns);
        if let Some(v) = s.event.vhm {
            x.k_event(kind, v, t);
            x.q_event(kind, v, t);
        }
        x.phi_event(kind, s.event.vhm, t);
        Ok(true)
    })?;
    bar.finish_and_clear();
    let doc = serde_json::to_string(&json!({"traceEvents": x.out, "displayTimeUnit": "ns"}))?;
    match output {
        Some(p) => std::fs::write(p, doc).with_context(|| format!("writing {}", p.display()))?,
        None => outln!("{doc}"),
    }
    Ok(Outcome::Ok)
}
