//! The orchestration event vocabulary and the sink that receives it.
//!
//! Every decision the hypervisor takes is one [`Event`]. The canonical encoding of an event is
//! postcard over these types (see [`Event::encode`]); the trace stores exactly those bytes and
//! chains their hashes, and replay compares them byte for byte. Any layout change therefore
//! bumps [`crate::EVENT_SCHEMA_VERSION`].

use crate::chain::Hash32;
use crate::ids::{CapId, Domain, VcpuIndex, VhmId};
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
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Vcpu(i) => write!(f, "vcpu[{i}]"),
            Resource::Memory(b) => write!(f, "memory {b} B"),
            Resource::Fuel(q) => write!(f, "fuel {q}"),
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
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Exit(c) => write!(f, "exit({c})"),
            ExitReason::Halted => f.write_str("halted"),
            ExitReason::Fault(c) => write!(f, "fault: {c}"),
            ExitReason::TimeLimit => f.write_str("time limit"),
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
}

impl HypercallRecord {
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
        /// Number of VHMs declared by the manifest.
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
        /// The value returned to the guest (negative: an ABI error code). For a `sleep` that
        /// parks, 0: the value the guest receives on waking is in the next `VcpuWoken`.
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
    /// A parked vCPU became runnable again.
    VcpuWoken {
        /// The vCPU.
        vcpu: VcpuIndex,
        /// `true` when an interrupt cut the sleep short.
        interrupted: bool,
    },
    /// A vCPU's entry function returned.
    VcpuHalted {
        /// The vCPU.
        vcpu: VcpuIndex,
    },
    /// The VHM faulted.
    Fault {
        /// The fault class.
        class: FaultClass,
        /// The vCPU at fault, if one.
        vcpu: Option<VcpuIndex>,
        /// A human-readable detail (trap message, refused call).
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
        /// Amount used over the allocation's life, for consumable resources (fuel).
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
}

impl EventKind {
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
            EventKind::Fault { .. } => "fault",
            EventKind::Released { .. } => "released",
            EventKind::VhmExited { .. } => "vhm_exited",
            EventKind::HostFinished { .. } => "host_finished",
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

    /// A one-line human-readable rendering, used by `xdv trace show` and divergence reports.
    pub fn describe(&self) -> String {
        use EventKind::*;
        match &self.kind {
            HostStarted { seed, vhms } => format!("host started: seed {seed}, {vhms} VHMs"),
            VhmCreated {
                name,
                parent,
                level,
                weight,
                module,
            } => format!(
                "created {name:?} level {level}{} weight {weight} module {}",
                parent.map(|p| format!(" parent {p}")).unwrap_or_default(),
                module.short()
            ),
            Allocated {
                domain,
                resource,
                cap,
            } => format!("allocated {domain} {resource} as {cap}"),
            VcpuStarted { vcpu } => format!("vcpu {vcpu} started"),
            SliceEnded { vcpu, fuel } => format!("vcpu {vcpu} slice ended after {fuel} fuel"),
            Hypercall { vcpu, call, ret } => {
                let args = match call {
                    HypercallRecord::Log { ptr, len, bytes } => {
                        format!("({ptr:#x}, {len}) {:?}", String::from_utf8_lossy(bytes))
                    }
                    HypercallRecord::Exit { code } => format!("({code})"),
                    HypercallRecord::Sleep { until_ns } => format!("({until_ns})"),
                    HypercallRecord::TimerSet { period_ns } => format!("({period_ns})"),
                    HypercallRecord::IrqSend { vcpu, vector, arg } => {
                        format!("({vcpu}, {vector}, {arg})")
                    }
                    _ => "()".to_string(),
                };
                format!("vcpu {vcpu} {}{args} -> {ret}", call.name())
            }
            IrqRaised { vcpu, vector, arg } => {
                format!("irq {vector} raised on vcpu {vcpu} (arg {arg})")
            }
            IrqDelivered { vcpu, vector, arg } => {
                format!("irq {vector} delivered to vcpu {vcpu} (arg {arg})")
            }
            IrqDropped { vcpu, vector } => {
                format!("irq {vector} dropped on vcpu {vcpu} (no handler)")
            }
            IrqReturned { vcpu } => format!("vcpu {vcpu} returned from irq handler"),
            TimerFired { tick } => format!("timer tick {tick}"),
            VcpuWoken { vcpu, interrupted } => {
                format!(
                    "vcpu {vcpu} woken{}",
                    if *interrupted { " by interrupt" } else { "" }
                )
            }
            VcpuHalted { vcpu } => format!("vcpu {vcpu} halted"),
            Fault {
                class,
                vcpu,
                detail,
            } => format!(
                "FAULT {class}{}: {detail}",
                vcpu.map(|v| format!(" on vcpu {v}")).unwrap_or_default()
            ),
            Released {
                domain,
                resource,
                cap,
                used,
            } => format!(
                "released {domain} {resource} ({cap}){}",
                used.map(|u| format!(", used {u}")).unwrap_or_default()
            ),
            VhmExited { reason, fuel_used } => format!("exited: {reason}, fuel used {fuel_used}"),
            HostFinished { stopped } => {
                format!("host finished ({stopped} VHMs stopped by time limit)")
            }
        }
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
}

/// Keeps every event in memory; for tests, simulation and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    /// The events, in emission order.
    pub events: Vec<Event>,
}

impl EventSink for MemorySink {
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
}
