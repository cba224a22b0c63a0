//! The orchestration event vocabulary and the sink that receives it.
//!
//! Every decision the hypervisor takes is one [`Event`]. The canonical encoding of an event is
//! postcard over these types (see [`Event::encode`]); the trace stores exactly those bytes and
//! chains their hashes, and replay compares them byte for byte. Any layout change therefore
//! bumps [`crate::EVENT_SCHEMA_VERSION`].

use crate::budget::Quota;
use crate::cap::{ChannelId, Object};
use crate::hash::Hash32;
use crate::ids::{CapId, Domain, VcpuIndex, VhmId};
use crate::refusal::{DecoherenceCause, FaultDetail, Refusal, RestartRefusal};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One orchestration event: when it happened on the virtual clock, which VHM it concerns (none for
/// host-wide events) and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Virtual time in nanoseconds.
    pub time_ns: u64,
    /// The VHM the event belongs to, `None` for host-wide events.
    pub vhm: Option<VhmId>,
    /// What happened.
    pub kind: EventKind,
}

/// A resource that an allocation event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resource {
    /// One virtual CPU, by index.
    Vcpu(VcpuIndex),
    /// Linear memory: the VHM's memory quota in bytes.
    Memory(u64),
    /// Fuel: the VHM's total fuel quota.
    Fuel(u64),
    /// Logical qubits of the VHM's Q container.
    Qubits(u32),
    /// The Q container's decoherence budget, micro-units of log-fidelity.
    Decoherence(u64),
    /// A Φ coherence window: its port and interval.
    Window {
        /// The port's index.
        port: u32,
        /// Start, ns.
        t0: u64,
        /// End, ns.
        t1: u64,
    },
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Vcpu(i) => write!(f, "vcpu[{i}]"),
            Resource::Memory(b) => write!(f, "memory {b} B"),
            Resource::Fuel(q) => write!(f, "fuel {q}"),
            Resource::Qubits(n) => write!(f, "{n} qubits"),
            Resource::Decoherence(b) => write!(f, "decoherence budget {b} µ"),
            Resource::Window { port, t0, t1 } => write!(f, "window on port {port} [{t0}, {t1}) ns"),
        }
    }
}

/// Why a fault was raised. Every class is contained to the faulting VHM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultClass {
    /// The guest executed a trapping instruction (unreachable, out-of-bounds access, …).
    Trap,
    /// The VHM used up its total fuel quota.
    FuelExhausted,
    /// A hypercall with invalid arguments, under a policy that faults on them.
    BadHypercall,
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultClass::Trap => "trap",
            FaultClass::FuelExhausted => "fuel-exhausted",
            FaultClass::BadHypercall => "bad-hypercall",
        })
    }
}

/// Why a VHM stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    /// The guest called `exit(code)`.
    Exit(i32),
    /// Every vCPU returned from its entry function.
    Halted,
    /// The VHM faulted.
    Fault(FaultClass),
    /// The host's virtual time limit was reached while the VHM was still running.
    TimeLimit,
    /// Stopped by `vhm_kill`, or because its parent stopped.
    Killed,
}

impl ExitReason {
    /// The value `vhm_wait` returns for it: `(kind << 32) | code`, kind 0 exit(code), 1 halted,
    /// 2 fault (code = class: 0 trap, 1 fuel, 2 bad hypercall), 3 killed, 4 time limit.
    pub fn wait_value(&self) -> i64 {
        let (kind, code): (i64, u32) = match *self {
            ExitReason::Exit(c) => (0, c as u32),
            ExitReason::Halted => (1, 0),
            ExitReason::Fault(FaultClass::Trap) => (2, 0),
            ExitReason::Fault(FaultClass::FuelExhausted) => (2, 1),
            ExitReason::Fault(FaultClass::BadHypercall) => (2, 2),
            ExitReason::Killed => (3, 0),
            ExitReason::TimeLimit => (4, 0),
        };
        (kind << 32) | i64::from(code)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Exit(c) => write!(f, "exit({c})"),
            ExitReason::Halted => f.write_str("halted"),
            ExitReason::Fault(c) => write!(f, "fault: {c}"),
            ExitReason::TimeLimit => f.write_str("time limit"),
            ExitReason::Killed => f.write_str("killed"),
        }
    }
}

