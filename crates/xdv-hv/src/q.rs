//! The Q domain inside the hypervisor: the host's devices, each VHM's container and its jobs.
//! A job's outcomes are asked of the driver at its completion (`driver.rs`): a provider runs
//! it in a live run, the trace supplies them in a replay.

use crate::cds::{Class, Target};
use crate::state::{emit, State};
use crate::step::{Await, Effect, Effects};
use crate::HvError;
use std::collections::BTreeMap;
use xdv_core::cap::{rights, Object};
use xdv_core::event::EventKind;
use xdv_core::refusal::QCarve;
use xdv_core::{CapId, Domain, Resource, VhmId};
use xdv_manifest::QSpec;
use xdv_q::device::Allocator;
use xdv_q::provider::{Costs, Device, Provider, Simulator};

/// One device of the host with its allocator. Allocator owners are VHM ids.
#[derive(Clone)]
pub(crate) struct QDevice {
    /// Shared by forks of the state: a provider is immutable.
    pub(crate) provider: std::sync::Arc<dyn Provider>,
    pub(crate) alloc: Allocator,
    /// The device's cost table, computed once: admission never does float arithmetic.
    pub(crate) costs: Costs,
}

impl QDevice {
    pub(crate) fn new(device: Device) -> Self {
        Self {
            alloc: Allocator::new(device.coupling),
            costs: device.costs(),
            provider: std::sync::Arc::new(Simulator::new(device)),
        }
    }

    pub(crate) fn device(&self) -> &Device {
        self.provider.device()
    }
}

/// A VHM's Q container.
#[derive(Clone)]
pub(crate) struct Container {
    /// Index into the host's devices.
    pub(crate) device: usize,
    /// Physical qubit of each logical qubit.
    pub(crate) physical: Vec<usize>,
    /// The capability the container and its budget are held under.
    pub(crate) cap: CapId,
    /// Decoherence budget, micro-units.
    pub(crate) budget: u64,
    /// Spent by the VHM's jobs and by its stopped children.
    pub(crate) spent: u64,
    /// Spent by the VHM's own jobs (the Resource_Table's `used`).
    pub(crate) own_spent: u64,
    /// When the container's last admitted job completes: jobs of one container run one after
    /// another (they share its qubits); jobs of different containers never wait for each other.
    pub(crate) busy_until: u64,
    /// Lent to live children.
    pub(crate) carved: u64,
    /// The next job number.
    pub(crate) next_job: u32,
    /// Jobs not yet collected with `q_result`.
    pub(crate) jobs: BTreeMap<u32, Job>,
    /// An injected provider failure waits for the next job.
    pub(crate) fail_next: bool,
}

impl Container {
    /// Budget neither spent nor lent to children.
    pub(crate) fn left(&self) -> u64 {
        self.budget - self.spent - self.carved
    }

    /// Budget conservation: spending and lending never exceed the allocation.
    pub(crate) fn conserved(&self) -> bool {
        self.spent
            .checked_add(self.carved)
            .is_some_and(|used| used <= self.budget)
    }
}

/// One admitted job.
#[derive(Clone)]
pub(crate) struct Job {
    /// The submitting vCPU (it receives the completion interrupt).
    pub(crate) vcpu: u32,
    /// Completion interrupt vector, 0 for none.
    pub(crate) vector: u32,
    pub(crate) cap: CapId,
    pub(crate) shots: u64,
    pub(crate) done: bool,
    /// One word per shot, bit c = classical bit c: empty until the job is done.
    pub(crate) outcomes: Vec<u64>,
    /// What the job runs, until its completion asks the driver for its outcomes: then dropped.
    /// A container holds at most `MAX_Q_JOBS` jobs of at most `MAX_Q_OPS` operations.
    pub(crate) run: Option<(xdv_q::Circuit, u64)>,
    /// Host bytes the job keeps until `q_result` takes it (its circuit, outcome words and record),
    /// charged to its VHM's memory budget beyond a free allowance (`footprint.rs`).
    pub(crate) held: u64,
    /// vCPUs parked in `q_wait` on it.
    pub(crate) waiters: Vec<u32>,
}

/// Packs one shot's classical bits into a word (the caller checked there are at most 64).
pub(crate) fn pack(bits: &[bool]) -> u64 {
    debug_assert!(bits.len() <= 64);
    bits.iter()
        .enumerate()
        .fold(0, |w, (i, &b)| w | (u64::from(b) << i))
}

impl State {
    /// Places a new VHM's container: on its device, or carved out of its parent's container,
    /// with the budget lent from the parent's. The caller checked that it fits
    /// ([`State::q_fits`] or the manifest check).
    pub(crate) fn place_container(
        &mut self,
        sink: &mut Effects,
        id: VhmId,
        q: &QSpec,
    ) -> Result<(), HvError> {
        let device = self
            .device_index(&q.device.0)
            .expect("the device was checked");
        let parent = self.vhms[id].parent;
        let pool = parent.filter(|&p| self.vhms[p].q.is_some());
        let physical = self.q_devices[device]
            .alloc
            .allocate_in(id.0, q.qubits as usize, pool.map(|p| p.0))
            .expect("the placement was checked");
        if let Some(p) = pool {
            let pc = self.vhms[p].q.as_mut().expect("pool has a container");
            assert!(pc.left() >= q.budget, "the budget was checked");
            pc.carved += q.budget;
        }
        let now = self.now;
        emit(
            sink,
            &mut self.events,
            now,
            Some(id),
            EventKind::QContainerPlaced {
                device: q.device.0.clone(),
                physical: physical.iter().map(|&p| p as u32).collect(),
                from_parent: pool.is_some(),
            },
        );
        let cap = self.mint(
            sink,
            id,
            Object::QContainer(id),
            rights::INSPECT | rights::DERIVE | rights::SUBMIT,
            0,
        )?;
        for resource in [Resource::Qubits(q.qubits), Resource::Decoherence(q.budget)] {
            emit(
                sink,
                &mut self.events,
                now,
                Some(id),
                EventKind::Allocated {
                    domain: Domain::Q,
                    resource,
                    cap,
                },
            );
        }
        self.vhms[id].q = Some(Container {
            device,
            physical,
            cap,
            budget: q.budget,
            spent: 0,
            own_spent: 0,
            busy_until: 0,
            carved: 0,
            next_job: 0,
            jobs: BTreeMap::new(),
            fail_next: false,
        });
        Ok(())
    }

