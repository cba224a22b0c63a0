//! The Q group: container figures, job admission, waiting and results.
//!
//! Admission is static and complete before anything runs: the program is parsed, planned on the
//! container (routing, schedule, decoherence cost) and charged to the budget, or refused with the
//! reason. The job then runs after the container's earlier jobs (they share its qubits) and
//! completes a static duration later on the virtual clock, whatever other VHMs do with the same
//! device: containers are disjoint, so one VHM's jobs never wait for another's.

use super::caps::{cap_refusal, handle_refusal};
use super::{text_of, Outcome};
use crate::q::Job;
use crate::state::{emit, State};
use crate::step::Effects;

/// Host bytes a job's record costs beside its outcome words (8 bytes a shot).
const JOB_RECORD_BYTES: u64 = 128;
use crate::vhm::Wait;
use crate::HvError;
use xdv_core::cap::{rights, Object};
use xdv_core::event::{EventKind, RemoveCause, WorkKind};
use xdv_core::refusal::{Arg, Buffer, Deadline, HandleRole, Need, Refusal, Text};
use xdv_core::VhmId;
use xdv_k::abi::{self, MAX_Q_SHOTS};
use xdv_k::call::Read;
use xdv_k::Call;

/// A job that passed admission: what `q_submit` commits.
struct Admitted {
    program: xdv_core::Hash32,
    /// The program's text, stored in the trace once the job is admitted.
    source: String,
    circuit: xdv_q::Circuit,
    qubits: u32,
    clbits: u32,
    shots: u64,
    vector: u32,
    cost: u64,
    duration: u64,
    host: HostWork,
}

/// What an admitted job costs the host, and when it completes.
struct HostWork {
    job_bytes: u64,
    work: u64,
    work_fuel: u64,
    queued_ns: u64,
    done_at: u64,
}

/// A refusal to return: the ABI error code and why.
type Rejected = (i64, Refusal);

/// A `q_submit` call's arguments.
struct Submit {
    container: u64,
    ptr: u32,
    len: u32,
    text: Read,
    shots: u64,
    vector: u32,
}

