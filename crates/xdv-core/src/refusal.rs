//! Why things were refused or went wrong, as codes with the numbers that explain them
//! (event schema 6).
//!
//! The canonical events carry these types, never prose: rewording a message changes no trace
//! hash and breaks no replay. The words are produced only at display time, by each type's
//! `Display` (which `Event::describe` uses). Every variant is appended at the end of its enum
//! when the schema grows, so older bodies keep decoding.
//!
//! A refusal names only the caller's own request and its own budgets: never another VHM, its
//! handles or a host-wide number.

use crate::budget::CarveError;
use crate::cap::CapError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a hypercall was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// A handle the call names does not work for it.
    Handle {
        /// Which of the call's handles.
        role: HandleRole,
        /// The handle as passed.
        handle: u64,
        /// What is wrong with it.
        error: CapError,
    },
    /// The caller's capability table holds as many capabilities as it may.
    CapTableFull,
    /// The caller holds no budget capability with the channel right.
    NoChannelRight,
    /// A numeric argument lies outside the range the ABI gives it.
    OutOfRange {
        /// The argument.
        arg: Arg,
        /// Its value.
        value: i64,
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
    /// A badge over the largest, 2⁶³ − 1.
    BadgeTooLarge {
        /// The badge.
        badge: u64,
    },
    /// Flags the ABI does not define are set.
    UnknownFlags {
        /// The flags as passed.
        flags: u64,
    },
    /// A reserved field of a structure is not zero.
    Reserved {
        /// Its byte offset in the structure.
        offset: u32,
        /// Its value.
        value: u64,
    },
    /// A structure of the wrong size.
    StructSize {
        /// The structure.
        what: Struct,
        /// The size passed.
        got: u32,
    },
    /// A range of the caller's memory cannot be read or written.
    GuestMemory {
        /// `true` for a write.
        write: bool,
        /// Start address.
        addr: u32,
        /// Length.
        len: u32,
        /// The ABI error code.
        code: i64,
    },
    /// A text argument is not UTF-8.
    NotUtf8 {
        /// Which text.
        what: Text,
    },
    /// An output buffer is too small.
    BufferTooSmall {
        /// What it would receive.
        what: Buffer,
        /// Bytes needed (0 when the call does not say).
        need: u64,
        /// Its size.
        have: u64,
    },
    /// A time the call implies lies past the time horizon (`abi::TIME_HORIZON_NS`).
    PastHorizon {
        /// Which time.
        what: Deadline,
        /// The time, ns.
        at: u64,
    },
    /// A window would start before now.
    InThePast {
        /// Its start, ns.
        t0: u64,
        /// Now, ns.
        now: u64,
    },
    /// No such interrupt vector.
    NoVector {
        /// The vector.
        vector: u32,
        /// Vectors the VHM has.
        vectors: u32,
    },
    /// No running vCPU of that index.
    NoVcpu {
        /// The index.
        vcpu: u32,
    },
    /// A timer needs an interrupt handler export to deliver its ticks to.
    NoIrqExport,
    /// A budget of the caller's is short.
    Short {
        /// What the call needed it for.
        need_for: Need,
        /// Amount needed.
        need: u64,
        /// Amount left.
        left: u64,
    },
    /// Carving a child's quota out of the caller's budget failed.
    Carve(CarveError),
    /// Simulating the job's state would exceed the VHM's `memory_quota`.
    QStateTooLarge {
        /// Qubits simulated.
        qubits: u32,
        /// State bytes.
        bytes: u64,
        /// The quota.
        quota: u64,
    },
    /// The container holds as many uncollected jobs as it may.
    TooManyJobs {
        /// The most.
        max: u32,
    },
    /// The QASM program does not parse.
    QProgram {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        col: u32,
    },
    /// The program measures into more classical bits than an outcome word holds.
    TooManyClbits {
        /// Its classical bits.
        clbits: u32,
    },
    /// The device cannot run the program.
    QUnsupported(QUnsupported),
    /// A logical qubit of the program is lent to a child container.
    QubitLent {
        /// The logical qubit.
        logical: u32,
    },
    /// The job's cost overflows 64 bits.
    CostOverflow,
    /// An injected provider failure (`q-provider-error`).
    InjectedProviderFailure,
    /// A child's Q container cannot be carved from the caller's.
    QCarve(QCarve),
    /// A Φ window cannot be granted.
    Window(WindowRefusal),
    /// No window of the parent contains the requested one.
    NoParentWindow {
        /// The port.
        port: u32,
        /// Start, ns.
        t0: u64,
        /// End, ns.
        t1: u64,
    },
    /// The Φ transform does not parse.
    PhiProgram {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        col: u32,
    },
    /// The Φ transform breaks its window's contract.
    PhiContract {
        /// The rule.
        rule: PhiRule,
        /// 1-based line of the instruction.
        line: u32,
        /// 1-based column.
        col: u32,
    },
    /// The caller's privilege level may not make the call.
    Privilege {
        /// The caller's level.
        level: u8,
        /// The deepest level allowed to.
        deepest: u8,
    },
    /// The caller is at the deepest privilege level: it may not have children.
    DeepestLevel,
    /// A policy may only tighten: the weight asked exceeds the current one.
    PolicyLoosens {
        /// Asked.
        weight: u32,
        /// Current.
        current: u32,
    },
    /// A policy is set only while the VHM has no children.
    PolicyWithChildren {
        /// Live children.
        children: u32,
    },
    /// The child's name is not 1 to 64 of `A-Z a-z 0-9 _ - .`.
    BadName,
    /// A spawn spec's numbers do not hold together.
    Spec(SpecRule),
    /// A part of a spawn request was refused.
    Spawn {
        /// The part.
        part: SpawnPart,
        /// Why.
        why: Box<Refusal>,
    },
    /// A capability passed to a child carries a badge over the largest.
    PassedBadge {
        /// Its index in the list passed.
        index: u32,
        /// The badge.
        badge: u64,
    },
    /// A module does not validate as WebAssembly (`abi` false) or does not fit the guest ABI
    /// (`abi` true); `xdv check` on it says where.
    Module {
        /// Whether it validated but broke the ABI.
        abi: bool,
    },
}