    /// Whether a child of `parent` with `qubits` qubits and `budget` fits the parent's container
    /// now; the reason when not.
    pub(crate) fn q_fits(&self, parent: VhmId, qubits: u32, budget: u64) -> Result<(), QCarve> {
        let Some(c) = &self.vhms[parent].q else {
            return Err(QCarve::NoContainer);
        };
        if budget > c.left() {
            return Err(QCarve::Decoherence {
                asked: budget,
                left: c.left(),
            });
        }
        let mut trial = self.q_devices[c.device].alloc.clone();
        trial
            .allocate_in(self.vhms.next_id().0, qubits as usize, Some(parent.0))
            .map(|_| ())
            .map_err(|_| QCarve::Qubits { asked: qubits })
    }

    /// Releases a stopping VHM's container: pending jobs are dropped, the qubits are reset and go
    /// back to their pool, the budget's unspent part returns to the parent's container and the
    /// spent part stays spent there.
    pub(crate) fn release_container(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
    ) -> Result<(), HvError> {
        let Some(c) = self.vhms[vhm].q.take() else {
            return Ok(());
        };
        let now = self.now;
        for (resource, used) in [
            (Resource::Decoherence(c.budget), Some(c.own_spent)),
            (Resource::Qubits(c.physical.len() as u32), None),
        ] {
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::Released {
                    domain: Domain::Q,
                    resource,
                    cap: c.cap,
                    used,
                },
            );
        }
        let physical = self.q_devices[c.device].alloc.release(vhm.0);
        debug_assert_eq!(
            {
                let mut p = c.physical.clone();
                p.sort_unstable();
                p
            },
            physical,
            "a container releases exactly its qubits"
        );
        emit(
            sink,
            &mut self.events,
            now,
            Some(vhm),
            EventKind::QScrubbed {
                device: self.q_devices[c.device].device().name.to_string(),
                physical: physical.iter().map(|&p| p as u32).collect(),
            },
        );
        if let Some(p) = self.vhms[vhm].parent {
            if let Some(pc) = self.vhms[p].q.as_mut() {
                pc.carved -= c.budget;
                pc.spent += c.spent;
                debug_assert!(pc.conserved());
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(p),
                    EventKind::QReturned {
                        child: vhm,
                        qubits: c.physical.len() as u32,
                        budget: c.budget,
                        used: c.spent,
                    },
                );
            }
        }
        Ok(())
    }

    /// A job's completion time came: its provider runs at the edge ([`Effect::ExecuteQJob`]);
    /// [`State::finish_job`] takes its outcomes.
    pub(crate) fn complete_job(&mut self, sink: &mut Effects, vhm: VhmId, job: u32) {
        let c = self.vhms[vhm]
            .q
            .as_mut()
            .expect("a live job has a container");
        let device = c.device;
        let j = c.jobs.get_mut(&job).expect("a live job exists");
        let (circuit, seed) = j.run.take().expect("a job completes once");
        sink.push(Effect::ExecuteQJob {
            vhm,
            job,
            shots: j.shots,
            device,
            circuit,
            seed,
        });
        self.await_edge(Await::QJob { vhm, job });
    }

    /// A job's outcomes came back: it is done, its waiters wake and its interrupt is raised.
    pub(crate) fn finish_job(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        job: u32,
        mut outcomes: Vec<u64>,
    ) -> Result<(), HvError> {
        let c = self.vhms[vhm]
            .q
            .as_mut()
            .expect("a live job has a container");
        let j = c.jobs.get_mut(&job).expect("a live job exists");
        // A driver's outcomes of another length (a forged recording) are not trusted: zeros
        // are used instead, and a replay's `q_job_done` then differs from the recorded one.
        if outcomes.len() as u64 != j.shots {
            outcomes = vec![0; usize::try_from(j.shots).expect("shots are bounded")];
        }
        j.done = true;
        j.outcomes.clone_from(&outcomes);
        let (vcpu, vector, waiters) = (j.vcpu, j.vector, std::mem::take(&mut j.waiters));
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::QJobDone { job, outcomes },
        );
        for w in waiters {
            self.wake_now(vhm, w);
        }
        if vector != 0 {
            self.raise_irq(sink, vhm, vcpu, vector, i64::from(job))?;
        }
        Ok(())
    }

    /// The provider of device `device`, which runs its jobs at the edge.
    pub(crate) fn q_provider(&self, device: usize) -> &dyn xdv_q::provider::Provider {
        self.q_devices[device].provider.as_ref()
    }

    /// Queues a job's completion.
    pub(crate) fn schedule_job(&mut self, vhm: VhmId, job: u32, at: u64) {
        self.cds.push(at, Class::QDone, Target::QJob { vhm, job });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_bit_c_at_position_c() {
        assert_eq!(pack(&[true, false, true]), 0b101);
        assert_eq!(pack(&[]), 0);
    }
}
