//! `xdv run`, `xdv check`, `xdv replay`.

use crate::{table, Outcome};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use xdv_hv::replay::{replay_trace_with, ReplayOptions};
use xdv_hv::{prepare, RunOptions};
use xdv_trace::Describe;
use xdv_trace::{sign_trace, PublicKey, SecretKey};

/// The default trace path: the manifest's file stem with `.xdv`, in the current directory.
fn default_trace(manifest: &Path) -> PathBuf {
    let stem = manifest
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(format!("{stem}.xdv"))
}

/// Where `xdv run` sends the guests' `log` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Logs {
    /// To stderr as they happen, each prefixed with the virtual time, the VHM and the vCPU.
    Stderr,
    /// Nowhere (they are in the trace: `xdv trace show TRACE --vhm NAME`).
    None,
}

/// The flags of `xdv run` besides its manifest, trace and key.
pub(crate) struct RunFlags {
    pub(crate) seed: Option<u64>,
    pub(crate) chaos: Option<u64>,
    pub(crate) json: bool,
    pub(crate) crash_after: Option<u64>,
    pub(crate) logs: Logs,
    pub(crate) strict: bool,
    pub(crate) follow: bool,
}

/// An injected fault that fired, and what it did (the event's words).
#[derive(serde::Serialize)]
struct Injected {
    time_ns: u64,
    vhm: String,
    /// The manifest's index of the fault.
    index: u32,
    /// Its class (`trap`, `q-provider`, …).
    class: String,
    /// What it did to the VHM, in words.
    effect: String,
    /// Windows it decohered (class `coherence`).
    #[serde(skip)]
    decohered: u32,
}

impl Injected {
    /// The effect, once the run has shown what a `coherence` fault reached.
    fn settle(&mut self) {
        if self.class == "coherence" && !self.effect.starts_with("no effect") {
            self.effect = match self.decohered {
                0 => "no effect: the VHM held no coherence window".into(),
                n => format!("decohered {n} of the VHM's windows"),
            };
        }
    }
}

/// Watches a run's events as they pass: prints guests' `log` lines
/// (`[    2392 ns] hello.0: text`) and keeps the injected faults for the summary.
#[derive(Default)]
struct Watcher {
    /// VHM names by id, learnt from `vhm_created` (ids are dense, from 0).
    names: Vec<String>,
    /// Print `log` lines.
    logs: bool,
    /// Each injected fault that fired, as the summary lists it.
    injected: Vec<Injected>,
    /// Print every event as it is emitted (`--follow`).
    follow: bool,
    /// Events seen so far.
    events: u64,
    /// The VHMs that hold a Q container now.
    q_held: std::collections::BTreeSet<u32>,
    /// The progress spinner (hidden off a terminal or with `--quiet`).
    bar: Option<indicatif::ProgressBar>,
}

impl Watcher {
    fn name(&self, e: &xdv_core::Event) -> &str {
        e.vhm
            .and_then(|v| self.names.get(v.0 as usize))
            .map_or("?", String::as_str)
    }

