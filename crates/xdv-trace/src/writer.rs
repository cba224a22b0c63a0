//! Writes a trace while a run progresses.
//!
//! The hypervisor thread only encodes events and groups them into batches; a committer thread
//! chains their hashes, inserts them and commits one transaction per batch. The trace is I/O at
//! the edge of the run: the thread changes when bytes reach the disk, never what they are or
//! their order, so it cannot affect determinism. A bounded channel keeps at most two batches in
//! flight.

use crate::accounting::ResourceRow;
use crate::chain::ChainHash;
use crate::{sql, TraceError, TraceHeader, SCHEMA};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use xdv_core::event::{Event, EventSink, SinkError};
use xdv_core::Hash32;

/// A batch of encoded events: their bodies back to back, and per event its columns and the end
/// of its body.
#[derive(Default)]
struct Batch {
    bodies: Vec<u8>,
    rows: Vec<(u64, Option<u32>, &'static str, usize)>,
}

enum Msg {
    /// Insert and commit these events.
    Batch(Batch),
    /// Store a module loaded at run time.
    Module(Hash32, Vec<u8>),
    /// Reply once everything sent before is handled.
    Sync(SyncSender<()>),
    /// Commit everything sent before now, then reply.
    Commit(SyncSender<()>),
    /// Set a `run_status` entry.
    Status(&'static str, String),
    /// Write the Resource_Table and the final status, fold the WAL, and stop.
    Finish(Vec<ResourceRow>),
    /// Simulate a storage failure from here on (simulation testing).
    Fault(StorageFault),
}

/// A storage failure the simulator injects into a writer ([`TraceWriter::inject`]). Either
/// stops the run with a store error and leaves the trace cut short at its last commit, as a
/// real failure would; a resume then continues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// The disk fills: the file may grow by at most this many more pages, and SQLite refuses
    /// the write that needs one more (`SQLITE_FULL`).
    DiskFull {
        /// Pages the file may still grow by.
        pages: u32,
    },
    /// The first commit once this many events are chained fails, and its batch is lost.
    FailedCommit {
        /// Events chained before the failing commit may start.
        after_events: u64,
    },
}

/// Most events handed to the committer at once.
const HANDOFF_CHUNK: u32 = 256;

/// Appends events to a new trace file, committing every `batch` events.
pub struct TraceWriter {
    path: PathBuf,
    batch: Batch,
    batch_size: usize,
    tx: Option<SyncSender<Msg>>,
    committer: Option<JoinHandle<Result<Hash32, TraceError>>>,
    handed: u64,
    /// Test hook: abort the process after this many events (a crash at a chosen point).
    crash_after: Option<u64>,
    /// A `run_status` entry to write once the caller confirms it (`resumed_at`, written only
    /// after the resumed run has re-derived the committed prefix).
    pending_status: Option<(&'static str, String)>,
}

impl TraceWriter {
    /// Creates (or replaces) the trace at `path`, writes the header and the modules, and starts
    /// the committer. `modules` pairs each distinct hash with the module's bytes.
    pub fn create(
        path: &Path,
        header: &TraceHeader,
        modules: &[(Hash32, &[u8])],
        batch: u32,
    ) -> Result<Self, TraceError> {
        Self::create_with(path, header, modules, batch, false)
    }

    /// Like [`TraceWriter::create`]; with `durable`, every batch commit is also synced to the
    /// disk (`synchronous=FULL`), so committed batches survive a host crash or power loss, not
    /// only a killed process, at the cost of one sync per batch.
    pub fn create_with(
        path: &Path,
        header: &TraceHeader,
        modules: &[(Hash32, &[u8])],
        batch: u32,
        durable: bool,
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
        // WAL keeps committed batches safe when the process is killed; FULL (durable) also syncs
        // each batch commit so they survive a host crash. `finish` folds the WAL into one file.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&e)?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
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
        Self::start(path, conn, ChainHash::genesis(&header.canonical()), batch)
    }

