//! The xdv guest ABI: hypercalls imported from module `xdv`.
//!
//! Guests import any subset of [`HYPERCALLS`] and may export `xdv_irq(vector: i32, arg: i64)` to
//! receive interrupts. Calls that take pointers need the guest to export its linear memory as
//! `memory`. Every call returns to the guest at a deterministic point where pending interrupts
//! are delivered. Negative return values are the error codes below.
//!
//! Groups reserve room for later calls: capabilities, nesting, IPC, Q and Φ each get their own
//! group, and existing numbers never change meaning ([`ABI_VERSION`] rises when calls are added).

pub use wasmi::ValType;

/// Version of the hypercall ABI.
pub const ABI_VERSION: u32 = 4;

/// The oldest ABI version a guest may declare: from version 3 on, versions only add calls, so a
/// guest built for any version from this one to [`ABI_VERSION`] runs unchanged. (Version 3 gave
/// bytes 88…103 of a `vhm_spawn` spec a meaning that version 2 ignored.)
pub const OLDEST_ABI_VERSION: u32 = 3;
/// The custom section in which a guest built with an SDK declares the ABI version it targets:
/// exactly one little-endian `u32`. A module without it (hand-written WAT) is not checked.
pub const ABI_SECTION: &str = "xdv.abi";

/// The export a guest provides to receive interrupts: `(vector: i32, arg: i64) -> ()`.
pub const IRQ_EXPORT: &str = "xdv_irq";
/// The export that pointer-taking hypercalls read and write.
pub const MEMORY_EXPORT: &str = "memory";
/// The interrupt vector of the VHM's virtual timer.
pub const TIMER_VECTOR: u32 = 0;
/// The virtual-time horizon, in ns (2⁶², about 146 years): no request may name a time past
/// it (a sleep, a timer's next tick, a Φ window's end), and a run stops there as at a time
/// limit, so no clock arithmetic can wrap.
pub const TIME_HORIZON_NS: u64 = 1 << 62;
/// Fuel every timer tick costs the VHM, charged when the tick fires (the host's work to queue,
/// record and deliver it); a VHM whose fuel cannot pay faults as out of fuel.
pub const TIMER_TICK_FUEL: u64 = 64;
/// Longest message `log` accepts, in bytes.
pub const MAX_LOG_BYTES: u32 = 4096;

/// Success.
pub const OK: i64 = 0;
/// `sleep` returned early because an interrupt arrived (not an error).
pub const SLEEP_INTERRUPTED: i64 = 1;
/// An argument has an invalid value (negative time, zero-length where not allowed, …).
pub const E_INVAL: i64 = -1;
/// A pointer/length pair reaches outside the guest's linear memory.
pub const E_FAULT: i64 = -2;
/// No such object: an unknown vCPU or interrupt vector.
pub const E_NOENT: i64 = -3;
/// A length is over the call's limit.
pub const E_TOOBIG: i64 = -4;
/// The call needs an exported `memory` and the guest has none.
pub const E_NOMEM: i64 = -5;

/// No live capability under that handle: forged, stale, empty, or another VHM's.
pub const E_BADHANDLE: i64 = -6;
/// The capability lacks a needed right, or a derivation asked for more rights than its source.
pub const E_PERM: i64 = -7;
/// The capability names another type of object than the call needs.
pub const E_TYPE: i64 = -8;
/// Over budget: vCPUs, memory, fuel, nesting depth, child count, or the privilege level.
pub const E_QUOTA: i64 = -9;
/// The channel's queue is full (non-parking send).
pub const E_FULL: i64 = -10;
/// The other end of the channel is closed.
pub const E_CLOSED: i64 = -11;
/// Busy: the VHM has children (`policy_set`), a qubit is lent to a child (`q_submit`), or a
/// job has not finished (`q_result`).
pub const E_BUSY: i64 = -12;

