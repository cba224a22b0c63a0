//! Deterministic simulation testing, in the spirit of TigerBeetle's VOPR and FoundationDB's
//! simulator.
//!
//! From one seed, [`simulate`] generates a host (slice length, time limit, commit batch, a Φ
//! port), a set of VHMs with guests from a library of behaviours (compute, a runaway, a trap,
//! the chaos guest that calls every hypercall with random arguments — capabilities, spawning,
//! IPC, Q jobs, Φ windows and transforms — a Φ user, a Q user and the hostile-host guest that
//! attacks what the host spends: deep program text, table bombs, IPC floods, handler-less
//! timers, far-future requests and derive/drop storms), random fault policies and
//! random injected faults; then it checks, in order:
//!
//! 1. **Invariants after every event** (`Hypervisor::check_every_step`): budgets conserved, no
//!    capability with amplified rights, nothing dangling after a revoke, tables consistent, Q
//!    containers disjoint and budgets conserved, Φ windows disjoint unless shared, the host
//!    footprint (every host-held byte charged to a running VHM's budget, every compiled module
//!    used); and over the whole run, a clock that never goes back nor past the horizon.
//! 2. **Resume equality after a storage failure**: the checked run's output is handed to a
//!    trace writer whose storage fails at a random point — the host crashes (the writer is
//!    dropped there), a commit fails, or the disk fills (SQLite's own `SQLITE_FULL`, from a
//!    page limit) — and writing stops at the first store error, as a run does. The trace left
//!    behind verifies as cut short at its last commit, and resumed from it the finished trace
//!    has the reference events' final hash.
//! 3. **Replay equality**: the finished trace re-executes to the same events, byte for byte.
//! 4. **Non-interference**: the last VHM, a bystander no fault targets and no channel reaches,
//!    behaves exactly as when it runs alone (its own events, with host-side numbering masked).
//!
//! The first failure names the seed, the check and the first bad event; the same seed
//! reproduces it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use xdv_core::{Event, EventKind, EventSink, Hash32, MemorySink};
use xdv_hv::{replay_trace, resume_trace, run_in_memory, HostBuilder, HvError, Prepared};
use xdv_trace::{StorageFault, TableBuilder};

/// The chaos guest: every hypercall with random handles and arguments.
pub const CHAOS_GUEST: &str = include_str!("../guests/chaos.wat");

/// The hostile-host guest: deep program text, a table bomb, an IPC flood, a handler-less
/// timer, far-future requests or a derive/drop storm, drawn from its random stream.
pub const HOSTILE_HOST_GUEST: &str = include_str!("../guests/hostile-host.wat");

/// The library of guest behaviours the simulator draws from: (file name, WAT).
pub const GUESTS: &[(&str, &str)] = &[
    (
        "compute.wat",
        include_str!("../../../examples/guests/compute.wat"),
    ),
    (
        "hello.wat",
        include_str!("../../../examples/guests/hello.wat"),
    ),
    (
        "crash.wat",
        include_str!("../../../examples/guests/crash.wat"),
    ),
    (
        "runaway.wat",
        include_str!("../../../examples/guests/runaway.wat"),
    ),
    ("chaos.wat", CHAOS_GUEST),
    ("hostile-host.wat", HOSTILE_HOST_GUEST),
    (
        "phi-pulse.wat",
        include_str!("../../../examples/guests/phi-pulse.wat"),
    ),
    (
        "q-ghz.wat",
        include_str!("../../../examples/guests/q-ghz.wat"),
    ),
];

/// What one seed's simulation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// VHMs declared.
    pub vhms: u32,
    /// Faults injected (declared).
    pub faults: u32,
    /// Events of the run, each followed by a full invariant check.
    pub events: u64,
    /// Events compared by the replay, the resume and the non-interference checks.
    pub events_compared: u64,
    /// Where the simulated crash stopped the run, or the event a failed commit waited for.
    pub crashed_at: u64,
    /// The storage failure: `crash`, `failed-commit` or `disk-full`.
    pub storage_fault: &'static str,
    /// Events the trace held when the storage failed (its committed prefix).
    pub committed: u64,
    /// Fuel the VHMs spent in all (each VHM's own, guest code and charged host work).
    pub fuel_used: u64,
}