    /// Starts the committer on an open connection (inside a transaction) whose chain stands at
    /// `chain`.
    fn start(
        path: &Path,
        conn: Connection,
        chain: ChainHash,
        batch: u32,
    ) -> Result<Self, TraceError> {
        let (tx, rx) = sync_channel(2);
        let handed = chain.len();
        let committer_path = path.to_path_buf();
        let committer = std::thread::Builder::new()
            .name("xdv-trace".into())
            .spawn(move || commit_loop(conn, committer_path, chain, u64::from(batch.max(1)), rx))
            .map_err(|source| TraceError::Io {
                path: path.display().to_string(),
                source,
            })?;
        // Hand events over in chunks smaller than a commit, so the committer works alongside the
        // run instead of after it; commits still fall exactly every `batch` events.
        let batch_size = batch.clamp(1, HANDOFF_CHUNK) as usize;
        Ok(Self {
            path: path.to_path_buf(),
            batch: Batch {
                bodies: Vec::with_capacity(batch_size * 32),
                rows: Vec::with_capacity(batch_size),
            },
            batch_size,
            tx: Some(tx),
            committer: Some(committer),
            handed,
            crash_after: None,
            pending_status: None,
        })
    }

    /// Makes the storage fail as `fault` says (simulation testing): the run that writes here
    /// then stops with a store error, leaving the trace cut short at its last good commit.
    ///
    /// # Errors
    ///
    /// As any write to the trace.
    pub fn inject(&mut self, fault: StorageFault) -> Result<(), TraceError> {
        self.send(Msg::Fault(fault))
    }

    /// Writes the pending `run_status` entry (the resume record) with the next commit.
    pub fn confirm_status(&mut self) -> Result<(), TraceError> {
        match self.pending_status.take() {
            Some((k, v)) => self.send(Msg::Status(k, v)),
            None => Ok(()),
        }
    }

    /// Reopens a trace that was cut short (its writer was killed) to append to it: checks it is a
    /// trace, recovers its write-ahead log, verifies its hash chain, and continues the chain
    /// after its last committed event. Records the resume in `run_status` (`resumed_at`: the
    /// committed event counts at each resume; written by [`TraceWriter::confirm_status`] once the
    /// caller has re-derived the prefix), never in the events. Returns the writer and the number
    /// of committed events.
    pub fn resume(path: &Path, batch: u32, durable: bool) -> Result<(Self, u64), TraceError> {
        let reader = crate::TraceReader::open_to_resume(path)?;
        if reader.is_complete()? {
            return Err(TraceError::Finished {
                path: path.display().to_string(),
            });
        }
        let header = reader.header()?;
        let report = reader.verify()?;
        if !report.intact() {
            return Err(TraceError::NotATrace {
                path: path.display().to_string(),
                reason: format!("it does not verify, so it cannot be resumed: {report:?}"),
            });
        }
        drop(reader);
        let e = sql(path);
        let conn = Connection::open(path).map_err(&e)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&e)?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
            .map_err(&e)?;
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(&e)?;
        let (count, head): (i64, Option<Vec<u8>>) = conn
            .query_row(
                "SELECT count(*), (SELECT hash FROM events ORDER BY seq DESC LIMIT 1) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(&e)?;
        let count = count as u64;
        let chain = match head {
            Some(h) if h.len() == 32 => {
                ChainHash::resume(Hash32(h.try_into().expect("32 bytes")), count)
            }
            _ => ChainHash::genesis(&header.canonical()),
        };
        let previous: Option<String> = conn
            .query_row(
                "SELECT value FROM run_status WHERE key = 'resumed_at'",
                [],
                |r| r.get(0),
            )
            .ok();
        let resumed = match previous {
            Some(p) => format!("{p},{count}"),
            None => count.to_string(),
        };
        conn.execute_batch("BEGIN").map_err(&e)?;
        let mut w = Self::start(path, conn, chain, batch)?;
        w.pending_status = Some(("resumed_at", resumed));
        Ok((w, count))
    }

