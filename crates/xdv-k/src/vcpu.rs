//! A vCPU: one guest instance driven in fuel-bounded steps.

use crate::abi::{self, Hypercall, IRQ_EXPORT, MEMORY_EXPORT};
use crate::module::{GuestModule, KEngine};
use crate::KError;
use std::fmt;
use wasmi::ValType;
use wasmi::{
    Func, Memory, ResumableCall, ResumableCallHostTrap, ResumableCallOutOfFuel, Store, Val,
};
use xdv_core::refusal::TrapCode;

/// Most table elements the tables of one vCPU may hold in all (at most 512 KiB of host memory at
/// 8 bytes an element): tables are host memory a module declares, outside its linear memory.
pub const MAX_TABLE_ELEMENTS: usize = 65_536;

/// The limiter of one vCPU's store: linear memory up to its `memory_limit`, tables up to
/// [`MAX_TABLE_ELEMENTS`], one instance, one memory, four tables. It remembers why it last said
/// no, so an instantiation error can give both numbers.
pub struct Footprint {
    memory_limit: usize,
    table_elements: usize,
    denied: Option<String>,
}

impl wasmi::ResourceLimiter for Footprint {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        let ok = desired <= self.memory_limit;
        if !ok {
            self.denied = Some(format!(
                "a linear memory of {desired} bytes exceeds memory_limit ({} bytes)",
                self.memory_limit
            ));
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, wasmi_core::LimiterError> {
        let total = self.table_elements - current.min(self.table_elements) + desired;
        let ok = desired >= current && total <= MAX_TABLE_ELEMENTS;
        if ok {
            self.table_elements = total;
        } else {
            self.denied = Some(format!(
                "tables of {total} elements exceed the {MAX_TABLE_ELEMENTS} a vCPU may hold"
            ));
        }
        Ok(ok)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Per-store data: the limiter.
pub struct VcpuData {
    limits: Footprint,
}

/// The host error every hypercall returns: it suspends the guest and hands the call to the
/// hypervisor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HypercallTrap {
    pub(crate) call: Hypercall,
    pub(crate) args: [i64; 5],
}

impl fmt::Display for HypercallTrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hypercall {}", self.call.desc().name)
    }
}

impl wasmi::errors::HostError for HypercallTrap {}

/// A hypercall as the guest made it: the call and its raw arguments (i32 arguments sign-extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The call.
    pub call: Hypercall,
    /// Arguments in order; unused slots are 0.
    pub args: [i64; 5],
}

/// Why [`Vcpu::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The guest made a hypercall; answer it with [`Vcpu::complete`] before running again.
    Hypercall(Request),
    /// The fuel given ran out; the vCPU resumes where it stopped.
    Preempted,
    /// The running function returned: the entry function (`from_irq == false`, the vCPU is done) or
    /// an interrupt handler (the interrupted code resumes on the next run).
    Returned {
        /// `true` when an interrupt handler returned.
        from_irq: bool,
    },
    /// The guest trapped; the vCPU cannot run again.
    Trap(TrapCode),
}

/// The engine's trap code as the trace records it.
fn trap_code(c: wasmi::TrapCode) -> TrapCode {
    use wasmi::TrapCode as W;
    match c {
        W::UnreachableCodeReached => TrapCode::Unreachable,
        W::MemoryOutOfBounds => TrapCode::MemoryOutOfBounds,
        W::TableOutOfBounds => TrapCode::TableOutOfBounds,
        W::IndirectCallToNull => TrapCode::IndirectCallToNull,
        W::IntegerDivisionByZero => TrapCode::DivisionByZero,
        W::IntegerOverflow => TrapCode::IntegerOverflow,
        W::BadConversionToInteger => TrapCode::BadConversion,
        W::StackOverflow => TrapCode::StackOverflow,
        W::BadSignature => TrapCode::BadSignature,
        W::GrowthOperationLimited => TrapCode::ResourceLimit,
        _ => TrapCode::Other,
    }
}

/// The trap code of an engine error.
fn error_code(e: &wasmi::Error) -> TrapCode {
    e.as_trap_code().map_or(TrapCode::Other, trap_code)
}

enum Activation {
    Fresh {
        func: Func,
        args: [Val; 2],
        nargs: usize,
    },
    AtHypercall {
        call: ResumableCallHostTrap,
        result: Option<Val>,
    },
    OutOfFuel(ResumableCallOutOfFuel),
}

/// One virtual CPU: a guest instance with its own linear memory, and the stack of its suspended
/// activations (the entry function at the bottom, at most one interrupt handler above it).
pub struct Vcpu {
    store: Store<VcpuData>,
    memory: Option<Memory>,
    irq: Option<Func>,
    stack: Vec<Activation>,
    pending: Option<Hypercall>,
}