/// A completed hypercall as the trace records it: the call with its decoded arguments and the
/// value returned to the guest (negative values are the ABI's error codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HypercallRecord {
    /// `log(ptr, len)`: the bytes the guest logged (lossless; shown as UTF-8 where valid).
    Log {
        /// Guest pointer.
        ptr: u32,
        /// Length in bytes as the guest passed it.
        len: u32,
        /// The bytes read, empty when the call was refused.
        bytes: Vec<u8>,
    },
    /// `exit(code)`.
    Exit {
        /// The exit code.
        code: i32,
    },
    /// `yield()`: ends the current slice early.
    Yield,
    /// `vcpu_id()`.
    VcpuId,
    /// `vcpu_count()`.
    VcpuCount,
    /// `time()`: the vCPU's virtual time in ns.
    Time,
    /// `sleep(until_ns)`: parks the vCPU until a virtual time.
    Sleep {
        /// The requested wake time.
        until_ns: u64,
    },
    /// `random()`: 64 bits from the VHM's seeded stream (the returned value is the draw).
    Random,
    /// `timer_set(period_ns)`: arms (or, with 0, disarms) the VHM's periodic virtual timer.
    TimerSet {
        /// The period in virtual ns.
        period_ns: u64,
    },
    /// `irq_send(vcpu, vector, arg)`: raises an interrupt on a vCPU of the same VHM.
    IrqSend {
        /// Target vCPU index as passed.
        vcpu: u32,
        /// Vector number as passed.
        vector: u32,
        /// The argument delivered with the interrupt.
        arg: i64,
    },
    /// `cap_derive(handle, rights, badge)`.
    CapDerive {
        /// Source handle as passed.
        handle: u64,
        /// Requested rights.
        rights: u32,
        /// Requested badge.
        badge: u64,
    },
    /// `cap_revoke(handle)`.
    CapRevoke {
        /// Handle as passed.
        handle: u64,
    },
    /// `cap_drop(handle)`.
    CapDrop {
        /// Handle as passed.
        handle: u64,
    },
    /// `cap_info(handle, out_ptr)`.
    CapInfo {
        /// Handle as passed.
        handle: u64,
    },
    /// `cap_find(type, index)`.
    CapFind {
        /// Object type code.
        type_code: u32,
        /// Index among the caller's capabilities of that type.
        index: u32,
    },
    /// `vhm_spawn(spec_ptr, spec_len)`: the decoded spec, when it could be read.
    VhmSpawn {
        /// The child's name (full path), empty when the spec was unreadable.
        name: String,
    },
    /// `vhm_wait(handle)`.
    VhmWait {
        /// Handle as passed.
        handle: u64,
    },
    /// `vhm_kill(handle)`.
    VhmKill {
        /// Handle as passed.
        handle: u64,
    },
    /// `policy_set(weight, flags)`.
    PolicySet {
        /// Requested weight.
        weight: u32,
        /// Requested flags.
        flags: u32,
    },
    /// `ipc_channel(capacity, out_ptr)`.
    IpcChannel {
        /// Requested queue capacity.
        capacity: u32,
    },
    /// `ipc_send(endpoint, ptr, len, cap, flags)`.
    IpcSend {
        /// Endpoint handle as passed.
        endpoint: u64,
        /// Payload length.
        len: u32,
        /// Capability handle to transfer (0: none).
        cap: u64,
        /// Flags (bit 0: park while the queue is full).
        flags: u32,
    },
    /// `ipc_recv(endpoint, ptr, len)`.
    IpcRecv {
        /// Endpoint handle as passed.
        endpoint: u64,
        /// Buffer length.
        len: u32,
    },
    /// `q_info(container, what)`.
    QInfo {
        /// Container handle as passed.
        container: u64,
        /// Which figure.
        what: u32,
    },
    /// `q_submit(container, ptr, len, shots, vector)`: the program text is in the `QJobSubmitted`
    /// event's hash and in the VHM's memory; the record keeps its length.
    QSubmit {
        /// Container handle as passed.
        container: u64,
        /// Program length in bytes.
        len: u32,
        /// Shots requested.
        shots: u64,
        /// Interrupt vector raised on completion (0: none).
        vector: u32,
    },
    /// `q_wait(job)`.
    QWait {
        /// Job handle as passed.
        job: u64,
    },
    /// `q_result(job, ptr, len)`.
    QResult {
        /// Job handle as passed.
        job: u64,
        /// Buffer length.
        len: u32,
    },
    /// `phi_window(spec_ptr, spec_len)`.
    PhiWindow {
        /// Spec length.
        len: u32,
    },
    /// `phi_exec(window, ptr, len, out_ptr, out_len)`.
    PhiExec {
        /// Window handle as passed.
        window: u64,
        /// Transform length in bytes.
        len: u32,
        /// Capture buffer length.
        out_len: u32,
    },
    /// `phi_frame(window, name_ptr, name_len, out_ptr)`.
    PhiFrame {
        /// Window handle as passed.
        window: u64,
        /// The frame's name, when it could be read.
        name: String,
    },
    /// `phi_release(window)`.
    PhiRelease {
        /// Window handle as passed.
        window: u64,
    },
}

impl HypercallRecord {
    /// The arguments that are capability handles, by field name, as the guest passed them
    /// (`ipc_send`'s `cap` is 0 for "none").
    pub fn handle_args(&self) -> Vec<(&'static str, u64)> {
        use HypercallRecord as H;
        match self {
            H::CapDerive { handle, .. }
            | H::CapRevoke { handle }
            | H::CapDrop { handle }
            | H::CapInfo { handle }
            | H::VhmWait { handle }
            | H::VhmKill { handle } => vec![("handle", *handle)],
            H::IpcSend { endpoint, cap, .. } => vec![("endpoint", *endpoint), ("cap", *cap)],
            H::IpcRecv { endpoint, .. } => vec![("endpoint", *endpoint)],
            H::QInfo { container, .. } | H::QSubmit { container, .. } => {
                vec![("container", *container)]
            }
            H::QWait { job } | H::QResult { job, .. } => vec![("job", *job)],
            H::PhiExec { window, .. } | H::PhiFrame { window, .. } | H::PhiRelease { window } => {
                vec![("window", *window)]
            }
            _ => Vec::new(),
        }
    }