/// Most bytes of a Q program `q_submit` reads.
pub const MAX_Q_PROGRAM: u32 = 64 * 1024;
/// Most shots of one Q job.
pub const MAX_Q_SHOTS: u64 = 65_536;
/// Most operations a Q program may expand to once its gates are inlined.
pub const MAX_Q_OPS: usize = 1_000_000;
/// Amplitude updates of Q simulation one unit of fuel pays for: `q_submit` charges
/// ⌈work ÷ this⌉ fuel to the VHM before the job runs, or refuses it (`E_QUOTA`).
pub const Q_WORK_PER_FUEL: u64 = 16;
/// Largest badge a capability may carry (2⁶³−1): `cap_derive` and `vhm_spawn` refuse larger
/// ones with `E_INVAL`, as the manifest refuses them in `badges`.
pub const MAX_BADGE: u64 = i64::MAX as u64;
/// Φ samples one unit of fuel pays for: `phi_exec` charges ⌈samples ÷ this⌉ fuel for the
/// samples its plays produce, and refuses (`E_INVAL`, rule `size`) a transform whose samples
/// the VHM's fuel or memory (16 bytes a sample, within its `memory_quota`) cannot pay for.
pub const PHI_SAMPLES_PER_FUEL: u64 = 16;
/// Host bytes one Φ sample takes (an I/Q pair of f64), against the VHM's `memory_quota`.
pub const PHI_SAMPLE_BYTES: u64 = 16;
/// Most jobs a Q container holds at once (admitted and not yet collected with `q_result`).
pub const MAX_Q_JOBS: usize = 64;
/// Most bytes of a Φ transform `phi_exec` reads.
pub const MAX_PHI_PROGRAM: u32 = 64 * 1024;
/// Size of the `phi_window` spec.
pub const PHI_WINDOW_SPEC_LEN: u32 = crate::layout::size::<crate::layout::WindowSpec>();

/// The named values of the ABI besides error codes, rights and object types: flags, selectors
/// and limits, as the SDKs define them (`XDV_` prefixed in C). `(name, value, meaning)`.
pub const CONSTANTS: &[(&str, i64, &str)] = &[
    (
        "ABI_VERSION",
        ABI_VERSION as i64,
        "the ABI version this host implements",
    ),
    ("OK", OK, "success"),
    (
        "SLEEP_INTERRUPTED",
        SLEEP_INTERRUPTED,
        "`sleep` returned early because an interrupt arrived",
    ),
    (
        "TIMER_VECTOR",
        TIMER_VECTOR as i64,
        "the interrupt vector of the virtual timer",
    ),
    (
        "MAX_LOG_BYTES",
        MAX_LOG_BYTES as i64,
        "longest message `log` accepts",
    ),
    (
        "MAX_Q_PROGRAM",
        MAX_Q_PROGRAM as i64,
        "most bytes of a Q program",
    ),
    ("MAX_Q_SHOTS", MAX_Q_SHOTS as i64, "most shots of one Q job"),
    (
        "MAX_Q_JOBS",
        MAX_Q_JOBS as i64,
        "most uncollected jobs of a Q container",
    ),
    (
        "MAX_PHI_PROGRAM",
        MAX_PHI_PROGRAM as i64,
        "most bytes of a Φ transform",
    ),
    ("MAX_BADGE", MAX_BADGE as i64, "largest badge"),
    (
        "IPC_SEND_PARK",
        1,
        "`ipc_send` flag: park while the queue is full instead of E_FULL",
    ),
    (
        "SPAWN_FAULT_ON_BAD_HYPERCALL",
        1,
        "spawn and `policy_set` flag: fault on refused hypercalls",
    ),
    (
        "SPAWN_CREATE_CHANNELS",
        2,
        "spawn flag: the child may create channels",
    ),
    ("WINDOW_SHARE", 1, "`phi_window` flag: a share grant"),
    ("Q_INFO_QUBITS", 0, "`q_info`: logical qubits"),
    (
        "Q_INFO_BUDGET_LEFT",
        1,
        "`q_info`: decoherence budget left, µ",
    ),
    (
        "Q_INFO_BUDGET_SPENT",
        2,
        "`q_info`: decoherence budget spent, µ",
    ),
    (
        "Q_INFO_QUBITS_FREE",
        3,
        "`q_info`: qubits not lent to children",
    ),
    (
        "WAIT_EXIT",
        0,
        "`vhm_wait` kind (value >> 32): exited; the low 32 bits are its code",
    ),
    ("WAIT_HALTED", 1, "`vhm_wait` kind: every vCPU returned"),
    (
        "WAIT_FAULT",
        2,
        "`vhm_wait` kind: faulted; the low bits are the class (0 trap, 1 fuel, 2 bad hypercall)",
    ),
    ("WAIT_KILLED", 3, "`vhm_wait` kind: killed"),
    (
        "WAIT_TIME_LIMIT",
        4,
        "`vhm_wait` kind: stopped at the time limit",
    ),
];