/// Which handle of a call ([`Refusal::Handle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandleRole {
    /// The handle the call acts on.
    Target,
    /// The budget capability it spends.
    Budget,
    /// The module capability it spawns from.
    Module,
    /// One of the capabilities passed to a child, by index.
    Passed(u32),
}

/// A numeric argument ([`Refusal::OutOfRange`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arg {
    /// A Q job's shots.
    Shots,
    /// A channel's capacity.
    Capacity,
    /// A `sleep_until` time.
    WakeTime,
    /// A timer period.
    Period,
    /// A `q_info` figure.
    QInfoFigure,
    /// A spawn spec's vCPUs.
    Vcpus,
    /// A spawn spec's weight.
    Weight,
    /// A spawn spec's Q qubits.
    QQubits,
    /// How many capabilities are passed to a child.
    PassedCaps,
    /// A spawn spec's `fuel_quota`.
    FuelQuota,
    /// A spawn spec's `memory_limit`, in 64 KiB pages (a non-whole number counts as 0).
    MemoryLimit,
}

/// A structure of the ABI ([`Refusal::StructSize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Struct {
    /// The spawn spec (88 or 104 bytes).
    SpawnSpec,
    /// The Φ window spec (48 bytes).
    WindowSpec,
}

/// A text argument ([`Refusal::NotUtf8`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Text {
    /// A QASM program.
    Program,
    /// A Φ transform.
    Transform,
}

/// What an output buffer receives ([`Refusal::BufferTooSmall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Buffer {
    /// `ipc_recv`'s 16-byte header.
    RecvHeader,
    /// The next queued message with its header.
    NextMessage,
    /// A Q job's outcome words.
    Outcomes,
    /// A Φ transform's captures.
    Captures,
}

/// A time a call implies ([`Refusal::PastHorizon`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deadline {
    /// A timer's first tick.
    TimerTick,
    /// A Q job's completion.
    JobCompletion,
    /// A Φ window's end.
    WindowEnd,
}

/// What a short budget was needed for ([`Refusal::Short`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Need {
    /// Memory: the capability table's growth.
    CapTable,
    /// Memory: a queued message of this many payload bytes.
    QueuedMessage(u32),
    /// Memory: a Q job's circuit until it completes and its outcome words until `q_result`.
    JobOutcomes,
    /// Memory: a child's quota beside what the host holds for the caller.
    ChildMemory,
    /// Memory: a loaded module's footprint, beside the child's quota.
    ModuleFootprint,
    /// Fuel: simulating a Q job of this many amplitude updates.
    QSimulation(u64),
    /// Fuel: loading a module, beside the child's quota.
    ModuleLoad,
    /// Decoherence budget: a Q job.
    JobDecoherence,
    /// Decoherence budget: a child's container.
    ChildDecoherence,
    /// `phi_port_time`: a window.
    PortTime,
}