    /// Writes a line on stderr without tearing the spinner.
    fn eprint(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn observe(&mut self, e: &xdv_core::Event) {
        use xdv_core::{EventKind, HypercallRecord};
        if self.events % 4096 == 4095 {
            if let Some(b) = &self.bar {
                b.set_message(format!(
                    "{} events, virtual time {} ns",
                    self.events + 1,
                    e.time_ns
                ));
            }
        }
        match &e.kind {
            EventKind::FaultInjected {
                index,
                class,
                stopped,
            } => {
                let has_q = e.vhm.is_some_and(|v| self.q_held.contains(&v.0));
                let effect = match (class.as_str(), *stopped) {
                    (_, true) => "no effect: the VHM had already stopped".to_string(),
                    ("kill", _) => "killed the VHM".into(),
                    ("q-provider", _) if !has_q => "no effect: the VHM has no Q container".into(),
                    ("q-provider", _) => "the provider fails the VHM's next Q job".into(),
                    ("coherence", _) => String::new(),
                    (c, _) => format!("faulted the VHM ({c}); its on_fault policy applies"),
                };
                self.injected.push(Injected {
                    time_ns: e.time_ns,
                    vhm: self.name(e).to_string(),
                    index: *index,
                    class: class.clone(),
                    effect,
                    decohered: 0,
                });
            }
            EventKind::PhiDecohered {
                cause: xdv_core::refusal::DecoherenceCause::Injected { index },
                ..
            } => {
                if let Some(f) = self.injected.iter_mut().rev().find(|f| f.index == *index) {
                    f.decohered += 1;
                }
            }
            EventKind::Allocated {
                domain: xdv_core::Domain::Q,
                ..
            } => {
                if let Some(v) = e.vhm {
                    self.q_held.insert(v.0);
                }
            }
            EventKind::VhmExited { .. } => {
                if let Some(v) = e.vhm {
                    self.q_held.remove(&v.0);
                }
            }
            EventKind::VhmCreated { name, .. } => {
                if let Some(id) = e.vhm {
                    let i = id.0 as usize;
                    if self.names.len() <= i {
                        self.names.resize(i + 1, String::new());
                    }
                    self.names[i] = name.clone();
                }
            }
            EventKind::Hypercall {
                vcpu,
                call: HypercallRecord::Log { bytes, .. },
                ret,
            } if *ret >= 0 && self.logs => {
                let name = self.name(e);
                let text = String::from_utf8_lossy(bytes);
                self.eprint(&format!(
                    "[{:>12} ns] {name}.{vcpu}: {}",
                    e.time_ns,
                    text.escape_debug()
                ));
            }
            _ => {}
        }
        if self.follow {
            let who = e
                .vhm
                .map_or_else(|| "host".to_string(), |_| self.name(e).to_string());
            let line = format!(
                "{:>8} {:>14} ns  {who:<12} {}",
                self.events,
                e.time_ns,
                e.describe()
            );
            match &self.bar {
                Some(b) => b.suspend(|| outln!("{line}")),
                None => outln!("{line}"),
            }
        }
        self.events += 1;
    }
}

pub(crate) fn run(
    manifest: &Path,
    trace: Option<PathBuf>,
    flags: &RunFlags,
    sign_key: Option<&Path>,
) -> Result<Outcome> {
    let key = sign_key.map(SecretKey::read).transpose()?;
    let prepared = xdv_hv::prepare_with_chaos(manifest, flags.chaos)?;
    let trace = trace.unwrap_or_else(|| default_trace(manifest));
    let seed_used = flags.seed.unwrap_or(prepared.manifest.host.seed);
    let mut watcher = Watcher {
        logs: flags.logs == Logs::Stderr,
        follow: flags.follow,
        bar: Some(crate::progress::spinner(&format!(
            "xdv run {}",
            manifest.display()
        ))),
        ..Watcher::default()
    };
    tracing::info!(manifest = %manifest.display(), trace = %trace.display(), "running");
    let mut observe = |e: &xdv_core::Event| watcher.observe(e);
    let (summary, rows, head) = xdv_hv::run_to_trace_observed(
        &prepared,
        &trace,
        &RunOptions {
            seed: flags.seed,
            crash_after: flags.crash_after,
            ..RunOptions::default()
        },
        &mut observe,
    )
    .with_context(|| format!("running {}", manifest.display()))?;
    if let Some(b) = watcher.bar.take() {
        b.finish_and_clear();
    }
    watcher.injected.iter_mut().for_each(Injected::settle);
    tracing::info!(events = watcher.events, head = %head, "run finished");
    let signed = key
        .map(|k| sign_trace(&trace, &k))
        .transpose()
        .with_context(|| format!("signing {}", trace.display()))?;
    let outcome = report(
        &manifest.display().to_string(),
        &trace,
        seed_used,
        &summary,
        &rows,
        head,
        flags.json,
        None,
        signed,
        &watcher.injected,
    )?;
    let faulted: Vec<&str> = summary
        .vhms
        .iter()
        .filter(|v| v.exit.starts_with("fault"))
        .map(|v| v.name.as_str())
        .collect();
    if flags.strict && !faulted.is_empty() {
        eprintln!(
            "--strict: {} VHM(s) faulted: {}",
            faulted.len(),
            faulted.join(", ")
        );
        return Ok(Outcome::Problem);
    }
    Ok(outcome)
}

/// `xdv run --resume TRACE`.
pub(crate) fn resume(
    trace: &Path,
    json: bool,
    crash_after: Option<u64>,
    sign_key: Option<&Path>,
) -> Result<Outcome> {
    let key = sign_key.map(SecretKey::read).transpose()?;
    let header = xdv_trace::TraceReader::open_to_resume(trace)?.header()?;
    let r = xdv_hv::resume_trace(trace, crash_after)
        .with_context(|| format!("resuming {}", trace.display()))?;
    let signed = match key {
        None => None,
        Some(k) => {
            // The committed prefix came from a file that may have been edited: its Q outcomes
            // and Φ captures were injected, not computed. Re-derive them before signing for it.
            let check = replay_trace_with(
                trace,
                &ReplayOptions {
                    rederive: true,
                    phi_tolerance: 0,
                },
            )?;
            if !check.identical() {
                eprintln!(
                    "{}: finished but NOT signed: the resumed trace does not re-derive ({})",
                    trace.display(),
                    check
                        .divergence
                        .as_ref()
                        .map(|d| format!(
                            "event {}{}",
                            d.seq,
                            d.reason
                                .as_ref()
                                .map(|x| format!(": {x}"))
                                .unwrap_or_default()
                        ))
                        .or(check.problem.clone())
                        .unwrap_or_default()
                );
                return Ok(Outcome::Problem);
            }
            Some(sign_trace(trace, &k).with_context(|| format!("signing {}", trace.display()))?)
        }
    };
    report(
        &header.manifest_name,
        trace,
        header.seed,
        &r.summary,
        &r.table,
        r.head,
        json,
        Some(r.committed),
        signed,
        &[],
    )
}

/// Prints a run's summary, Resource_Table and trace.
#[allow(clippy::too_many_arguments)]
fn report(
    label: &str,
    trace: &Path,
    seed_used: u64,
    summary: &xdv_hv::RunSummary,
    rows: &[xdv_trace::ResourceRow],
    head: xdv_core::Hash32,
    json: bool,
    resumed: Option<u64>,
    signed: Option<PublicKey>,
    injected: &[Injected],
) -> Result<Outcome> {
    if json {
        let out = json!({
            "manifest": label,
            "trace": trace.display().to_string(),
            "seed": seed_used,
            "events": summary.events,
            "end_ns": summary.end_ns,
            "final_hash": head.to_hex(),
            "resumed_after_events": resumed,
            "signed_by": signed.map(|k| k.to_hex()),
            "injected_faults": injected,
            "vhms": summary.vhms,
            "resource_table": rows,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Outcome::Ok);
    }
    let body: Vec<Vec<String>> = summary
        .vhms
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                format!("L{}", v.level),
                v.exit.clone(),
                v.code.to_string(),
                v.fuel_used.to_string(),
                v.end_ns.to_string(),
            ]
        })
        .collect();
    match resumed {
        Some(n) => outln!(
            "xdv run --resume {} ({label}, seed {seed_used}): {n} committed events re-derived and checked, the rest appended",
            trace.display()
        ),
        None => outln!("xdv run {label} (seed {seed_used})"),
    }
    out!(
        "{}",
        table::render(
            &["VHM", "level", "exit", "code", "fuel_used", "virtual_ns"],
            &body
        )
    );
    outln!();
    outln!("Resource_Table");
    out!("{}", super::resource_table_text(rows));
    outln!();
    outln!(
        "trace: {} ({} events, final hash {}{})",
        trace.display(),
        summary.events,
        head.short(),
        signed.map_or(String::new(), |k| format!(", signed by {k}"))
    );
    if !injected.is_empty() {
        outln!("\nInjected faults ({}):", injected.len());
        for f in injected {
            outln!(
                "{:>12} ns  {}: fault {} ({}): {}",
                f.time_ns,
                f.vhm,
                f.index,
                f.class,
                f.effect
            );
        }
    }
    Ok(Outcome::Ok)
}

