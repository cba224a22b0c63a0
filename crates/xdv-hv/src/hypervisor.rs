//! The hypervisor as a whole: the core state machine ([`State`]) and the K edge it is driven
//! through (the engine, the compiled modules and the vCPU instances), under a [`Driver`] that
//! takes the events and supplies the measured inputs.
//!
//! [`Hypervisor::run_driven`] is the one loop: it feeds the core an input, carries out the
//! effects it returns in order (events to the driver, guest writes and runs to the engine, Q
//! jobs to their provider through the driver) and feeds back the one answer the core awaits.

use crate::driver::{Driver, Live, QJobRun};
use crate::guests::Guests;
use crate::state::{module_error, RunSummary, State};
use crate::step::{Effect, Effects, Input};
use crate::HvError;
use xdv_core::event::EventSink;
use xdv_core::VhmId;
use xdv_manifest::{LoadedModule, Manifest};

/// Where a service host stands after [`Hypervisor::drive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Paused at its horizon (`State::now`), awaiting requests or a new horizon.
    Paused {
        /// Nothing is queued.
        idle: bool,
    },
    /// The run is over.
    Finished,
}

/// A host ready to run: its core state and its guests.
pub struct Hypervisor {
    state: State,
    guests: Guests,
}

impl Hypervisor {
    /// Compiles the manifest's modules (each distinct module and entry once) with the wasmi
    /// engine and checks them against the ABI. `modules` are those [`Manifest::load_modules`]
    /// returns.
    ///
    /// # Errors
    ///
    /// [`HvError::Module`] for a module that does not compile or fit the ABI, and
    /// [`HvError::Manifest`] for Q or Φ placements the host cannot make.
    pub fn new(manifest: &Manifest, modules: &[LoadedModule], seed: u64) -> Result<Self, HvError> {
        let mut guests = Guests::new(Box::new(xdv_k::KEngine::new()));
        let mut state = State::new(manifest, modules, seed, &mut guests)?;
        // A service's config makes a service host wherever it runs: `xdv serve`, a replay or a
        // resume of its trace.
        if let Some(serve) = &manifest.serve {
            state.serve(&manifest.tenants, serve.epoch_ns, &manifest.file)?;
        }
        Ok(Self { state, guests })
    }

    /// Re-executes as a host recording event schema `schema` did (a replay or resume of a
    /// trace): schemas before 8 charged Q simulation work one pass per operation.
    pub fn recorded_with_schema(mut self, schema: u32) -> Self {
        self.state.q_work = xdv_q::provider::WorkModel::of_schema(schema);
        self
    }

    /// The core's state: to assert on, or to clone (a fork of the host, without its guests).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Checks every invariant ([`State::check_invariants`]) after every event; the run stops
    /// with [`HvError::Invariant`] at the first violation.
    pub fn check_every_step(&mut self, on: bool) {
        self.state.check_every_step(on);
    }

