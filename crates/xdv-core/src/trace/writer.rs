//! Writes a trace while a run progresses.

use super::{sql, TraceError, TraceHeader, SCHEMA};
use crate::accounting::ResourceRow;
use crate::chain::{ChainHash, Hash32};
use crate::event::{Event, EventSink, SinkError};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};

/// Appends events to a new trace file, committing every `batch` events.
pub struct TraceWriter {
    conn: Connection,
    path: PathBuf,
    chain: ChainHash,
    body: Vec<u8>,
    batch: u32,
    pending: u32,
    /// Test hook: abort the process after this many events (a crash at a chosen point).
    crash_after: Option<u64>,
}

impl TraceWriter {
    /// Creates (or replaces) the trace at `path`, writes the header and the modules, and opens
    /// the first batch. `modules` pairs each distinct hash with the module's bytes.
    pub fn create(
        path: &Path,
        header: &TraceHeader,
        modules: &[(Hash32, &[u8])],
        batch: u32,
    ) -> Result<Self, TraceError> {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TraceError::Io {
                        path: p.display().to_string(),
                        source,
                    })
                }
            }
        }
        let e = sql(path);
        let conn = Connection::open(path).map_err(&e)?;
        // WAL keeps committed batches safe when the process is killed, and FULL syncs each batch
        // commit so they survive a host crash too; `finish` folds the WAL back into one file.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&e)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(&e)?;
        // Zero the space that page splits free, so no stale copy of an event lingers in the file:
        // every non-zero byte of a finished trace is live data that `verify` checks.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(&e)?;
        conn.execute_batch(SCHEMA).map_err(&e)?;
        conn.execute_batch("BEGIN").map_err(&e)?;
        for (k, v) in header.to_rows() {
            conn.execute(
                "INSERT INTO header (key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .map_err(&e)?;
        }
        for (hash, bytes) in modules {
            conn.execute(
                "INSERT OR IGNORE INTO modules (hash, size, bytes) VALUES (?1, ?2, ?3)",
                params![hash.to_hex(), bytes.len() as i64, bytes],
            )
            .map_err(&e)?;
        }
        conn.execute(
            "INSERT INTO run_status (key, value) VALUES ('status', 'running')",
            [],
        )
        .map_err(&e)?;
        conn.execute_batch("COMMIT; BEGIN").map_err(&e)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            chain: ChainHash::genesis(&header.canonical()),
            body: Vec::with_capacity(256),
            batch: batch.max(1),
            pending: 0,
            crash_after: None,
        })
    }

    /// Makes the process abort (as if killed) after `n` events have been handed to the writer.
    /// Used by tests of crash tolerance.
    pub fn crash_after(&mut self, n: u64) {
        self.crash_after = Some(n);
    }

    /// The chain hash after the last event.
    pub fn head(&self) -> Hash32 {
        self.chain.head()
    }

    /// Events written so far.
    pub fn len(&self) -> u64 {
        self.chain.len()
    }

    /// `true` before any event.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    fn append(&mut self, event: &Event) -> Result<(), rusqlite::Error> {
        self.body.clear();
        event.encode_into(&mut self.body);
        let (seq, hash) = self.chain.link(&self.body);
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO events (seq, time_ns, vhm, kind, body, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.execute(params![
            seq as i64,
            event.time_ns as i64,
            event.vhm.map(|v| v.0),
            event.kind.name(),
            &self.body,
            &hash.0[..]
        ])?;
        self.pending += 1;
        if self.pending >= self.batch {
            self.conn.execute_batch("COMMIT; BEGIN")?;
            self.pending = 0;
        }
        Ok(())
    }

    /// Commits the tail, writes the Resource_Table and the final status, and folds the WAL into
    /// the main file so the trace is one self-contained file.
    pub fn finish(self, table: &[ResourceRow]) -> Result<Hash32, TraceError> {
        let e = sql(&self.path);
        let c = &self.conn;
        for (i, r) in table.iter().enumerate() {
            c.execute(
                "INSERT INTO resource_table (row, vhm_id, vhm_name, domain, allocated_resource, amount, used, start_ns, end_ns, duration_ns, capability_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    i as i64,
                    r.vhm_id,
                    r.vhm_name,
                    r.domain.to_string(),
                    r.resource,
                    r.amount as i64,
                    r.used.map(|u| u as i64),
                    r.start_ns as i64,
                    r.end_ns.map(|u| u as i64),
                    r.duration_ns.map(|u| u as i64),
                    r.capability_id as i64
                ],
            )
            .map_err(&e)?;
        }
        let head = self.chain.head();
        for (k, v) in [
            ("status", "complete".to_string()),
            ("event_count", self.chain.len().to_string()),
            ("final_hash", head.to_hex()),
        ] {
            c.execute(
                "INSERT OR REPLACE INTO run_status (key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .map_err(&e)?;
        }
        c.execute_batch("COMMIT").map_err(&e)?;
        c.pragma_update(None, "journal_mode", "DELETE")
            .map_err(&e)?;
        Ok(head)
    }
}

impl EventSink for TraceWriter {
    fn emit(&mut self, event: &Event) -> Result<(), SinkError> {
        self.append(event)
            .map_err(|e| SinkError::Store(format!("{}: {e}", self.path.display())))?;
        if self.crash_after == Some(self.chain.len()) {
            std::process::abort();
        }
        Ok(())
    }
}