impl State {
    // Long by design: one arm per Q hypercall, each the checks of docs/abi.md in their order.
    pub(super) fn q_call(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        call: Call,
    ) -> Result<Outcome, HvError> {
        let me = vhm;
        let record = call.record();
        Ok(match call {
            Call::QInfo {
                container: handle,
                what,
            } => {
                let need = |o: &Object| *o == Object::QContainer(me);
                if let Err(e) = self.caps.require(me, handle, rights::INSPECT, need) {
                    return Ok(cap_refusal(record, handle, e));
                }
                let c = self.vhms[vhm].q.as_ref().expect("a live container");
                let alloc = &self.q_devices[c.device].alloc;
                let value = match what {
                    0 => c.physical.len() as u64,
                    1 => c.left(),
                    2 => c.spent,
                    3 => c
                        .physical
                        .iter()
                        .filter(|&&p| alloc.owner_of(p) == Some(vhm.0))
                        .count() as u64,
                    other => {
                        return Ok(Outcome::refused(
                            record,
                            abi::E_INVAL,
                            Refusal::OutOfRange {
                                arg: Arg::QInfoFigure,
                                value: i64::from(other),
                                min: 0,
                                max: 3,
                            },
                        ))
                    }
                };
                Outcome::ok(record, value as i64)
            }
            Call::QSubmit {
                container,
                ptr,
                len,
                text,
                shots,
                vector,
            } => {
                let submit = Submit {
                    container,
                    ptr,
                    len,
                    text,
                    shots,
                    vector,
                };
                self.q_submit(sink, vhm, vcpu, record, submit)?
            }
            Call::QWait { job: handle } => {
                let job = match self.job_of(vhm, handle, rights::WAIT) {
                    Ok(j) => j,
                    Err(e) => return Ok(cap_refusal(record, handle, e)),
                };
                let j = self.vhms[vhm]
                    .q
                    .as_mut()
                    .and_then(|c| c.jobs.get_mut(&job))
                    .expect("a job capability names a live job");
                if j.done {
                    Outcome::ok(record, abi::OK)
                } else {
                    j.waiters.push(vcpu);
                    Outcome::park(record, Wait::QJob(job))
                }
            }
            Call::QResult {
                job: handle,
                ptr,
                len,
            } => {
                let job = match self.job_of(vhm, handle, rights::RECV) {
                    Ok(j) => j,
                    Err(e) => return Ok(cap_refusal(record, handle, e)),
                };
                let c = self.vhms[vhm].q.as_ref().expect("a live container");
                let j = &c.jobs[&job];
                if !j.done {
                    // Not a refusal: asking early is legitimate; the guest may wait and retry.
                    return Ok(Outcome::ok(record, abi::E_BUSY));
                }
                let need = j.shots.saturating_mul(8);
                if u64::from(len) < need {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_TOOBIG,
                        Refusal::BufferTooSmall {
                            what: Buffer::Outcomes,
                            need,
                            have: u64::from(len),
                        },
                    ));
                }
                let bytes: Vec<u8> = j.outcomes.iter().flat_map(|w| w.to_le_bytes()).collect();
                let shots = j.shots;
                if let Err((code, reason)) = self.write_guest(sink, vhm, vcpu, ptr, bytes) {
                    return Ok(Outcome::refused(record, code, reason));
                }
                let c = self.vhms[vhm].q.as_mut().expect("a live container");
                let j = c.jobs.remove(&job).expect("present");
                self.caps
                    .delete(me, j.cap.0)
                    .expect("the job's own capability is live");
                self.record_removed(sink, vhm, RemoveCause::Drop, vec![(me, j.cap)])?;
                Outcome::ok(record, shots as i64)
            }
            other => unreachable!("{:?} is not in the Q group", other.hypercall()),
        })
    }

    /// The job number a handle of the caller names, with `right`.
    fn job_of(
        &self,
        vhm: VhmId,
        handle: u64,
        right: xdv_core::cap::Rights,
    ) -> Result<u32, xdv_core::cap::CapError> {
        self.own_number(vhm, handle, right, |o, me| match *o {
            Object::QJob(v, j) if v == me => Some(j),
            _ => None,
        })
    }

    /// The admission of a `q_submit`: every check `docs/abi.md` lists, in its order, on the
    /// state as it is (nothing changes); the admitted job's plan and charges, or the refusal.
    /// In four phases: the call's arguments, the program, the device, then what the host would
    /// spend.
    fn q_admit(&self, vhm: VhmId, submit: Submit) -> Result<Admitted, Rejected> {
        let Submit {
            container,
            ptr,
            len,
            text,
            shots,
            vector,
        } = submit;
        self.admit_call(vhm, container, shots, vector)?;
        let (program, source, circuit) = self.admit_program(vhm, text, ptr, len)?;
        let (qubits, clbits, cost, duration) = self.admit_on_device(vhm, &circuit, shots)?;
        let host = self.admit_host_work(vhm, &circuit, shots, duration)?;
        Ok(Admitted {
            program,
            source,
            circuit,
            qubits,
            clbits,
            shots,
            vector,
            cost,
            duration,
            host,
        })
    }

    /// The container handle, the shots, the vector, and room for one more job.
    fn admit_call(&self, vhm: VhmId, handle: u64, shots: u64, vector: u32) -> Result<(), Rejected> {
        let me = vhm;
        let refuse = |code: i64, reason: Refusal| -> Result<(), Rejected> { Err((code, reason)) };
        let need = |o: &Object| *o == Object::QContainer(me);
        if let Err(e) = self.caps.require(me, handle, rights::SUBMIT, need) {
            return Err(handle_refusal(HandleRole::Target, handle, e));
        }
        if !(1..=MAX_Q_SHOTS).contains(&shots) {
            return refuse(
                abi::E_INVAL,
                Refusal::OutOfRange {
                    arg: Arg::Shots,
                    value: shots as i64,
                    min: 1,
                    max: MAX_Q_SHOTS as i64,
                },
            );
        }
        let irq_vectors = self.vhms[vhm].spec.k.irq_vectors;
        if vector != 0 && vector >= irq_vectors {
            return refuse(
                abi::E_INVAL,
                Refusal::NoVector {
                    vector,
                    vectors: irq_vectors,
                },
            );
        }
        // Cheap refusals first: a full container parses nothing.
        let held_jobs = self.vhms[vhm].q.as_ref().map_or(0, |c| c.jobs.len());
        if held_jobs >= abi::MAX_Q_JOBS {
            return refuse(
                abi::E_BUSY,
                Refusal::TooManyJobs {
                    max: abi::MAX_Q_JOBS as u32,
                },
            );
        }
        Ok(())
    }

    /// The program text, parsed within the operation bound, with at most 64 classical bits.
    fn admit_program(
        &self,
        vhm: VhmId,
        text: Read,
        ptr: u32,
        len: u32,
    ) -> Result<(xdv_core::Hash32, String, xdv_q::Circuit), Rejected> {
        type Admission = (xdv_core::Hash32, String, xdv_q::Circuit);
        let refuse =
            |code: i64, reason: Refusal| -> Result<Admission, Rejected> { Err((code, reason)) };
        let (program, source) = match text_of(text, ptr, len, Text::Program) {
            Ok(t) => t,
            Err((code, reason)) => return refuse(code, reason),
        };
        let label = format!(
            "job{}.qasm",
            self.vhms[vhm].q.as_ref().map_or(0, |c| c.next_job)
        );
        let circuit = match xdv_q::qasm::parse_limited(&source, &label, abi::MAX_Q_OPS) {
            Ok(c) => c,
            Err(e) => {
                return refuse(
                    abi::E_INVAL,
                    Refusal::QProgram {
                        line: u32::try_from(e.line).unwrap_or(u32::MAX),
                        col: u32::try_from(e.col).unwrap_or(u32::MAX),
                    },
                )
            }
        };
        if circuit.num_clbits() > 64 {
            return refuse(
                abi::E_INVAL,
                Refusal::TooManyClbits {
                    clbits: u32::try_from(circuit.num_clbits()).unwrap_or(u32::MAX),
                },
            );
        }
        Ok((program, source, circuit))
    }

    /// The device accepts and plans the circuit on the container's qubits, touching none lent
    /// to a child, within the container's decoherence budget: `(qubits, clbits, cost,
    /// duration)`.
    fn admit_on_device(
        &self,
        vhm: VhmId,
        circuit: &xdv_q::Circuit,
        shots: u64,
    ) -> Result<(u32, u32, u64, u64), Rejected> {
        let refuse = |code: i64, reason: Refusal| -> Result<(u32, u32, u64, u64), Rejected> {
            Err((code, reason))
        };
        let c = self.vhms[vhm].q.as_ref().expect("a live container");
        let dev = &self.q_devices[c.device];
        let device = dev.device();
        // Decided from the circuit alone, so a replay (which runs no provider) decides alike.
        if let Err(reason) = dev.provider.accepts(circuit) {
            return refuse(abi::E_INVAL, Refusal::QUnsupported(reason));
        }
        let plan = match xdv_q::plan::plan(circuit, device, &dev.costs, c.physical.len()) {
            Ok(p) => p,
            Err(reason) => return refuse(abi::E_INVAL, Refusal::QUnsupported(reason)),
        };
        // Logical qubits lent to a child are the child's until it stops: a job may neither act
        // on them nor route through them.
        let held = xdv_q::plan::held_qubits(circuit);
        if let Some(l) = (0..circuit.num_qubits())
            .find(|&l| held[l] && dev.alloc.owner_of(c.physical[l]) != Some(vhm.0))
        {
            return refuse(abi::E_BUSY, Refusal::QubitLent { logical: l as u32 });
        }
        let (Some(cost), Some(duration)) = (plan.cost(shots), plan.duration(shots)) else {
            return refuse(abi::E_QUOTA, Refusal::CostOverflow);
        };
        // Every shot costs at least one micro-unit: even an empty circuit uses the device.
        let cost = cost.max(shots);
        if cost > c.left() {
            return refuse(
                abi::E_QUOTA,
                Refusal::Short {
                    need_for: Need::JobDecoherence,
                    need: cost,
                    left: c.left(),
                },
            );
        }
        Ok((plan.qubits, plan.clbits, cost, duration))
    }

    /// What the host would spend on the job — a capability, the simulation's state, the job's
    /// bytes, the simulation's fuel — fits the caller's budgets, and the job ends before the
    /// horizon.
    fn admit_host_work(
        &self,
        vhm: VhmId,
        circuit: &xdv_q::Circuit,
        shots: u64,
        duration: u64,
    ) -> Result<HostWork, Rejected> {
        let me = vhm;
        let refuse =
            |code: i64, reason: Refusal| -> Result<HostWork, Rejected> { Err((code, reason)) };
        let c = self.vhms[vhm].q.as_ref().expect("a live container");
        let dev = &self.q_devices[c.device];
        if !self.caps.has_room(me, 1) {
            return refuse(abi::E_QUOTA, Refusal::CapTableFull);
        }
        if let Err(reason) = self.cap_room(vhm, 1, 0) {
            return refuse(abi::E_QUOTA, reason);
        }
        // The host's own work and memory for the simulation, decided from the circuit alone
        // (a replay, which runs no provider, decides alike), are charged before it runs.
        let state = dev.provider.state_bytes(circuit);
        let quota = self.vhms[vhm].quota.memory;
        if state > quota {
            return refuse(
                abi::E_QUOTA,
                Refusal::QStateTooLarge {
                    qubits: circuit.num_qubits() as u32,
                    bytes: state,
                    quota,
                },
            );
        }
        // The outcome words stay on the host until q_result: held in the memory budget.
        // The job keeps its circuit until it completes (the provider runs then), and its
        // outcome words until q_result: both held in the memory budget.
        let job_bytes = shots * 8 + JOB_RECORD_BYTES + circuit.footprint_bytes();
        let free = self
            .memory_free(vhm)
            .saturating_sub(self.cap_growth(vhm, 1, 0));
        if self.job_growth(vhm, job_bytes) > free {
            return refuse(
                abi::E_QUOTA,
                Refusal::Short {
                    need_for: Need::JobOutcomes,
                    need: job_bytes,
                    left: free,
                },
            );
        }
        let fuel_left = self.vhms[vhm].budget.fuel_left();
        // Planning stops once the work is known to exceed what the VHM can pay: the refusal
        // then names the work planned so far.
        let limit = fuel_left.saturating_mul(abi::Q_WORK_PER_FUEL);
        let work = dev.provider.work(circuit, shots, self.q_work, limit);
        let work_fuel = work.div_ceil(abi::Q_WORK_PER_FUEL);
        if work_fuel > fuel_left {
            return refuse(
                abi::E_QUOTA,
                Refusal::Short {
                    need_for: Need::QSimulation(work),
                    need: work_fuel,
                    left: fuel_left,
                },
            );
        }
        // The job waits for the container's earlier jobs, then runs for `duration`.
        let queued_ns = c.busy_until.saturating_sub(self.now);
        let done_at = self.now.saturating_add(queued_ns).saturating_add(duration);
        if done_at > abi::TIME_HORIZON_NS {
            return refuse(
                abi::E_INVAL,
                Refusal::PastHorizon {
                    what: Deadline::JobCompletion,
                    at: done_at,
                },
            );
        }
        Ok(HostWork {
            job_bytes,
            work,
            work_fuel,
            queued_ns,
            done_at,
        })
    }

    /// `q_submit`: admission ([`State::q_admit`]), then the job is committed
    /// ([`State::q_commit`]), unless an injected provider failure refuses it.
    fn q_submit(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        record: xdv_core::HypercallRecord,
        submit: Submit,
    ) -> Result<Outcome, HvError> {
        let admitted = match self.q_admit(vhm, submit) {
            Ok(a) => a,
            Err((code, reason)) => return Ok(Outcome::refused(record, code, reason)),
        };
        let c = self.vhms[vhm].q.as_mut().expect("a live container");
        if c.fail_next {
            c.fail_next = false;
            let reason = Refusal::InjectedProviderFailure;
            return Ok(Outcome::refused(record, abi::E_INVAL, reason));
        }
        let cap = self.q_commit(sink, vhm, vcpu, admitted)?;
        Ok(Outcome::ok(record, cap.0 as i64))
    }

    /// Commits an admitted job: its host work and cost are charged, it is numbered and given
    /// its capability, recorded, and scheduled for its completion. The job's capability.
    fn q_commit(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        a: Admitted,
    ) -> Result<xdv_core::CapId, HvError> {
        let host = a.host;
        let v = &mut self.vhms[vhm];
        let job = v.q.as_ref().expect("a live container").next_job;
        let seed = xdv_q::provider::job_seed(self.q_seed, &v.name, job);
        v.charge_host_work(host.work_fuel)
            .expect("the work's fuel was checked above");
        let c = v.q.as_mut().expect("a live container");
        c.spent += a.cost;
        c.own_spent += a.cost;
        c.next_job += 1;
        let budget_left = c.left();
        c.busy_until = host.done_at;
        let cap = self.mint(
            sink,
            vhm,
            Object::QJob(vhm, job),
            rights::INSPECT | rights::WAIT | rights::RECV,
            0,
        )?;
        let job_state = Job {
            vcpu,
            vector: a.vector,
            cap,
            shots: a.shots,
            done: false,
            outcomes: Vec::new(),
            run: Some((a.circuit, seed)),
            waiters: Vec::new(),
            held: host.job_bytes,
        };
        let c = self.vhms[vhm].q.as_mut().expect("a live container");
        c.jobs.insert(job, job_state);
        self.store_text(sink, a.program, &a.source);
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::QJobSubmitted {
                vcpu,
                job,
                program: a.program,
                qubits: a.qubits,
                clbits: a.clbits,
                shots: a.shots,
                cost: a.cost,
                budget_left,
                queued_ns: host.queued_ns,
                duration_ns: a.duration,
            },
        );
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::HostWork {
                work: WorkKind::QSimulation { job },
                units: host.work,
                fuel: host.work_fuel,
            },
        );
        self.schedule_job(vhm, job, host.done_at);
        Ok(cap)
    }
}
