//! The K engine behind traits, as Cloud Hypervisor puts its vCPUs behind `Vcpu::run -> VmExit`:
//! the hypervisor compiles modules with an [`Engine`], instantiates vCPUs from a [`Module`] and
//! drives each [`GuestVcpu`] by running it for a bounded amount of fuel and answering the stop.
//! It never names wasmi. wasmi ([`crate::KEngine`], [`crate::GuestModule`], [`crate::Vcpu`]) is
//! the one engine today; another must keep the same determinism (fuel counts, trap points).

use crate::vcpu::Stop;
use crate::KError;
use std::sync::Arc;

/// Compiles guest modules and checks them against the ABI.
pub trait Engine {
    /// The identification trace headers record; a replay runs only traces of its own engine.
    fn id(&self) -> &'static str;

    /// Compiles `wasm` with `entry` as the vCPUs' entry export.
    ///
    /// # Errors
    ///
    /// [`KError::Invalid`] when it is not valid WebAssembly, [`KError::Abi`] when it does not
    /// fit the guest ABI.
    fn compile(&self, wasm: &[u8], entry: &str) -> Result<Arc<dyn Module>, KError>;
}

/// A compiled module that fits the ABI.
pub trait Module {
    /// The entry export it was checked for.
    fn entry_name(&self) -> &str;

    /// `true` when it exports the interrupt handler `xdv_irq`.
    fn has_irq_handler(&self) -> bool;

    /// Bytes of linear memory it declares initially (0 without a memory).
    fn initial_memory_bytes(&self) -> u64;

    /// A new vCPU running the entry export, its linear memory capped at `memory_limit` bytes.
    ///
    /// # Errors
    ///
    /// [`KError::Instantiate`] with a trap code and the numbers (memory over the limit, a start
    /// function, …).
    fn instantiate(&self, memory_limit: u64) -> Result<Box<dyn GuestVcpu>, KError>;
}

/// One vCPU as the hypervisor drives it.
pub trait GuestVcpu {
    /// Runs with exactly `fuel` fuel available; the fuel consumed and why it stopped. After a
    /// [`Stop::Hypercall`], [`GuestVcpu::complete`] must answer it before the next run.
    fn run(&mut self, fuel: u64) -> (u64, Stop);

    /// Sets the value the pending hypercall returns.
    fn complete(&mut self, ret: i64);

    /// Enters the interrupt handler with `(vector, arg)` on the next run; `false` (nothing done)
    /// without a handler or with one active.
    fn enter_irq(&mut self, vector: u32, arg: i64) -> bool;

    /// `true` while the interrupt handler runs.
    fn in_irq(&self) -> bool;

    /// `true` when the guest exports `xdv_irq`.
    fn has_irq_handler(&self) -> bool;

    /// The least fuel the next run needs to make progress.
    fn min_fuel(&self) -> u64;

    /// Copies `len` bytes at `ptr` out of the guest's memory.
    ///
    /// # Errors
    ///
    /// The ABI error code: `E_NOMEM` without an exported memory, `E_FAULT` outside it,
    /// `E_TOOBIG` over `max`.
    fn read_guest(&self, ptr: i64, len: i64, max: u32) -> Result<Vec<u8>, i64>;

    /// Checks `[ptr, ptr + len)` as [`GuestVcpu::read_guest`] does, copying nothing.
    ///
    /// # Errors
    ///
    /// As [`GuestVcpu::read_guest`].
    fn check_guest(&self, ptr: i64, len: i64, max: u32) -> Result<(), i64>;

    /// Copies `bytes` into the guest's memory at `ptr`.
    ///
    /// # Errors
    ///
    /// `E_NOMEM` without an exported memory, `E_FAULT` outside it (nothing is written).
    fn write_guest(&mut self, ptr: i64, bytes: &[u8]) -> Result<(), i64>;

    /// Size of the guest's exported memory in bytes (0 without one).
    fn memory_size(&self) -> u64;

    /// Size of the guest's exported memory in bytes; `None` without one. It changes only while
    /// the vCPU runs, so a host can check writes against it between runs.
    fn memory(&self) -> Option<u64>;
}

impl Engine for crate::KEngine {
    fn id(&self) -> &'static str {
        crate::ENGINE_ID
    }

    fn compile(&self, wasm: &[u8], entry: &str) -> Result<Arc<dyn Module>, KError> {
        Ok(Arc::new(crate::GuestModule::new(self, wasm, entry)?))
    }
}

impl Module for crate::GuestModule {
    fn entry_name(&self) -> &str {
        crate::GuestModule::entry_name(self)
    }

    fn has_irq_handler(&self) -> bool {
        crate::GuestModule::has_irq_handler(self)
    }

    fn initial_memory_bytes(&self) -> u64 {
        crate::GuestModule::initial_memory_bytes(self)
    }

    fn instantiate(&self, memory_limit: u64) -> Result<Box<dyn GuestVcpu>, KError> {
        Ok(Box::new(crate::Vcpu::new(
            &self.engine,
            self,
            memory_limit,
        )?))
    }
}

impl GuestVcpu for crate::Vcpu {
    fn run(&mut self, fuel: u64) -> (u64, Stop) {
        crate::Vcpu::run(self, fuel)
    }
    fn complete(&mut self, ret: i64) {
        crate::Vcpu::complete(self, ret)
    }
    fn enter_irq(&mut self, vector: u32, arg: i64) -> bool {
        crate::Vcpu::enter_irq(self, vector, arg)
    }
    fn in_irq(&self) -> bool {
        crate::Vcpu::in_irq(self)
    }
    fn has_irq_handler(&self) -> bool {
        crate::Vcpu::has_irq_handler(self)
    }
    fn min_fuel(&self) -> u64 {
        crate::Vcpu::min_fuel(self)
    }
    fn read_guest(&self, ptr: i64, len: i64, max: u32) -> Result<Vec<u8>, i64> {
        crate::Vcpu::read_guest(self, ptr, len, max)
    }
    fn check_guest(&self, ptr: i64, len: i64, max: u32) -> Result<(), i64> {
        crate::Vcpu::check_guest(self, ptr, len, max)
    }
    fn write_guest(&mut self, ptr: i64, bytes: &[u8]) -> Result<(), i64> {
        crate::Vcpu::write_guest(self, ptr, bytes)
    }
    fn memory_size(&self) -> u64 {
        crate::Vcpu::memory_size(self)
    }
    fn memory(&self) -> Option<u64> {
        crate::Vcpu::memory(self)
    }
}
