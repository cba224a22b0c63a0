//! The xdv model: pure data and pure functions over it, with no I/O.
//!
//! Identifiers, capabilities and their spaces, budgets, the orchestration [`Event`] vocabulary
//! with its canonical encoding, and the typed reasons events record ([`refusal`]). The trace store
//! (SQLite, the hash chain, verification, accounting, `describe`) is `xdv-trace`; engines (wasmi,
//! simulators) live in their own crates and talk to the hypervisor through these types, which is
//! what makes replay and verification possible without them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bounds;
pub mod budget;
pub mod cap;
pub mod event;
pub mod hash;
pub mod ids;
pub mod refusal;

pub use event::{
    Event, EventKind, EventSink, ExitReason, FaultClass, HypercallRecord, MemorySink, NullSink,
    Resource, SinkError,
};
pub use event::{RequestRefusal, ServiceRequest, SpecProblem};
pub use hash::Hash32;
pub use ids::{CapId, Domain, VcpuIndex, VhmId};

/// Version of the canonical event encoding. Bumped on any change to [`EventKind`]'s layout.
/// Schema 5 appended `HostWork`. Schema 6 appended `Fault`, `Refused`, `PhiDecohered` and
/// `RestartRefused` with typed reasons ([`refusal`]) in place of words; the variants of those
/// names in schemas 4 and 5 decode as their `Legacy…` forms, so older bodies decode unchanged.
/// Schema 7 appended `Request` and `RequestRefused`, the inputs of an `xdv serve` host; a schema
/// 6 trace is a schema 7 trace without them. Schema 8 changed no layout: it charges a Q job's
/// simulation work by the fused plan (`xdv_q::provider::WorkModel::Fused`), and older traces
/// re-execute under the per-operation model they were charged by.
pub const EVENT_SCHEMA_VERSION: u32 = 8;
/// Version of the trace file layout (tables and header keys).
pub const TRACE_FORMAT_VERSION: u32 = 1;