/// Why the device cannot run a program ([`Refusal::QUnsupported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QUnsupported {
    /// The program declares more qubits than the provider runs per job.
    ProviderQubits {
        /// Declared.
        declared: u32,
        /// The most.
        max: u32,
    },
    /// The density-matrix provider needs every measurement at the end.
    NeedsTerminalMeasurement,
    /// The program declares more qubits than the container holds.
    ContainerQubits {
        /// Declared.
        declared: u32,
        /// Held.
        held: u32,
    },
    /// The job's cost per shot overflows 64 bits.
    CostOverflow,
}

/// Why a child's Q container cannot be carved ([`Refusal::QCarve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QCarve {
    /// The caller has no Q container.
    NoContainer,
    /// The caller's decoherence budget is short.
    Decoherence {
        /// Asked, µ.
        asked: u64,
        /// Left, µ.
        left: u64,
    },
    /// No connected set of that many free qubits.
    Qubits {
        /// Asked.
        asked: u32,
    },
    /// A Q container of zero qubits with a budget, or a budget of zero.
    NoBudget,
}

/// Why a Φ window cannot be granted ([`Refusal::Window`]): the request's own terms only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowRefusal {
    /// No such port.
    NoPort {
        /// The port.
        port: u32,
    },
    /// `t1 ≤ t0`.
    Empty {
        /// Start.
        t0: u64,
        /// End.
        t1: u64,
    },
    /// A bound is off the port's grid.
    Alignment {
        /// Start.
        t0: u64,
        /// End.
        t1: u64,
        /// The port's granularity, ns.
        granularity: u64,
    },
    /// The band leaves the allowed band.
    Band {
        /// Asked low edge, Hz.
        lo: i64,
        /// Asked high edge, Hz.
        hi: i64,
        /// Allowed low edge.
        outer_lo: i64,
        /// Allowed high edge.
        outer_hi: i64,
    },
    /// The amplitude cap is above the allowed one.
    Amplitude {
        /// Asked, ppm.
        asked: u32,
        /// Allowed, ppm.
        allowed: u32,
    },
    /// The parent window is gone.
    ParentGone,
    /// The window leaves its parent.
    Outside {
        /// Start.
        t0: u64,
        /// End.
        t1: u64,
    },
    /// The port is not free throughout the interval.
    Conflict {
        /// The port.
        port: u32,
        /// Start.
        t0: u64,
        /// End.
        t1: u64,
        /// Why sharing does not apply, in terms of the request.
        share: ShareRule,
    },
}

/// Why two windows could not share an interval ([`WindowRefusal::Conflict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareRule {
    /// The request asked for no share grant.
    NotShared,
    /// The overlapping windows' bands are not disjoint from the request's.
    BandOverlap,
}

/// A rule of the Φ contract ([`Refusal::PhiContract`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhiRule {
    /// Frames must be the window's own.
    Ownership,
    /// Frames are created on the window's port.
    Port,
    /// Every instruction ends inside the window.
    Fit,
    /// Durations and starts are on the port's grid.
    Alignment,
    /// Envelope peaks within the amplitude cap.
    Amplitude,
    /// Frequencies within the band.
    Band,
    /// Within the coherence limit.
    Coherence,
    /// A frame with an undefined phase is played or captured.
    Decohered,
    /// Outside intervals delegated to nested windows.
    Delegated,
    /// Too many samples.
    Size,
    /// The executed effect differs from the declared one.
    Accounting,
}

/// A rule of the spawn spec ([`Refusal::Spec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpecRule {
    /// `vcpu_quota` is below `vcpus`.
    VcpuQuota {
        /// `vcpu_quota`.
        vcpu_quota: u32,
        /// `vcpus`.
        vcpus: u32,
    },
    /// `memory_quota` is below `vcpus × memory_limit`.
    MemoryQuota {
        /// `memory_quota`.
        memory_quota: u64,
    },
}