/// Error codes with their names and meanings, for documentation and messages.
pub const ERROR_CODES: &[(i64, &str, &str)] = &[
    (E_INVAL, "E_INVAL", "an argument has an invalid value"),
    (
        E_FAULT,
        "E_FAULT",
        "a pointer/length pair reaches outside linear memory",
    ),
    (E_NOENT, "E_NOENT", "no such vCPU or interrupt vector"),
    (E_TOOBIG, "E_TOOBIG", "a length is over the call's limit"),
    (E_NOMEM, "E_NOMEM", "the call needs an exported `memory`"),
    (
        E_BADHANDLE,
        "E_BADHANDLE",
        "no such capability (forged, stale or foreign handle)",
    ),
    (
        E_PERM,
        "E_PERM",
        "missing right, or rights asked beyond the source's",
    ),
    (
        E_TYPE,
        "E_TYPE",
        "the capability names another type of object",
    ),
    (
        E_QUOTA,
        "E_QUOTA",
        "over budget, nesting depth, child count or privilege level",
    ),
    (E_FULL, "E_FULL", "the channel queue is full"),
    (
        E_CLOSED,
        "E_CLOSED",
        "the other end of the channel is closed",
    ),
    (
        E_BUSY,
        "E_BUSY",
        "the VHM has children, a qubit is lent to a child, or a job has not finished",
    ),
];

/// The name of an error code, `"?"` for unknown values.
pub fn error_name(code: i64) -> &'static str {
    ERROR_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("?", |(_, n, _)| n)
}

/// Every hypercall of this ABI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hypercall {
    /// `log`: append `len` bytes at `ptr` to the trace.
    Log,
    /// `exit`: stop every vCPU of the VHM with exit code `code`.
    Exit,
    /// `yield`: end the current slice now.
    Yield,
    /// `vcpu_id`: index of the calling vCPU, from 0.
    VcpuId,
    /// `vcpu_count`: number of vCPUs of the VHM.
    VcpuCount,
    /// `time`: the calling vCPU's virtual time in ns.
    Time,
    /// `sleep`: park until virtual time `until_ns`.
    Sleep,
    /// `random`: 64 random bits from the VHM's own stream, seeded by (host seed, VHM name).
    Random,
    /// `timer_set`: fire vector 0 on the calling vCPU every `period_ns` (0 disarms).
    TimerSet,
    /// `irq_send`: raise `vector` with `arg` on vCPU `vcpu` of the same VHM.
    IrqSend,
    /// `cap_derive`: derive a copy of `handle` with `rights` (a subset) and `badge` (0 keeps the source's).
    CapDerive,
    /// `cap_revoke`: remove every capability derived from `handle`, in every VHM, in creation order.
    CapRevoke,
    /// `cap_drop`: remove `handle` from the caller's table.
    CapDrop,
    /// `cap_info`: write 24 bytes at `out_ptr`: type u32, rights u32, badge u64, object u64.
    CapInfo,
    /// `cap_find`: the handle of the `index`-th capability of object type `type` in the caller's table, or E_NOENT.
    CapFind,
    /// `vhm_spawn`: create a child VHM from the 88- or 104-byte spec at `ptr`.
    VhmSpawn,
    /// `vhm_wait`: park until the child stops.
    VhmWait,
    /// `vhm_kill`: stop the child and its subtree (reverse creation order).
    VhmKill,
    /// `policy_set`: lower the caller's own weight and tighten its flags (bit 0: fault on bad hypercalls).
    PolicySet,
    /// `ipc_channel`: create a channel of `capacity` messages each way.
    IpcChannel,
    /// `ipc_send`: copy `len` bytes at `ptr` (and a derived copy of `cap`, 0 for none) to the other end.
    IpcSend,
    /// `ipc_recv`: park until a message arrives.
    IpcRecv,
    /// `q_info`: a figure of a Q container.
    QInfo,
    /// `q_submit`: admit an OpenQASM program as a job on a Q container.
    QSubmit,
    /// `q_wait`: park until a Q job completes.
    QWait,
    /// `q_result`: copy a completed job's outcomes into memory and release the job.
    QResult,
    /// `phi_window`: ask for a coherence window.
    PhiWindow,
    /// `phi_exec`: run a transform on a window under its contract.
    PhiExec,
    /// `phi_frame`: read a frame of a window.
    PhiFrame,
    /// `phi_release`: give a window back.
    PhiRelease,
}

