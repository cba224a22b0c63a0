//! Hypercall handling: the lifecycle group of the ABI.
//!
//! Each call is decoded from raw arguments, validated (a hostile guest may pass anything), applied
//! to the hypervisor state and recorded as one `Hypercall` event with the value returned. Invalid
//! arguments return an ABI error code, or fault the VHM when its policy says so.

use crate::cds::{Class, Target};
use crate::hypervisor::{emit, Hypervisor};
use crate::vhm::{Timer, VcpuState};
use crate::HvError;
use rand_core::RngCore;
use xdv_core::event::{EventKind, EventSink, ExitReason, FaultClass, HypercallRecord};
use xdv_k::abi::{self, Hypercall};
use xdv_k::Request;
use xdv_manifest::BadHypercallPolicy;

/// What the hypervisor does after recording the call.
enum After {
    /// Return `ret` to the guest and keep running.
    Resume,
    /// End the slice, then continue (yield).
    EndSlice,
    /// The vCPU parks until `until`.
    Park(u64),
    /// The VHM exits.
    Exit(i32),
}

impl Hypervisor {
    pub(crate) fn hypercall<S: EventSink>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        vcpu: u32,
        req: Request,
    ) -> Result<(), HvError> {
        let now = self.now;
        let [a0, a1, a2] = req.args;
        // i32 arguments arrive sign-extended; pointers and lengths are unsigned in wasm32.
        let u32_arg = |a: i64| a as i32 as u32;
        let v = &mut self.vhms[vhm as usize];
        let n_vcpus = v.vcpus.len() as u32;
        let vectors = v.spec.k.irq_vectors;
        let mut after = After::Resume;
        let mut irq = None;
        let (record, ret) = match req.call {
            Hypercall::Log => {
                let (ptr, len) = (u32_arg(a0), u32_arg(a1));
                match v.vcpus[vcpu as usize].vcpu.read_guest(
                    i64::from(ptr),
                    i64::from(len),
                    abi::MAX_LOG_BYTES,
                ) {
                    Ok(bytes) => (HypercallRecord::Log { ptr, len, bytes }, abi::OK),
                    Err(code) => (
                        HypercallRecord::Log {
                            ptr,
                            len,
                            bytes: Vec::new(),
                        },
                        code,
                    ),
                }
            }
            Hypercall::Exit => {
                let code = a0 as i32;
                after = After::Exit(code);
                (HypercallRecord::Exit { code }, abi::OK)
            }
            Hypercall::Yield => {
                after = After::EndSlice;
                (HypercallRecord::Yield, abi::OK)
            }
            Hypercall::VcpuId => (HypercallRecord::VcpuId, i64::from(vcpu)),
            Hypercall::VcpuCount => (HypercallRecord::VcpuCount, i64::from(n_vcpus)),
            Hypercall::Time => (HypercallRecord::Time, now as i64),
            Hypercall::Sleep => {
                let record = HypercallRecord::Sleep {
                    until_ns: a0 as u64,
                };
                let slot = &v.vcpus[vcpu as usize];
                if a0 < 0 {
                    (record, abi::E_INVAL)
                } else if slot.irq_pending != 0 && !slot.vcpu.in_irq() {
                    // An interrupt is already pending: like `hlt` with interrupts enabled, the
                    // sleep ends at once and the handler runs on return.
                    (record, abi::SLEEP_INTERRUPTED)
                } else {
                    if a0 as u64 > now {
                        after = After::Park(a0 as u64);
                    }
                    (record, abi::OK)
                }
            }
            Hypercall::Random => (HypercallRecord::Random, v.rng.next_u64() as i64),
            Hypercall::TimerSet => {
                let period = a0;
                if period < 0 {
                    (
                        HypercallRecord::TimerSet {
                            period_ns: period as u64,
                        },
                        abi::E_INVAL,
                    )
                } else {
                    v.timer_generation += 1;
                    v.timer = (period > 0).then(|| Timer {
                        period: period as u64,
                        next: now + period as u64,
                        vcpu,
                        ticks: 0,
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
                    (
                        HypercallRecord::TimerSet {
                            period_ns: period as u64,
                        },
                        abi::OK,
                    )
                }
            }
            Hypercall::IrqSend => {
                let (target, vector) = (u32_arg(a0), u32_arg(a1));
                let record = HypercallRecord::IrqSend {
                    vcpu: target,
                    vector,
                    arg: a2,
                };
                let live = target < n_vcpus && v.vcpus[target as usize].state != VcpuState::Halted;
                if !live || vector >= vectors {
                    (record, abi::E_NOENT)
                } else {
                    irq = Some((target, vector, a2));
                    (record, abi::OK)
                }
            }
        };
        let refused = ret < 0 && !matches!(req.call, Hypercall::Time | Hypercall::Random);
        let name = record.name();
        emit(
            sink,
            &mut self.events,
            now,
            Some(vhm),
            EventKind::Hypercall {
                vcpu,
                call: record,
                ret,
            },
        )?;
        if refused
            && self.vhms[vhm as usize].spec.policy.on_bad_hypercall == BadHypercallPolicy::Fault
        {
            let detail = format!(
                "{name} refused with {} ({ret}) under on_bad_hypercall = \"fault\"",
                abi::error_name(ret)
            );
            return self.fault(sink, vhm, Some(vcpu), FaultClass::BadHypercall, detail);
        }
        if let Some((target, vector, arg)) = irq {
            self.raise_irq(sink, vhm, target, vector, arg)?;
        }
        let slot = &mut self.vhms[vhm as usize].vcpus[vcpu as usize];
        match after {
            After::Exit(code) => return self.terminate(sink, vhm, ExitReason::Exit(code)),
            After::Park(until) => {
                slot.state = VcpuState::Parked { until };
                self.cds.push(
                    until,
                    Class::Wake,
                    Target::Vcpu {
                        vhm,
                        vcpu,
                        generation: slot.generation,
                    },
                );
                return Ok(());
            }
            After::EndSlice => {
                let fuel = std::mem::take(&mut slot.slice_used);
                slot.vcpu.complete(ret);
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::SliceEnded { vcpu, fuel },
                )?;
            }
            After::Resume => slot.vcpu.complete(ret),
        }
        self.dispatch(sink, vhm, vcpu)
    }
}