/// A part of a spawn request ([`Refusal::Spawn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpawnPart {
    /// The child's name.
    Name,
    /// The module bytes.
    Code,
    /// The list of capabilities passed.
    Caps,
    /// The child's Q container.
    QContainer {
        /// Its qubits.
        qubits: u32,
    },
}

/// What a fault was ([`crate::EventKind::Fault`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultDetail {
    /// The guest trapped.
    Trap(TrapCode),
    /// A vCPU could not be instantiated.
    Instantiation(TrapCode),
    /// The fuel quota is used up.
    FuelUsedUp {
        /// The quota.
        quota: u64,
        /// Spent by the VHM's own vCPUs and host work.
        spent: u64,
        /// Carved for children.
        carved: u64,
    },
    /// A timer tick's host work could not be paid.
    TimerTick(CarveError),
    /// A hypercall was refused under `on_bad_hypercall = "fault"`.
    BadHypercall {
        /// The call's ABI name.
        call: String,
        /// The ABI error code it was refused with.
        code: i64,
    },
    /// A `[[fault]]` (or `--chaos`) fault, by its index among the manifest's.
    Injected {
        /// The index.
        index: u32,
    },
}

/// Why a guest trapped: the engine's trap code, kept as a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrapCode {
    /// `unreachable` executed.
    Unreachable,
    /// A memory access out of bounds.
    MemoryOutOfBounds,
    /// A table access out of bounds.
    TableOutOfBounds,
    /// An indirect call through a null entry.
    IndirectCallToNull,
    /// Integer division by zero.
    DivisionByZero,
    /// Integer overflow.
    IntegerOverflow,
    /// A float-to-integer conversion out of range.
    BadConversion,
    /// The call stack overflowed.
    StackOverflow,
    /// An indirect call with the wrong signature.
    BadSignature,
    /// A memory or table could not grow, or was over a limit at instantiation.
    ResourceLimit,
    /// A start function or host function failed otherwise.
    Other,
}

/// Why a restart the policy asked for could not happen ([`crate::EventKind::RestartRefused`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartRefusal {
    /// `max_restarts` was reached.
    MaxRestarts {
        /// The policy's `max_restarts`.
        max: u32,
    },
    /// The parent's budget cannot carve the quota again.
    ParentBudget(CarveError),
    /// The Q container cannot be carved again.
    Qubits(QCarve),
    /// No window of the parent contains the window any more.
    NoParentWindow {
        /// Start, ns.
        t0: u64,
        /// End, ns.
        t1: u64,
    },
    /// The window cannot be granted again.
    Window(WindowRefusal),
}

/// Why a Φ window lost coherence ([`crate::EventKind::PhiDecohered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecoherenceCause {
    /// The coherence limit passed.
    Limit {
        /// Time since the window opened or was re-prepared, ns.
        elapsed: u64,
        /// The port's T2, ns.
        t2: u64,
    },
    /// A dephasing event drawn from the VHM's stream at rate 1/T2.
    Dephasing,
    /// An injected fault, by index.
    Injected {
        /// The index.
        index: u32,
    },
}

