//! The hypervisor state and its event loop.

use crate::cds::{Cds, Class, Target};
use crate::vhm::{Next, VcpuSlot, VcpuState, Vhm};
use crate::HvError;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;
use xdv_core::event::{Event, EventKind, EventSink, ExitReason, FaultClass, SinkError};
use xdv_core::{CapId, Domain, Hash32, Resource, VhmId};
use xdv_k::{GuestModule, KEngine, Stop, Vcpu};
use xdv_manifest::{HostSpec, LoadedModule, Manifest, VhmSpec};

/// How one VHM ended, for `xdv run`'s summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VhmSummary {
    /// VHM name.
    pub name: String,
    /// Why it stopped.
    pub exit: String,
    /// Exit code: the `exit` argument, 0 when halted, -1 on a fault or time limit.
    pub code: i32,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Virtual time at which it stopped.
    pub end_ns: u64,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Per-VHM results in creation order.
    pub vhms: Vec<VhmSummary>,
    /// Events emitted.
    pub events: u64,
    /// Virtual time when the run ended.
    pub end_ns: u64,
}

/// The hypervisor: the host's VHMs, the CDS queue and the virtual clock.
pub struct Hypervisor {
    pub(crate) engine: KEngine,
    pub(crate) host: HostSpec,
    pub(crate) seed: u64,
    pub(crate) modules: Vec<(Hash32, GuestModule)>,
    pub(crate) specs: Vec<(VhmSpec, usize)>,
    pub(crate) vhms: Vec<Vhm>,
    pub(crate) cds: Cds,
    pub(crate) now: u64,
    pub(crate) events: u64,
}

/// A module error placed at the manifest line that names the module.
fn module_error(file: &str, index: usize, spec: &VhmSpec, e: xdv_k::KError) -> HvError {
    let at = spec.k.module_at;
    HvError::Module {
        place: format!("{file}:{}:{}: vhm[{index}].k.module", at.line, at.col),
        module: spec.k.module.clone(),
        vhm: spec.name.clone(),
        message: e.to_string(),
    }
}

/// Emits one event at the hypervisor's current time.
pub(crate) fn emit<S: EventSink>(
    sink: &mut S,
    events: &mut u64,
    time_ns: u64,
    vhm: Option<u32>,
    kind: EventKind,
) -> Result<(), SinkError> {
    *events += 1;
    sink.emit(&Event {
        time_ns,
        vhm: vhm.map(VhmId),
        kind,
    })
}

impl Hypervisor {
    /// Compiles the manifest's modules (each distinct module once) and checks them against the
    /// ABI. `modules` are in VHM order, as [`Manifest::load_modules`] returns them.
    pub fn new(manifest: &Manifest, modules: &[LoadedModule], seed: u64) -> Result<Self, HvError> {
        let engine = KEngine::new();
        let mut compiled: Vec<(Hash32, GuestModule)> = Vec::new();
        let mut specs = Vec::with_capacity(manifest.vhms.len());
        for (spec, m) in manifest.vhms.iter().zip(modules) {
            let hash = Hash32::of(&m.bytes);
            let idx = match compiled
                .iter()
                .position(|(h, g)| *h == hash && g.entry_name() == spec.k.entry)
            {
                Some(i) => i,
                None => {
                    let g = GuestModule::new(&engine, &m.bytes, &spec.k.entry)
                        .map_err(|e| module_error(&manifest.file, specs.len(), spec, e))?;
                    compiled.push((hash, g));
                    compiled.len() - 1
                }
            };
            specs.push((spec.clone(), idx));
        }
        Ok(Self {
            engine,
            host: manifest.host.clone(),
            seed,
            modules: compiled,
            specs,
            vhms: Vec::new(),
            cds: Cds::default(),
            now: 0,
            events: 0,
        })
    }

