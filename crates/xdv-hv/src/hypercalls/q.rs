//! The Q group: container figures, job admission, waiting and results.
//!
//! Admission is static and complete before anything runs: the program is parsed, planned on the
//! container (routing, schedule, decoherence cost) and charged to the budget, or refused with the
//! reason. The job then runs after the container's earlier jobs (they share its qubits) and
//! completes a static duration later on the virtual clock, whatever other VHMs do with the same
//! device: containers are disjoint, so one VHM's jobs never wait for another's.

use super::caps::cap_refusal;
use super::lifecycle::bare_record;
use super::{Args, Outcome};
use crate::hypervisor::{emit, Hypervisor};
use crate::q::{pack, Job, Outcomes};

/// Host bytes a job's record costs beside its outcome words (8 bytes a shot).
const JOB_RECORD_BYTES: u64 = 128;
use crate::vhm::Wait;
use crate::HvError;
use xdv_core::cap::{rights, Object};
use xdv_core::event::{EventKind, EventSink, RemoveCause, WorkKind};
use xdv_core::VhmId;
use xdv_k::abi::{self, Hypercall, MAX_Q_PROGRAM, MAX_Q_SHOTS};

impl Hypervisor {
    pub(super) fn q_call<S: EventSink>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        vcpu: u32,
        call: Hypercall,
        a: Args,
    ) -> Result<Outcome, HvError> {
        let me = VhmId(vhm);
        let record = bare_record(call, a);
        let handle = a.u64(0);
        Ok(match call {
            Hypercall::QInfo => {
                let need = |o: &Object| *o == Object::QContainer(me);
                if let Err(e) = self.caps.require(me, handle, rights::INSPECT, need) {
                    return Ok(cap_refusal(record, handle, e));
                }
                let c = self.vhms[vhm as usize]
                    .q
                    .as_ref()
                    .expect("a live container");
                let alloc = &self.q_devices[c.device].alloc;
                let value = match a.u32(1) {
                    0 => c.physical.len() as u64,
                    1 => c.left(),
                    2 => c.spent,
                    3 => c
                        .physical
                        .iter()
                        .filter(|&&p| alloc.owner_of(p) == Some(vhm))
                        .count() as u64,
                    other => {
                        return Ok(Outcome::refused(
                            record,
                            abi::E_INVAL,
                            format!("q_info: no figure {other} (0 to 3)"),
                        ))
                    }
                };
                Outcome::ok(record, value as i64)
            }
            Hypercall::QSubmit => self.q_submit(sink, vhm, vcpu, a)?,
            Hypercall::QWait => {
                let job = match self.job_of(vhm, handle, rights::WAIT) {
                    Ok(j) => j,
                    Err(e) => return Ok(cap_refusal(record, handle, e)),
                };
                let j = self.vhms[vhm as usize]
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
            Hypercall::QResult => {
                let (ptr, len) = (a.u32(1), a.u32(2));
                let job = match self.job_of(vhm, handle, rights::RECV) {
                    Ok(j) => j,
                    Err(e) => return Ok(cap_refusal(record, handle, e)),
                };
                let c = self.vhms[vhm as usize]
                    .q
                    .as_ref()
                    .expect("a live container");
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
                        format!(
                            "the job has {} shots: {need} bytes needed, buffer is {len}",
                            j.shots
                        ),
                    ));
                }
                let bytes: Vec<u8> = j.outcomes.iter().flat_map(|w| w.to_le_bytes()).collect();
                let shots = j.shots;
                if let Err((code, reason)) = self.write_guest(vhm, vcpu, ptr, &bytes) {
                    return Ok(Outcome::refused(record, code, reason));
                }
                let c = self.vhms[vhm as usize]
                    .q
                    .as_mut()
                    .expect("a live container");
                let j = c.jobs.remove(&job).expect("present");
                self.caps
                    .delete(me, j.cap.0)
                    .expect("the job's own capability is live");
                self.record_removed(sink, vhm, RemoveCause::Drop, vec![(me, j.cap)])?;
                Outcome::ok(record, shots as i64)
            }
            other => unreachable!("{other:?} is not in the Q group"),
        })
    }

    /// The job number a handle of the caller names, with `right`.
    fn job_of(&self, vhm: u32, handle: u64, right: u32) -> Result<u32, xdv_core::cap::CapError> {
        self.own_number(vhm, handle, right, |o, me| match *o {
            Object::QJob(v, j) if v == me => Some(j),
            _ => None,
        })
    }

    fn q_submit<S: EventSink>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        vcpu: u32,
        a: Args,
    ) -> Result<Outcome, HvError> {
        let me = VhmId(vhm);
        let record = bare_record(Hypercall::QSubmit, a);
        let (handle, ptr, len, shots, vector) = (a.u64(0), a.u32(1), a.u32(2), a.u64(3), a.u32(4));
        let refuse = |code: i64, reason: String| -> Result<Outcome, HvError> {
            Ok(Outcome::refused(record.clone(), code, reason))
        };
        let need = |o: &Object| *o == Object::QContainer(me);
        if let Err(e) = self.caps.require(me, handle, rights::SUBMIT, need) {
            return Ok(cap_refusal(record.clone(), handle, e));
        }
        if !(1..=MAX_Q_SHOTS).contains(&shots) {
            return refuse(
                abi::E_INVAL,
                format!("shots must be 1 to {MAX_Q_SHOTS}, got {shots}"),
            );
        }
        let irq_vectors = self.vhms[vhm as usize].spec.k.irq_vectors;
        if vector != 0 && vector >= irq_vectors {
            return refuse(
                abi::E_INVAL,
                format!("vector {vector} does not exist (irq_vectors {irq_vectors})"),
            );
        }
        // Cheap refusals first: a full container parses nothing.
        let held_jobs = self.vhms[vhm as usize]
            .q
            .as_ref()
            .map_or(0, |c| c.jobs.len());
        if held_jobs >= abi::MAX_Q_JOBS {
            return refuse(
                abi::E_BUSY,
                format!(
                    "the container holds {} jobs not yet collected with q_result",
                    abi::MAX_Q_JOBS
                ),
            );
        }
        let (program, source) = match self.read_text(vhm, vcpu, ptr, len, MAX_Q_PROGRAM, "program")
        {
            Ok(t) => t,
            Err((code, reason)) => return refuse(code, reason),
        };
        let label = format!(
            "job{}.qasm",
            self.vhms[vhm as usize].q.as_ref().map_or(0, |c| c.next_job)
        );
        let circuit = match xdv_q::qasm::parse_limited(&source, &label, abi::MAX_Q_OPS) {
            Ok(c) => c,
            Err(e) => return refuse(abi::E_INVAL, e.to_string()),
        };
        if circuit.num_clbits() > 64 {
            return refuse(
                abi::E_INVAL,
                format!(
                    "the program has {} classical bits; a job's outcome holds at most 64",
                    circuit.num_clbits()
                ),
            );
        }
        let c = self.vhms[vhm as usize]
            .q
            .as_ref()
            .expect("a live container");
        let dev = &self.q_devices[c.device];
        let device = dev.device();
        // Decided from the circuit alone, so a replay (which runs no provider) decides alike.
        if let Err(reason) = dev.provider.accepts(&circuit) {
            return refuse(abi::E_INVAL, reason);
        }
        let plan = match xdv_q::plan::plan(&circuit, device, &dev.costs, c.physical.len()) {
            Ok(p) => p,
            Err(reason) => return refuse(abi::E_INVAL, reason),
        };
        // Logical qubits lent to a child are the child's until it stops: a job may neither act
        // on them nor route through them.
        let held = xdv_q::plan::held_qubits(&circuit);
        if let Some(l) = (0..circuit.num_qubits())
            .find(|&l| held[l] && dev.alloc.owner_of(c.physical[l]) != Some(vhm))
        {
            return refuse(
                abi::E_BUSY,
                format!("logical qubit {l} is lent to a child container"),
            );
        }
        let (Some(cost), Some(duration)) = (plan.cost(shots), plan.duration(shots)) else {
            return refuse(abi::E_QUOTA, "the job's cost overflows".into());
        };
        // Every shot costs at least one micro-unit: even an empty circuit uses the device.
        let cost = cost.max(shots);
        if cost > c.left() {
            return refuse(
                abi::E_QUOTA,
                format!(
                    "decoherence budget: the job costs {cost} µ ({} µ per shot × {shots}), {} µ left",
                    plan.shot_cost,
                    c.left()
                ),
            );
        }
        if !self.caps.has_room(me, 1) {
            return refuse(abi::E_QUOTA, "the capability table is full".into());
        }
        if let Err(reason) = self.cap_room(vhm, 1, 0) {
            return refuse(abi::E_QUOTA, reason);
        }
        // The host's own work and memory for the simulation, decided from the circuit alone
        // (a replay, which runs no provider, decides alike), are charged before it runs.
        let state = dev.provider.state_bytes(&circuit);
        let quota = self.vhms[vhm as usize].quota.memory;
        if state > quota {
            return refuse(
                abi::E_QUOTA,
                format!(
                    "memory budget: simulating {} qubits holds {state} bytes of state, over the memory_quota of {quota} bytes",
                    circuit.num_qubits()
                ),
            );
        }
        // The outcome words stay on the host until q_result: held in the memory budget.
        let job_bytes = shots * 8 + JOB_RECORD_BYTES;
        let free = self
            .memory_free(vhm)
            .saturating_sub(self.cap_growth(vhm, 1, 0));
        if self.job_growth(vhm, job_bytes) > free {
            return refuse(
                abi::E_QUOTA,
                format!(
                    "memory budget: the job's {shots} outcomes hold {job_bytes} bytes until q_result, {free} left"
                ),
            );
        }
        let work = dev.provider.work(&circuit, shots);
        let work_fuel = work.div_ceil(abi::Q_WORK_PER_FUEL);
        let fuel_left = self.vhms[vhm as usize].budget.fuel_left();
        if work_fuel > fuel_left {
            return refuse(
                abi::E_QUOTA,
                format!(
                    "fuel: simulating the job takes {work} amplitude updates ({work_fuel} fuel), {fuel_left} fuel left"
                ),
            );
        }
        // The job waits for the container's earlier jobs, then runs for `duration`.
        let queued_ns = c.busy_until.saturating_sub(self.now);
        let done_at = self.now.saturating_add(queued_ns).saturating_add(duration);
        if done_at > abi::TIME_HORIZON_NS {
            return refuse(
                abi::E_INVAL,
                format!(
                    "the job would complete at {done_at} ns, past the time horizon ({} ns)",
                    abi::TIME_HORIZON_NS
                ),
            );
        }
        if c.fail_next {
            self.vhms[vhm as usize]
                .q
                .as_mut()
                .expect("a live container")
                .fail_next = false;
            return refuse(abi::E_INVAL, "provider: injected failure".into());
        }
        let job = c.next_job;
        // A recording with the wrong number of shots (a forgery) is not trusted: zeros are
        // used instead, and the replayed `q_job_done` then differs from the recorded one.
        let fits = |w: &Vec<u64>| w.len() as u64 == shots;
        let recorded = match &self.outcomes {
            Outcomes::Live => None,
            Outcomes::Recorded(map) => Some(
                map.get(&(vhm, job))
                    .filter(|w| fits(w))
                    .cloned()
                    .unwrap_or_else(|| vec![0; shots as usize]),
            ),
            Outcomes::Resumed(map) => map.get(&(vhm, job)).filter(|w| fits(w)).cloned(),
        };
        let outcomes = match recorded {
            Some(words) => words,
            None => {
                let seed =
                    xdv_q::provider::job_seed(self.q_seed, &self.vhms[vhm as usize].name, job);
                let mut words = Vec::with_capacity(shots as usize);
                dev.provider
                    .execute(&circuit, shots, seed, &mut |bits| words.push(pack(bits)))
                    .expect("the provider accepted the circuit");
                self.provider_runs += 1;
                words
            }
        };
        let v = &mut self.vhms[vhm as usize];
        v.charge_host_work(work_fuel)
            .expect("the work's fuel was checked above");

        let c = v.q.as_mut().expect("a live container");
        c.spent += cost;
        c.own_spent += cost;
        c.next_job += 1;
        let budget_left = c.left();

        c.busy_until = done_at;
        let cap = self.mint(
            sink,
            vhm,
            Object::QJob(me, job),
            rights::INSPECT | rights::WAIT | rights::RECV,
            0,
        )?;
        self.vhms[vhm as usize]
            .q
            .as_mut()
            .expect("a live container")
            .jobs
            .insert(
                job,
                Job {
                    vcpu,
                    vector,
                    cap,
                    shots,
                    done: false,
                    outcomes,
                    waiters: Vec::new(),
                    held: job_bytes,
                },
            );
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::QJobSubmitted {
                vcpu,
                job,
                program,
                qubits: plan.qubits,
                clbits: plan.clbits,
                shots,
                cost,
                budget_left,
                queued_ns,
                duration_ns: duration,
            },
        )?;
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::HostWork {
                work: WorkKind::QSimulation { job },
                units: work,
                fuel: work_fuel,
            },
        )?;
        self.schedule_job(vhm, job, done_at);
        Ok(Outcome::ok(record.clone(), cap.0 as i64))
    }
}
