//! The K domain: WebAssembly guests as virtual CPUs.
//!
//! - [`abi`]: the hypercall table (module `xdv`), its signatures and error codes — the one place the
//!   guest ABI is defined; the engine links it and `xdv abi` prints it.
//! - [`GuestModule`]: a guest compiled once (eagerly, deterministically) and checked against the ABI.
//! - [`Vcpu`]: one instance with its own linear memory, driven in fuel-bounded steps that stop at
//!   every hypercall, slice end, return or trap. The vCPU never decides anything: it reports a
//!   [`Stop`] and the hypervisor answers. That keeps every decision in the hypervisor's pure core.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod abi;
pub mod bindings;
pub mod call;
pub mod engine;
pub mod features;
pub mod layout;
mod module;
mod vcpu;

pub use abi::{Hypercall, HypercallDesc, HYPERCALLS};
pub use call::Call;
pub use engine::{Engine, GuestVcpu, Module};
pub use module::{grouped, GuestModule, KEngine, WASM_PAGE};
pub use vcpu::{memory_over_limit, Request, Stop, Vcpu};

/// Errors raised while preparing a guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KError {
    /// The module does not compile or validate.
    #[error("invalid WebAssembly module: {0}")]
    Invalid(String),
    /// The module does not fit the xdv guest ABI.
    #[error("{0}")]
    Abi(String),
    /// Instantiation failed (memory over the limit, start function, …).
    #[error("cannot instantiate the guest: {message}")]
    Instantiate {
        /// The failure as a code (what a trace records).
        code: xdv_core::refusal::TrapCode,
        /// The failure in words, with its numbers.
        message: String,
    },
}

impl KError {
    /// The failure as a trap code: what a fault of an instantiation records.
    pub fn trap_code(&self) -> xdv_core::refusal::TrapCode {
        match self {
            KError::Instantiate { code, .. } => *code,
            KError::Invalid(_) | KError::Abi(_) => xdv_core::refusal::TrapCode::Other,
        }
    }
}

/// The engine identification recorded in trace headers.
pub const ENGINE_ID: &str = "wasmi 2.0.0 (eager compilation, deterministic, fuel metering)";
