//! The xdv trace: one SQLite file per run (DESIGN §3), its hash chain, its verification, the
//! Resource_Table derived from its events, and the words a person reads (`describe`).
//!
//! Tables:
//! - `header(key, value)`: the fields of [`TraceHeader`]; their canonical encoding seeds the hash chain.
//! - `modules(hash, size, bytes)`: every guest module by BLAKE3 hash, so replay needs nothing else.
//! - `events(seq, time_ns, vhm, kind, body, hash)`: `body` is the canonical event encoding, `hash`
//!   the chain hash after it; the other columns are views of `body` for people using `sqlite3`.
//! - `resource_table(...)`: the spec's Resource_Table, written when the run finishes.
//! - `run_status(key, value)`: `status` (`running` or `complete`), `event_count`, `final_hash`,
//!   `resumed_at`, and for a signed trace `signature` and `signed_by` ([`sign`]).
//!
//! Events are committed in batches; a killed writer loses at most its uncommitted tail.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounting;
pub mod chain;
mod describe;
mod header;
mod inputs;
mod project;
mod reader;
pub mod sign;
mod writer;

pub use accounting::{derive_resource_table, ResourceRow, TableBuilder};
pub use chain::ChainHash;
pub use describe::{event_json, Describe};
pub use project::project;

pub use header::{ModuleEntry, TraceHeader};
pub use inputs::InputCheck;
pub use reader::{EventCursor, RawEvent, StoredEvent, TraceReader, VerifyOptions, VerifyReport};
pub use sign::{sign_trace, PublicKey, SecretKey, SignatureStatus};
pub use writer::{StorageFault, TraceWriter};

/// The oldest trace format this xdv reads ([`xdv_core::TRACE_FORMAT_VERSION`] is the newest).
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// The oldest event schema this xdv reads ([`xdv_core::EVENT_SCHEMA_VERSION`] is the newest). Newer
/// schemas only append event kinds (postcard encodes a variant by its index), so older bodies
/// still decode; a replay of an older-schema trace may still diverge where the hypervisor's
/// behaviour changed since, and says so.
pub const OLDEST_EVENT_SCHEMA: u32 = 4;

/// The `header` keys of a trace, all required, no others allowed.
pub const HEADER_KEYS: &[&str] = &[
    "format_version",
    "event_schema",
    "xdv_version",
    "engine",
    "seed",
    "manifest_name",
    "manifest_text",
    "modules",
];

/// The `run_status` keys a trace may hold; `status` is required, the others depend on it.
pub const RUN_STATUS_KEYS: &[&str] = &[
    "status",
    "event_count",
    "final_hash",
    "resumed_at",
    "signature",
    "signed_by",
];

/// Errors of the trace store.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// SQLite failed on the file.
    #[error("{path}: {source}")]
    Sqlite {
        /// The trace file.
        path: String,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The file is not an xdv trace, or is of an unsupported version.
    #[error("{path}: not an xdv trace: {reason}")]
    NotATrace {
        /// The trace file.
        path: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// A resume was asked of a trace whose run finished: it is a valid trace, and there is
    /// nothing left to run.
    #[error("{path}: an xdv trace of a run that finished: there is nothing to resume (only a trace cut short, whose writer was killed, can be resumed)")]
    Finished {
        /// The trace file.
        path: String,
    },
    /// A key file is unreadable or not a key of the kind asked for.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

pub(crate) fn sql(path: &std::path::Path) -> impl Fn(rusqlite::Error) -> TraceError + '_ {
    move |source| TraceError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

const SCHEMA: &str = "
CREATE TABLE header (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE modules (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, bytes BLOB NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    vhm INTEGER,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE resource_table (
    row INTEGER PRIMARY KEY,
    vhm_id INTEGER NOT NULL,
    vhm_name TEXT NOT NULL,
    parent_id INTEGER,
    level INTEGER NOT NULL,
    domain TEXT NOT NULL,
    allocated_resource TEXT NOT NULL,
    amount INTEGER NOT NULL,
    used INTEGER,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    duration_ns INTEGER,
    capability_id INTEGER NOT NULL
);
CREATE TABLE run_status (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";