    /// Instantiates every vCPU once without running it, to report instantiation errors (memory
    /// over the limit, start functions) before a run.
    pub fn check_instantiation(&self, file: &str) -> Result<(), HvError> {
        for (i, (spec, m)) in self.specs.iter().enumerate() {
            Vcpu::new(&self.engine, &self.modules[*m].1, spec.k.memory_limit)
                .map_err(|e| module_error(file, i, spec, e))?;
        }
        Ok(())
    }

    /// Runs the host to completion: creates every manifest VHM at time 0 in manifest order, then
    /// processes events in the CDS order until none is left or the time limit is reached.
    pub fn run<S: EventSink>(&mut self, sink: &mut S) -> Result<RunSummary, HvError> {
        emit(
            sink,
            &mut self.events,
            0,
            None,
            EventKind::HostStarted {
                seed: self.seed,
                vhms: self.specs.len() as u32,
            },
        )?;
        for i in 0..self.specs.len() {
            let (spec, m) = self.specs[i].clone();
            self.create_vhm(sink, spec, m)?;
        }
        while let Some((key, target)) = self.cds.pop() {
            // Superseded events (a woken sleeper's old deadline, a stopped VHM's pending stop)
            // are dropped without touching the clock.
            if !self.is_live(target) {
                continue;
            }
            if let Some(limit) = self.host.time_limit_ns {
                if key.time > limit {
                    self.now = limit;
                    break;
                }
            }
            debug_assert!(key.time >= self.now, "the virtual clock never goes back");
            self.now = key.time;
            self.step(sink, target)?;
        }
        let mut stopped = 0;
        for v in 0..self.vhms.len() {
            if self.vhms[v].running() {
                stopped += 1;
                self.terminate(sink, v as u32, ExitReason::TimeLimit)?;
            }
        }
        emit(
            sink,
            &mut self.events,
            self.now,
            None,
            EventKind::HostFinished { stopped },
        )?;
        Ok(self.summary())
    }

    fn summary(&self) -> RunSummary {
        let vhms = self
            .vhms
            .iter()
            .map(|v| {
                let (reason, end) = v.exit.unwrap_or((ExitReason::TimeLimit, self.now));
                let code = match reason {
                    ExitReason::Exit(c) => c,
                    ExitReason::Halted => 0,
                    _ => -1,
                };
                VhmSummary {
                    name: v.name.clone(),
                    exit: reason.to_string(),
                    code,
                    fuel_used: v.fuel_used,
                    end_ns: end,
                }
            })
            .collect();
        RunSummary {
            vhms,
            events: self.events,
            end_ns: self.now,
        }
    }

