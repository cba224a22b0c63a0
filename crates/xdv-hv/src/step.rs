//! The core as a state machine: [`State::step`] takes one [`Input`] and returns the [`Effects`]
//! it causes. It does no I/O and holds no engine: running a vCPU, reading or writing guest
//! memory, compiling a module, sampling a Q job and measuring Φ captures are effects that the
//! driver carries out at the edge (`driver.rs`), and whose results come back as the next input.
//!
//! One step applies inputs until the core awaits an answer from the edge (a vCPU run, a
//! decoded hypercall, a Q job's outcomes, Φ captures, a loaded module) or the run is over. The
//! CDS queue lives in the state, so between answers the core pops and applies its own queued
//! events: the timer, injected faults, job completions and vCPU stops all happen inside `step`.

use crate::cds::Target;
use crate::hypercalls::{Outcome, Pending};
use crate::state::State;
use crate::HvError;
use xdv_core::event::Event;
use xdv_core::{Hash32, VhmId};
use xdv_k::abi::Hypercall;
use xdv_k::{Call, Request, Stop};
use xdv_q::Circuit;

/// What the edge tells the core.
#[derive(Debug)]
pub enum Input {
    /// Begin the run: create the manifest's VHMs and channels at time 0.
    Start,
    /// The vCPU of the last [`Effect::RunVcpu`] stopped.
    VcpuStopped {
        /// Its VHM.
        vhm: VhmId,
        /// Its index.
        vcpu: u32,
        /// Fuel the run consumed (at most what it was given).
        fuel_used: u64,
        /// Why it stopped.
        stop: Stop,
        /// Its exported memory's size in bytes after the run; `None` without one. Guest memory
        /// changes only while the vCPU runs, so the core checks later writes against this.
        memory: Option<u64>,
        /// The least fuel its next run needs to make progress.
        min_fuel: u64,
    },
    /// The hypercall of the last [`Effect::DecodeHypercall`], decoded at the K edge: typed
    /// arguments, and what it passes in guest memory read.
    Hypercall {
        /// The caller's VHM.
        vhm: VhmId,
        /// The caller.
        vcpu: u32,
        /// The call (boxed: most inputs are stops, and an input is moved on every step).
        call: Box<Call>,
    },
    /// The outcomes of the last [`Effect::ExecuteQJob`]: one word per shot.
    QJobFinished {
        /// The job's VHM.
        vhm: VhmId,
        /// The VHM's job number.
        job: u32,
        /// One word per shot; another length is not trusted (zeros are used).
        outcomes: Vec<u64>,
    },
    /// The captures of the last [`Effect::MeasurePhi`].
    PhiCaptured {
        /// The transform's VHM.
        vhm: VhmId,
        /// `(I, Q)` per capture; another length than the computed one is ignored.
        captures: Vec<(i64, i64)>,
    },
    /// Run a paused service host on: its horizon moves to `until_ns` (after the pause), and it
    /// pauses again there, or earlier when idle. Answers [`Effect::Paused`].
    Continue {
        /// The next horizon, ns.
        until_ns: u64,
    },
    /// A service request, applied at the current pause. Answers [`Effect::Paused`].
    Request(Box<Requested>),
    /// The module of the last [`Effect::LoadModule`]: compiled, and instantiated once under the
    /// memory limit it names, or why not.
    ModuleLoaded {
        /// The module's index.
        module: usize,
        /// What compiling and instantiating it showed.
        result: Result<ModuleFacts, LoadRefusal>,
    },
}

/// A service request as the edge hands it to the core.
#[derive(Debug, Clone)]
pub struct Requested {
    /// The tenant (its index), `None` for the operator.
    pub tenant: Option<u32>,
    /// What it asks.
    pub request: xdv_core::ServiceRequest,
    /// An upload's module bytes (they must hash to its id).
    pub bytes: Option<Vec<u8>>,
}

/// What compiling a module and instantiating it once showed: everything the core needs to know
/// about a module to create VHMs from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleFacts {
    /// It exports the interrupt handler `xdv_irq`.
    pub has_irq: bool,
    /// Instantiating it under the memory limit asked for succeeds, or the trap code it fails
    /// with. Instantiation depends only on the module and the limit.
    pub instantiates: Result<(), xdv_core::refusal::TrapCode>,
}

/// Why a module did not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadRefusal {
    /// It is valid WebAssembly that does not fit the ABI (`false`: not valid WebAssembly).
    pub abi: bool,
}

