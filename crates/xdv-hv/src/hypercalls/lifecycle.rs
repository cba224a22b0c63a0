//! The lifecycle group: log, exit, yield, vCPU ids, time, sleep, random, timer, IPIs.

use super::{After, Args, Outcome};
use crate::cds::{Class, Target};
use crate::driver::Driver;
use crate::hypervisor::Hypervisor;
use crate::vhm::{Timer, VcpuState, Wait};
use crate::HvError;
use rand_core::RngCore;
use xdv_core::event::HypercallRecord;
use xdv_core::refusal::{Arg, Deadline, Refusal};
use xdv_k::abi::{self, Hypercall};

/// The record of a call from its raw arguments alone (for calls refused before decoding).
pub(super) fn bare_record(call: Hypercall, a: Args) -> HypercallRecord {
    match call {
        Hypercall::Log => HypercallRecord::Log {
            ptr: a.u32(0),
            len: a.u32(1),
            bytes: Vec::new(),
        },
        Hypercall::Exit => HypercallRecord::Exit {
            code: a.i64(0) as i32,
        },
        Hypercall::Yield => HypercallRecord::Yield,
        Hypercall::VcpuId => HypercallRecord::VcpuId,
        Hypercall::VcpuCount => HypercallRecord::VcpuCount,
        Hypercall::Time => HypercallRecord::Time,
        Hypercall::Sleep => HypercallRecord::Sleep { until_ns: a.u64(0) },
        Hypercall::Random => HypercallRecord::Random,
        Hypercall::TimerSet => HypercallRecord::TimerSet {
            period_ns: a.u64(0),
        },
        Hypercall::IrqSend => HypercallRecord::IrqSend {
            vcpu: a.u32(0),
            vector: a.u32(1),
            arg: a.i64(2),
        },
        Hypercall::CapDerive => HypercallRecord::CapDerive {
            handle: a.u64(0),
            rights: a.u32(1),
            badge: a.u64(2),
        },
        Hypercall::CapRevoke => HypercallRecord::CapRevoke { handle: a.u64(0) },
        Hypercall::CapDrop => HypercallRecord::CapDrop { handle: a.u64(0) },
        Hypercall::CapInfo => HypercallRecord::CapInfo { handle: a.u64(0) },
        Hypercall::CapFind => HypercallRecord::CapFind {
            type_code: a.u32(0),
            index: a.u32(1),
        },
        Hypercall::VhmSpawn => HypercallRecord::VhmSpawn {
            name: String::new(),
        },
        Hypercall::VhmWait => HypercallRecord::VhmWait { handle: a.u64(0) },
        Hypercall::VhmKill => HypercallRecord::VhmKill { handle: a.u64(0) },
        Hypercall::PolicySet => HypercallRecord::PolicySet {
            weight: a.u32(0),
            flags: a.u32(1),
        },
        Hypercall::IpcChannel => HypercallRecord::IpcChannel { capacity: a.u32(0) },
        Hypercall::IpcSend => HypercallRecord::IpcSend {
            endpoint: a.u64(0),
            len: a.u32(2),
            cap: a.u64(3),
            flags: a.u32(4),
        },
        Hypercall::IpcRecv => HypercallRecord::IpcRecv {
            endpoint: a.u64(0),
            len: a.u32(2),
        },
        Hypercall::QInfo => HypercallRecord::QInfo {
            container: a.u64(0),
            what: a.u32(1),
        },
        Hypercall::QSubmit => HypercallRecord::QSubmit {
            container: a.u64(0),
            len: a.u32(2),
            shots: a.u64(3),
            vector: a.u32(4),
        },
        Hypercall::QWait => HypercallRecord::QWait { job: a.u64(0) },
        Hypercall::QResult => HypercallRecord::QResult {
            job: a.u64(0),
            len: a.u32(2),
        },
        Hypercall::PhiWindow => HypercallRecord::PhiWindow { len: a.u32(1) },
        Hypercall::PhiExec => HypercallRecord::PhiExec {
            window: a.u64(0),
            len: a.u32(2),
            out_len: a.u32(4),
        },
        Hypercall::PhiFrame => HypercallRecord::PhiFrame {
            window: a.u64(0),
            name: String::new(),
        },
        Hypercall::PhiRelease => HypercallRecord::PhiRelease { window: a.u64(0) },
    }
}