/// The first thing that went wrong, with the seed that reproduces it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// Which check: `invariant`, `replay`, `resume`, `non-interference`, `run`.
    pub check: String,
    /// The first bad event's sequence number, when there is one.
    pub event: Option<u64>,
    /// What was wrong.
    pub detail: String,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {}: {} check failed", self.seed, self.check)?;
        if let Some(e) = self.event {
            write!(f, " at event {e}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// A VHM name whose 20-bit capability tag equals the bystander's (found by brute force;
/// checked by a test), so that simulated hosts include a tag collision.
pub const TAG_TWIN_OF_BYSTANDER: &str = "c727144";

struct Gen {
    rng: ChaCha20Rng,
}

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// The generated host: the full manifest and the bystander's manifest alone.
struct Host {
    manifest: String,
    alone: String,
    vhms: u32,
    faults: u32,
}

const PORT: &str = "[[host.phi.port]]\nname = \"q0\"\ngranularity_ns = 4\nband = [4.5e9, 5.5e9]\nt2_ns = 200_000\n";

fn generate(seed: u64) -> Host {
    let mut g = Gen {
        rng: ChaCha20Rng::seed_from_u64(seed),
    };
    let (host, limit) = host_table(&mut g);
    let n = 2 + g.below(4) as usize;
    let mut windows = Windows::default();
    // Half the hosts name their first VHM so that its capability tag collides with the
    // bystander's: the bystander's handles and events must not care.
    let collide = g.below(2) == 0;
    let names: Vec<String> = (0..n)
        .map(|i| {
            if i == 0 && collide {
                TAG_TWIN_OF_BYSTANDER.to_string()
            } else {
                format!("v{i}")
            }
        })
        .collect();
    let mut m = String::new();
    let mut chaos = Vec::new();
    for name in &names {
        if vhm_table(&mut g, &mut m, &mut windows, name) == "chaos" {
            chaos.push(name.clone());
        }
    }
    if chaos.len() >= 2 {
        let _ = write!(
            m,
            "[[channel]]\nends = [\"{}\", \"{}\"]\ncapacity = 2\n",
            chaos[0], chaos[1]
        );
    }
    let b = bystander_table(&mut g, &mut windows);
    let (faults, f) = fault_tables(&mut g, &names, limit);
    Host {
        manifest: format!("{host}{m}{b}{f}"),
        alone: format!("{host}{b}"),
        vhms: n as u32 + 1,
        faults,
    }
}

/// The `[host]` table: slice length, time limit, commit batch and the Φ port; and the limit.
fn host_table(g: &mut Gen) -> (String, u64) {
    let slice = *g.pick(&[1_000u64, 5_000, 20_000]);
    let limit = 300_000 + g.below(1_200_000);
    let batch = *g.pick(&[64u64, 1024, 4096]);
    let host = format!(
        "[host]\nseed = {}\nslice_fuel = {slice}\ntime_limit_ns = {limit}\n[host.trace]\nbatch_events = {batch}\n{PORT}",
        g.rng.next_u64()
    );
    (host, limit)
}

/// Manifest Φ windows in disjoint 40 µs slots on q0, so that they never conflict.
#[derive(Default)]
struct Windows {
    next: u64,
}

impl Windows {
    /// Appends a `[[vhm.phi.window]]` table in the next free slot.
    fn add(&mut self, m: &mut String, share: bool) {
        let (t0, t1) = (self.next * 40_000, (self.next + 1) * 40_000);
        self.next += 1;
        let _ = write!(
            m,
            "[[vhm.phi.window]]\nport = \"q0\"\nstart_ns = {t0}\nend_ns = {t1}\nband = [4.9e9, 5.1e9]\nmax_amplitude = 0.5\nshare = {share}\n"
        );
    }
}

/// Appends a `[[vhm]]` table called `name` with a guest drawn from the library and a fault
/// policy; returns the guest's kind.
fn vhm_table(g: &mut Gen, m: &mut String, windows: &mut Windows, name: &str) -> &'static str {
    let kind = *g.pick(&[
        "compute", "crash", "runaway", "chaos", "chaos", "phi", "q", "hostile",
    ]);
    let policy = *g.pick(&["kill", "kill", "restart"]);
    let _ = write!(
        m,
        "[[vhm]]\nname = \"{name}\"\n[vhm.k]\nmemory_limit = \"64 KiB\"\nirq_vectors = 4\n"
    );
    match kind {
        "chaos" => {
            let _ = write!(
                m,
                "module = \"chaos.wat\"\n[vhm.q]\ndevice = \"ideal-grid\"\nqubits = 2\nbudget = 5\n"
            );
            windows.add(m, false);
            let _ = write!(
                m,
                "[vhm.policy]\nfuel_quota = 5_000_000\nmax_vcpus = 8\nmemory_quota = \"1 MiB\"\nmax_depth = 3\nmax_children = 3\ncreate_channels = true\non_fault = \"{policy}\"\n"
            );
        }
        "hostile" => {
            let _ = write!(
                m,
                "module = \"hostile-host.wat\"\n[vhm.q]\ndevice = \"ideal-grid\"\nqubits = 1\nbudget = 5\n"
            );
            windows.add(m, false);
            let _ = write!(
                m,
                "[vhm.policy]\nfuel_quota = 5_000_000\nmax_vcpus = 8\nmemory_quota = \"1 MiB\"\nmax_depth = 1\nmax_children = 2\ncreate_channels = true\non_fault = \"{policy}\"\n"
            );
        }
        "phi" => {
            let _ = writeln!(m, "module = \"phi-pulse.wat\"");
            windows.add(m, false);
            let _ = write!(m, "[vhm.policy]\non_fault = \"{policy}\"\n");
        }
        "q" => {
            let _ = write!(
                m,
                "module = \"q-ghz.wat\"\n[vhm.q]\ndevice = \"heavy-hex\"\nqubits = 3\nbudget = 200\n[vhm.policy]\non_fault = \"{policy}\"\n"
            );
        }
        "runaway" => {
            let _ = write!(
                m,
                "module = \"runaway.wat\"\n[vhm.policy]\nfuel_quota = {}\non_fault = \"{policy}\"\n",
                100_000 + g.below(2_000_000)
            );
        }
        other => {
            let _ = write!(
                m,
                "module = \"{other}.wat\"\n[vhm.policy]\non_fault = \"{policy}\"\n"
            );
        }
    }
    kind
}

/// The bystander's `[[vhm]]` table: never targeted, never connected.
fn bystander_table(g: &mut Gen, windows: &mut Windows) -> String {
    let kind = *g.pick(&["compute", "hello", "phi", "q"]);
    let mut b = String::from("[[vhm]]\nname = \"bystander\"\n[vhm.k]\nmemory_limit = \"64 KiB\"\n");
    match kind {
        "phi" => {
            b += "module = \"phi-pulse.wat\"\n";
            windows.add(&mut b, false);
        }
        "q" => b +=
            "module = \"q-ghz.wat\"\n[vhm.q]\ndevice = \"heavy-hex\"\nqubits = 3\nbudget = 200\n",
        other => {
            let _ = writeln!(b, "module = \"{other}.wat\"");
        }
    }
    b
}

/// Zero to three `[[fault]]` tables into random VHMs of `names`, at a random time below `limit`
/// or after a random event count; how many, and the tables.
fn fault_tables(g: &mut Gen, names: &[String], limit: u64) -> (u32, String) {
    let n = names.len();
    let faults = g.below(4) as u32;
    let mut f = String::new();
    let classes = [
        "trap",
        "fuel-exhausted",
        "bad-hypercall",
        "kill",
        "coherence",
        "q-provider",
    ];
    for _ in 0..faults {
        let vhm = &names[g.below(n as u64) as usize];
        let class = *g.pick(&classes);
        if g.below(2) == 0 {
            let _ = write!(
                f,
                "[[fault]]\nvhm = \"{vhm}\"\nat_ns = {}\nclass = \"{class}\"\n",
                g.below(limit)
            );
        } else {
            let _ = write!(
                f,
                "[[fault]]\nvhm = \"{vhm}\"\nafter_events = {}\nclass = \"{class}\"\n",
                g.below(3000)
            );
        }
    }
    (faults, f)
}

/// The library's guests as WebAssembly, converted from WAT once per process: every seed's
/// hosts are built from them in memory, with no files.
fn library() -> &'static [(&'static str, Vec<u8>)] {
    static WASM: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    WASM.get_or_init(|| {
        GUESTS
            .iter()
            .map(|(name, wat)| {
                let wasm = wat::parse_str(wat).expect("the library's guests are valid WAT");
                (*name, wasm)
            })
            .collect()
    })
}

