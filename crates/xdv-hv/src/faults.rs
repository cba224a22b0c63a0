//! Fault policies and fault injection.
//!
//! Every fault stops the faulting VHM and reclaims what it held (see
//! [`State::terminate`](crate::State)); its policy then decides what follows: nothing
//! (`kill`), a fresh incarnation from the same spec (`restart`, at most `max_restarts` times),
//! or an interrupt to the parent (`notify-parent`). Injected faults (`[[fault]]`, `xdv run
//! --chaos`) fire at a virtual time or an event count and go through exactly the same paths as
//! real ones.

use crate::cds::{Class, Target};
use crate::state::{emit, quota_of, State};
use crate::step::Effects;
use crate::HvError;
use xdv_core::event::{EventKind, ExitReason, FaultClass};
use xdv_core::refusal::{DecoherenceCause, FaultDetail, QCarve, RestartRefusal};
use xdv_core::VhmId;
use xdv_manifest::{FaultPolicy, FaultTrigger, InjectedFault};

impl State {
    /// Queues the manifest's time-triggered faults (their VHMs exist: all are created at 0).
    pub(crate) fn queue_injected_faults(&mut self, ids: &[VhmId]) {
        self.fault_targets = self.faults.iter().map(|f| ids[f.vhm]).collect();
        for (i, f) in self.faults.iter().enumerate() {
            if let FaultTrigger::AtNs(t) = f.trigger {
                self.cds.push(
                    t,
                    Class::Fault,
                    Target::Inject {
                        vhm: self.fault_targets[i],
                        index: i as u32,
                    },
                );
            }
        }
    }

    /// Fires the event-count faults whose count has been reached, in declaration order.
    pub(crate) fn fire_counted_faults(&mut self, sink: &mut Effects) -> Result<(), HvError> {
        if self.events < self.next_counted_fault {
            return Ok(());
        }
        for i in 0..self.faults.len() {
            if let FaultTrigger::AfterEvents(n) = self.faults[i].trigger {
                if !self.fired[i] && self.events >= n {
                    self.inject(sink, i)?;
                }
            }
        }
        self.next_counted_fault = self.next_count_threshold();
        Ok(())
    }