    /// Checks the core's invariants now ([`State::check_invariants`]).
    ///
    /// # Errors
    ///
    /// The first violation, in words.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.state.check_invariants()
    }

    /// Instantiates every manifest vCPU once without running it, to report instantiation errors
    /// (memory over the limit, start functions) before a run, with the engine's numbers.
    ///
    /// # Errors
    ///
    /// [`HvError::Module`] at the manifest line of the first VHM whose module does not
    /// instantiate.
    pub fn check_instantiation(&self, file: &str) -> Result<(), HvError> {
        for (i, (spec, m)) in self.state.manifest_vhms().enumerate() {
            let declared = self.guests.initial_memory(m);
            let over = (declared > spec.k.memory_limit).then(|| xdv_k::KError::Instantiate {
                code: xdv_core::refusal::TrapCode::ResourceLimit,
                message: xdv_k::memory_over_limit(
                    declared,
                    &format!("vhm[{i}].k.memory_limit"),
                    spec.k.memory_limit,
                ),
            });
            over.map_or_else(
                || self.guests.instantiate(m, spec.k.memory_limit).map(drop),
                Err,
            )
            .map_err(|e| {
                module_error(
                    file,
                    &format!("vhm[{i}].k.module"),
                    spec.k.module_at,
                    &spec.k.module,
                    &spec.name,
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Runs the host to completion: creates every manifest VHM at time 0 in manifest order
    /// (statically nested ones under their parents), then the manifest's channels, then processes
    /// events in the CDS order until none is left or the time limit is reached.
    ///
    /// # Errors
    ///
    /// As [`Hypervisor::run_driven`].
    pub fn run<S: EventSink>(&mut self, sink: &mut S) -> Result<RunSummary, HvError> {
        self.run_driven(&mut Live(sink))
    }

    /// [`Hypervisor::run`] under `driver`, which receives the events and supplies the measured
    /// inputs (Q outcomes, Φ captures): a live run, a replay or a resume.
    ///
    /// # Errors
    ///
    /// [`HvError::Sink`] when the driver stops the run, [`HvError::Invariant`] when invariants
    /// are checked after every event and one fails.
    ///
    /// A service host's pauses are answered by [`Driver::at_pause`]; the run returns when it
    /// answers nothing (a replayed trace that ends there).
    pub fn run_driven<D: Driver>(&mut self, driver: &mut D) -> Result<RunSummary, HvError> {
        self.run_until_handed_over(driver)?;
        Ok(self.state.summary())
    }

    /// [`Hypervisor::run_driven`], returning where the host stands: finished, or paused where
    /// [`Driver::at_pause`] answered nothing (a resumed service handed over to a live edge).
    ///
    /// # Errors
    ///
    /// As [`Hypervisor::run_driven`].
    pub fn run_until_handed_over<D: Driver>(&mut self, driver: &mut D) -> Result<Served, HvError> {
        let mut at = self.drive(driver, Input::Start)?;
        while let Served::Paused { idle } = at {
            match driver.at_pause(&self.state.pause_at(idle))? {
                Some(next) => at = self.drive(driver, next)?,
                None => break,
            }
        }
        Ok(at)
    }

    /// Feeds the core `input` and carries out what follows, answering the edge's questions,
    /// until a service host pauses or the run is over. A service's edge drives it this way:
    /// [`Input::Start`], then at each pause [`Input::Request`]s and one [`Input::Continue`].
    ///
    /// # Errors
    ///
    /// As [`Hypervisor::run_driven`], and [`HvError::Input`] for an input the core does not
    /// await.
    pub fn drive<D: Driver>(&mut self, driver: &mut D, input: Input) -> Result<Served, HvError> {
        let mut input = input;
        // One buffer for the drive: each step's effects are carried out (and drained) before
        // the next.
        let mut effects = Effects::default();
        loop {
            self.state.step_into(input, &mut effects)?;
            input = match self.carry(driver, &mut effects)? {
                Carried::Answer(answer) => answer,
                Carried::Finished => return Ok(Served::Finished),
                Carried::Paused(idle) => return Ok(Served::Paused { idle }),
                Carried::Nothing => {
                    return Err(HvError::Input(
                        "a step ended awaiting nothing and not finished".into(),
                    ))
                }
            };
        }
    }

    /// Creates a VHM now, outside the event loop, as `State::create_vhm` does (the benchmarks
    /// measure creation alone this way); its events go to `driver`.
    ///
    /// # Errors
    ///
    /// [`HvError::Sink`] when the driver fails.
    pub fn create_vhm<D: Driver>(
        &mut self,
        driver: &mut D,
        spec: xdv_manifest::VhmSpec,
        module: usize,
        parent: Option<VhmId>,
        quota: xdv_core::budget::Quota,
    ) -> Result<(VhmId, Option<xdv_core::CapId>), HvError> {
        let mut effects = Effects::default();
        let created = self
            .state
            .create_vhm(&mut effects, spec, module, parent, quota)?;
        match self.carry(driver, &mut effects)? {
            Carried::Nothing => Ok(created),
            _ => unreachable!("creating a VHM awaits nothing"),
        }
    }

    /// Carries out `effects` in order: events and module bytes to the driver, Q jobs and Φ
    /// captures through it, the rest on the K side. Returns the answer the core awaits, if
    /// any: always the last effect.
    fn carry<D: Driver>(
        &mut self,
        driver: &mut D,
        effects: &mut Effects,
    ) -> Result<Carried, HvError> {
        let mut carried = Carried::Nothing;
        // Carried out in place, by reference; the buffer is cleared for the next step.
        for effect in &effects.0 {
            assert!(
                matches!(carried, Carried::Nothing),
                "an effect follows the one the core awaits"
            );
            let answer = match effect {
                Effect::Emit(event) => {
                    driver.emit(event)?;
                    None
                }
                Effect::StoreModule { hash, bytes } => {
                    driver.module(hash, bytes)?;
                    None
                }
                Effect::ExecuteQJob {
                    vhm,
                    job,
                    shots,
                    device,
                    circuit,
                    seed,
                } => {
                    let run = QJobRun {
                        vhm: *vhm,
                        job: *job,
                        shots: *shots,
                        provider: self.state.q_provider(*device),
                        circuit,
                        seed: *seed,
                    };
                    let outcomes = driver.q_outcomes(&run)?;
                    Some(Input::QJobFinished {
                        vhm: *vhm,
                        job: *job,
                        outcomes,
                    })
                }
                Effect::MeasurePhi { vhm, computed } => {
                    let captures = driver.phi_captures(*vhm, computed.clone())?;
                    Some(Input::PhiCaptured {
                        vhm: *vhm,
                        captures,
                    })
                }
                Effect::Finished => {
                    carried = Carried::Finished;
                    None
                }
                Effect::Paused { idle } => {
                    carried = Carried::Paused(*idle);
                    None
                }
                k => self.guests.carry(k),
            };
            if let Some(answer) = answer {
                carried = Carried::Answer(answer);
            }
        }
        effects.0.clear();
        Ok(carried)
    }
}

/// What carrying out a step's effects ended with.
enum Carried {
    /// The answer the core awaits.
    Answer(Input),
    /// The run is over.
    Finished,
    /// A service host paused (idle or not).
    Paused(bool),
    /// Nothing: the effects await no answer.
    Nothing,
}
