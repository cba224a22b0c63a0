//! The lifecycle group: log, exit, yield, vCPU ids, time, sleep, random, timer, IPIs.

use super::{bytes_of, After, Outcome};
use crate::cds::{Class, Target};
use crate::state::State;
use crate::step::Effects;
use crate::vhm::{Timer, VcpuState, Wait};
use crate::HvError;
use rand_core::RngCore;
use xdv_core::event::HypercallRecord;
use xdv_core::refusal::{Arg, Deadline, Refusal};
use xdv_core::VhmId;
use xdv_k::abi;
use xdv_k::Call;

impl State {
    // Long by design: one arm per lifecycle hypercall, each the checks of docs/abi.md in their order.
    pub(super) fn lifecycle(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        call: Call,
    ) -> Result<Outcome, HvError> {
        let now = self.now;
        let record = call.record();
        let v = &mut self.vhms[vhm];
        let n_vcpus = v.vcpus.len() as u32;
        Ok(match call {
            Call::Log { ptr, len, bytes } => match bytes_of(bytes, ptr, len) {
                Ok(bytes) => Outcome::ok(HypercallRecord::Log { ptr, len, bytes }, abi::OK),
                Err((code, reason)) => Outcome::refused(record, code, reason),
            },
            Call::Exit { code } => Outcome {
                after: After::Exit(code),
                ..Outcome::ok(record, abi::OK)
            },
            Call::Yield => Outcome {
                after: After::EndSlice,
                ..Outcome::ok(record, abi::OK)
            },
            Call::VcpuId => Outcome::ok(record, i64::from(vcpu)),
            Call::VcpuCount => Outcome::ok(record, i64::from(n_vcpus)),
            Call::Time => Outcome::ok(record, now as i64),
            Call::Sleep { until } => {
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
                } else if slot.irq_pending != 0 && !slot.in_irq {
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
            Call::Random => Outcome::ok(record, v.rng.next_u64() as i64),
            Call::TimerSet { period } => {
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
                } else if period > 0 && !v.vcpus[vcpu as usize].has_irq {
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
            Call::IrqSend {
                vcpu: target,
                vector,
                arg,
            } => {
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
            other => unreachable!("{:?} is not a lifecycle call", other.hypercall()),
        })
    }
}