/// Groups of hypercalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Lifecycle, time and interrupts.
    Lifecycle,
    /// Capability handles.
    Capabilities,
    /// Child VHMs and policy.
    Nesting,
    /// Channels between VHMs.
    Ipc,
    /// Q containers and jobs.
    Q,
    /// Φ windows, frames and transforms.
    Phi,
}

/// The deepest privilege level: L1 are manifest VHMs, L(n+1) their children.
pub const MAX_LEVEL: u8 = 8;

/// The description of one hypercall: the single source of its name, signature and rules.
#[derive(Debug, Clone, Copy)]
pub struct HypercallDesc {
    /// The call.
    pub call: Hypercall,
    /// Import name in module `xdv`.
    pub name: &'static str,
    /// Group.
    pub group: Group,
    /// Parameter types.
    pub params: &'static [ValType],
    /// Parameter names, as `docs/abi.md` and the SDKs name them; a name ending in `ptr` is a
    /// guest address (the call needs the exported `memory`).
    pub names: &'static [&'static str],
    /// Result type, if any.
    pub result: Option<ValType>,
    /// Deepest privilege level allowed to call it (`u8::MAX`: every level).
    pub max_level: u8,
    /// The capabilities and rights it needs (`-`: none).
    pub rights: &'static str,
    /// One-line meaning.
    pub doc: &'static str,
}

use ValType::{I32, I64};