    /// Creates a VHM at the current time: records it, allocates its fuel, memory and vCPUs under
    /// fresh capabilities, instantiates each vCPU and queues its start. An instantiation failure
    /// faults the new VHM only.
    pub fn create_vhm<S: EventSink>(
        &mut self,
        sink: &mut S,
        spec: VhmSpec,
        module: usize,
    ) -> Result<VhmId, HvError> {
        let id = self.vhms.len() as u32;
        let now = self.now;
        let ev = &mut self.events;
        emit(
            sink,
            ev,
            now,
            Some(id),
            EventKind::VhmCreated {
                name: spec.name.clone(),
                parent: None,
                level: 1,
                weight: spec.policy.weight,
                module: self.modules[module].0,
            },
        )?;
        let mut allocations = Vec::with_capacity(2 + spec.k.vcpus as usize);
        allocations.push((Resource::Fuel(spec.policy.fuel_quota), CapId::new(1, 1)));
        allocations.push((Resource::Memory(spec.policy.memory_quota), CapId::new(2, 1)));
        for i in 0..spec.k.vcpus {
            allocations.push((Resource::Vcpu(i), CapId::new(3 + i, 1)));
        }
        for (resource, cap) in &allocations {
            emit(
                sink,
                ev,
                now,
                Some(id),
                EventKind::Allocated {
                    domain: Domain::K,
                    resource: *resource,
                    cap: *cap,
                },
            )?;
        }
        let mut seed_material = Vec::with_capacity(16 + spec.name.len());
        seed_material.extend_from_slice(b"xdv-vhm-random");
        seed_material.extend_from_slice(&self.seed.to_le_bytes());
        seed_material.extend_from_slice(spec.name.as_bytes());
        let mut vhm = Vhm {
            name: spec.name.clone(),
            vcpus: Vec::with_capacity(spec.k.vcpus as usize),
            allocations,
            fuel_used: 0,
            timer: None,
            timer_generation: 0,
            rng: ChaCha20Rng::from_seed(*blake3::hash(&seed_material).as_bytes()),
            exit: None,
            spec,
        };
        let mut failure = None;
        for _ in 0..vhm.spec.k.vcpus {
            match Vcpu::new(
                &self.engine,
                &self.modules[module].1,
                vhm.spec.k.memory_limit,
            ) {
                Ok(vcpu) => vhm.vcpus.push(VcpuSlot {
                    vcpu,
                    state: VcpuState::Pending(Next::Start),
                    generation: 0,
                    anchor_time: now,
                    anchor_fuel: 0,
                    fuel: 0,
                    slice_used: 0,
                    ahead: 0,
                    irq_pending: 0,
                    irq_args: vec![0; vhm.spec.k.irq_vectors as usize],
                }),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        let n = vhm.vcpus.len() as u32;
        self.vhms.push(vhm);
        if let Some(detail) = failure {
            self.fault(
                sink,
                id,
                None,
                FaultClass::Trap,
                format!("instantiation failed: {detail}"),
            )?;
        } else {
            for i in 0..n {
                self.cds.push(
                    now,
                    Class::Start,
                    Target::Vcpu {
                        vhm: id,
                        vcpu: i,
                        generation: 0,
                    },
                );
            }
        }
        Ok(VhmId(id))
    }

    /// `true` when a queued event still applies: its VHM runs and nothing superseded it.
    fn is_live(&self, target: Target) -> bool {
        match target {
            Target::Timer { vhm, generation } => {
                let v = &self.vhms[vhm as usize];
                v.running() && v.timer_generation == generation && v.timer.is_some()
            }
            Target::Vcpu {
                vhm,
                vcpu,
                generation,
            } => {
                let v = &self.vhms[vhm as usize];
                let s = &v.vcpus[vcpu as usize];
                v.running() && s.generation == generation && s.state != VcpuState::Halted
            }
        }
    }

    /// Applies one live event.
    fn step<S: EventSink>(&mut self, sink: &mut S, target: Target) -> Result<(), HvError> {
        match target {
            Target::Timer { vhm, generation } => {
                let v = &mut self.vhms[vhm as usize];
                let Some(t) = v.timer.as_mut() else {
                    return Ok(());
                };
                if v.vcpus[t.vcpu as usize].state == VcpuState::Halted {
                    // The timer belongs to the vCPU that armed it and stops when that vCPU halts.
                    v.timer = None;
                    return Ok(());
                }
                t.ticks += 1;
                t.next += t.period;
                let (tick, next, vcpu) = (t.ticks, t.next, t.vcpu);
                self.cds
                    .push(next, Class::Timer, Target::Timer { vhm, generation });
                emit(
                    sink,
                    &mut self.events,
                    self.now,
                    Some(vhm),
                    EventKind::TimerFired { tick },
                )?;
                self.raise_irq(sink, vhm, vcpu, xdv_k::abi::TIMER_VECTOR, tick as i64)?;
            }
            Target::Vcpu { vhm, vcpu, .. } => {
                let slot = &mut self.vhms[vhm as usize].vcpus[vcpu as usize];
                slot.ahead = 0;
                let next = match std::mem::replace(&mut slot.state, VcpuState::Running) {
                    VcpuState::Pending(next) => next,
                    VcpuState::Parked { .. } => Next::Wake { interrupted: false },
                    VcpuState::Halted | VcpuState::Running => {
                        unreachable!("is_live admits only pending or parked vCPUs")
                    }
                };
                self.handle(sink, vhm, vcpu, next)?;
            }
        }
        Ok(())
    }

    fn handle<S: EventSink>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        vcpu: u32,
        next: Next,
    ) -> Result<(), HvError> {
        let now = self.now;
        match next {
            Next::Start => {
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::VcpuStarted { vcpu },
                )?;
                self.dispatch(sink, vhm, vcpu)
            }
            Next::Wake { interrupted } => {
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::VcpuWoken { vcpu, interrupted },
                )?;
                let slot = &mut self.vhms[vhm as usize].vcpus[vcpu as usize];
                slot.anchor_time = now;
                slot.anchor_fuel = slot.fuel;
                slot.vcpu.complete(i64::from(interrupted));
                self.dispatch(sink, vhm, vcpu)
            }
            Next::FuelOut => {
                let quota = self.vhms[vhm as usize].spec.policy.fuel_quota;
                self.fault(
                    sink,
                    vhm,
                    Some(vcpu),
                    FaultClass::FuelExhausted,
                    format!("fuel quota of {quota} used up"),
                )
            }
            Next::Stopped(Stop::Preempted) => {
                let slot = &mut self.vhms[vhm as usize].vcpus[vcpu as usize];
                let fuel = std::mem::take(&mut slot.slice_used);
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::SliceEnded { vcpu, fuel },
                )?;
                self.dispatch(sink, vhm, vcpu)
            }
            Next::Stopped(Stop::Returned { from_irq: true }) => {
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::IrqReturned { vcpu },
                )?;
                self.dispatch(sink, vhm, vcpu)
            }
            Next::Stopped(Stop::Returned { from_irq: false }) => {
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::VcpuHalted { vcpu },
                )?;
                let v = &mut self.vhms[vhm as usize];
                v.vcpus[vcpu as usize].state = VcpuState::Halted;
                if v.vcpus.iter().all(|s| s.state == VcpuState::Halted) {
                    self.terminate(sink, vhm, ExitReason::Halted)?;
                }
                Ok(())
            }
            Next::Stopped(Stop::Trap(msg)) => {
                self.fault(sink, vhm, Some(vcpu), FaultClass::Trap, msg)
            }
            Next::Stopped(Stop::Hypercall(req)) => self.hypercall(sink, vhm, vcpu, req),
        }
    }

    /// The vCPU's clock, from its fuel total since the anchor and its VHM's weight.
    pub(crate) fn clock(&self, vhm: u32, vcpu: u32) -> u64 {
        let v = &self.vhms[vhm as usize];
        let s = &v.vcpus[vcpu as usize];
        let ns = u128::from(s.fuel - s.anchor_fuel) * u128::from(self.host.ns_per_fuel)
            / u128::from(v.spec.policy.weight);
        s.anchor_time + u64::try_from(ns).unwrap_or(u64::MAX / 2)
    }

    /// Runs a vCPU from the current time until its next stop and queues that stop at the vCPU's
    /// new clock. Pending interrupts are delivered first (a deterministic point).
    pub(crate) fn dispatch<S: EventSink>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        vcpu: u32,
    ) -> Result<(), HvError> {
        let now = self.now;
        let v = &mut self.vhms[vhm as usize];
        let slot = &mut v.vcpus[vcpu as usize];
        if slot.irq_pending != 0 && !slot.vcpu.in_irq() {
            let vector = slot.irq_pending.trailing_zeros();
            slot.irq_pending &= !(1 << vector);
            let arg = slot.irq_args[vector as usize];
            if slot.vcpu.enter_irq(vector, arg) {
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::IrqDelivered { vcpu, vector, arg },
                )?;
            }
        }
        let v = &mut self.vhms[vhm as usize];
        let quota_left = v.spec.policy.fuel_quota - v.fuel_used;
        let slot = &mut v.vcpus[vcpu as usize];
        let slice_left = self.host.slice_fuel.saturating_sub(slot.slice_used).max(1);
        let need = slot.vcpu.min_fuel();
        let budget = slice_left.max(need).min(quota_left);
        let next = if budget < need {
            Next::FuelOut
        } else {
            let (used, stop) = slot.vcpu.run(budget);
            slot.fuel += used;
            slot.slice_used += used;
            slot.ahead = used;
            v.fuel_used += used;
            debug_assert!(
                v.fuel_used <= v.spec.policy.fuel_quota,
                "fuel quota overrun"
            );
            match stop {
                Stop::Preempted if v.fuel_used >= v.spec.policy.fuel_quota => Next::FuelOut,
                stop => Next::Stopped(stop),
            }
        };
        let class = match &next {
            Next::Start => Class::Start,
            Next::Wake { .. } => Class::Wake,
            Next::FuelOut | Next::Stopped(Stop::Trap(_)) => Class::Fault,
            Next::Stopped(Stop::Hypercall(_)) => Class::Hypercall,
            Next::Stopped(Stop::Returned { .. }) => Class::Returned,
            Next::Stopped(Stop::Preempted) => Class::SliceEnd,
        };
        let generation = slot.generation;
        slot.state = VcpuState::Pending(next);
        let at = self.clock(vhm, vcpu);
        self.cds.push(
            at,
            class,
            Target::Vcpu {
                vhm,
                vcpu,
                generation,
            },
        );
        Ok(())
    }

    /// Makes `vector` pending on a vCPU and wakes it if parked. Dropped (and recorded) when the
    /// guest has no interrupt handler.
    pub(crate) fn raise_irq<S: EventSink>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        vcpu: u32,
        vector: u32,
        arg: i64,
    ) -> Result<(), HvError> {
        let now = self.now;
        let slot = &mut self.vhms[vhm as usize].vcpus[vcpu as usize];
        if slot.state == VcpuState::Halted {
            return Ok(());
        }
        if !slot.vcpu.has_irq_handler() {
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::IrqDropped { vcpu, vector },
            )?;
            return Ok(());
        }
        slot.irq_pending |= 1 << vector;
        slot.irq_args[vector as usize] = arg;
        emit(
            sink,
            &mut self.events,
            now,
            Some(vhm),
            EventKind::IrqRaised { vcpu, vector, arg },
        )?;
        if let VcpuState::Parked { .. } = slot.state {
            slot.generation += 1;
            slot.state = VcpuState::Pending(Next::Wake { interrupted: true });
            self.cds.push(
                now,
                Class::Wake,
                Target::Vcpu {
                    vhm,
                    vcpu,
                    generation: slot.generation,
                },
            );
        }
        Ok(())
    }

    /// Records a fault and stops the VHM.
    pub(crate) fn fault<S: EventSink>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        vcpu: Option<u32>,
        class: FaultClass,
        detail: String,
    ) -> Result<(), HvError> {
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::Fault {
                class,
                vcpu,
                detail,
            },
        )?;
        self.terminate(sink, vhm, ExitReason::Fault(class))
    }

    /// Stops a VHM: halts its vCPUs, disarms its timer, releases its resources in reverse
    /// allocation order and records its exit. Nothing of any other VHM is touched.
    pub(crate) fn terminate<S: EventSink>(
        &mut self,
        sink: &mut S,
        vhm: u32,
        reason: ExitReason,
    ) -> Result<(), HvError> {
        let now = self.now;
        let v = &mut self.vhms[vhm as usize];
        debug_assert!(v.running(), "a VHM terminates once");
        for s in &mut v.vcpus {
            s.state = VcpuState::Halted;
            s.generation += 1;
            v.fuel_used -= std::mem::take(&mut s.ahead);
        }
        v.timer = None;
        v.timer_generation += 1;
        v.exit = Some((reason, now));
        let fuel_used = v.fuel_used;
        for (resource, cap) in v.allocations.iter().rev() {
            let used = matches!(resource, Resource::Fuel(_)).then_some(fuel_used);
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::Released {
                    domain: Domain::K,
                    resource: *resource,
                    cap: *cap,
                    used,
                },
            )?;
        }
        emit(
            sink,
            &mut self.events,
            now,
            Some(vhm),
            EventKind::VhmExited { reason, fuel_used },
        )?;
        Ok(())
    }
}