impl fmt::Display for Refusal {
    // Long by design: one arm per refusal, each its own sentence: the table reads best whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Refusal::*;
        match self {
            Handle {
                role,
                handle,
                error,
            } => match role {
                HandleRole::Target => write!(f, "handle {handle:#x}: {error}"),
                HandleRole::Budget => write!(f, "budget handle {handle:#x}: {error}"),
                HandleRole::Module => write!(f, "module handle {handle:#x}: {error}"),
                HandleRole::Passed(i) => write!(f, "passing handle {handle:#x} [{i}]: {error}"),
            },
            CapTableFull => f.write_str("the capability table is full"),
            NoChannelRight => f.write_str("no budget capability with the channel right"),
            OutOfRange {
                arg,
                value,
                min,
                max,
            } => match (*min, *max) {
                (0, i64::MAX) => write!(f, "{arg} must not be negative, got {value}"),
                (min, i64::MAX) => write!(f, "{arg} must be at least {min}, got {value}"),
                (min, max) => write!(f, "{arg} must be {min} to {max}, got {value}"),
            },
            BadgeTooLarge { badge } => {
                write!(f, "badge {badge} is over the largest, {}", i64::MAX)
            }
            UnknownFlags { flags } => write!(f, "unknown flags {flags:#x}"),
            Reserved { offset, value } => {
                write!(f, "reserved field at offset {offset} is {value:#x}, not 0")
            }
            StructSize { what, got } => write!(f, "{what}, got {got} bytes"),
            GuestMemory {
                write,
                addr,
                len,
                code,
            } => write!(
                f,
                "cannot {} {len} bytes at {addr:#x}: error {code}",
                if *write { "write" } else { "read" }
            ),
            NotUtf8 { what } => write!(f, "the {what} is not UTF-8"),
            BufferTooSmall { what, need, have } => match what {
                Buffer::RecvHeader => {
                    write!(f, "buffer of {have} bytes cannot hold the {need}-byte header")
                }
                Buffer::NextMessage => write!(
                    f,
                    "the next message does not fit a {have}-byte buffer (16-byte header included)"
                ),
                Buffer::Outcomes => {
                    write!(f, "the outcomes need {need} bytes, the buffer is {have}")
                }
                Buffer::Captures => {
                    write!(f, "the captures need {need} bytes, the buffer is {have}")
                }
            },
            PastHorizon { what, at } => write!(
                f,
                "{what} would be at {at} ns, past the time horizon (2^62 ns)"
            ),
            InThePast { t0, now } => {
                write!(f, "the window starts at {t0} ns, in the past (now {now} ns)")
            }
            NoVector { vector, vectors } => {
                write!(f, "no vector {vector} (irq_vectors is {vectors})")
            }
            NoVcpu { vcpu } => write!(f, "no running vCPU {vcpu}"),
            NoIrqExport => f.write_str("a timer needs an xdv_irq export to deliver its ticks to"),
            Short {
                need_for,
                need,
                left,
            } => need_for.describe(f, *need, *left),
            Carve(e) => write!(f, "over budget: {e}"),
            QStateTooLarge {
                qubits,
                bytes,
                quota,
            } => write!(
                f,
                "memory budget: simulating {qubits} qubits holds {bytes} bytes of state, over the memory_quota of {quota} bytes"
            ),
            TooManyJobs { max } => write!(
                f,
                "the container holds {max} jobs not yet collected with q_result"
            ),
            QProgram { line, col } => {
                write!(f, "the program does not parse at line {line}, column {col} (xdv q check tells why)")
            }
            TooManyClbits { clbits } => write!(
                f,
                "the program has {clbits} classical bits; a job's outcome holds at most 64"
            ),
            QUnsupported(u) => u.fmt(f),
            QubitLent { logical } => {
                write!(f, "logical qubit {logical} is lent to a child container")
            }
            CostOverflow => f.write_str("the job's cost overflows"),
            InjectedProviderFailure => f.write_str("provider: injected failure"),
            QCarve(c) => c.fmt(f),
            Window(w) => w.fmt(f),
            NoParentWindow { port, t0, t1 } => write!(
                f,
                "nesting: no window of the parent contains port {port} [{t0}, {t1})"
            ),
            PhiProgram { line, col } => write!(
                f,
                "the transform does not parse at line {line}, column {col} (xdv phi run tells why)"
            ),
            PhiContract { rule, line, col } => {
                write!(f, "contract: {rule} at {line}:{col}")
            }
            Privilege { level, deepest } => write!(
                f,
                "privilege level L{level} may not make this call (deepest allowed L{deepest})"
            ),
            DeepestLevel => f.write_str("the deepest privilege level is reached"),
            PolicyLoosens { weight, current } => write!(
                f,
                "weight {weight} exceeds the current {current} (policy only tightens)"
            ),
            PolicyWithChildren { children } => write!(
                f,
                "{children} live children: policy is set only while a VHM has none"
            ),
            BadName => f.write_str("the child's name must be 1 to 64 of A-Z a-z 0-9 _ - ."),
            Spec(SpecRule::VcpuQuota { vcpu_quota, vcpus }) => {
                write!(f, "vcpu_quota {vcpu_quota} is less than vcpus {vcpus}")
            }
            Spec(SpecRule::MemoryQuota { memory_quota }) => {
                write!(f, "memory_quota {memory_quota} is less than vcpus × memory_limit")
            }
            Spawn { part, why } => write!(f, "{part}: {why}"),
            PassedBadge { index, badge } => write!(
                f,
                "passing capability [{index}]: badge {badge} is over the largest, {}",
                i64::MAX
            ),
            Module { abi: false } => {
                f.write_str("the module is not valid WebAssembly (xdv check tells why)")
            }
            Module { abi: true } => {
                f.write_str("the module does not fit the guest ABI (xdv check tells why)")
            }
        }
    }
}