pub(crate) fn check(manifest: &Path, json: bool) -> Result<Outcome> {
    let p = prepare(manifest)?;
    if json {
        let vhms: Vec<_> = p
            .manifest
            .vhms
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "parent": v.parent.map(|i| p.manifest.vhms[i].name.clone()),
                    "vcpus": v.k.vcpus,
                    "memory_limit": v.k.memory_limit,
                    "module": v.k.module,
                    "modules": v.k.modules.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
                    "entry": v.k.entry,
                    "irq_vectors": v.k.irq_vectors,
                    "ipc_vector": v.k.ipc_vector,
                    "weight": v.policy.weight,
                    "fuel_quota": v.policy.fuel_quota,
                    "memory_quota": v.policy.memory_quota,
                    "max_vcpus": v.policy.max_vcpus,
                    "max_depth": v.policy.max_depth,
                    "max_children": v.policy.max_children,
                    "create_channels": v.policy.create_channels,
                    "on_bad_hypercall": v.policy.on_bad_hypercall.to_string(),
                    "on_fault": v.policy.on_fault.name(),
                    "max_restarts": v.policy.max_restarts,
                    "fault_vector": v.k.fault_vector,
                    "q": v.q.as_ref().map(|q| json!({
                        "device": q.device.0,
                        "qubits": q.qubits,
                        "budget_micro": q.budget,
                    })),
                    "phi_windows": v.phi.iter().map(|w| json!({
                        "port": p.manifest.host.phi_ports[w.port].name,
                        "start_ns": w.t0,
                        "end_ns": w.t1,
                        "band_hz": w.band,
                        "max_amplitude_ppm": w.max_amp_ppm,
                        "share": w.shared,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "manifest": manifest.display().to_string(),
                "ok": true,
                "q_seed": p.manifest.host.q_seed,
                "phi_ports": p.manifest.host.phi_ports.iter().map(|port| json!({
                    "name": port.name,
                    "granularity_ns": port.granularity_ns,
                    "band_hz": port.band,
                    "max_amplitude_ppm": port.max_amp_ppm,
                    "t2_ns": port.t2_ns,
                })).collect::<Vec<_>>(),
                "vhms": vhms,
                "faults": p.manifest.faults.iter().map(|f| json!({
                    "vhm": p.manifest.vhms[f.vhm].name,
                    "trigger": match f.trigger {
                        xdv_manifest::FaultTrigger::AtNs(t) => json!({"at_ns": t}),
                        xdv_manifest::FaultTrigger::AfterEvents(n) => json!({"after_events": n}),
                    },
                    "class": f.class.name(),
                })).collect::<Vec<_>>(),
                "channels": p.manifest.channels.iter().map(|c| json!({
                    "ends": [p.manifest.vhms[c.ends[0]].name.clone(), p.manifest.vhms[c.ends[1]].name.clone()],
                    "capacity": c.capacity,
                    "badges": c.badges,
                })).collect::<Vec<_>>(),
            }))?
        );
    } else {
        outln!(
            "{}: ok ({} VHMs)",
            manifest.display(),
            p.manifest.vhms.len()
        );
    }
    Ok(Outcome::Ok)
}