    /// `true` when a non-negative return value of this call is a new capability handle
    /// (`cap_derive`, `cap_find`, `vhm_spawn`, `q_submit`, `phi_window`); negative ones are
    /// error codes.
    pub fn returns_handle(&self) -> bool {
        matches!(
            self,
            HypercallRecord::CapDerive { .. }
                | HypercallRecord::CapFind { .. }
                | HypercallRecord::VhmSpawn { .. }
                | HypercallRecord::QSubmit { .. }
                | HypercallRecord::PhiWindow { .. }
        )
    }

    /// The hypercall's ABI name.
    pub fn name(&self) -> &'static str {
        match self {
            HypercallRecord::Log { .. } => "log",
            HypercallRecord::Exit { .. } => "exit",
            HypercallRecord::Yield => "yield",
            HypercallRecord::VcpuId => "vcpu_id",
            HypercallRecord::VcpuCount => "vcpu_count",
            HypercallRecord::Time => "time",
            HypercallRecord::Sleep { .. } => "sleep",
            HypercallRecord::Random => "random",
            HypercallRecord::TimerSet { .. } => "timer_set",
            HypercallRecord::IrqSend { .. } => "irq_send",
            HypercallRecord::CapDerive { .. } => "cap_derive",
            HypercallRecord::CapRevoke { .. } => "cap_revoke",
            HypercallRecord::CapDrop { .. } => "cap_drop",
            HypercallRecord::CapInfo { .. } => "cap_info",
            HypercallRecord::CapFind { .. } => "cap_find",
            HypercallRecord::VhmSpawn { .. } => "vhm_spawn",
            HypercallRecord::VhmWait { .. } => "vhm_wait",
            HypercallRecord::VhmKill { .. } => "vhm_kill",
            HypercallRecord::PolicySet { .. } => "policy_set",
            HypercallRecord::IpcChannel { .. } => "ipc_channel",
            HypercallRecord::IpcSend { .. } => "ipc_send",
            HypercallRecord::IpcRecv { .. } => "ipc_recv",
            HypercallRecord::QInfo { .. } => "q_info",
            HypercallRecord::QSubmit { .. } => "q_submit",
            HypercallRecord::QWait { .. } => "q_wait",
            HypercallRecord::QResult { .. } => "q_result",
            HypercallRecord::PhiWindow { .. } => "phi_window",
            HypercallRecord::PhiExec { .. } => "phi_exec",
            HypercallRecord::PhiFrame { .. } => "phi_frame",
            HypercallRecord::PhiRelease { .. } => "phi_release",
        }
    }
}

