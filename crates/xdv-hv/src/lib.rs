//! The xdv hypervisor.
//!
//! - [`cds`]: the deterministic discrete-event queue over the one virtual clock, and its total order.
//! - [`State`] and [`step`]: the core as a pure state machine, `State::step(input) -> effects`.
//!   It holds no engine and does no I/O; vCPU runs, guest memory, module compilation, Q jobs and
//!   Φ captures are effects whose results come back as inputs.
//! - [`Hypervisor`]: the core and its K edge (the engine and the vCPU instances) driven by a
//!   [`driver::Driver`]; [`builder`] builds hosts from bytes.
//! - [`run`]: a run that writes a trace file; [`replay`]: a run checked against a trace.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod builder;
pub mod cds;
pub mod driver;
mod faults;
pub mod footprint;
pub(crate) mod guests;
mod hypercalls;
mod hypervisor;
mod ipc;
pub mod modules;
mod phi;
mod q;
pub mod replay;
pub mod run;
pub mod service;
mod state;
pub mod step;
mod versioned;
mod vhm;

pub use builder::HostBuilder;
pub use hypervisor::{Hypervisor, Served};
pub use phi::ports as phi_ports;
pub use replay::{replay_trace, Divergence, ReplayReport};
pub use run::{
    chaos_faults, prepare, prepare_with_chaos, resume_trace, run_in_memory, run_to_trace,
    run_to_trace_observed, trace_writer, Prepared, Resumed, RunOptions,
};
pub use state::{RunSummary, State, VhmSummary};
pub use step::{Effect, Input, Requested};

use xdv_core::event::SinkError;
use xdv_manifest::ManifestError;
use xdv_trace::TraceError;

/// Errors that stop a run before or while it runs. Guest misbehaviour is never one of these: it
/// is a fault of the guest's VHM, recorded in the trace.
#[derive(Debug, thiserror::Error)]
pub enum HvError {
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A guest module does not compile, does not fit the ABI, or does not instantiate.
    #[error("{place}: {module} (VHM {vhm:?}): {message}")]
    Module {
        /// Where the manifest names the module: `file:line:col: vhm[i].k.module`.
        place: String,
        /// The module path as written.
        module: String,
        /// The VHM that names the module.
        vhm: String,
        /// What is wrong.
        message: String,
    },
    /// The trace store failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The event sink stopped the run.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The core was given an input it does not await: a driver bug.
    #[error("the core was driven out of order: {0}")]
    Input(String),
    /// An invariant failed (checked after every event when asked for: simulation testing).
    #[error("invariant violated after event {event} (t = {time_ns} ns): {message}")]
    Invariant {
        /// Events recorded when the check failed (the bad one is the last).
        event: u64,
        /// Virtual time.
        time_ns: u64,
        /// Which invariant and how.
        message: String,
    },
}