/// A host from manifest `text` and the library's guests.
fn build(text: &str, label: &str) -> Result<Prepared, HvError> {
    library()
        .iter()
        .fold(HostBuilder::new(text, label), |b, (name, wasm)| {
            b.module(name, wasm.clone())
        })
        .prepare()
}

/// A VHM's own events with the host's numbering of shared resources masked: physical qubits
/// and window numbers depend on what else the host holds, never on what the VHM does.
fn masked(events: &[Event], vhm: &str) -> Vec<(u64, EventKind)> {
    xdv_trace::project(events, vhm)
        .into_iter()
        .map(|(t, mut k)| {
            match &mut k {
                EventKind::QContainerPlaced { physical, .. }
                | EventKind::QScrubbed { physical, .. } => physical.clear(),
                EventKind::PhiWindowGranted { window, .. }
                | EventKind::PhiExecuted { window, .. }
                | EventKind::PhiDecohered { window, .. }
                | EventKind::PhiBarrier { window, .. } => *window = 0,
                EventKind::CapCreated {
                    object: xdv_core::cap::Object::PhiWindow(_, w),
                    ..
                } => *w = 0,
                _ => {}
            }
            (t, k)
        })
        .collect()
}

/// Simulates one seed; the report, or the first failure.
///
/// Each seed executes its host three times, plus the bystander alone: the checked run, the
/// resume of the trace its storage failure left, and the replay of the finished trace.
pub fn simulate(seed: u64) -> Result<SimReport, SimFailure> {
    let fail =
        |check: &str, event: Option<u64>, detail: String| failure(seed, check, event, detail);
    let host = generate(seed);
    // Traces go to memory-backed storage where there is one: the simulator tests the trace's
    // contents, not the disk, and fsyncs would dominate its time.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .map_err(|e| fail("run", None, e.to_string()))?;
    let p = build(&host.manifest, "sim.toml")
        .map_err(|e| fail("run", None, format!("{e}\n{}", host.manifest)))?;
    let trace = dir.path().join("sim.xdv");
    // 1. Invariants after every event (in memory: the checked run is the reference run).
    let run = checked_run(seed, &p)?;
    // 2. Its output written to a trace whose storage fails at a random point; what is left
    //    verifies, and resumed it ends in the reference hash.
    let cut = storage_failure(seed, &p, &trace, &run)?;
    // 3. The finished trace replays identically.
    let replayed = replay(seed, &trace)?;
    // 4. Non-interference of the bystander.
    let bystander = non_interference(seed, &host, &run.output.events)?;
    let events = run.summary.events;
    Ok(SimReport {
        seed,
        vhms: host.vhms,
        faults: host.faults,
        events,
        events_compared: cut.resumed + replayed + bystander,
        crashed_at: cut.at,
        storage_fault: cut.kind.name(),
        committed: cut.committed,
        fuel_used: run.summary.vhms.iter().map(|v| v.fuel_used).sum(),
    })
}