/// The words for a module whose initial memory is over `limit` bytes, named `what`:
/// `module declares 17 pages (1 114 112 B); memory_limit is 1 048 576 B`.
pub fn memory_over_limit(declared: u64, what: &str, limit: u64) -> String {
    use crate::module::{grouped, WASM_PAGE};
    format!(
        "module declares {} pages ({} B); {what} is {} B",
        declared / WASM_PAGE,
        grouped(declared),
        grouped(limit)
    )
}

impl Vcpu {
    /// Instantiates `module` with its linear memory capped at `memory_limit` bytes. Fuel is set
    /// only after instantiation, so a module with a start function is refused.
    pub fn new(engine: &KEngine, module: &GuestModule, memory_limit: u64) -> Result<Self, KError> {
        if module.initial_memory > memory_limit {
            return Err(KError::Instantiate {
                code: TrapCode::ResourceLimit,
                message: memory_over_limit(module.initial_memory, "memory_limit", memory_limit),
            });
        }
        let limits = Footprint {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            table_elements: 0,
            denied: None,
        };
        let mut store = Store::new(&engine.engine, VcpuData { limits });
        store.limiter(|d| &mut d.limits);
        store.set_fuel(0).map_err(|e| KError::Instantiate {
            code: TrapCode::Other,
            message: e.to_string(),
        })?;
        let instance = match engine
            .linker
            .instantiate_and_start(&mut store, &module.module)
        {
            Ok(i) => i,
            Err(e) if e.as_trap_code() == Some(wasmi::TrapCode::OutOfFuel) => {
                return Err(KError::Instantiate {
                    code: TrapCode::Other,
                    message: "the module has a start function; xdv starts guests only through their entry export".into(),
                });
            }
            Err(e) => {
                // The limiter's own words carry the numbers; the engine's name internal types.
                let denied = store.data_mut().limits.denied.take();
                let code = match (&denied, e.as_trap_code()) {
                    (Some(_), _) => TrapCode::ResourceLimit,
                    (None, Some(c)) => trap_code(c),
                    (None, None) => TrapCode::Other,
                };
                let message = denied.unwrap_or_else(|| {
                    let text = e.to_string();
                    match text.find("Table(") {
                        Some(_) => "an element segment does not fit its table".to_string(),
                        None => text,
                    }
                });
                return Err(KError::Instantiate { code, message });
            }
        };
        let entry = instance
            .get_func(&store, &module.entry)
            .ok_or_else(|| KError::Abi(format!("no entry export {:?}", module.entry)))?;
        let irq = instance.get_func(&store, IRQ_EXPORT);
        let memory = instance.get_memory(&store, MEMORY_EXPORT);
        Ok(Self {
            store,
            memory,
            irq,
            stack: vec![Activation::Fresh {
                func: entry,
                args: [Val::I32(0), Val::I32(0)],
                nargs: 0,
            }],
            pending: None,
        })
    }

    /// `true` while an interrupt handler is active (interrupts are not nested).
    pub fn in_irq(&self) -> bool {
        self.stack.len() > 1
    }

    /// `true` when the guest exports `xdv_irq`.
    pub fn has_irq_handler(&self) -> bool {
        self.irq.is_some()
    }

    /// `true` when nothing is left to run (returned or trapped).
    pub fn is_done(&self) -> bool {
        self.stack.is_empty()
    }

    /// The fuel the next step needs at least to make progress (wasmi charges some instructions,
    /// such as `memory.fill`, in proportion to their work).
    pub fn min_fuel(&self) -> u64 {
        match self.stack.last() {
            Some(Activation::OutOfFuel(c)) => c.required_fuel(),
            _ => 1,
        }
    }

    /// Enters the interrupt handler with `(vector, arg)` on the next run. Returns `false` (and does
    /// nothing) when the guest has no handler or one is already active.
    pub fn enter_irq(&mut self, vector: u32, arg: i64) -> bool {
        match self.irq {
            Some(func) if !self.in_irq() && self.pending.is_none() && !self.stack.is_empty() => {
                self.stack.push(Activation::Fresh {
                    func,
                    args: [Val::I32(vector as i32), Val::I64(arg)],
                    nargs: 2,
                });
                true
            }
            _ => false,
        }
    }

    /// Sets the value the pending hypercall returns to the guest. Calls without a result ignore it.
    pub fn complete(&mut self, ret: i64) {
        let call = self
            .pending
            .take()
            .expect("complete() follows a Stop::Hypercall");
        if let Some(Activation::AtHypercall { result, .. }) = self.stack.last_mut() {
            *result = call.desc().result.map(|t| match t {
                ValType::I64 => Val::I64(ret),
                _ => Val::I32(ret as i32),
            });
        }
    }