/// The hypercall table, in ABI order.
pub const HYPERCALLS: &[HypercallDesc] = &[
    HypercallDesc { call: Hypercall::Log, name: "log", group: Group::Lifecycle, params: &[I32, I32], names: &["ptr", "len"], result: Some(I32), max_level: u8::MAX, rights: "-", doc: "append `len` bytes at `ptr` to the trace; 0, E_FAULT, E_TOOBIG or E_NOMEM" },
    HypercallDesc { call: Hypercall::Exit, name: "exit", group: Group::Lifecycle, params: &[I32], names: &["code"], result: None, max_level: u8::MAX, rights: "-", doc: "stop every vCPU of the VHM with exit code `code`; does not return" },
    HypercallDesc { call: Hypercall::Yield, name: "yield", group: Group::Lifecycle, params: &[], names: &[], result: None, max_level: u8::MAX, rights: "-", doc: "end the current slice now; pending interrupts are delivered" },
    HypercallDesc { call: Hypercall::VcpuId, name: "vcpu_id", group: Group::Lifecycle, params: &[], names: &[], result: Some(I32), max_level: u8::MAX, rights: "-", doc: "index of the calling vCPU, from 0" },
    HypercallDesc { call: Hypercall::VcpuCount, name: "vcpu_count", group: Group::Lifecycle, params: &[], names: &[], result: Some(I32), max_level: u8::MAX, rights: "-", doc: "number of vCPUs of the VHM" },
    HypercallDesc { call: Hypercall::Time, name: "time", group: Group::Lifecycle, params: &[], names: &[], result: Some(I64), max_level: u8::MAX, rights: "-", doc: "the calling vCPU's virtual time in ns" },
    HypercallDesc { call: Hypercall::Sleep, name: "sleep", group: Group::Lifecycle, params: &[I64], names: &["until_ns"], result: Some(I32), max_level: u8::MAX, rights: "-", doc: "park until virtual time `until_ns`; 0 on time (at once when already past), 1 when an interrupt woke it or was already pending, E_INVAL if negative" },
    HypercallDesc { call: Hypercall::Random, name: "random", group: Group::Lifecycle, params: &[], names: &[], result: Some(I64), max_level: u8::MAX, rights: "-", doc: "64 random bits from the VHM's own stream, seeded by (host seed, VHM name)" },
    HypercallDesc { call: Hypercall::TimerSet, name: "timer_set", group: Group::Lifecycle, params: &[I64], names: &["period_ns"], result: Some(I32), max_level: u8::MAX, rights: "-", doc: "fire vector 0 on the calling vCPU every `period_ns` (0 disarms), 64 fuel a tick; E_INVAL if negative, past the time horizon, or without an xdv_irq export" },
    HypercallDesc { call: Hypercall::IrqSend, name: "irq_send", group: Group::Lifecycle, params: &[I32, I32, I64], names: &["vcpu", "vector", "arg"], result: Some(I32), max_level: u8::MAX, rights: "-", doc: "raise `vector` with `arg` on vCPU `vcpu` of the same VHM; E_NOENT for an unknown vCPU or vector" },
    HypercallDesc { call: Hypercall::CapDerive, name: "cap_derive", group: Group::Capabilities, params: &[I64, I32, I64], names: &["handle", "rights", "badge"], result: Some(I64), max_level: u8::MAX, rights: "source: derive", doc: "derive a copy of `handle` with `rights` (a subset) and `badge` (0 keeps the source's; at most 2^63-1); the new handle, or E_BADHANDLE, E_PERM, E_INVAL (badge), E_QUOTA (table full or over the memory budget)" },
    HypercallDesc { call: Hypercall::CapRevoke, name: "cap_revoke", group: Group::Capabilities, params: &[I64], names: &["handle"], result: Some(I32), max_level: u8::MAX, rights: "any", doc: "remove every capability derived from `handle`, in every VHM, in creation order; the number removed" },
    HypercallDesc { call: Hypercall::CapDrop, name: "cap_drop", group: Group::Capabilities, params: &[I64], names: &["handle"], result: Some(I32), max_level: u8::MAX, rights: "any", doc: "remove `handle` from the caller's table; its derivations move up to its parent" },
    HypercallDesc { call: Hypercall::CapInfo, name: "cap_info", group: Group::Capabilities, params: &[I64, I32], names: &["handle", "out_ptr"], result: Some(I32), max_level: u8::MAX, rights: "any", doc: "write 24 bytes at `out_ptr`: type u32, rights u32, badge u64, object u64" },
    HypercallDesc { call: Hypercall::CapFind, name: "cap_find", group: Group::Capabilities, params: &[I32, I32], names: &["object_type", "index"], result: Some(I64), max_level: u8::MAX, rights: "-", doc: "the handle of the `index`-th capability of object type `type` in the caller's table, or E_NOENT" },
    HypercallDesc { call: Hypercall::VhmSpawn, name: "vhm_spawn", group: Group::Nesting, params: &[I32, I32], names: &["spec_ptr", "spec_len"], result: Some(I64), max_level: MAX_LEVEL - 1, rights: "budget: spawn; module: spawn", doc: "create a child VHM from the 88-byte spec at `ptr` (104 bytes with a Q container carved from the caller's); a handle on the child (wait, kill, inspect, derive, transfer), or E_PERM, E_QUOTA, E_INVAL" },
    HypercallDesc { call: Hypercall::VhmWait, name: "vhm_wait", group: Group::Nesting, params: &[I64], names: &["handle"], result: Some(I64), max_level: u8::MAX, rights: "vhm: wait", doc: "park until the child stops; (kind << 32) | code: kind 0 exit(code), 1 halted, 2 fault(class), 3 killed, 4 time limit" },
    HypercallDesc { call: Hypercall::VhmKill, name: "vhm_kill", group: Group::Nesting, params: &[I64], names: &["handle"], result: Some(I32), max_level: u8::MAX, rights: "vhm: kill", doc: "stop the child and its subtree (reverse creation order); its budget returns" },
    HypercallDesc { call: Hypercall::PolicySet, name: "policy_set", group: Group::Nesting, params: &[I32, I32], names: &["weight", "flags"], result: Some(I32), max_level: u8::MAX, rights: "-", doc: "lower the caller's own weight and tighten its flags (bit 0: fault on bad hypercalls); only while it has no children (E_BUSY)" },
    HypercallDesc { call: Hypercall::IpcChannel, name: "ipc_channel", group: Group::Ipc, params: &[I32, I32], names: &["capacity", "out_ptr"], result: Some(I32), max_level: u8::MAX, rights: "budget: channel", doc: "create a channel of `capacity` messages each way; writes both endpoint handles (2 × u64) at `out_ptr`" },
    HypercallDesc { call: Hypercall::IpcSend, name: "ipc_send", group: Group::Ipc, params: &[I64, I32, I32, I64, I32], names: &["endpoint", "ptr", "len", "cap", "flags"], result: Some(I32), max_level: u8::MAX, rights: "endpoint: send; cap: transfer", doc: "copy `len` bytes at `ptr` (and a derived copy of `cap`, 0 for none) to the other end, held in the sender's memory budget until received; E_FULL, or park when `flags` bit 0; E_CLOSED; E_QUOTA (over the memory budget)" },
    HypercallDesc { call: Hypercall::IpcRecv, name: "ipc_recv", group: Group::Ipc, params: &[I64, I32, I32], names: &["endpoint", "ptr", "len"], result: Some(I64), max_level: u8::MAX, rights: "endpoint: recv", doc: "park until a message arrives; write badge u64, cap u64, then the payload at `ptr`; the payload length, E_TOOBIG, E_CLOSED" },
    HypercallDesc { call: Hypercall::QInfo, name: "q_info", group: Group::Q, params: &[I64, I32], names: &["container", "what"], result: Some(I64), max_level: u8::MAX, rights: "container: inspect", doc: "a figure of the container: 0 logical qubits, 1 decoherence budget left (µ), 2 budget spent (µ), 3 qubits not lent to children; E_INVAL for another `what`" },
    HypercallDesc { call: Hypercall::QSubmit, name: "q_submit", group: Group::Q, params: &[I64, I32, I32, I64, I32], names: &["container", "ptr", "len", "shots", "vector"], result: Some(I64), max_level: u8::MAX, rights: "container: submit", doc: "admit the OpenQASM program at `ptr` as a job of `shots` shots; raise `vector` on completion (0: none); a job handle, or E_INVAL, E_QUOTA (over the decoherence budget, or the simulation's fuel or memory), E_BUSY, E_TOOBIG, E_FAULT" },
    HypercallDesc { call: Hypercall::QWait, name: "q_wait", group: Group::Q, params: &[I64], names: &["job"], result: Some(I32), max_level: u8::MAX, rights: "job: wait", doc: "park until the job completes; 0" },
    HypercallDesc { call: Hypercall::QResult, name: "q_result", group: Group::Q, params: &[I64, I32, I32], names: &["job", "ptr", "len"], result: Some(I64), max_level: u8::MAX, rights: "job: recv", doc: "write one u64 per shot (bit c = classical bit c) at `ptr` and release the job; the number of shots, E_BUSY (not finished), E_TOOBIG, E_FAULT" },
    HypercallDesc { call: Hypercall::PhiWindow, name: "phi_window", group: Group::Phi, params: &[I32, I32], names: &["spec_ptr", "spec_len"], result: Some(I64), max_level: u8::MAX, rights: "-", doc: "ask for a coherence window from the 48-byte spec at `ptr` (inside the parent's window for a nested VHM); a window handle, or E_INVAL (a rule of the port or the parent window, or past the time horizon), E_PERM (no port-time left), E_BUSY (conflict), E_QUOTA (capability table full or over the memory budget), E_FAULT, E_NOMEM" },
    HypercallDesc { call: Hypercall::PhiExec, name: "phi_exec", group: Group::Phi, params: &[I64, I32, I32, I32, I32], names: &["window", "ptr", "len", "out_ptr", "out_len"], result: Some(I64), max_level: u8::MAX, rights: "window: submit", doc: "run the transform text at `ptr` on the window under its contract, park until it ends, write each capture's (I, Q) as 2 × i64 µ at `out_ptr`; the number of captures, or E_INVAL (parse error or contract violation), E_TOOBIG, E_FAULT" },
    HypercallDesc { call: Hypercall::PhiFrame, name: "phi_frame", group: Group::Phi, params: &[I64, I32, I32, I32], names: &["window", "name_ptr", "name_len", "out_ptr"], result: Some(I32), max_level: u8::MAX, rights: "window: inspect", doc: "write a frame's frequency (i64 Hz), phase (u64, 2⁻⁶⁴ turns), clock (u64 ns) and defined flag (u64) at `out_ptr`; 0, or E_NOENT (no such frame; not a refusal), E_BADHANDLE, E_TYPE, E_PERM, E_FAULT, E_TOOBIG, E_NOMEM" },
    HypercallDesc { call: Hypercall::PhiRelease, name: "phi_release", group: Group::Phi, params: &[I64], names: &["window"], result: Some(I32), max_level: u8::MAX, rights: "window: submit", doc: "give the window (and the windows nested in it) back; 0, E_BADHANDLE, E_TYPE, E_PERM" },
];