/// What happened. Events of one VHM carry that VHM in [`Event::vhm`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The run began: the effective seed and the number of manifest VHMs.
    HostStarted {
        /// Effective host seed.
        seed: u64,
        /// Number of top-level (L1) VHMs the manifest declares; nested ones are not counted.
        vhms: u32,
    },
    /// A VHM was created.
    VhmCreated {
        /// The VHM's unique name.
        name: String,
        /// Parent VHM, `None` for manifest (L1) VHMs.
        parent: Option<VhmId>,
        /// Privilege level (1 for manifest VHMs).
        level: u8,
        /// Scheduling weight.
        weight: u32,
        /// BLAKE3 hash of the guest module.
        module: Hash32,
    },
    /// A resource was allocated to the VHM under a capability.
    Allocated {
        /// The resource's domain.
        domain: Domain,
        /// What was allocated.
        resource: Resource,
        /// The capability that names the allocation inside the VHM.
        cap: CapId,
    },
    /// A vCPU entered its entry function.
    VcpuStarted {
        /// The vCPU.
        vcpu: VcpuIndex,
    },
    /// A vCPU was preempted at the end of its slice.
    SliceEnded {
        /// The vCPU.
        vcpu: VcpuIndex,
        /// Fuel the whole slice consumed.
        fuel: u64,
    },
    /// A hypercall completed.
    Hypercall {
        /// The calling vCPU.
        vcpu: VcpuIndex,
        /// The call and its arguments.
        call: HypercallRecord,
        /// The value returned to the guest (negative: an ABI error code). For a call that parks
        /// (`sleep`, `vhm_wait`, `ipc_recv`, a parking `ipc_send`), 0: the value the guest
        /// receives is in the `VcpuWoken` that ends the wait.
        ret: i64,
    },
    /// An interrupt became pending on a vCPU.
    IrqRaised {
        /// Target vCPU.
        vcpu: VcpuIndex,
        /// Vector.
        vector: u32,
        /// Argument.
        arg: i64,
    },
    /// An interrupt handler (`xdv_irq`) was entered.
    IrqDelivered {
        /// The vCPU.
        vcpu: VcpuIndex,
        /// Vector.
        vector: u32,
        /// Argument.
        arg: i64,
    },
    /// An interrupt was raised on a guest without an `xdv_irq` export and was dropped.
    IrqDropped {
        /// The vCPU.
        vcpu: VcpuIndex,
        /// Vector.
        vector: u32,
    },
    /// An interrupt handler returned; the interrupted code resumes.
    IrqReturned {
        /// The vCPU.
        vcpu: VcpuIndex,
    },
    /// The VHM's virtual timer fired.
    TimerFired {
        /// Tick number, from 1.
        tick: u64,
    },
    /// A parked vCPU became runnable again: its parked hypercall returns `ret`.
    VcpuWoken {
        /// The vCPU.
        vcpu: VcpuIndex,
        /// `true` when an interrupt cut a sleep short.
        interrupted: bool,
        /// The value the parked hypercall returns to the guest.
        ret: i64,
    },
    /// A vCPU's entry function returned.
    VcpuHalted {
        /// The vCPU.
        vcpu: VcpuIndex,
    },
    /// The VHM faulted, with its detail in words (schemas 4 and 5; schema 6 writes
    /// [`EventKind::Fault`]).
    LegacyFault {
        /// The fault class.
        class: FaultClass,
        /// The vCPU at fault, if one.
        vcpu: Option<VcpuIndex>,
        /// The detail as words.
        detail: String,
    },
    /// A resource was returned to the host.
    Released {
        /// The resource's domain.
        domain: Domain,
        /// What was released.
        resource: Resource,
        /// The capability the allocation was held under.
        cap: CapId,
        /// Amount used over the allocation's life, for consumable resources: fuel and decoherence
        /// budget the VHM's own vCPUs and jobs consumed (its children's are in `GivenBack` and
        /// `QReturned`).
        used: Option<u64>,
    },
    /// The VHM stopped and all its resources were released.
    VhmExited {
        /// Why it stopped.
        reason: ExitReason,
        /// Total fuel it consumed.
        fuel_used: u64,
    },
    /// The run ended.
    HostFinished {
        /// VHMs still running when the host stopped (time limit), else 0.
        stopped: u32,
    },
    /// A capability was put in the VHM's table: minted by the hypervisor (`from` is `None`) or
    /// derived from `from` (the source's holder and handle).
    CapCreated {
        /// The new handle.
        cap: CapId,
        /// What it names.
        object: Object,
        /// Its rights.
        rights: u32,
        /// Its badge.
        badge: u64,
        /// The source, for a derivation.
        from: Option<(VhmId, CapId)>,
    },
    /// Capabilities were removed, in creation order: each `(holder, handle)`.
    CapRemoved {
        /// Why.
        cause: RemoveCause,
        /// What.
        removed: Vec<(VhmId, CapId)>,
    },
    /// A hypercall was refused, the reason in words (schemas 4 and 5; schema 6 writes
    /// [`EventKind::Refused`]).
    LegacyRefused {
        /// The calling vCPU.
        vcpu: VcpuIndex,
        /// The call's ABI name.
        call: String,
        /// The reason as words.
        reason: String,
    },
    /// Part of the VHM's budget was carved out for a new child.
    Carved {
        /// The child.
        child: VhmId,
        /// The child's quota.
        quota: Quota,
    },
    /// A stopped child's quota came back to the VHM; the fuel it used stays spent.
    GivenBack {
        /// The child.
        child: VhmId,
        /// The child's quota.
        quota: Quota,
        /// Fuel the child (and its descendants) consumed.
        fuel_used: u64,
    },
    /// A guest module was loaded at run time (from a parent's memory); its bytes are stored in the
    /// trace's `modules` table.
    ModuleLoaded {
        /// BLAKE3 hash of the module.
        hash: Hash32,
        /// Size in bytes.
        size: u64,
    },
    /// An IPC channel was created; its two endpoint capabilities are in `CapCreated` events.
    ChannelCreated {
        /// The channel.
        channel: ChannelId,
        /// Messages each direction holds.
        capacity: u32,
    },
    /// A message was queued for the other end of a channel.
    IpcSent {
        /// The sending vCPU.
        vcpu: VcpuIndex,
        /// The channel.
        channel: ChannelId,
        /// The end the message will be received at.
        to_end: u8,
        /// Payload length.
        len: u32,
        /// The sender's badge.
        badge: u64,
        /// `true` when a capability travels with it.
        with_cap: bool,
    },
    /// A message was received.
    IpcDelivered {
        /// The receiving vCPU.
        vcpu: VcpuIndex,
        /// The channel.
        channel: ChannelId,
        /// The end it was received at.
        end: u8,
        /// Payload length.
        len: u32,
        /// The sender's badge.
        badge: u64,
        /// The transferred capability's new handle in the receiver's table.
        cap: Option<CapId>,
    },
    /// Queued messages were discarded because their end closed.
    IpcDropped {
        /// The channel.
        channel: ChannelId,
        /// The end whose queue was discarded.
        end: u8,
        /// How many messages.
        messages: u32,
    },
    /// One end of a channel closed (its VHM stopped).
    IpcClosed {
        /// The channel.
        channel: ChannelId,
        /// The end that closed.
        end: u8,
    },
    /// The VHM's Q container was placed: logical qubit `i` is `physical[i]` of `device`. The
    /// `Allocated` events that follow hold its qubits and its decoherence budget.
    QContainerPlaced {
        /// The device.
        device: String,
        /// Physical qubit of each logical qubit.
        physical: Vec<u32>,
        /// The parent container the qubits were carved from, `None` for the device's own.
        from_parent: bool,
    },
    /// A Q job was admitted: its static plan, charged to the container's budget.
    QJobSubmitted {
        /// The submitting vCPU.
        vcpu: VcpuIndex,
        /// The VHM's job number (from 0).
        job: u32,
        /// BLAKE3 hash of the program text.
        program: Hash32,
        /// Logical qubits the program declares.
        qubits: u32,
        /// Classical bits it measures into.
        clbits: u32,
        /// Shots.
        shots: u64,
        /// Decoherence cost charged, micro-units.
        cost: u64,
        /// Budget left after the charge, micro-units.
        budget_left: u64,
        /// Time it waits for the container's earlier jobs, ns.
        queued_ns: u64,
        /// Virtual duration: the job completes `queued_ns + duration_ns` after this event.
        duration_ns: u64,
    },
    /// A Q job completed: the measurement outcomes, one word per shot (bit `c` is classical
    /// bit `c`). The only outcome-dependent payload of the trace; replay injects it.
    QJobDone {
        /// The job number.
        job: u32,
        /// Outcome of each shot.
        outcomes: Vec<u64>,
    },
    /// A stopped child's container came back to the VHM's: its qubits (scrubbed) and its budget;
    /// what the child spent stays spent.
    QReturned {
        /// The child.
        child: VhmId,
        /// Logical qubits returned.
        qubits: u32,
        /// The child's budget, micro-units.
        budget: u64,
        /// Spent by the child and its descendants, micro-units.
        used: u64,
    },
    /// A Φ coherence window was granted; the `Allocated` event that follows holds it.
    PhiWindowGranted {
        /// Host-wide window number.
        window: u32,
        /// The port's name.
        port: String,
        /// Start, ns.
        t0: u64,
        /// End, ns.
        t1: u64,
        /// Band, Hz, inclusive.
        band: (i64, i64),
        /// Amplitude cap, ppm.
        max_amp: u32,
        /// Share grant.
        shared: bool,
        /// The window it is nested in.
        parent: Option<u32>,
    },
    /// A transform ran on a window under its contract.
    PhiExecuted {
        /// The calling vCPU.
        vcpu: VcpuIndex,
        /// The window.
        window: u32,
        /// BLAKE3 hash of the transform text.
        program: Hash32,
        /// Its extent on the window's timeline, ns.
        start: u64,
        /// End, ns.
        end: u64,
        /// Every frame it touched afterwards: (name, frequency Hz, phase in 2⁻⁶⁴ turns, clock
        /// ns, phase defined).
        frames: Vec<(String, i64, u64, u64, bool)>,
        /// Plays executed.
        plays: u32,
        /// Captures: integrated (I, Q) in micro-units, measurement variability included.
        captures: Vec<(i64, i64)>,
    },
    /// A window lost coherence, the cause in words (schemas 4 and 5; schema 6 writes
    /// [`EventKind::PhiDecohered`]).
    LegacyPhiDecohered {
        /// The window.
        window: u32,
        /// The cause as words.
        cause: String,
    },
    /// A window's frames were moved to a child window's end when the child window closed.
    PhiBarrier {
        /// The parent window.
        window: u32,
        /// The time its frames now stand at, at least.
        at_ns: u64,
    },
    /// An injected fault fired, its effect in words (schemas 4 and 5; schema 6 writes
    /// [`EventKind::FaultInjected`]).
    LegacyFaultInjected {
        /// Its index among the manifest's faults.
        index: u32,
        /// Its class, and the words on a stopped VHM.
        class: String,
    },
    /// The faulted VHM is created again under its `on_fault = "restart"` policy.
    Restarting {
        /// Which restart (from 1).
        attempt: u32,
        /// The new incarnation's name.
        name: String,
    },
    /// A restart the policy asked for could not happen, the reason in words (schemas 4 and 5;
    /// schema 6 writes [`EventKind::RestartRefused`]).
    LegacyRestartRefused {
        /// The reason as words.
        reason: String,
    },
    /// A released container's qubits were reset before going back to their pool.
    QScrubbed {
        /// The device.
        device: String,
        /// The physical qubits reset.
        physical: Vec<u32>,
    },
    /// Host work done for the VHM outside its vCPUs, charged to its fuel before the work ran
    /// (schema 5). Appended last, so older traces keep decoding.
    HostWork {
        /// What the work was.
        work: WorkKind,
        /// The work's size in its own unit (amplitude updates for a Q job).
        units: u64,
        /// Fuel charged for it.
        fuel: u64,
    },
    /// The VHM faulted (schema 6).
    Fault {
        /// The fault class.
        class: FaultClass,
        /// The vCPU at fault, if one.
        vcpu: Option<VcpuIndex>,
        /// What the fault was.
        detail: FaultDetail,
    },
    /// A hypercall was refused: the call, and why (schema 6). The `Hypercall` event that
    /// follows carries the error code returned.
    Refused {
        /// The calling vCPU.
        vcpu: VcpuIndex,
        /// The call's ABI name.
        call: String,
        /// Why.
        reason: Refusal,
    },
    /// A window lost coherence: its frames' phases are undefined until `set_phase` (schema 6).
    PhiDecohered {
        /// The window.
        window: u32,
        /// Why.
        cause: DecoherenceCause,
    },
    /// A restart the policy asked for could not happen (schema 6).
    RestartRefused {
        /// Why.
        reason: RestartRefusal,
    },
    /// An injected fault (`[[fault]]`, `--chaos`) fired into the VHM; what it does follows
    /// (schema 6).
    FaultInjected {
        /// Its index among the manifest's faults.
        index: u32,
        /// Its class, as the manifest names it (`trap`, `kill`, …).
        class: String,
        /// `true` when the VHM had already stopped: the fault had no effect.
        stopped: bool,
    },
    /// A service request was applied at this pause of an `xdv serve` host (schema 7): the
    /// recorded input that replay and resume feed back at the same point.
    Request {
        /// The tenant that sent it (its index among the config's `[[tenant]]` tables), `None`
        /// for the operator.
        tenant: Option<u32>,
        /// What it asked.
        request: ServiceRequest,
    },
    /// The request just recorded was refused (schema 7): nothing else changed.
    RequestRefused {
        /// Why.
        reason: RequestRefusal,
    },
}