impl Hypervisor {
    pub(super) fn lifecycle<S: Driver>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        vcpu: u32,
        call: Hypercall,
        a: Args,
    ) -> Result<Outcome, HvError> {
        let now = self.now;
        let record = bare_record(call, a);
        let v = &mut self.vhms[vhm as usize];
        let n_vcpus = v.vcpus.len() as u32;
        Ok(match call {
            Hypercall::Log => {
                let (ptr, len) = (a.u32(0), a.u32(1));
                match self.read_guest(vhm, vcpu, ptr, len, abi::MAX_LOG_BYTES) {
                    Ok(bytes) => Outcome::ok(HypercallRecord::Log { ptr, len, bytes }, abi::OK),
                    Err((code, reason)) => Outcome::refused(record, code, reason),
                }
            }
            Hypercall::Exit => Outcome {
                after: After::Exit(a.i64(0) as i32),
                ..Outcome::ok(record, abi::OK)
            },
            Hypercall::Yield => Outcome {
                after: After::EndSlice,
                ..Outcome::ok(record, abi::OK)
            },
            Hypercall::VcpuId => Outcome::ok(record, i64::from(vcpu)),
            Hypercall::VcpuCount => Outcome::ok(record, i64::from(n_vcpus)),
            Hypercall::Time => Outcome::ok(record, now as i64),
            Hypercall::Sleep => {
                let until = a.i64(0);
                let slot = &v.vcpus[vcpu as usize];
                if until < 0 {
                    Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::OutOfRange {
                            arg: Arg::WakeTime,
                            value: until,
                            min: 0,
                            max: i64::MAX,
                        },
                    )
                } else if slot.irq_pending != 0 && !slot.vcpu.in_irq() {
                    // An interrupt is already pending: like `hlt` with interrupts enabled, the
                    // sleep ends at once and the handler runs on return.
                    Outcome::ok(record, abi::SLEEP_INTERRUPTED)
                } else if until as u64 > now {
                    Outcome::park(
                        record,
                        Wait::Sleep {
                            // "Sleep forever" wakes at the horizon, where the run stops anyway.
                            until: (until as u64).min(abi::TIME_HORIZON_NS),
                            interrupted: false,
                        },
                    )
                } else {
                    Outcome::ok(record, abi::OK)
                }
            }
            Hypercall::Random => Outcome::ok(record, v.rng.next_u64() as i64),
            Hypercall::TimerSet => {
                let period = a.i64(0);
                let first = now.checked_add(period as u64);
                if period < 0 {
                    Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::OutOfRange {
                            arg: Arg::Period,
                            value: period,
                            min: 0,
                            max: i64::MAX,
                        },
                    )
                } else if period > 0 && first.is_none_or(|t| t > abi::TIME_HORIZON_NS) {
                    Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::PastHorizon {
                            what: Deadline::TimerTick,
                            at: first.unwrap_or(u64::MAX),
                        },
                    )
                } else if period > 0 && !v.vcpus[vcpu as usize].vcpu.has_irq_handler() {
                    // Every tick would be dropped: host work with nothing to show for it.
                    Outcome::refused(record, abi::E_INVAL, Refusal::NoIrqExport)
                } else {
                    v.timer_generation += 1;
                    v.timer = (period > 0).then(|| Timer {
                        period: period as u64,
                        next: now + period as u64,
                        vcpu,
                        ticks: 0,
                        suspended: false,
                    });
                    if let Some(t) = v.timer {
                        self.cds.push(
                            t.next,
                            Class::Timer,
                            Target::Timer {
                                vhm,
                                generation: v.timer_generation,
                            },
                        );
                    }
                    Outcome::ok(record, abi::OK)
                }
            }
            Hypercall::IrqSend => {
                let (target, vector, arg) = (a.u32(0), a.u32(1), a.i64(2));
                let live = target < n_vcpus && v.vcpus[target as usize].state != VcpuState::Halted;
                if !live {
                    Outcome::refused(record, abi::E_NOENT, Refusal::NoVcpu { vcpu: target })
                } else if vector >= v.spec.k.irq_vectors {
                    Outcome::refused(
                        record,
                        abi::E_NOENT,
                        Refusal::NoVector {
                            vector,
                            vectors: v.spec.k.irq_vectors,
                        },
                    )
                } else {
                    self.raise_irq(sink, vhm, target, vector, arg)?;
                    Outcome::ok(record, abi::OK)
                }
            }
            _ => unreachable!("{call:?} is not a lifecycle call"),
        })
    }
}