    /// Makes the process abort (as if killed) after `n` events have been handed to the writer;
    /// every full batch before it is committed first, the partial one is lost. Used by tests of
    /// crash tolerance.
    pub fn crash_after(&mut self, n: u64) {
        self.crash_after = Some(n);
    }

    /// Commits every event handed so far and waits until it is committed (and synced, when the
    /// writer is durable): a service acknowledges a request only after this.
    ///
    /// # Errors
    ///
    /// [`TraceError`] when the committer failed.
    pub fn commit(&mut self) -> Result<(), TraceError> {
        self.flush_batch()?;
        let (ack, done) = sync_channel(1);
        self.send(Msg::Commit(ack))?;
        done.recv().map_err(|_| TraceError::NotATrace {
            path: self.path.display().to_string(),
            reason: "the trace committer stopped".into(),
        })
    }

    /// Events handed to the writer so far.
    pub fn len(&self) -> u64 {
        self.handed
    }

    /// `true` before any event.
    pub fn is_empty(&self) -> bool {
        self.handed == 0
    }

    fn send(&mut self, msg: Msg) -> Result<(), TraceError> {
        let delivered = self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok());
        if delivered {
            return Ok(());
        }
        // The committer stopped: it failed, and its error says why.
        self.tx = None;
        match self.committer.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => Err(e),
            _ => Err(TraceError::NotATrace {
                path: self.path.display().to_string(),
                reason: "the trace committer stopped".into(),
            }),
        }
    }

    fn flush_batch(&mut self) -> Result<(), TraceError> {
        if self.batch.rows.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(
            &mut self.batch,
            Batch {
                bodies: Vec::with_capacity(self.batch_size * 32),
                rows: Vec::with_capacity(self.batch_size),
            },
        );
        self.send(Msg::Batch(full))
    }

    /// Commits the tail, writes the Resource_Table and the final status, and folds the WAL into
    /// the main file so the trace is one self-contained file. Returns the final chain hash.
    pub fn finish(mut self, table: &[ResourceRow]) -> Result<Hash32, TraceError> {
        self.flush_batch()?;
        self.send(Msg::Finish(table.to_vec()))?;
        self.tx = None;
        match self.committer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(TraceError::NotATrace {
                path: self.path.display().to_string(),
                reason: "the trace committer panicked".into(),
            }),
        }
    }
}