/// What the core asks of the edge, in order.
#[derive(Debug)]
pub enum Effect {
    /// Record an event.
    Emit(Event),
    /// Store a module's bytes in the trace (before the event that names it).
    StoreModule {
        /// Its BLAKE3 hash.
        hash: Hash32,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// Create `vcpus` instances of module `module` for VHM `vhm`, each under `memory_limit`.
    /// The core knows from [`ModuleFacts`] that they instantiate.
    Instantiate {
        /// The new VHM.
        vhm: VhmId,
        /// The module's index.
        module: usize,
        /// Its vCPUs' memory limit.
        memory_limit: u64,
        /// How many vCPUs.
        vcpus: u32,
    },
    /// Copy `bytes` into a vCPU's memory at `ptr`. The core checked the range.
    WriteGuest {
        /// The VHM.
        vhm: VhmId,
        /// The vCPU.
        vcpu: u32,
        /// Where.
        ptr: u32,
        /// What.
        bytes: Vec<u8>,
    },
    /// Run a vCPU: answer its pending hypercall with `answer`, enter its interrupt handler with
    /// `irq`, then run it with exactly `fuel`. Answered by [`Input::VcpuStopped`].
    RunVcpu {
        /// The VHM.
        vhm: VhmId,
        /// The vCPU.
        vcpu: u32,
        /// The value its pending hypercall returns, if it made one.
        answer: Option<i64>,
        /// `(vector, arg)` to enter the interrupt handler with (the core knows it has one and is
        /// not in it).
        irq: Option<(u32, i64)>,
        /// Fuel to run with.
        fuel: u64,
    },
    /// Decode a vCPU's pending hypercall, reading its arguments from guest memory. Answered by
    /// [`Input::Hypercall`].
    DecodeHypercall {
        /// The VHM.
        vhm: VhmId,
        /// The vCPU.
        vcpu: u32,
        /// The raw call.
        request: Request,
    },
    /// Run a Q job on its device's provider. Answered by [`Input::QJobFinished`].
    ExecuteQJob {
        /// The submitting VHM.
        vhm: VhmId,
        /// The VHM's job number.
        job: u32,
        /// Shots.
        shots: u64,
        /// The device's index.
        device: usize,
        /// The lowered circuit.
        circuit: Circuit,
        /// The job's sampling seed.
        seed: u64,
    },
    /// The captures a Φ transform computed: the driver may replace them with measured (or
    /// recorded) ones. Answered by [`Input::PhiCaptured`].
    MeasurePhi {
        /// The VHM.
        vhm: VhmId,
        /// What the executor integrated.
        computed: Vec<(i64, i64)>,
    },
    /// Compile module `module` (when the edge has no compiled form of it) and instantiate it
    /// once under `memory_limit`. Answered by [`Input::ModuleLoaded`].
    LoadModule {
        /// The index the core gives it.
        module: usize,
        /// Its bytes.
        bytes: Vec<u8>,
        /// The entry export.
        entry: &'static str,
        /// The memory limit of the VHM about to run it.
        memory_limit: u64,
    },
    /// Drop every vCPU instance of a stopped VHM.
    DropVcpus {
        /// The VHM.
        vhm: VhmId,
    },
    /// Drop the compiled form of module `module`: no running VHM runs it.
    RetireModule {
        /// The module's index.
        module: usize,
    },
    /// A service host paused at its horizon (`State::now`): it awaits [`Input::Request`] or
    /// [`Input::Continue`].
    Paused {
        /// Nothing is queued: without a request, nothing will happen.
        idle: bool,
    },
    /// The run is over: `State::summary` says how it ended.
    Finished,
}

/// The effects of one step, in the order the edge must carry them out.
#[derive(Debug, Default)]
pub struct Effects(pub(crate) Vec<Effect>);

impl Effects {
    /// The effects, in order.
    pub fn into_vec(self) -> Vec<Effect> {
        self.0
    }