/// The failure of `check` on `seed`.
fn failure(seed: u64, check: &str, event: Option<u64>, detail: String) -> SimFailure {
    SimFailure {
        seed,
        check: check.into(),
        event,
        detail,
    }
}

/// The storage failure of a seed's trace.
#[derive(Debug, Clone, Copy)]
enum CutKind {
    /// The host crashes: the trace keeps what was handed to it.
    Crash,
    /// A commit fails and its batch is lost.
    FailedCommit,
    /// The disk fills (SQLite's `SQLITE_FULL`, from a page limit).
    DiskFull {
        /// Pages the file may still grow by.
        pages: u32,
    },
}

impl CutKind {
    fn name(self) -> &'static str {
        match self {
            Self::Crash => "crash",
            Self::FailedCommit => "failed-commit",
            Self::DiskFull { .. } => "disk-full",
        }
    }
}

/// What check 2 did: the storage failure, where, and what the trace held and the resume
/// reproduced.
struct Cut {
    kind: CutKind,
    /// The event the crash or the failed commit came at.
    at: u64,
    /// Events the trace held when its storage failed (its committed prefix).
    committed: u64,
    /// Events the resume reproduced: the committed prefix byte for byte, the rest by the hash.
    resumed: u64,
}

/// What check 1 left: the reference run, its output and its events' chain hash.
struct Checked {
    summary: xdv_hv::RunSummary,
    output: MemorySink,
    /// The reference events chained as a trace chains them.
    head: Hash32,
}

