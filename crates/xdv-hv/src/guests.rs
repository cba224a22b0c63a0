//! The K side of the host, at the edge: the engine, the compiled modules and every running
//! vCPU's instance. The core ([`crate::State`]) records what it decides about a vCPU (its
//! scheduling, its waits, its pending interrupts, whether it is in its interrupt handler, what
//! its memory holds room for); running it, decoding its hypercalls and touching its memory
//! happen here, when the driver carries out the core's effects.

use crate::step::{Effect, Input, LoadRefusal, ModuleFacts};
use std::sync::Arc;
use xdv_core::refusal::TrapCode;
use xdv_core::VhmId;
use xdv_k::{Call, Engine, GuestVcpu, KError, Module};

/// The engine, the compiled modules by the core's index, and the vCPU instances.
pub(crate) struct Guests {
    /// The K engine (wasmi today): compiles modules; their vCPUs run behind `GuestVcpu`.
    engine: Box<dyn Engine>,
    /// Compiled modules by the core's module index; `None` once retired.
    modules: Vec<Option<Arc<dyn Module>>>,
    /// The instances of each VHM's vCPUs, by VHM id; empty once the VHM stopped.
    vcpus: Vec<Vec<Box<dyn GuestVcpu>>>,
    /// The instance a spawn's load made to probe (module, memory limit): the child's first
    /// vCPU, so that a spawn instantiates once per vCPU, not once more.
    staged: Option<(usize, u64, Box<dyn GuestVcpu>)>,
}

impl Guests {
    /// No module and no vCPU yet.
    pub(crate) fn new(engine: Box<dyn Engine>) -> Self {
        Self {
            engine,
            modules: Vec::new(),
            vcpus: Vec::new(),
            staged: None,
        }
    }

    /// The compiled module `i`.
    ///
    /// # Panics
    ///
    /// When the core never had it compiled, or retired it: a core bug.
    fn module(&self, i: usize) -> &Arc<dyn Module> {
        self.modules
            .get(i)
            .and_then(Option::as_ref)
            .unwrap_or_else(|| panic!("module {i} is not compiled at the edge"))
    }

    /// Bytes of linear memory the compiled module `i` declares initially.
    pub(crate) fn initial_memory(&self, i: usize) -> u64 {
        self.module(i).initial_memory_bytes()
    }

    /// Instantiates the compiled module `i` under `memory_limit`.
    pub(crate) fn instantiate(
        &self,
        i: usize,
        memory_limit: u64,
    ) -> Result<Box<dyn GuestVcpu>, KError> {
        self.module(i).instantiate(memory_limit)
    }