impl Drop for TraceWriter {
    /// A writer dropped without `finish` (a run that stopped on an error) commits every event
    /// handed to it and leaves a trace marked as cut short.
    fn drop(&mut self) {
        if self.tx.is_some() {
            let _ = self.flush_batch();
        }
        self.tx = None;
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

impl EventSink for TraceWriter {
    fn module(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<(), SinkError> {
        // Modules travel ahead of the event that announces them, so a committed ModuleLoaded
        // always has its bytes.
        self.send(Msg::Module(*hash, bytes.to_vec()))
            .map_err(|e| SinkError::Store(e.to_string()))
    }

    fn emit(&mut self, event: &Event) -> Result<(), SinkError> {
        event.encode_into(&mut self.batch.bodies);
        self.batch.rows.push((
            event.time_ns,
            event.vhm.map(|v| v.0),
            event.kind.name(),
            self.batch.bodies.len(),
        ));
        self.handed += 1;
        if self.batch.rows.len() >= self.batch_size {
            self.flush_batch()
                .map_err(|e| SinkError::Store(e.to_string()))?;
        }
        if self.crash_after == Some(self.handed) {
            let _ = self.flush_batch();
            let (ack, done) = sync_channel(1);
            if self.send(Msg::Sync(ack)).is_ok() {
                let _ = done.recv();
            }
            std::process::abort();
        }
        Ok(())
    }
}

/// The committer thread: chains, inserts and commits batches until told to finish or the writer
/// goes away (a run that stopped early leaves a trace cut short at its last commit).
fn commit_loop(
    conn: Connection,
    path: PathBuf,
    mut chain: ChainHash,
    commit_every: u64,
    rx: Receiver<Msg>,
) -> Result<Hash32, TraceError> {
    let e = sql(&path);
    let mut fail_commit_after: Option<u64> = None;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch(batch) => {
                let mut stmt = conn
                        .prepare_cached("INSERT INTO events (seq, time_ns, vhm, kind, body, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                        .map_err(&e)?;
                let mut start = 0;
                for &(time, vhm, kind, end) in &batch.rows {
                    let body = &batch.bodies[start..end];
                    let (seq, hash) = chain.link(body);
                    stmt.execute(params![
                        seq as i64,
                        time as i64,
                        vhm,
                        kind,
                        body,
                        &hash.0[..]
                    ])
                    .map_err(&e)?;
                    start = end;
                    if chain.len().is_multiple_of(commit_every) {
                        failed_commit(fail_commit_after, &chain, &path)?;
                        conn.execute_batch("COMMIT; BEGIN").map_err(&e)?;
                    }
                }
            }
            Msg::Module(hash, bytes) => {
                conn.execute(
                    "INSERT OR IGNORE INTO modules (hash, size, bytes) VALUES (?1, ?2, ?3)",
                    params![hash.to_hex(), bytes.len() as i64, bytes],
                )
                .map_err(&e)?;
            }
            Msg::Sync(ack) => {
                let _ = ack.send(());
            }
            Msg::Commit(ack) => {
                failed_commit(fail_commit_after, &chain, &path)?;
                conn.execute_batch("COMMIT; BEGIN").map_err(&e)?;
                let _ = ack.send(());
            }
            Msg::Status(key, value) => {
                conn.execute(
                    "INSERT OR REPLACE INTO run_status (key, value) VALUES (?1, ?2)",
                    params![key, value],
                )
                .map_err(&e)?;
            }
            Msg::Finish(table) => {
                failed_commit(fail_commit_after, &chain, &path)?;
                return finish(&conn, &path, &chain, &table);
            }
            Msg::Fault(StorageFault::FailedCommit { after_events }) => {
                fail_commit_after = Some(after_events);
            }
            Msg::Fault(StorageFault::DiskFull { pages }) => {
                let used: i64 = conn
                    .query_row("PRAGMA page_count", [], |r| r.get(0))
                    .map_err(&e)?;
                conn.pragma_update(None, "max_page_count", used + i64::from(pages))
                    .map_err(&e)?;
            }
        }
    }
    conn.execute_batch("COMMIT").map_err(&e)?;
    Ok(chain.head())
}

/// The injected commit failure, once `after` events are chained: the open transaction and its
/// batch are lost, as with a failed fsync.
fn failed_commit(after: Option<u64>, chain: &ChainHash, path: &Path) -> Result<(), TraceError> {
    match after {
        Some(n) if chain.len() >= n => Err(TraceError::NotATrace {
            path: path.display().to_string(),
            reason: format!(
                "injected storage failure: the commit after event {} failed",
                chain.len().saturating_sub(1)
            ),
        }),
        _ => Ok(()),
    }
}

fn finish(
    c: &Connection,
    path: &Path,
    chain: &ChainHash,
    table: &[ResourceRow],
) -> Result<Hash32, TraceError> {
    let e = sql(path);

    for (i, r) in table.iter().enumerate() {
        c.execute(
                "INSERT INTO resource_table (row, vhm_id, vhm_name, parent_id, level, domain, allocated_resource, amount, used, start_ns, end_ns, duration_ns, capability_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    i as i64,
                    r.vhm_id,
                    r.vhm_name,
                    r.parent_id,
                    r.level,
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
    let head = chain.head();
    for (k, v) in [
        ("status", "complete".to_string()),
        ("event_count", chain.len().to_string()),
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