/// Check 1: the run with every invariant checked after every event, in memory; the clock never
/// goes back and no event is past the horizon. Its output is the reference.
fn checked_run(seed: u64, p: &Prepared) -> Result<Checked, SimFailure> {
    let fail =
        |check: &str, event: Option<u64>, detail: String| failure(seed, check, event, detail);
    let host_seed = p.manifest.host.seed;
    let mut hv = xdv_hv::Hypervisor::new(&p.manifest, &p.modules, host_seed)
        .map_err(|e| fail("run", None, e.to_string()))?;
    hv.check_every_step(true);
    let mut output = MemorySink::default();
    let summary = match hv.run(&mut output) {
        Ok(s) => s,
        Err(HvError::Invariant {
            event,
            time_ns,
            message,
        }) => {
            return Err(fail(
                "invariant",
                Some(event.saturating_sub(1)),
                format!("t = {time_ns} ns: {message}"),
            ))
        }
        Err(e) => return Err(fail("run", None, e.to_string())),
    };
    clock_checks(seed, &output.events)?;
    let mut chain = xdv_trace::ChainHash::genesis(&xdv_hv::run::header(p, host_seed).canonical());
    let mut buf = Vec::new();
    for e in &output.events {
        buf.clear();
        e.encode_into(&mut buf);
        chain.link(&buf);
    }
    Ok(Checked {
        summary,
        output,
        head: chain.head(),
    })
}

/// The clock never goes back, and no event is past the horizon.
fn clock_checks(seed: u64, events: &[Event]) -> Result<(), SimFailure> {
    match events
        .windows(2)
        .position(|w| w[1].time_ns < w[0].time_ns || w[1].time_ns > xdv_k::abi::TIME_HORIZON_NS)
    {
        None => Ok(()),
        Some(i) => Err(failure(
            seed,
            "invariant",
            Some(i as u64 + 1),
            format!(
                "event {} at {} ns follows one at {} ns",
                i + 1,
                events[i + 1].time_ns,
                events[i].time_ns
            ),
        )),
    }
}