    /// Appends an effect.
    #[inline]
    pub(crate) fn push(&mut self, effect: Effect) {
        self.0.push(effect);
    }
}

/// What comes next in the queue.
enum Upcoming {
    /// Apply this event.
    Event(Target),
    /// Pause at the service's horizon.
    Pause {
        /// Nothing is queued.
        idle: bool,
    },
    /// The run is over.
    End,
}

/// What the core waits for from the edge.
#[derive(Debug, Clone)]
pub(crate) enum Await {
    /// The stop of a vCPU it asked to run with `fuel`.
    Run { vhm: VhmId, vcpu: u32, fuel: u64 },
    /// A decoded hypercall.
    Call { vhm: VhmId, vcpu: u32 },
    /// A Q job's outcomes.
    QJob { vhm: VhmId, job: u32 },
    /// A service host's next request or horizon.
    Pause,
    /// The module a service request's VHM runs, loaded.
    Create {
        module: usize,
        pending: Box<crate::service::PendingCreate>,
    },
    /// The answer a hypercall's handler needs to finish (captures, a loaded module).
    Resume {
        vhm: VhmId,
        vcpu: u32,
        call: Hypercall,
        pending: Box<Pending>,
    },
}

impl State {
    /// Applies `input`, then the CDS events due after it, until the core awaits the edge or the
    /// run is over (the last effect is then [`Effect::Finished`]).
    ///
    /// # Errors
    ///
    /// [`HvError::Input`] for an input the core does not await (a driver bug);
    /// [`HvError::Invariant`] when invariants are checked after every event
    /// ([`State::check_every_step`]) and one fails.
    pub fn step(&mut self, input: Input) -> Result<Effects, HvError> {
        let mut out = Effects::default();
        self.step_into(input, &mut out)?;
        Ok(out)
    }

    /// [`State::step`], appending the effects to `out`: a driver that carries them out as they
    /// come reuses one buffer for the whole run.
    ///
    /// # Errors
    ///
    /// As [`State::step`].
    pub fn step_into(&mut self, input: Input, out: &mut Effects) -> Result<(), HvError> {
        let awaiting = self.awaiting.take();
        // Checked by reference first: the input is moved only once, into its handler.
        let fits = match (&awaiting, &input) {
            (None, Input::Start) => !self.started,
            (
                Some(Await::Run { vhm, vcpu, fuel }),
                Input::VcpuStopped {
                    vhm: v,
                    vcpu: c,
                    fuel_used,
                    stop,
                    min_fuel,
                    ..
                },
            ) => {
                // A preemption that used nothing although the run had all it needed is no
                // progress: obeying it would loop forever at one virtual time.
                let stalled =
                    *fuel_used == 0 && matches!(stop, Stop::Preempted) && min_fuel <= fuel;
                (v, c) == (vhm, vcpu) && fuel_used <= fuel && !stalled
            }
            (
                Some(Await::Call { vhm, vcpu }),
                Input::Hypercall {
                    vhm: v, vcpu: c, ..
                },
            ) => (v, c) == (vhm, vcpu),
            (Some(Await::QJob { vhm, job }), Input::QJobFinished { vhm: v, job: j, .. }) => {
                (v, j) == (vhm, job)
            }
            (Some(Await::Pause), Input::Continue { .. } | Input::Request(_)) => true,
            (Some(Await::Create { module, .. }), Input::ModuleLoaded { module: m, .. }) => {
                module == m
            }
            // The pending call checks its own answer.
            (Some(Await::Resume { .. }), _) => true,
            _ => false,
        };
        if !fits {
            return Err(HvError::Input(format!(
                "the core awaits {awaiting:?} and was given {input:?}"
            )));
        }
        match (awaiting, input) {
            (Some(Await::Pause), Input::Continue { until_ns }) => {
                self.continue_to(until_ns)?;
                self.advance(out)
            }
            (Some(Await::Pause), Input::Request(r)) => {
                let r = *r;
                self.request(out, r.tenant, r.request, r.bytes)?;
                if self.awaiting.is_some() {
                    return Ok(());
                }
                self.after_request(out)
            }
            (Some(Await::Create { module, pending }), Input::ModuleLoaded { result, .. }) => {
                self.create_loaded(out, module, *pending, result)?;
                self.after_request(out)
            }
            (awaiting, input) => self.step_awaited(out, awaiting, input),
        }
    }

    /// [`State::step_into`] for a run's inputs (all but a service's).
    fn step_awaited(
        &mut self,
        out: &mut Effects,
        awaiting: Option<Await>,
        input: Input,
    ) -> Result<(), HvError> {
        if let Some(Await::Resume {
            vhm,
            vcpu,
            call,
            pending,
        }) = awaiting
        {
            let outcome: Outcome = self.resume_call(out, vhm, vcpu, *pending, input)?;
            self.conclude(out, vhm, vcpu, call, outcome)?;
            return self.advance(out);
        }
        match input {
            Input::Start => {
                self.started = true;
                self.start(out)?;
            }
            Input::VcpuStopped {
                vhm,
                vcpu,
                fuel_used,
                stop,
                memory,
                min_fuel,
            } => self.ran(vhm, vcpu, fuel_used, stop, memory, min_fuel),
            Input::Hypercall { vhm, vcpu, call } => self.hypercall(out, vhm, vcpu, *call)?,
            Input::QJobFinished { vhm, job, outcomes } => {
                self.finish_job(out, vhm, job, outcomes)?;
            }
            Input::PhiCaptured { .. }
            | Input::ModuleLoaded { .. }
            | Input::Continue { .. }
            | Input::Request(_) => {
                unreachable!("answers to a pending call or a pause are checked above")
            }
        }
        self.advance(out)
    }

