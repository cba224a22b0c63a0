//! The engine-free heart of xdv.
//!
//! Everything here is pure data and pure functions over it: identifiers, the orchestration
//! [`Event`] vocabulary with its canonical encoding, the BLAKE3 hash chain, the SQLite trace store
//! and the Resource_Table derived from events. Engines (wasmi, simulators) live in other crates and
//! only ever talk to this one through these types, which is what makes replay and verification
//! possible without them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounting;
pub mod budget;
pub mod cap;
pub mod chain;
pub mod event;
pub mod ids;
pub mod refusal;
pub mod trace;

pub use accounting::{derive_resource_table, ResourceRow, TableBuilder};
pub use chain::{ChainHash, Hash32};
pub use event::{
    Event, EventKind, EventSink, ExitReason, FaultClass, HypercallRecord, MemorySink, NullSink,
    Resource, SinkError,
};
pub use ids::{CapId, Domain, VcpuIndex, VhmId};

/// Version of the canonical event encoding. Bumped on any change to [`EventKind`]'s layout.
/// Schema 5 appended `HostWork`. Schema 6 appended `Fault`, `Refused`, `PhiDecohered` and
/// `RestartRefused` with typed reasons ([`refusal`]) in place of words; the variants of those
/// names in schemas 4 and 5 decode as their `Legacy…` forms, so older bodies decode unchanged.
pub const EVENT_SCHEMA_VERSION: u32 = 6;
/// Version of the trace file layout (tables and header keys).
pub const TRACE_FORMAT_VERSION: u32 = 1;