/// Check 2: the reference output written to `trace` as the run would have written it, with a
/// storage failure at a random point (a crash, a failed commit or a full disk); what was
/// committed verifies, and the resumed run ends in the reference hash.
///
/// The trace is written from the reference output rather than by a second execution: a writer
/// changes when bytes reach the disk, never what they are (`xdv_trace::writer`), so the file left
/// behind is the one the host would have left when its storage failed and it stopped.
fn storage_failure(
    seed: u64,
    p: &Prepared,
    trace: &Path,
    run: &Checked,
) -> Result<Cut, SimFailure> {
    let mut g = Gen {
        rng: ChaCha20Rng::seed_from_u64(seed ^ 0x5eed_c4a5),
    };
    let events = run.summary.events;
    let at = 1 + g.below(events.saturating_sub(1).max(1));
    let kind = match g.below(3) {
        0 => CutKind::Crash,
        1 => CutKind::FailedCommit,
        _ => CutKind::DiskFull {
            pages: 1 + g.below(16) as u32,
        },
    };
    let failing =
        |why: String| failure(seed, "resume", Some(at), format!("{}: {why}", kind.name()));
    let finished =
        write_until_failure(p, trace, &run.output, kind, at).map_err(|e| failing(e.to_string()))?;
    // Whatever failed, what was committed verifies: the resume verifies the trace before it
    // continues it, and refuses one that does not.
    let (head, committed) = match finished {
        // The fault came too late to stop the run (a page budget it never used up).
        Some(head) => {
            let reader = xdv_trace::TraceReader::open(trace).map_err(|e| failing(e.to_string()))?;
            let verified = reader.verify().map_err(|e| failing(e.to_string()))?;
            if let Some(problem) = &verified.problem {
                return Err(failing(format!(
                    "the finished trace does not verify: {problem}"
                )));
            }
            if !verified.complete {
                return Err(failing("the finished trace reads as cut short".into()));
            }
            (head, verified.events_verified)
        }
        None => {
            let resumed = resume_trace(trace, None).map_err(|e| failing(e.to_string()))?;
            (resumed.head, resumed.committed)
        }
    };
    if head != run.head {
        return Err(failing(format!(
            "the storage failed after {committed} committed events and the run resumed: final hash {} instead of {}",
            head.short(),
            run.head.short()
        )));
    }
    Ok(Cut {
        kind,
        at,
        committed,
        resumed: events,
    })
}

/// Hands `output` to a writer of `trace`, failing as `kind` says at event `at`, and stops at the
/// first store error as a run does. The final hash when the writer finished the trace; `None`
/// when its storage failed.
fn write_until_failure(
    p: &Prepared,
    trace: &Path,
    output: &MemorySink,
    kind: CutKind,
    at: u64,
) -> Result<Option<Hash32>, HvError> {
    let mut writer = xdv_hv::trace_writer(p, p.manifest.host.seed, trace)?;
    match kind {
        CutKind::Crash => {}
        CutKind::FailedCommit => writer.inject(StorageFault::FailedCommit { after_events: at })?,
        CutKind::DiskFull { pages } => writer.inject(StorageFault::DiskFull { pages })?,
    }
    let mut table = TableBuilder::default();
    let mut modules = output.modules.iter().peekable();
    for (i, event) in output.events.iter().enumerate() {
        while let Some((_, hash, bytes)) = modules.next_if(|m| m.0 == i) {
            if writer.module(hash, bytes).is_err() {
                return Ok(None);
            }
        }
        // A crash at `at`: the writer keeps what it was handed, as a killed host's does.
        if matches!(kind, CutKind::Crash) && i as u64 == at {
            return Ok(None);
        }
        if writer.emit(event).is_err() {
            return Ok(None);
        }
        table.observe(event);
    }
    for (_, hash, bytes) in modules {
        if writer.module(hash, bytes).is_err() {
            return Ok(None);
        }
    }
    // The full disk may refuse the final commit too; the trace is then cut short.
    Ok(writer.finish(&table.finish()).ok())
}