/// A request of the `xdv serve` API, as the trace records it ([`EventKind::Request`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceRequest {
    /// Store a module for the tenant; when the upload is accepted, its bytes are in the
    /// trace's module table by hash (a refused one's are not kept).
    Upload {
        /// BLAKE3 of its WebAssembly bytes.
        module: Hash32,
        /// Its size in bytes (what the tenant's memory is charged for).
        size: u64,
    },
    /// Create a top-level VHM from the tenant's budget.
    Create {
        /// The `[[vhm]]` table as TOML text (`k.module` names the module by its id).
        spec: String,
        /// The module it runs.
        module: Hash32,
    },
    /// Kill a VHM, reclaiming it as a fault would.
    Kill {
        /// The VHM.
        vhm: VhmId,
    },
    /// Create a channel between two running top-level VHMs.
    Channel {
        /// End 0 and end 1.
        ends: [VhmId; 2],
        /// Messages each direction holds.
        capacity: u32,
    },
    /// Stop the service: every running VHM stops and the host finishes.
    Stop,
}

/// Why the core refused a service request ([`EventKind::RequestRefused`]). The API answers with
/// the same code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestRefusal {
    /// The `[[vhm]]` table (or the channel request) is not valid: the key, and why as a code.
    /// The manifest error's own words are the API's to give (it checks the table first): the
    /// trace keeps only the key.
    BadSpec {
        /// The key (`vhm[0].k.vcpus`).
        key: String,
        /// Why.
        problem: SpecProblem,
    },
    /// The tenant holds no module with that id.
    NoModule,
    /// The module does not compile (`abi`: valid WebAssembly that does not fit the ABI).
    BadModule {
        /// It is WebAssembly, but does not fit the ABI.
        abi: bool,
    },
    /// The name is taken in the tenant's namespace (names are never reused).
    NameTaken,
    /// No such VHM in the tenant's namespace, or it has stopped.
    NoVhm,
    /// The VHM's quota does not fit what is left of the tenant's budget.
    OverBudget {
        /// The dimension (`fuel`, `memory`, `vcpus`, `vhms`, `depth`, `qubits`, `phi_port_time`).
        what: String,
        /// Asked.
        asked: u64,
        /// Left.
        left: u64,
    },
    /// The Q container or the Φ windows cannot be placed now.
    Placement {
        /// Which: `Q` (the container on its device) or `Phi` (a window on its port).
        domain: Domain,
    },
    /// Only the operator may do this (a channel across tenants).
    Forbidden,
    /// The host's module table or VHM table is full.
    HostFull,
}