impl Need {
    fn describe(self, f: &mut fmt::Formatter<'_>, need: u64, left: u64) -> fmt::Result {
        match self {
            Need::CapTable => write!(
                f,
                "memory budget: the capability table needs {need} more bytes, {left} left"
            ),
            Need::QueuedMessage(len) => write!(
                f,
                "a queued message of {len} bytes: memory budget: needs {need} bytes, {left} left"
            ),
            Need::JobOutcomes => write!(
                f,
                "memory budget: the job's circuit and outcomes hold {need} bytes until q_result, {left} left"
            ),
            Need::ChildMemory => write!(
                f,
                "over budget: memory: asked {need} bytes, {left} left beside what the host holds for this VHM"
            ),
            Need::ModuleFootprint => write!(
                f,
                "code: memory budget: the module holds {need} bytes, {left} left beside the child's memory_quota"
            ),
            Need::QSimulation(work) => write!(
                f,
                "fuel: simulating the job takes {work} amplitude updates ({need} fuel), {left} fuel left"
            ),
            Need::ModuleLoad => write!(
                f,
                "code: loading the module takes {need} fuel, {left} left beside the child's fuel_quota"
            ),
            Need::JobDecoherence => write!(
                f,
                "decoherence budget: the job costs {need} µ, {left} µ left"
            ),
            Need::ChildDecoherence => {
                write!(f, "decoherence budget: {need} µ asked, {left} µ left")
            }
            Need::PortTime => write!(
                f,
                "Φ port-time: the window holds {need} ns, {left} ns of phi_port_time left"
            ),
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arg::Shots => "shots",
            Arg::Capacity => "capacity",
            Arg::WakeTime => "the wake time",
            Arg::Period => "the timer period",
            Arg::QInfoFigure => "the q_info figure",
            Arg::Vcpus => "vcpus",
            Arg::Weight => "weight",
            Arg::QQubits => "q_qubits",
            Arg::PassedCaps => "the capabilities passed",
            Arg::FuelQuota => "fuel_quota",
            Arg::MemoryLimit => "memory_limit (whole 64 KiB pages)",
        })
    }
}

impl fmt::Display for Struct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Struct::SpawnSpec => "a spawn spec is 88 or 104 bytes",
            Struct::WindowSpec => "a window spec is 48 bytes",
        })
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Text::Program => "program",
            Text::Transform => "transform",
        })
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deadline::TimerTick => "the timer's first tick",
            Deadline::JobCompletion => "the job's completion",
            Deadline::WindowEnd => "the window's end",
        })
    }
}

impl fmt::Display for QUnsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QUnsupported::ProviderQubits { declared, max } => write!(
                f,
                "the program declares {declared} qubits; the provider runs at most {max} per job"
            ),
            QUnsupported::NeedsTerminalMeasurement => f.write_str(
                "the density provider needs every measurement at the end (no reset, no if, no gate after a measurement)",
            ),
            QUnsupported::ContainerQubits { declared, held } => write!(
                f,
                "the circuit declares {declared} qubits; the container holds {held}"
            ),
            QUnsupported::CostOverflow => f.write_str("the job's cost overflows"),
        }
    }
}

impl fmt::Display for QCarve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QCarve::NoContainer => {
                f.write_str("the caller has no Q container to carve qubits from")
            }
            QCarve::Decoherence { asked, left } => {
                write!(f, "decoherence budget: {asked} µ asked, {left} µ left")
            }
            QCarve::Qubits { asked } => {
                write!(f, "qubits: no connected set of {asked} free qubits")
            }
            QCarve::NoBudget => {
                f.write_str("a Q container needs qubits and a decoherence budget above 0")
            }
        }
    }
}

