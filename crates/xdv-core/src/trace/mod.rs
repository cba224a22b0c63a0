//! The trace: one SQLite file per run (DESIGN §3).
//!
//! Tables:
//! - `header(key, value)`: the fields of [`TraceHeader`]; their canonical encoding seeds the hash chain.
//! - `modules(hash, size, bytes)`: every guest module by BLAKE3 hash, so replay needs nothing else.
//! - `events(seq, time_ns, vhm, kind, body, hash)`: `body` is the canonical event encoding, `hash`
//!   the chain hash after it; the other columns are views of `body` for people using `sqlite3`.
//! - `resource_table(...)`: the spec's Resource_Table, written when the run finishes.
//! - `run_status(key, value)`: `status` (`running` or `complete`), `event_count`, `final_hash`.
//!
//! Events are committed in batches; a killed writer loses at most its uncommitted tail.

mod header;
mod reader;
mod writer;

pub use header::{ModuleEntry, TraceHeader};
pub use reader::{StoredEvent, TraceReader, VerifyReport};
pub use writer::TraceWriter;

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