/// Why a service request's spec is refused ([`RequestRefusal::BadSpec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecProblem {
    /// The manifest check refused the key (the API gives its words).
    Invalid,
    /// `k.module` is not the module id the request names.
    ModuleMismatch,
    /// Not offered to API VHMs (`k.modules`, `on_fault = "restart"`, an entry other than
    /// `main`).
    NotOffered,
    /// A channel between a VHM and itself, or a capacity out of range.
    Channel,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpecProblem::Invalid => "not a valid value",
            SpecProblem::ModuleMismatch => "must be the id of the module the request names",
            SpecProblem::NotOffered => {
                "not offered to API VHMs (they start in `main`, hold no `k.modules` and do not \
                 restart)"
            }
            SpecProblem::Channel => {
                "a channel joins two different VHMs, with a capacity of 1 to 1024"
            }
        })
    }
}

impl fmt::Display for ServiceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceRequest::Upload { module, size } => {
                write!(f, "upload module {} ({size} bytes)", module.short())
            }
            ServiceRequest::Create { spec, module } => {
                let name = spec
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("name = "))
                    .unwrap_or("?");
                write!(f, "create VHM {name} from module {}", module.short())
            }
            ServiceRequest::Kill { vhm } => write!(f, "kill VHM {vhm}"),
            ServiceRequest::Channel { ends, capacity } => write!(
                f,
                "channel between VHMs {} and {} (capacity {capacity})",
                ends[0], ends[1]
            ),
            ServiceRequest::Stop => f.write_str("stop the service"),
        }
    }
}

impl fmt::Display for RequestRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestRefusal::BadSpec { key, problem } => write!(f, "{key}: {problem}"),
            RequestRefusal::NoModule => f.write_str("no such module"),
            RequestRefusal::BadModule { abi: true } => {
                f.write_str("the module does not fit the guest ABI")
            }
            RequestRefusal::BadModule { abi: false } => {
                f.write_str("the module is not valid WebAssembly")
            }
            RequestRefusal::NameTaken => f.write_str("the name is taken"),
            RequestRefusal::NoVhm => f.write_str("no such running VHM"),
            RequestRefusal::OverBudget { what, asked, left } => {
                write!(
                    f,
                    "over the tenant's budget: {what}: asked {asked}, {left} left"
                )
            }
            RequestRefusal::Placement { domain: Domain::Q } => {
                f.write_str("cannot place its Q container: its device has no room for it now")
            }
            RequestRefusal::Placement { .. } => {
                f.write_str("cannot grant its Φ windows: another window holds that port-time")
            }
            RequestRefusal::Forbidden => f.write_str("only the operator may do this"),
            RequestRefusal::HostFull => f.write_str("the host's tables are full"),
        }
    }
}