    /// The smallest event count an unfired count-triggered fault waits for (`u64::MAX`: none), so
    /// the scheduler loop checks one number per step.
    pub(crate) fn next_count_threshold(&self) -> u64 {
        self.faults
            .iter()
            .zip(&self.fired)
            .filter_map(|(f, fired)| match f.trigger {
                FaultTrigger::AfterEvents(n) if !fired => Some(n),
                _ => None,
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Fires injected fault `i` into its VHM, if that VHM still runs.
    /// `true` when the VHM the `i`-th injected fault targets still runs.
    pub(crate) fn inject_target_running(&self, i: u32) -> bool {
        self.fault_targets
            .get(i as usize)
            .is_some_and(|&v| self.vhms[v].running())
    }

    pub(crate) fn inject(&mut self, sink: &mut Effects, i: usize) -> Result<(), HvError> {
        if self.fired[i] {
            return Ok(());
        }
        self.fired[i] = true;
        let vhm = self.fault_targets[i];
        let class = self.faults[i].class;
        let name = class.name();
        let running = self.vhms[vhm].running();
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::FaultInjected {
                index: i as u32,
                class: name.into(),
                stopped: !running,
            },
        );
        if !running {
            return Ok(());
        }
        let detail = FaultDetail::Injected { index: i as u32 };
        match class {
            InjectedFault::Trap => self.fault(sink, vhm, None, FaultClass::Trap, detail),
            InjectedFault::FuelExhausted => {
                self.fault(sink, vhm, None, FaultClass::FuelExhausted, detail)
            }
            InjectedFault::BadHypercall => {
                self.fault(sink, vhm, None, FaultClass::BadHypercall, detail)
            }
            InjectedFault::Kill => self.terminate(sink, vhm, ExitReason::Killed),
            InjectedFault::Coherence => {
                for w in self.vhms[vhm].windows.clone() {
                    if let Some(h) = self.phi.held.get_mut(&w) {
                        h.state.decohere();
                        emit(
                            sink,
                            &mut self.events,
                            self.now,
                            Some(vhm),
                            EventKind::PhiDecohered {
                                window: w,
                                cause: DecoherenceCause::Injected { index: i as u32 },
                            },
                        );
                    }
                }
                Ok(())
            }
            InjectedFault::QProvider => {
                if let Some(c) = self.vhms[vhm].q.as_mut() {
                    c.fail_next = true;
                }
                Ok(())
            }
        }
    }

    /// Applies the faulted VHM's policy after it stopped.
    pub(crate) fn after_fault(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        reason: ExitReason,
    ) -> Result<(), HvError> {
        let v = &self.vhms[vhm];
        match v.spec.policy.on_fault {
            FaultPolicy::Kill => Ok(()),
            FaultPolicy::NotifyParent => {
                let Some(p) = v.parent else { return Ok(()) };
                let Some(vector) = self.vhms[p].spec.k.fault_vector else {
                    return Ok(());
                };
                self.raise_irq(sink, p, 0, vector, reason.wait_value())
            }
            FaultPolicy::Restart => self.restart(sink, vhm),
        }
    }

    /// Creates the VHM again from its spec, under a new name, if its policy still allows and
    /// everything it needs is free again; records the attempt either way.
    fn restart(&mut self, sink: &mut Effects, vhm: VhmId) -> Result<(), HvError> {
        let v = &self.vhms[vhm];
        let attempt = v.restarts + 1;
        let (parent, module) = (v.parent, v.module);
        if attempt > v.spec.policy.max_restarts {
            emit(
                sink,
                &mut self.events,
                self.now,
                Some(vhm),
                EventKind::RestartRefused {
                    reason: RestartRefusal::MaxRestarts {
                        max: v.spec.policy.max_restarts,
                    },
                },
            );
            return Ok(());
        }
        let mut spec = v.spec.clone();
        if let Some(p) = parent {
            if !self.vhms[p].running() {
                return Ok(());
            }
        }
        let quota = match parent {
            Some(_) => v.quota,
            None => quota_of(&spec),
        };
        if let Some(reason) = self.restart_blocker(vhm, &quota) {
            emit(
                sink,
                &mut self.events,
                self.now,
                Some(vhm),
                EventKind::RestartRefused { reason },
            );
            return Ok(());
        }
        let base = spec.name.split('#').next().unwrap_or_default().to_string();
        spec.name = self.unique_name(&base);
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::Restarting {
                attempt,
                name: spec.name.clone(),
            },
        );
        let (id, _) = self.create_vhm(sink, spec, module, parent, quota)?;
        self.vhms[id].restarts = attempt;
        // A manifest VHM gets back its capabilities to the manifest's extra modules.
        let extra = self
            .specs
            .iter()
            .find(|(s, _, _)| s.name == base)
            .map(|(_, _, e)| e.clone())
            .unwrap_or_default();
        for e in extra {
            if !self.vhms[id].running() {
                break;
            }
            let hash = self.modules.hash(e);
            self.mint(
                sink,
                id,
                xdv_core::cap::Object::Module(hash),
                xdv_core::cap::rights::INSPECT
                    | xdv_core::cap::rights::DERIVE
                    | xdv_core::cap::rights::TRANSFER
                    | xdv_core::cap::rights::SPAWN,
                0,
            )?;
        }
        Ok(())
    }

    /// Why a restart cannot happen now: the parent's budget, the container's qubits or the
    /// windows are no longer free.
    fn restart_blocker(
        &self,
        vhm: VhmId,
        quota: &xdv_core::budget::Quota,
    ) -> Option<RestartRefusal> {
        let v = &self.vhms[vhm];
        if let Some(p) = v.parent {
            if let Err(e) = self.vhms[p].budget.can_carve(quota) {
                return Some(RestartRefusal::ParentBudget(e));
            }
        }
        if let Some(q) = &v.spec.q {
            let d = self.device_index(&q.device.0)?;
            let pool = v.parent.filter(|&p| self.vhms[p].q.is_some());
            if let Some(p) = pool {
                if let Err(e) = self.q_fits(p, q.qubits, q.budget) {
                    return Some(RestartRefusal::Qubits(e));
                }
            } else {
                let mut trial = self.q_devices[d].alloc.clone();
                if trial.allocate(u32::MAX, q.qubits as usize).is_err() {
                    return Some(RestartRefusal::Qubits(QCarve::Qubits { asked: q.qubits }));
                }
            }
        }
        let parent_windows = v
            .parent
            .map(|p| self.vhms[p].windows.clone())
            .unwrap_or_default();
        let mut table = self.phi.table.clone();
        for req in &v.spec.phi {
            let (spec, parent) = crate::phi::resolve(&table, req, &parent_windows);
            if v.parent.is_some() && parent.is_none() {
                return Some(RestartRefusal::NoParentWindow {
                    t0: req.t0,
                    t1: req.t1,
                });
            }
            if let Err(e) = table.allocate(u32::MAX, spec, parent) {
                return Some(RestartRefusal::Window(crate::phi::window_refusal(
                    &e,
                    spec.shared,
                )));
            }
        }
        None
    }
}