/// `xdv replay`: verifies the trace and re-executes it from the trace alone, beside each other.
pub(crate) fn replay(
    trace: &Path,
    rederive: bool,
    phi_tolerance: u64,
    json: bool,
) -> Result<Outcome> {
    // The chain is verified on a second thread while the run is re-executed: each streams the
    // file once, so the replay takes about as long as the recording did. A trace that fails
    // verification is reported as such, whatever its re-execution gave.
    let options = ReplayOptions {
        rederive,
        phi_tolerance,
    };
    let verify_options = super::trace::verify_options(None)?;
    let spinner = crate::progress::spinner(&format!("replaying {}", trace.display()));
    let (verify, replayed) = std::thread::scope(|scope| {
        let verify =
            scope.spawn(|| xdv_trace::TraceReader::open(trace)?.verify_with(&verify_options));
        let replayed = replay_trace_with(trace, &options);
        (
            verify.join().expect("the verifier does not panic"),
            replayed,
        )
    });
    spinner.finish_and_clear();
    let verify = verify?;
    if let Some(problem) = &verify.problem {
        if json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&json!({ "identical": false, "verify": verify }))?
            );
        } else {
            outln!(
                "{}: the trace fails verification, not replaying: {problem}",
                trace.display()
            );
        }
        return Ok(Outcome::Problem);
    }
    let report = replayed?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "identical": report.identical(), "report": report })
            )?
        );
    } else if let Some(p) = &report.problem {
        outln!("{}: NOT replayed: {p}", trace.display());
    } else if let Some(d) = &report.divergence {
        print_divergence(trace, d, rederive);
    } else {
        print_identical(trace, &report, rederive, phi_tolerance);
    }
    Ok(if report.identical() {
        Outcome::Ok
    } else {
        Outcome::Problem
    })
}

/// Where a replay diverged: the recorded event and the re-executed one.
fn print_divergence(trace: &Path, d: &xdv_hv::Divergence, rederive: bool) {
    outln!(
        "{}: {} DIVERGED at event {}",
        trace.display(),
        if rederive { "re-derivation" } else { "replay" },
        d.seq
    );
    let show = |e: &Option<xdv_core::Event>| {
        e.as_ref().map_or("(no event)".to_string(), |e| {
            format!(
                "t={} {} {}",
                e.time_ns,
                e.vhm
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "host".into()),
                e.describe()
            )
        })
    };
    if let Some(reason) = &d.reason {
        outln!("  {reason}");
    }
    outln!("  recorded: {}", show(&d.recorded));
    outln!(
        "  {}: {}",
        if rederive { "re-derived" } else { "replayed" },
        show(&d.replayed)
    );
}

/// A replay that reproduced the trace: how many events, whether it was cut short, and what
/// `--rederive` re-derived.
fn print_identical(
    trace: &Path,
    report: &xdv_hv::ReplayReport,
    rederive: bool,
    phi_tolerance: u64,
) {
    let cut = if report.trace_complete {
        String::new()
    } else {
        " (the trace was CUT SHORT: its committed prefix replays exactly, but nothing proves that no events were removed from its end)".into()
    };
    let derived = if rederive {
        format!(
            "; the Q providers and the Φ executor re-derived the recorded outcomes of {} jobs and captures of {} transforms{}",
            report.q_jobs_checked,
            report.phi_transforms_checked,
            if report.phi_within_tolerance.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} within ±{phi_tolerance} µ, not equal: events {:?})",
                    report.phi_within_tolerance.len(),
                    report.phi_within_tolerance
                )
            }
        )
    } else {
        String::new()
    };
    outln!(
        "{}: replay identical: {} of {} events{cut}{derived}",
        trace.display(),
        report.events_matched,
        report.events_recorded
    );
}