impl RequestRefusal {
    /// The stable code the API answers with (`problem+json`'s `code`).
    pub fn code(&self) -> &'static str {
        match self {
            RequestRefusal::BadSpec { .. } => "bad_spec",
            RequestRefusal::NoModule => "no_module",
            RequestRefusal::BadModule { .. } => "bad_module",
            RequestRefusal::NameTaken => "name_taken",
            RequestRefusal::NoVhm => "no_vhm",
            RequestRefusal::OverBudget { .. } => "over_budget",
            RequestRefusal::Placement { .. } => "placement",
            RequestRefusal::Forbidden => "forbidden",
            RequestRefusal::HostFull => "host_full",
        }
    }
}

/// Kinds of host work charged to a VHM's fuel ([`EventKind::HostWork`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkKind {
    /// A Q job's simulation, by its job number; units are amplitude updates.
    QSimulation {
        /// The job number.
        job: u32,
    },
    /// The samples a Φ transform's plays produced, by the VHM's transform number (from 0);
    /// units are samples.
    PhiSamples {
        /// The transform number.
        transform: u64,
    },
}

/// Why capabilities were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveCause {
    /// `cap_revoke`: the descendants of a capability.
    Revoke,
    /// `cap_drop`: the capability itself.
    Drop,
    /// The holder stopped, or the object named was destroyed.
    Stop,
}

impl EventKind {
    /// The same event with every VHM id it mentions mapped through `f`. Two runs name the same
    /// VHM by different host-wide ids when other VHMs were created before it; mapping ids to
    /// names makes their events comparable.
    pub fn map_vhms(&self, f: &impl Fn(VhmId) -> VhmId) -> EventKind {
        let mut e = self.clone();
        match &mut e {
            EventKind::VhmCreated { parent, .. } => *parent = parent.map(f),
            EventKind::CapCreated { object, from, .. } => {
                *object = object.map_vhm(f);
                *from = from.map(|(v, c)| (f(v), c));
            }
            EventKind::CapRemoved { removed, .. } => {
                removed.iter_mut().for_each(|(v, _)| *v = f(*v))
            }
            EventKind::Carved { child, .. }
            | EventKind::GivenBack { child, .. }
            | EventKind::QReturned { child, .. } => *child = f(*child),
            _ => {}
        }
        e
    }

    /// A short, stable name for the event kind (the trace's `kind` column).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::HostStarted { .. } => "host_started",
            EventKind::VhmCreated { .. } => "vhm_created",
            EventKind::Allocated { .. } => "allocated",
            EventKind::VcpuStarted { .. } => "vcpu_started",
            EventKind::SliceEnded { .. } => "slice_ended",
            EventKind::Hypercall { .. } => "hypercall",
            EventKind::IrqRaised { .. } => "irq_raised",
            EventKind::IrqDelivered { .. } => "irq_delivered",
            EventKind::IrqDropped { .. } => "irq_dropped",
            EventKind::IrqReturned { .. } => "irq_returned",
            EventKind::TimerFired { .. } => "timer_fired",
            EventKind::VcpuWoken { .. } => "vcpu_woken",
            EventKind::VcpuHalted { .. } => "vcpu_halted",
            EventKind::Fault { .. } | EventKind::LegacyFault { .. } => "fault",
            EventKind::Released { .. } => "released",
            EventKind::VhmExited { .. } => "vhm_exited",
            EventKind::HostFinished { .. } => "host_finished",
            EventKind::CapCreated { .. } => "cap_created",
            EventKind::CapRemoved { .. } => "cap_removed",
            EventKind::Refused { .. } | EventKind::LegacyRefused { .. } => "refused",
            EventKind::Carved { .. } => "carved",
            EventKind::GivenBack { .. } => "given_back",
            EventKind::ModuleLoaded { .. } => "module_loaded",
            EventKind::ChannelCreated { .. } => "channel_created",
            EventKind::IpcSent { .. } => "ipc_sent",
            EventKind::IpcDelivered { .. } => "ipc_delivered",
            EventKind::IpcDropped { .. } => "ipc_dropped",
            EventKind::IpcClosed { .. } => "ipc_closed",
            EventKind::QContainerPlaced { .. } => "q_container_placed",
            EventKind::QJobSubmitted { .. } => "q_job_submitted",
            EventKind::QJobDone { .. } => "q_job_done",
            EventKind::QScrubbed { .. } => "q_scrubbed",
            EventKind::QReturned { .. } => "q_returned",
            EventKind::PhiWindowGranted { .. } => "phi_window_granted",
            EventKind::PhiExecuted { .. } => "phi_executed",
            EventKind::PhiDecohered { .. } | EventKind::LegacyPhiDecohered { .. } => {
                "phi_decohered"
            }
            EventKind::PhiBarrier { .. } => "phi_barrier",
            EventKind::HostWork { .. } => "host_work",
            EventKind::FaultInjected { .. } | EventKind::LegacyFaultInjected { .. } => {
                "fault_injected"
            }
            EventKind::Restarting { .. } => "restarting",
            EventKind::Request { .. } => "request",
            EventKind::RequestRefused { .. } => "request_refused",
            EventKind::RestartRefused { .. } | EventKind::LegacyRestartRefused { .. } => {
                "restart_refused"
            }
        }
    }
}