    /// Carries out one effect on the K side; `Some` with the core's next input when the effect
    /// is answered here (a vCPU run, a hypercall's decoding, a module load).
    ///
    /// # Panics
    ///
    /// On an effect that is not the K side's (the driver's: events, Q jobs, Φ captures).
    // Long by design: one arm per effect on the K side.
    pub(crate) fn carry(&mut self, effect: &Effect) -> Option<Input> {
        match *effect {
            Effect::Instantiate {
                vhm,
                module,
                memory_limit,
                vcpus,
            } => {
                let staged = self
                    .staged
                    .take()
                    .filter(|(m, l, _)| (*m, *l) == (module, memory_limit));
                let mut staged = staged.map(|(_, _, vcpu)| vcpu);
                for _ in 0..vcpus {
                    let vcpu = match staged.take() {
                        Some(vcpu) => vcpu,
                        None => self
                            .instantiate(module, memory_limit)
                            .expect("the core knows that the module instantiates under this limit"),
                    };
                    self.add(vhm, vcpu);
                }
                None
            }
            Effect::WriteGuest {
                vhm,
                vcpu,
                ptr,
                ref bytes,
            } => {
                self.get_mut(vhm, vcpu)
                    .write_guest(i64::from(ptr), bytes)
                    .expect("the core checked the range against the guest's memory");
                None
            }
            Effect::RunVcpu {
                vhm,
                vcpu,
                answer,
                irq,
                fuel,
            } => {
                let g = self.get_mut(vhm, vcpu);
                if let Some(ret) = answer {
                    g.complete(ret);
                }
                if let Some((vector, arg)) = irq {
                    assert!(
                        g.enter_irq(vector, arg),
                        "the core delivers an interrupt only to a handler that is free"
                    );
                }
                assert!(
                    fuel >= g.min_fuel(),
                    "the core gives each run what it needs"
                );
                let (fuel_used, stop) = g.run(fuel);
                assert!(
                    fuel_used <= fuel,
                    "a run consumes at most the fuel it is given"
                );
                Some(Input::VcpuStopped {
                    vhm,
                    vcpu,
                    fuel_used,
                    stop,
                    memory: g.memory(),
                    min_fuel: g.min_fuel(),
                })
            }
            Effect::DecodeHypercall { vhm, vcpu, request } => Some(Input::Hypercall {
                vhm,
                vcpu,
                call: Box::new(Call::decode(
                    request.call,
                    request.args,
                    self.get(vhm, vcpu),
                )),
            }),
            Effect::LoadModule {
                module,
                ref bytes,
                entry,
                memory_limit,
            } => Some(Input::ModuleLoaded {
                module,
                result: self.load(module, bytes, entry, memory_limit),
            }),
            Effect::DropVcpus { vhm } => {
                if let Some(v) = self.vcpus.get_mut(vhm.0 as usize) {
                    *v = Vec::new();
                }
                None
            }
            Effect::RetireModule { module } => {
                self.modules[module] = None;
                None
            }
            ref other => unreachable!("not an effect on the K side: {other:?}"),
        }
    }

    /// Compiles module `i` unless compiled, then instantiates it once under `memory_limit`.
    fn load(
        &mut self,
        i: usize,
        bytes: &[u8],
        entry: &str,
        memory_limit: u64,
    ) -> Result<ModuleFacts, LoadRefusal> {
        use crate::modules::Loader;
        let has_irq = match self.modules.get(i).and_then(Option::as_ref) {
            Some(m) => m.has_irq_handler(),
            None => self.compile(i, bytes, entry).map_err(|e| LoadRefusal {
                abi: matches!(e, KError::Abi(_)),
            })?,
        };
        let instantiates = match self.instantiate(i, memory_limit) {
            Ok(vcpu) => {
                self.staged = Some((i, memory_limit, vcpu));
                Ok(())
            }
            Err(e) => Err(e.trap_code()),
        };
        Ok(ModuleFacts {
            has_irq,
            instantiates,
        })
    }

    /// Adds the next vCPU instance of VHM `vhm` (its vCPUs are added in index order).
    fn add(&mut self, vhm: VhmId, vcpu: Box<dyn GuestVcpu>) {
        let i = vhm.0 as usize;
        if self.vcpus.len() <= i {
            self.vcpus.resize_with(i + 1, Vec::new);
        }
        self.vcpus[i].push(vcpu);
    }

    /// The instance of vCPU `vcpu` of `vhm`.
    fn get(&self, vhm: VhmId, vcpu: u32) -> &dyn GuestVcpu {
        self.vcpus[vhm.0 as usize][vcpu as usize].as_ref()
    }

    /// The instance of vCPU `vcpu` of `vhm`, to run or answer.
    fn get_mut(&mut self, vhm: VhmId, vcpu: u32) -> &mut dyn GuestVcpu {
        self.vcpus[vhm.0 as usize][vcpu as usize].as_mut()
    }
}

impl crate::modules::Loader for Guests {
    fn compile(&mut self, index: usize, bytes: &[u8], entry: &str) -> Result<bool, KError> {
        let module = self.engine.compile(bytes, entry)?;
        let has_irq = module.has_irq_handler();
        if self.modules.len() <= index {
            self.modules.resize_with(index + 1, || None);
        }
        self.modules[index] = Some(module);
        Ok(has_irq)
    }

    fn probe(&mut self, index: usize, memory_limit: u64) -> Result<(), TrapCode> {
        self.instantiate(index, memory_limit)
            .map(drop)
            .map_err(|e| e.trap_code())
    }
}