    /// Runs the top activation with exactly `fuel` fuel available. Returns the fuel consumed and
    /// why it stopped.
    pub fn run(&mut self, fuel: u64) -> (u64, Stop) {
        debug_assert!(
            self.pending.is_none(),
            "a hypercall must be completed before running again"
        );
        let Some(top) = self.stack.pop() else {
            return (0, Stop::Trap(TrapCode::Other));
        };
        if let Err(e) = self.store.set_fuel(fuel) {
            return (0, Stop::Trap(error_code(&e)));
        }
        let outcome = match top {
            Activation::Fresh { func, args, nargs } => {
                func.call_resumable(&mut self.store, &args[..nargs], &mut [])
            }
            Activation::AtHypercall { call, result } => {
                call.resume(&mut self.store, result.as_slice(), &mut [])
            }
            Activation::OutOfFuel(call) => call.resume(&mut self.store, &mut []),
        };
        let used = fuel - self.store.get_fuel().unwrap_or(fuel).min(fuel);
        let stop = match outcome {
            Ok(ResumableCall::Finished) => Stop::Returned {
                from_irq: !self.stack.is_empty(),
            },
            Ok(ResumableCall::HostTrap(call)) => {
                match call.host_error().downcast_ref::<HypercallTrap>().copied() {
                    Some(t) => {
                        self.pending = Some(t.call);
                        self.stack
                            .push(Activation::AtHypercall { call, result: None });
                        Stop::Hypercall(Request {
                            call: t.call,
                            args: t.args,
                        })
                    }
                    None => {
                        self.stack.clear();
                        Stop::Trap(TrapCode::Other)
                    }
                }
            }
            Ok(ResumableCall::OutOfFuel(call)) => {
                self.stack.push(Activation::OutOfFuel(call));
                Stop::Preempted
            }
            Err(e) => {
                self.stack.clear();
                Stop::Trap(error_code(&e))
            }
        };
        (used, stop)
    }

    /// Copies `len` bytes at `ptr` out of the guest's exported memory, refusing out-of-range,
    /// over-`max` or memory-less requests with the ABI's error code.
    pub fn read_guest(&self, ptr: i64, len: i64, max: u32) -> Result<Vec<u8>, i64> {
        let (start, end) = self.guest_range(ptr, len, max)?;
        let mem = self.memory.ok_or(abi::E_NOMEM)?;
        Ok(mem.data(&self.store)[start..end].to_vec())
    }

    /// Checks `[ptr, ptr + len)` as [`Vcpu::read_guest`] does, without copying anything: for a
    /// buffer the host will write later (`ipc_recv`), so that checking costs nothing per byte.
    ///
    /// # Errors
    ///
    /// The ABI error code, as [`Vcpu::read_guest`].
    pub fn check_guest(&self, ptr: i64, len: i64, max: u32) -> Result<(), i64> {
        self.guest_range(ptr, len, max).map(|_| ())
    }

    fn guest_range(&self, ptr: i64, len: i64, max: u32) -> Result<(usize, usize), i64> {
        let mem = self.memory.ok_or(abi::E_NOMEM)?;
        if ptr < 0 || len < 0 {
            return Err(abi::E_FAULT);
        }
        if len > i64::from(max) {
            return Err(abi::E_TOOBIG);
        }
        let size = mem.data(&self.store).len();
        let (start, end) = (
            ptr as usize,
            (ptr as usize)
                .checked_add(len as usize)
                .ok_or(abi::E_FAULT)?,
        );
        if end > size {
            return Err(abi::E_FAULT);
        }
        Ok((start, end))
    }

    /// Copies `bytes` into the guest's exported memory at `ptr`, refusing out-of-range or
    /// memory-less requests with the ABI's error code. Nothing is written on refusal.
    pub fn write_guest(&mut self, ptr: i64, bytes: &[u8]) -> Result<(), i64> {
        let mem = self.memory.ok_or(abi::E_NOMEM)?;
        if ptr < 0 {
            return Err(abi::E_FAULT);
        }
        let start = ptr as usize;
        let end = start.checked_add(bytes.len()).ok_or(abi::E_FAULT)?;
        let data = mem.data_mut(&mut self.store);
        data.get_mut(start..end)
            .ok_or(abi::E_FAULT)?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// Size of the guest's exported memory in bytes (0 without one).
    pub fn memory_size(&self) -> u64 {
        self.memory().unwrap_or(0)
    }

    /// Size of the guest's exported memory in bytes; `None` without one.
    pub fn memory(&self) -> Option<u64> {
        self.memory.map(|m| m.data(&self.store).len() as u64)
    }
}