    /// `true` once the run is over.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Pops and applies queued events until the core awaits the edge or nothing is left.
    fn advance(&mut self, out: &mut Effects) -> Result<(), HvError> {
        loop {
            if self.awaiting.is_some() || self.done {
                return Ok(());
            }
            if std::mem::take(&mut self.in_event) {
                self.after_event(out)?;
            }
            match self.next_target() {
                Upcoming::Event(target) => {
                    self.in_event = true;
                    self.apply(out, target)?;
                }
                Upcoming::Pause { idle } => {
                    self.pause(out, idle);
                    return Ok(());
                }
                Upcoming::End => {
                    self.end(out)?;
                    return Ok(());
                }
            }
        }
    }

    /// The run is over: running VHMs stop and the host finishes.
    fn end(&mut self, out: &mut Effects) -> Result<(), HvError> {
        self.finish(out)?;
        self.done = true;
        out.push(Effect::Finished);
        Ok(())
    }

    /// A service host pauses at its horizon: the clock moves there (nothing is queued before).
    fn pause(&mut self, out: &mut Effects, idle: bool) {
        let h = self.horizon().expect("only a service host pauses");
        self.now = self.now.max(h);
        self.await_edge(Await::Pause);
        out.push(Effect::Paused { idle });
    }

    /// After a request: the checks that follow every event, then the pause again (or the end,
    /// after `Stop`).
    fn after_request(&mut self, out: &mut Effects) -> Result<(), HvError> {
        self.after_event(out)?;
        if self.horizon().is_none() {
            return self.end(out);
        }
        let idle = !self.live_pending();
        self.pause(out, idle);
        Ok(())
    }

    /// `true` when a live event is queued (superseded ones are dropped on the way).
    fn live_pending(&mut self) -> bool {
        let limit = self.time_limit();
        while let Some((key, target)) = self.cds.peek() {
            if self.is_live(target) {
                // Past the horizon an endless service never gets: nothing is pending.
                return !(self.endless() && key.time >= limit);
            }
            self.cds.pop();
        }
        false
    }

    /// Waits for `what`; the step ends once the current handler returns.
    #[inline]
    pub(crate) fn await_edge(&mut self, what: Await) {
        assert!(
            self.awaiting.is_none(),
            "the core awaits one answer at a time: {:?}, then {what:?}",
            self.awaiting
        );
        self.awaiting = Some(what);
    }

    /// The next live queued event, with the clock moved to it; a pause when a service host
    /// reaches its horizon or runs out of events; the end when nothing is left or the time
    /// limit is reached.
    fn next_target(&mut self) -> Upcoming {
        // The time limit, and in any case the horizon: no clock computes past it.
        let limit = self.time_limit();
        let horizon = self.horizon().filter(|&h| h < limit);
        let endless = self.endless();
        while let Some((key, target)) = self.cds.peek() {
            // Superseded events (a woken sleeper's old deadline, a stopped VHM's pending stop)
            // are dropped without touching the clock.
            if !self.is_live(target) {
                self.cds.pop();
                continue;
            }
            if endless && key.time >= limit {
                return Upcoming::Pause { idle: true };
            }
            if key.time > limit {
                self.now = self.now.max(limit);
                return Upcoming::End;
            }
            if horizon.is_some_and(|h| key.time > h) {
                return Upcoming::Pause { idle: false };
            }
            self.cds.pop();
            assert!(key.time >= self.now, "the virtual clock never goes back");
            // A fault injected into a stopped VHM is recorded without moving the clock: a
            // stopped VHM cannot make the host run longer.
            if !matches!(target, Target::Inject { index, .. } if !self.inject_target_running(index))
            {
                self.now = key.time;
            }
            return Upcoming::Event(target);
        }
        match horizon {
            Some(_) => Upcoming::Pause { idle: true },
            None => Upcoming::End,
        }
    }

    /// What follows every applied event: faults due at its event count fire, and the
    /// invariants are checked when asked for.
    fn after_event(&mut self, out: &mut Effects) -> Result<(), HvError> {
        self.fire_counted_faults(out)?;
        if self.check_each_step {
            self.check_after_event()
                .map_err(|message| HvError::Invariant {
                    event: self.events,
                    time_ns: self.now,
                    message,
                })?;
        }
        Ok(())
    }
}