impl Event {
    /// Appends the canonical encoding of the event to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // postcard into a Vec cannot fail for these types (no maps, no unsupported forms).
        let encoded = postcard::to_extend(self, std::mem::take(out));
        *out = encoded.expect("postcard encoding of an Event is infallible");
    }

    /// The canonical encoding of the event.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode_into(&mut out);
        out
    }

    /// Decodes an event from its canonical encoding, refusing trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let (event, rest) = postcard::take_from_bytes::<Event>(bytes)?;
        if !rest.is_empty() {
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        Ok(event)
    }
}

/// Why a sink refused an event. A refusal stops the run at that event.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The trace store failed (I/O, SQLite).
    #[error("trace store: {0}")]
    Store(String),
    /// A replay produced an event different from the recorded one.
    #[error("replay diverged at event {seq}")]
    Diverged {
        /// Sequence number of the first divergent event.
        seq: u64,
    },
    /// The sink asked the run to stop (tests, crash simulation).
    #[error("stopped: {0}")]
    Stopped(String),
}

/// Receives the events of a run, in order. Implemented by the trace writer, the replay checker and
/// in-memory collectors.
pub trait EventSink {
    /// Records one event. An error stops the run.
    fn emit(&mut self, event: &Event) -> Result<(), SinkError>;

    /// Stores the bytes of a module loaded at run time (announced by a `ModuleLoaded` event).
    fn module(&mut self, _hash: &Hash32, _bytes: &[u8]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Keeps every event in memory, and the modules loaded at run time; for tests, simulation and
/// benchmarks.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    /// The events, in emission order.
    pub events: Vec<Event>,
    /// The modules stored during the run, each with how many events came before it, so the
    /// whole output can be handed to another sink in its order.
    pub modules: Vec<(usize, Hash32, Vec<u8>)>,
}

impl EventSink for MemorySink {
    fn module(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<(), SinkError> {
        self.modules
            .push((self.events.len(), *hash, bytes.to_vec()));
        Ok(())
    }

    fn emit(&mut self, event: &Event) -> Result<(), SinkError> {
        self.events.push(event.clone());
        Ok(())
    }
}

/// Discards events; measures the hypervisor without any trace cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl EventSink for NullSink {
    fn emit(&mut self, _event: &Event) -> Result<(), SinkError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_refuses_trailing_bytes() {
        let e = Event {
            time_ns: 42,
            vhm: Some(VhmId(3)),
            kind: EventKind::Hypercall {
                vcpu: 1,
                call: HypercallRecord::Log {
                    ptr: 16,
                    len: 5,
                    bytes: b"hello".to_vec(),
                },
                ret: 0,
            },
        };
        let bytes = e.encode();
        assert_eq!(Event::decode(&bytes).unwrap(), e);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Event::decode(&longer).is_err());
    }

    /// Schema 6: what a refusal, a fault, a restart refusal or a decoherence records is codes
    /// and numbers. The words `describe` prints are not in the bytes, so rewording them can
    /// change no trace hash.
    #[test]
    fn typed_reasons_encode_as_codes_not_words() {
        use crate::refusal::*;
        let kinds = [
            EventKind::Refused {
                vcpu: 0,
                call: "q_submit".into(),
                reason: Refusal::Short {
                    need_for: Need::JobDecoherence,
                    need: 11_053_900,
                    left: 5_784_400,
                },
            },
            EventKind::Fault {
                class: FaultClass::FuelExhausted,
                vcpu: Some(1),
                detail: FaultDetail::FuelUsedUp {
                    quota: 1000,
                    spent: 1000,
                    carved: 0,
                },
            },
            EventKind::RestartRefused {
                reason: RestartRefusal::MaxRestarts { max: 2 },
            },
            EventKind::PhiDecohered {
                window: 3,
                cause: DecoherenceCause::Limit {
                    elapsed: 20_000,
                    t2: 10_000,
                },
            },
        ];
        for kind in kinds {
            let e = Event {
                time_ns: 7,
                vhm: Some(VhmId(1)),
                kind,
            };
            let bytes = e.encode();
            assert_eq!(Event::decode(&bytes).unwrap(), e);
            // Only the ABI name of a call is text: at most 8 more bytes of codes and varints.
            assert!(bytes.len() <= 24, "{} bytes: {e:?}", bytes.len());
        }
    }

    /// The variants schema 6 appended decode where older schemas' bodies cannot reach them:
    /// an older body of the same name decodes as its `Legacy` form.
    #[test]
    fn an_older_refusal_body_decodes_as_its_legacy_form() {
        let legacy = Event {
            time_ns: 1,
            vhm: Some(VhmId(0)),
            kind: EventKind::LegacyRefused {
                vcpu: 0,
                call: "cap_info".into(),
                reason: "handle 0x0: no such capability".into(),
            },
        };
        let back = Event::decode(&legacy.encode()).unwrap();
        assert_eq!(back, legacy);
        assert_eq!(back.kind.name(), "refused");
    }
}