impl Hypercall {
    /// The call's description.
    pub fn desc(self) -> &'static HypercallDesc {
        HYPERCALLS
            .iter()
            .find(|d| d.call == self)
            .expect("every Hypercall is in HYPERCALLS")
    }
}

impl HypercallDesc {
    /// `true` when parameter `i` is an address the call writes through (the SDKs type it as a
    /// mutable pointer): every `out_ptr`, and the buffers of `ipc_recv` and `q_result`.
    pub fn writes_through(&self, i: usize) -> bool {
        match self.names.get(i) {
            Some(&"out_ptr") => true,
            Some(&"ptr") => matches!(self.call, Hypercall::IpcRecv | Hypercall::QResult),
            _ => false,
        }
    }

    /// `true` when the call reads or writes guest memory through a pointer argument, so a
    /// module that imports it must export its `memory`.
    pub fn takes_pointer(&self) -> bool {
        self.names.iter().any(|n| n.ends_with("ptr"))
    }
}

/// Looks a hypercall up by import name.
pub fn by_name(name: &str) -> Option<&'static HypercallDesc> {
    HYPERCALLS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, d) in HYPERCALLS.iter().enumerate() {
            assert_eq!(d.call.desc().name, d.name);
            assert_eq!(by_name(d.name).map(|x| x.call), Some(d.call));
            assert!(
                HYPERCALLS[..i].iter().all(|o| o.name != d.name),
                "duplicate {}",
                d.name
            );
            assert!(d.params.len() <= 5, "hypercalls take at most 5 arguments");
            assert_eq!(
                d.params.len(),
                d.names.len(),
                "{}: one name per parameter",
                d.name
            );
        }
        // The `vhm_wait` kinds are the ones the core computes.
        use xdv_core::{ExitReason, FaultClass};
        let kind = |r: ExitReason| r.wait_value() >> 32;
        let named = |n: &str| CONSTANTS.iter().find(|c| c.0 == n).unwrap().1;
        assert_eq!(kind(ExitReason::Exit(3)), named("WAIT_EXIT"));
        assert_eq!(kind(ExitReason::Halted), named("WAIT_HALTED"));
        assert_eq!(
            kind(ExitReason::Fault(FaultClass::Trap)),
            named("WAIT_FAULT")
        );
        assert_eq!(kind(ExitReason::Killed), named("WAIT_KILLED"));
        assert_eq!(kind(ExitReason::TimeLimit), named("WAIT_TIME_LIMIT"));
        for (c, n, _) in ERROR_CODES {
            assert!(*c < 0);
            assert_eq!(error_name(*c), *n);
        }
    }
}