impl fmt::Display for WindowRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowRefusal::NoPort { port } => write!(f, "window: no port {port}"),
            WindowRefusal::Empty { t0, t1 } => write!(f, "window: empty interval [{t0}, {t1})"),
            WindowRefusal::Alignment {
                t0,
                t1,
                granularity,
            } => write!(
                f,
                "window: alignment: [{t0}, {t1}) is not on the port's {granularity} ns grid"
            ),
            WindowRefusal::Band {
                lo,
                hi,
                outer_lo,
                outer_hi,
            } => write!(
                f,
                "window: band: [{lo}, {hi}] Hz is not inside [{outer_lo}, {outer_hi}] Hz"
            ),
            WindowRefusal::Amplitude { asked, allowed } => write!(
                f,
                "window: amplitude: cap {asked} ppm is above the allowed {allowed} ppm"
            ),
            WindowRefusal::ParentGone => f.write_str("window: nesting: the parent window is gone"),
            WindowRefusal::Outside { t0, t1 } => write!(
                f,
                "window: nesting: [{t0}, {t1}) is not inside the parent window"
            ),
            WindowRefusal::Conflict {
                port,
                t0,
                t1,
                share,
            } => write!(
                f,
                "window: conflict: port {port} is not free throughout [{t0}, {t1}){}",
                match share {
                    ShareRule::NotShared => {
                        " (a window without a share grant needs the port to itself)"
                    }
                    ShareRule::BandOverlap => " for a shared window in this band",
                }
            ),
        }
    }
}

impl fmt::Display for PhiRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PhiRule::Ownership => "ownership",
            PhiRule::Port => "port",
            PhiRule::Fit => "fit",
            PhiRule::Alignment => "alignment",
            PhiRule::Amplitude => "amplitude",
            PhiRule::Band => "band",
            PhiRule::Coherence => "coherence budget",
            PhiRule::Decohered => "decohered",
            PhiRule::Delegated => "delegated",
            PhiRule::Size => "size",
            PhiRule::Accounting => "phase accounting",
        })
    }
}

impl fmt::Display for SpawnPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnPart::Name => f.write_str("name"),
            SpawnPart::Code => f.write_str("code"),
            SpawnPart::Caps => f.write_str("caps"),
            SpawnPart::QContainer { qubits } => write!(f, "q container of {qubits} qubits"),
        }
    }
}

impl fmt::Display for FaultDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultDetail::Trap(t) => t.fmt(f),
            FaultDetail::Instantiation(t) => write!(f, "instantiation failed: {t}"),
            FaultDetail::FuelUsedUp {
                quota,
                spent,
                carved,
            } => {
                if *carved > 0 {
                    write!(
                        f,
                        "fuel used up: quota {quota}, {spent} spent, {carved} carved for children"
                    )
                } else {
                    write!(f, "fuel quota of {quota} used up")
                }
            }
            FaultDetail::TimerTick(e) => write!(f, "timer tick: {e}"),
            FaultDetail::BadHypercall { call, code } => write!(
                f,
                "{call} refused with error {code} under on_bad_hypercall = \"fault\""
            ),
            FaultDetail::Injected { index } => write!(f, "injected fault {index}"),
        }
    }
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrapCode::Unreachable => "wasm `unreachable` instruction executed",
            TrapCode::MemoryOutOfBounds => "out of bounds memory access",
            TrapCode::TableOutOfBounds => "undefined element: out of bounds table access",
            TrapCode::IndirectCallToNull => "indirect call to a null table entry",
            TrapCode::DivisionByZero => "integer divide by zero",
            TrapCode::IntegerOverflow => "integer overflow",
            TrapCode::BadConversion => "invalid conversion to integer",
            TrapCode::StackOverflow => "call stack exhausted",
            TrapCode::BadSignature => "indirect call type mismatch",
            TrapCode::ResourceLimit => "a memory or table over its limit",
            TrapCode::Other => "the guest failed outside an instruction",
        })
    }
}

impl fmt::Display for RestartRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartRefusal::MaxRestarts { max } => write!(f, "max_restarts ({max}) reached"),
            RestartRefusal::ParentBudget(e) => write!(f, "the parent's budget: {e}"),
            RestartRefusal::Qubits(q) => q.fmt(f),
            RestartRefusal::NoParentWindow { t0, t1 } => write!(
                f,
                "window: no window of the parent contains [{t0}, {t1}) any more"
            ),
            RestartRefusal::Window(w) => w.fmt(f),
        }
    }
}

impl fmt::Display for DecoherenceCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecoherenceCause::Limit { elapsed, t2 } => write!(
                f,
                "coherence limit passed ({elapsed} ns after the window opened or was re-prepared, T2 {t2} ns)"
            ),
            DecoherenceCause::Dephasing => {
                f.write_str("dephasing event (drawn from the VHM's stream at rate 1/T2)")
            }
            DecoherenceCause::Injected { index } => write!(f, "injected fault {index}"),
        }
    }
}