/// Check 3: the finished trace re-executes to the same events, byte for byte; how many matched.
fn replay(seed: u64, trace: &Path) -> Result<u64, SimFailure> {
    let r = replay_trace(trace).map_err(|e| failure(seed, "replay", None, e.to_string()))?;
    if let Some(d) = r.divergence {
        return Err(failure(
            seed,
            "replay",
            Some(d.seq),
            format!("recorded {:?}, replayed {:?}", d.recorded, d.replayed),
        ));
    }
    Ok(r.events_matched)
}

/// Check 4: the bystander's events beside its neighbours equal its events alone (times and
/// kinds, its own numbering); how many were compared.
fn non_interference(seed: u64, host: &Host, full_events: &[Event]) -> Result<u64, SimFailure> {
    let fail =
        |check: &str, event: Option<u64>, detail: String| failure(seed, check, event, detail);
    let alone = build(&host.alone, "alone.toml")
        .map_err(|e| fail("non-interference", None, e.to_string()))?;
    let (_, alone_events) = run_in_memory(&alone, alone.manifest.host.seed)
        .map_err(|e| fail("non-interference", None, e.to_string()))?;
    let (a, b) = (
        masked(full_events, "bystander"),
        masked(&alone_events, "bystander"),
    );
    if a != b {
        let i = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        return Err(fail(
            "non-interference",
            Some(i as u64),
            format!(
                "the bystander's event {i} differs: beside neighbours {:?}, alone {:?}",
                a.get(i),
                b.get(i)
            ),
        ));
    }
    Ok(a.len() as u64)
}

/// Simulates seeds `from .. from + n` on `threads` worker threads (each seed is independent and
/// deterministic, so the outcome does not depend on the thread count). Returns the reports of
/// the seeds that passed, in seed order, and the failure of the lowest failing seed.
pub fn simulate_many(from: u64, n: u64, threads: usize) -> (Vec<SimReport>, Option<SimFailure>) {
    simulate_many_observed(from, n, threads, &|_| {})
}

/// [`simulate_many`], calling `done` on a worker thread as each seed finishes (in the order
/// they finish, which depends on the threads: for progress, never for results).
pub fn simulate_many_observed(
    from: u64,
    n: u64,
    threads: usize,
    done: &(dyn Fn(&Result<SimReport, SimFailure>) + Sync),
) -> (Vec<SimReport>, Option<SimFailure>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<Result<SimReport, SimFailure>>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    break;
                }
                let seed = from.wrapping_add(k);
                // A panic is a failure of its seed like any other, not the end of the sweep.
                let r = std::panic::catch_unwind(|| simulate(seed)).unwrap_or_else(|p| {
                    let detail = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a panic".into());
                    Err(SimFailure {
                        seed,
                        check: "panic".into(),
                        event: None,
                        detail,
                    })
                });
                done(&r);
                results
                    .lock()
                    .expect("no worker panics while holding the lock")
                    .push(r);
            });
        }
    });
    let mut reports = Vec::new();
    let mut failure: Option<SimFailure> = None;
    for r in results.into_inner().expect("workers finished") {
        match r {
            Ok(r) => reports.push(r),
            Err(f) => {
                if failure.as_ref().is_none_or(|g| f.seed < g.seed) {
                    failure = Some(f);
                }
            }
        }
    }
    reports.sort_by_key(|r| r.seed);
    (reports, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_a_function_of_the_seed() {
        assert_eq!(generate(7).manifest, generate(7).manifest);
        assert_ne!(generate(7).manifest, generate(8).manifest);
    }

    #[test]
    fn the_tag_twin_collides_with_the_bystander() {
        assert_eq!(
            xdv_core::cap::tag_of(TAG_TWIN_OF_BYSTANDER),
            xdv_core::cap::tag_of("bystander")
        );
    }

    #[test]
    fn a_handful_of_seeds_pass() {
        for seed in 0..8 {
            if let Err(f) = simulate(seed) {
                panic!("{f}");
            }
        }
    }
}
