//! Reads and verifies a trace.

use crate::accounting::{derive_resource_table, ResourceRow};
use crate::chain::ChainHash;
use crate::sign::{self, PublicKey, SignatureStatus};
use crate::{
    sql, InputCheck, TraceError, TraceHeader, HEADER_KEYS, OLDEST_EVENT_SCHEMA,
    OLDEST_FORMAT_VERSION, RUN_STATUS_KEYS,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use xdv_core::event::Event;
use xdv_core::ids::{Domain, VhmId};
use xdv_core::Hash32;
use xdv_core::{EVENT_SCHEMA_VERSION, TRACE_FORMAT_VERSION};

/// One stored event with its place in the chain.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Sequence number, from 0.
    pub seq: u64,
    /// The decoded event.
    pub event: Event,
    /// Its canonical encoding as stored.
    pub body: Vec<u8>,
    /// The chain hash after it, as stored.
    pub hash: Hash32,
}

/// One event as [`EventCursor::next_body`] takes it.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// Sequence number, from 0.
    pub seq: u64,
    /// Its canonical encoding as stored.
    pub body: Vec<u8>,
    /// The decoded event, when [`EventCursor::peek`] decoded it.
    pub decoded: Option<Event>,
}

/// The events of a trace in order, read a page at a time ([`TraceReader::cursor`]). Bodies
/// are decoded only when asked for: a replay compares bytes, and decodes only what it must
/// read (a measured input) or explain (a divergence).
pub struct EventCursor<'r> {
    reader: &'r TraceReader,
    next_seq: u64,
    /// (seq, body) of the page's events not yet taken.
    page: std::collections::VecDeque<(u64, Vec<u8>)>,
    /// The front event decoded, once [`EventCursor::peek`] asked for it.
    front: Option<Event>,
    exhausted: bool,
}

impl EventCursor<'_> {
    /// Events read from the file at a time.
    pub const PAGE: u32 = 1024;

    /// The next event, decoded, without taking it; `None` after the last.
    ///
    /// # Errors
    ///
    /// [`TraceError::NotATrace`] when its body does not decode; [`TraceError::Sqlite`].
    pub fn peek(&mut self) -> Result<Option<&Event>, TraceError> {
        if self.front.is_none() {
            let reader = self.reader;
            let Some((seq, body)) = self.peek_body()? else {
                return Ok(None);
            };
            let event = reader.decode_body(seq, body)?;
            self.front = Some(event);
        }
        Ok(self.front.as_ref())
    }

    /// The next event's sequence number and canonical bytes, without taking it.
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`].
    pub fn peek_body(&mut self) -> Result<Option<(u64, &[u8])>, TraceError> {
        if self.page.is_empty() && !self.exhausted {
            self.fill()?;
        }
        Ok(self.page.front().map(|(seq, body)| (*seq, body.as_slice())))
    }

    /// Takes the next event: its sequence number and bytes, and the decoded event when
    /// [`EventCursor::peek`] decoded it.
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`].
    pub fn next_body(&mut self) -> Result<Option<RawEvent>, TraceError> {
        self.peek_body()?;
        let decoded = self.front.take();
        Ok(self
            .page
            .pop_front()
            .map(|(seq, body)| RawEvent { seq, body, decoded }))
    }

    /// Takes the next event, decoded; `None` after the last.
    ///
    /// # Errors
    ///
    /// As [`EventCursor::peek`].
    pub fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        self.peek()?;
        Ok(self.next_body()?.and_then(|r| r.decoded))
    }

    fn fill(&mut self) -> Result<(), TraceError> {
        let r = self.reader;
        let e = sql(&r.path);
        let mut stmt = r
            .conn
            .prepare_cached("SELECT seq, body FROM events WHERE seq >= ?1 ORDER BY seq LIMIT ?2")
            .map_err(&e)?;
        let mut rows = stmt
            .query(params![self.next_seq as i64, Self::PAGE])
            .map_err(&e)?;
        while let Some(row) = rows.next().map_err(&e)? {
            let seq: i64 = row.get(0).map_err(&e)?;
            let body: Vec<u8> = row.get(1).map_err(&e)?;
            self.next_seq = seq as u64 + 1;
            self.page.push_back((seq as u64, body));
        }
        self.exhausted = self.page.len() < Self::PAGE as usize;
        Ok(())
    }
}

/// The outcome of [`TraceReader::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Events whose chain link checked out, from the first.
    pub events_verified: u64,
    /// `true` when the run finished and wrote its final status. A trace that was cut short has
    /// no final status and no signature: nothing in it proves that no events were removed from
    /// its end.
    pub complete: bool,
    /// Chain hash after the last verified event.
    pub head: String,
    /// The first integrity problem found, if any. `None` means the trace is intact (possibly cut
    /// short, see `complete`).
    pub problem: Option<String>,
    /// The signature's state (checked only when nothing before it failed).
    pub signature: SignatureStatus,
    /// The trace format the trace was written in.
    pub format_version: u32,
    /// The event schema its bodies are encoded in.
    pub event_schema: u32,
}

impl VerifyReport {
    /// `true` when no integrity problem was found.
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// What [`TraceReader::verify_with`] checks beyond the trace's own consistency.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The engine the header must name (`xdv_k::ENGINE_ID` of the verifying xdv): a trace of
    /// another engine cannot be re-executed by this one. `None` skips the check.
    pub engine: Option<String>,
    /// Require a valid signature by this key: an unsigned trace, a trace cut short (which
    /// carries no signature), or one signed by another key fails.
    pub key: Option<PublicKey>,
}

/// The `file:` URI that opens `path` read-only, its index included. Bytes outside the unreserved
/// set are percent-encoded, so no file name can add URI parameters.
fn read_only_uri(path: &Path, shared_index: bool) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for &b in abs.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        Path::new(&p).exists()
    };
    uri.push_str(if !side("-wal") && !side("-shm") && !shared_index {
        // No write-ahead log, so no writer is live (one creates both files when it opens the
        // trace) and nothing outside the file holds events: read it as it is.
        "?mode=ro&immutable=1"
    } else if shared_index || !side("-shm") {
        // A log without its index: SQLite creates the index beside it, the trace and its log
        // are still only read.
        "?mode=ro"
    } else {
        "?mode=ro&readonly_shm=1"
    });
    uri
}

/// An open trace file.
pub struct TraceReader {
    conn: Connection,
    path: PathBuf,
}

impl TraceReader {
    /// Opens a trace, read-only: opening never changes the file. A trace left behind by a killed
    /// writer is read with the events its write-ahead log holds, and the log is left in place
    /// (a writer, such as `xdv run --resume`, recovers it when it opens the file).
    ///
    /// # Errors
    ///
    /// [`TraceError::NotATrace`] when the file is missing, lacks the xdv tables, has a header
    /// that does not read, or is of a format or event schema this xdv does not read;
    /// [`TraceError::Sqlite`] when SQLite cannot open it.
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        Self::open_as(path, false)
    }

    /// Opens a trace that this process is about to write as well (`xdv run --resume`): the
    /// write-ahead log's index is shared with the writer, so it is opened writable. The trace's
    /// own bytes are still only read through this reader.
    ///
    /// # Errors
    ///
    /// As [`TraceReader::open`].
    pub fn open_to_resume(path: &Path) -> Result<Self, TraceError> {
        Self::open_as(path, true)
    }

    fn open_as(path: &Path, shared_index: bool) -> Result<Self, TraceError> {
        if !path.is_file() {
            return Err(TraceError::NotATrace {
                path: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        let e = sql(path);
        // `readonly_shm`: the write-ahead log's index (`-shm`) is not written either; SQLite
        // rebuilds it in private memory when it must.
        let conn = Connection::open_with_flags(
            read_only_uri(path, shared_index),
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(&e)?;
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('header','modules','events','resource_table','run_status')",
                [],
                |r| r.get(0),
            )
            .map_err(|err| TraceError::NotATrace { path: path.display().to_string(), reason: err.to_string() })?;
        if tables != 5 {
            return Err(TraceError::NotATrace {
                path: path.display().to_string(),
                reason: "missing xdv tables".into(),
            });
        }
        let reader = Self {
            conn,
            path: path.to_path_buf(),
        };
        let h = reader.header()?;
        let formats = OLDEST_FORMAT_VERSION..=TRACE_FORMAT_VERSION;
        let schemas = OLDEST_EVENT_SCHEMA..=EVENT_SCHEMA_VERSION;
        if !formats.contains(&h.format_version) || !schemas.contains(&h.event_schema) {
            return Err(TraceError::NotATrace {
                path: path.display().to_string(),
                reason: format!(
                    "format {} / event schema {} (this xdv reads formats {OLDEST_FORMAT_VERSION}–{TRACE_FORMAT_VERSION} / event schemas {OLDEST_EVENT_SCHEMA}–{EVENT_SCHEMA_VERSION})",
                    h.format_version, h.event_schema
                ),
            });
        }
        Ok(reader)
    }

    /// The run's header.
    ///
    /// # Errors
    ///
    /// [`TraceError::NotATrace`] when a key is missing or malformed; [`TraceError::Sqlite`].
    pub fn header(&self) -> Result<TraceHeader, TraceError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM header")
            .map_err(sql(&self.path))?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|it| it.collect())
            .map_err(sql(&self.path))?;
        TraceHeader::from_rows(|k| {
            rows.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        })
        .map_err(|reason| TraceError::NotATrace {
            path: self.path.display().to_string(),
            reason,
        })
    }

    /// A stored module's bytes, by hash.
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`] when the table cannot be read.
    pub fn module(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, TraceError> {
        self.conn
            .query_row(
                "SELECT bytes FROM modules WHERE hash = ?1",
                params![hash.to_hex()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))
    }

    /// The text of a Q program or Φ transform the run ran, by the hash its `q_job_submitted` or
    /// `phi_executed` event names; `None` when the trace does not hold it (traces of releases
    /// before texts were stored).
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`] when the table cannot be read.
    pub fn text(&self, hash: &Hash32) -> Result<Option<String>, TraceError> {
        Ok(self.module(hash)?.and_then(|b| String::from_utf8(b).ok()))
    }

    fn status_value(&self, key: &str) -> Result<Option<String>, TraceError> {
        self.conn
            .query_row(
                "SELECT value FROM run_status WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))
    }

    /// `true` when the run finished (its final status was committed).
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`] when the table cannot be read.
    pub fn is_complete(&self) -> Result<bool, TraceError> {
        Ok(self.status_value("status")?.as_deref() == Some("complete"))
    }

    /// The final chain hash the writer recorded, for a complete trace.
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`] when the table cannot be read.
    pub fn final_hash(&self) -> Result<Option<Hash32>, TraceError> {
        Ok(self
            .status_value("final_hash")?
            .and_then(|h| Hash32::from_hex(&h)))
    }

    /// Visits stored events in sequence order. Rows that do not decode are reported as errors
    /// naming the sequence number.
    ///
    /// # Errors
    ///
    /// [`TraceError::NotATrace`] for a row that does not decode, or the error `f` returns;
    /// [`TraceError::Sqlite`].
    pub fn for_each_event(
        &self,
        mut f: impl FnMut(StoredEvent) -> Result<bool, String>,
    ) -> Result<(), TraceError> {
        self.visit_rows(
            "SELECT seq, body, hash FROM events ORDER BY seq",
            [],
            |stored| {
                f(stored).map_err(|reason| TraceError::NotATrace {
                    path: self.path.display().to_string(),
                    reason,
                })
            },
        )
    }

    /// Decodes the rows of `query` (seq, body, hash) in order, until `f` says stop.
    fn visit_rows(
        &self,
        query: &str,
        params: impl rusqlite::Params,
        mut f: impl FnMut(StoredEvent) -> Result<bool, TraceError>,
    ) -> Result<(), TraceError> {
        let e = sql(&self.path);
        let mut stmt = self.conn.prepare_cached(query).map_err(&e)?;
        let mut rows = stmt.query(params).map_err(&e)?;
        while let Some(row) = rows.next().map_err(&e)? {
            let stored = self.decode_row(
                row.get(0).map_err(&e)?,
                row.get(1).map_err(&e)?,
                row.get(2).map_err(&e)?,
            )?;
            if !f(stored)? {
                break;
            }
        }
        Ok(())
    }

    /// A cursor over the stored events in order, reading a page of [`EventCursor::PAGE`] events
    /// at a time: its memory does not grow with the trace.
    pub fn cursor(&self) -> EventCursor<'_> {
        EventCursor {
            reader: self,
            next_seq: 0,
            page: std::collections::VecDeque::new(),
            front: None,
            exhausted: false,
        }
    }

    /// How many events the trace holds.
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`].
    pub fn event_count(&self) -> Result<u64, TraceError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(sql(&self.path))?;
        Ok(n as u64)
    }

    /// Decodes the body of event `seq`.
    fn decode_body(&self, seq: u64, body: &[u8]) -> Result<Event, TraceError> {
        Event::decode(body).map_err(|err| TraceError::NotATrace {
            path: self.path.display().to_string(),
            reason: format!("event {seq}: body does not decode: {err}"),
        })
    }

    /// Decodes one stored row.
    fn decode_row(
        &self,
        seq: i64,
        body: Vec<u8>,
        hash: Vec<u8>,
    ) -> Result<StoredEvent, TraceError> {
        let corrupt = |reason: String| TraceError::NotATrace {
            path: self.path.display().to_string(),
            reason,
        };
        let event = self.decode_body(seq as u64, &body)?;
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| corrupt(format!("event {seq}: hash is not 32 bytes")))?;
        Ok(StoredEvent {
            seq: seq as u64,
            event,
            body,
            hash: Hash32(hash),
        })
    }

    /// Visits the stored events with sequence numbers in `from..to` (of `vhm` only, when
    /// given), in order, until `f` says stop.
    ///
    /// # Errors
    ///
    /// As [`TraceReader::for_each_event`].
    pub fn for_each_event_in(
        &self,
        from: u64,
        to: u64,
        vhm: Option<VhmId>,
        mut f: impl FnMut(StoredEvent) -> bool,
    ) -> Result<(), TraceError> {
        let (from, to) = (
            from.min(i64::MAX as u64) as i64,
            to.min(i64::MAX as u64) as i64,
        );
        self.visit_rows(
            "SELECT seq, body, hash FROM events WHERE seq >= ?1 AND seq < ?2 \
             AND (?3 IS NULL OR vhm = ?3) ORDER BY seq",
            params![from, to, vhm.map(|v| v.0)],
            |stored| Ok(f(stored)),
        )
    }

    /// Writes a consistent copy of the trace as it is committed now to `to` (a new file), while
    /// its writer goes on: `GET /v1/trace`.
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`] when SQLite cannot write the copy.
    pub fn snapshot(&self, to: &Path) -> Result<(), TraceError> {
        self.conn
            .execute("VACUUM INTO ?1", [to.display().to_string()])
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// All stored events, decoded.
    ///
    /// # Errors
    ///
    /// As [`TraceReader::for_each_event`].
    pub fn events(&self) -> Result<Vec<Event>, TraceError> {
        let mut out = Vec::new();
        self.for_each_event(|s| {
            out.push(s.event);
            Ok(true)
        })?;
        Ok(out)
    }

    /// The Resource_Table as stored at the end of the run, or derived from the committed events
    /// when the run was cut short (the `bool` is `true` when derived).
    ///
    /// # Errors
    ///
    /// [`TraceError::Sqlite`] when the table cannot be read; [`TraceError::NotATrace`] when a
    /// stored row names no domain xdv knows.
    pub fn resource_table(&self) -> Result<(Vec<ResourceRow>, bool), TraceError> {
        if !self.is_complete()? {
            return Ok((derive_resource_table(&self.events()?), true));
        }
        let rows = self
            .stored_table()?
            .map_err(|reason| TraceError::NotATrace {
                path: self.path.display().to_string(),
                reason,
            })?;
        Ok((rows, false))
    }

    /// The stored `resource_table` rows; the inner error names a row whose domain is unknown.
    fn stored_table(&self) -> Result<Result<Vec<ResourceRow>, String>, TraceError> {
        let e = sql(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT vhm_id, vhm_name, parent_id, level, domain, allocated_resource, amount, used, start_ns, end_ns, duration_ns, capability_id, row FROM resource_table ORDER BY row")
            .map_err(&e)?;
        let rows = stmt
            .query_map([], |r| {
                let domain: String = r.get(4)?;
                let row: i64 = r.get(12)?;
                Ok((
                    row,
                    domain,
                    ResourceRow {
                        vhm_id: r.get(0)?,
                        vhm_name: r.get(1)?,
                        parent_id: r.get(2)?,
                        level: r.get(3)?,
                        domain: Domain::K,
                        resource: r.get(5)?,
                        amount: r.get::<_, i64>(6)? as u64,
                        used: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                        start_ns: r.get::<_, i64>(8)? as u64,
                        end_ns: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
                        duration_ns: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
                        capability_id: r.get::<_, i64>(11)? as u64,
                    },
                ))
            })
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(&e)?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, (row, domain, mut r)) in rows.into_iter().enumerate() {
            r.domain = match domain.as_str() {
                "K" => Domain::K,
                "Q" => Domain::Q,
                "Phi" => Domain::Phi,
                other => {
                    return Ok(Err(format!(
                        "resource_table row {row}: unknown domain {other:?}"
                    )))
                }
            };
            if row != i as i64 {
                return Ok(Err(format!(
                    "resource_table rows are not numbered from 0 without gaps (row {row} at place {i})"
                )));
            }
            out.push(r);
        }
        Ok(Ok(out))
    }

    /// Every `(key, value)` row of a key-value table, in key order.
    fn key_values(&self, table: &str) -> Result<BTreeMap<String, String>, TraceError> {
        let e = sql(&self.path);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT key, value FROM {table}"))
            .map_err(&e)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|it| it.collect::<Result<BTreeMap<String, String>, _>>())
            .map_err(&e)?;
        Ok(rows)
    }

    /// Checks the trace's integrity: SQLite's own page check, the header's keys and engine,
    /// every module row (hash, size) and every module the header and the events name, the header
    /// as the chain's genesis, every event's link and columns, the recorded job outcomes against
    /// their jobs, the `run_status` keys and the final status, the Resource_Table against the
    /// events, and the signature when there is one. Stops at the first problem.
    ///
    /// # Errors
    ///
    /// [`TraceError`] when the file cannot be read; integrity problems are in the report.
    pub fn verify(&self) -> Result<VerifyReport, TraceError> {
        self.verify_with(&VerifyOptions::default())
    }

    /// [`TraceReader::verify`], also checking the header's engine and requiring a signature by a
    /// given key, as `opts` asks.
    ///
    /// # Errors
    ///
    /// [`TraceError`] when the file cannot be read; integrity problems are in the report.
    pub fn verify_with(&self, opts: &VerifyOptions) -> Result<VerifyReport, TraceError> {
        Ok(self.verify_inner(opts)?.0)
    }

    /// Verifies, and returns the message a signature of this trace covers (for an intact,
    /// complete trace).
    pub(crate) fn verify_for_signing(&self) -> Result<(VerifyReport, Option<Vec<u8>>), TraceError> {
        self.verify_inner(&VerifyOptions::default())
    }

    fn verify_inner(
        &self,
        opts: &VerifyOptions,
    ) -> Result<(VerifyReport, Option<Vec<u8>>), TraceError> {
        let header = self.header()?;
        let status = self.key_values("run_status")?;
        let complete = status.get("status").map(String::as_str) == Some("complete");
        let mut chain = ChainHash::genesis(&header.canonical());
        let report = |chain: &ChainHash, problem: Option<String>, signature| VerifyReport {
            events_verified: chain.len(),
            complete,
            head: chain.head().to_hex(),
            problem,
            signature,
            format_version: header.format_version,
            event_schema: header.event_schema,
        };
        macro_rules! fail {
            ($($t:tt)*) => {
                return Ok((report(&chain, Some(format!($($t)*)), SignatureStatus::NotChecked), None))
            };
        }
        let (stored, mut referenced) = match self.check_store(&header)? {
            Ok(s) => s,
            Err(why) => fail!("{why}"),
        };
        let derived = match self.check_events(&header, &stored, &mut referenced, &mut chain)? {
            Ok(d) => d,
            Err(why) => fail!("{why}"),
        };
        if let Err(why) = check_status(opts, &header, &status, &chain) {
            fail!("{why}");
        }
        let table = match self.stored_table()? {
            Ok(t) => t,
            Err(why) => fail!("{why}"),
        };
        if !complete {
            if !table.is_empty() {
                fail!(
                    "the run is marked `running` but its resource_table holds {} rows (written only when a run finishes)",
                    table.len()
                );
            }
            let signature = if opts.key.is_some() {
                fail!(
                    "the trace was cut short ({} events committed): it carries no signature, so nothing proves that no events were removed from its end",
                    chain.len()
                );
            } else {
                SignatureStatus::Unsigned
            };
            return Ok((report(&chain, None, signature), None));
        }
        let count = status.get("event_count");
        if count != Some(&chain.len().to_string()) {
            fail!(
                "run status says {} events, trace holds {}",
                count.cloned().unwrap_or_default(),
                chain.len()
            );
        }
        if status.get("final_hash").and_then(|h| Hash32::from_hex(h)) != Some(chain.head()) {
            fail!("final hash does not match the last event's hash");
        }
        if table != derived.finish() {
            fail!("resource_table does not match the one derived from the events");
        }
        if let Some(h) = stored.keys().find(|h| !referenced.contains(h)) {
            fail!(
                "module {} is stored but neither the header nor any event names it",
                h.short()
            );
        }
        let rows: Vec<(Hash32, u64)> = stored.into_iter().collect();
        let msg = sign::message(
            &header,
            chain.len(),
            &chain.head(),
            &sign::modules_digest(&rows),
            status.get("resumed_at").map_or("", String::as_str),
        );
        match check_signature(&status, &msg, opts) {
            Ok(signature) => Ok((report(&chain, None, signature), Some(msg))),
            Err((why, signature)) => Ok((report(&chain, Some(why), signature), None)),
        }
    }
    /// The store itself: SQLite's integrity, the header's keys, every module row (its hash and
    /// size), and every module the header names present. The stored modules' sizes by hash and
    /// the hashes referenced so far, or the problem.
    fn check_store(
        &self,
        header: &TraceHeader,
    ) -> Result<Result<StoredModules, String>, TraceError> {
        macro_rules! problem {
            ($($t:tt)*) => { return Ok(Err(format!($($t)*))) };
        }
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql(&self.path))?;
        if check != "ok" {
            problem!("SQLite integrity check: {check}");
        }
        // The header: only the keys its canonical encoding covers.
        if let Some(k) = self
            .key_values("header")?
            .keys()
            .find(|k| !HEADER_KEYS.contains(&k.as_str()))
        {
            problem!("header has an unknown key `{k}` (not covered by the hash chain)");
        }
        // Every module row: its hash is the BLAKE3 of its bytes, its size their length.
        let mut stored: BTreeMap<Hash32, u64> = BTreeMap::new();
        {
            let e = sql(&self.path);
            let mut stmt = self
                .conn
                .prepare("SELECT hash, size, bytes FROM modules ORDER BY hash")
                .map_err(&e)?;
            let mut rows = stmt.query([]).map_err(&e)?;
            while let Some(row) = rows.next().map_err(&e)? {
                let hex: String = row.get(0).map_err(&e)?;
                let size: i64 = row.get(1).map_err(&e)?;
                let bytes: Vec<u8> = row.get(2).map_err(&e)?;
                let hash = match Hash32::from_hex(&hex) {
                    Some(h) if h.to_hex() == hex => h,
                    _ => problem!("modules row {hex:?}: not a lower-case BLAKE3 hash"),
                };
                if Hash32::of(&bytes) != hash {
                    problem!("module {}: its bytes do not match its hash", hash.short());
                }
                if size != bytes.len() as i64 {
                    problem!(
                        "module {}: `size` says {size} bytes, it holds {}",
                        hash.short(),
                        bytes.len()
                    );
                }
                stored.insert(hash, size as u64);
            }
        }
        let mut referenced: BTreeSet<Hash32> = BTreeSet::new();
        for m in &header.modules {
            if !stored.contains_key(&m.hash) {
                problem!("module {} ({}) is missing", m.name, m.hash.short());
            }
            referenced.insert(m.hash);
        }
        Ok(Ok((stored, referenced)))
    }

    /// Every event in order: no gap, its link in the hash chain, its body decoding to its
    /// columns, the modules it names stored, the seed the header names, its measured inputs
    /// well formed. `chain` advances over each verified event; the Resource_Table derived from
    /// them, or the problem at the first bad one.
    fn check_events(
        &self,
        header: &TraceHeader,
        stored: &BTreeMap<Hash32, u64>,
        referenced: &mut BTreeSet<Hash32>,
        chain: &mut ChainHash,
    ) -> Result<Result<crate::accounting::TableBuilder, String>, TraceError> {
        macro_rules! problem {
            ($($t:tt)*) => { return Ok(Err(format!($($t)*))) };
        }
        let mut derived = crate::accounting::TableBuilder::default();
        let mut inputs = InputCheck::default();
        let e = sql(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT seq, time_ns, vhm, kind, body, hash FROM events ORDER BY seq")
            .map_err(&e)?;
        let mut rows = stmt.query([]).map_err(&e)?;
        while let Some(row) = rows.next().map_err(&e)? {
            let seq: i64 = row.get(0).map_err(&e)?;
            let time: i64 = row.get(1).map_err(&e)?;
            let vhm: Option<i64> = row.get(2).map_err(&e)?;
            let kind: String = row.get(3).map_err(&e)?;
            let body: Vec<u8> = row.get(4).map_err(&e)?;
            let stored_hash: Vec<u8> = row.get(5).map_err(&e)?;
            if seq as u64 != chain.len() {
                problem!("event {} is missing (found {seq} next)", chain.len());
            }
            let mut next = *chain;
            let (_, hash) = next.link(&body);
            if stored_hash != hash.0 {
                problem!(
                    "event {seq}: hash chain broken (stored {}, computed {})",
                    short_hex(&stored_hash),
                    hash.short()
                );
            }
            let event = match Event::decode(&body) {
                Ok(ev) => ev,
                Err(err) => problem!("event {seq}: body does not decode: {err}"),
            };
            if event.time_ns as i64 != time
                || event.vhm.map(|v| i64::from(v.0)) != vhm
                || event.kind.name() != kind
            {
                problem!("event {seq}: columns (time_ns, vhm, kind) disagree with the hashed body");
            }
            let module = match &event.kind {
                xdv_core::EventKind::ModuleLoaded { hash, .. }
                | xdv_core::EventKind::VhmCreated { module: hash, .. }
                | xdv_core::EventKind::CapCreated {
                    object: xdv_core::cap::Object::Module(hash),
                    ..
                } => Some(*hash),
                _ => None,
            };
            if let Some(hash) = module {
                if !stored.contains_key(&hash) {
                    problem!("event {seq}: module {} is missing or altered", hash.short());
                }
                referenced.insert(hash);
            }
            // Program texts are stored beside the modules since xdv stores them; a trace of an
            // earlier release has none, so a missing one is not a problem, and a stored one is
            // bound to its event by its hash (checked with every row above).
            if let xdv_core::EventKind::QJobSubmitted { program, .. }
            | xdv_core::EventKind::PhiExecuted { program, .. } = &event.kind
            {
                referenced.insert(*program);
            }
            if let xdv_core::EventKind::HostStarted { seed, .. } = &event.kind {
                if *seed != header.seed {
                    problem!(
                        "event {seq}: the run started with seed {seed}, the header says {}",
                        header.seed
                    );
                }
            }
            if let Err(why) = inputs.observe(&event) {
                problem!("event {seq} ({}): {why}", event.kind.name());
            }
            *chain = next;
            derived.observe(&event);
        }
        drop(rows);
        drop(stmt);
        Ok(Ok(derived))
    }

    /// Names of the VHMs in creation order, from the events.
    ///
    /// # Errors
    ///
    /// As [`TraceReader::for_each_event`].
    pub fn vhm_names(&self) -> Result<Vec<(VhmId, String)>, TraceError> {
        let mut out = Vec::new();
        self.for_each_event(|s| {
            if let (Some(v), xdv_core::EventKind::VhmCreated { name, .. }) =
                (s.event.vhm, &s.event.kind)
            {
                out.push((v, name.clone()));
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

fn short_hex(bytes: &[u8]) -> String {
    bytes.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The header's engine (when `opts` names one) and `run_status`: known keys only, a `status`
/// of `running` (holding nothing only a finished run writes) or `complete`, and `resumed_at` a
/// list of committed event counts.
fn check_status(
    opts: &VerifyOptions,
    header: &TraceHeader,
    status: &BTreeMap<String, String>,
    chain: &ChainHash,
) -> Result<(), String> {
    macro_rules! problem {
        ($($t:tt)*) => { return Err(format!($($t)*)) };
    }
    // The header is under the chain; whether this xdv can stand behind its engine is not.
    if let Some(engine) = &opts.engine {
        if &header.engine != engine {
            problem!(
                "header names engine `{}`, not this xdv's `{engine}`: the trace was not written by this engine (or its header was edited and the chain recomputed)",
                header.engine
            );
        }
    }
    // run_status: known keys only, and the ones the status calls for.
    if let Some(k) = status
        .keys()
        .find(|k| !RUN_STATUS_KEYS.contains(&k.as_str()))
    {
        problem!("run_status has an unknown key `{k}`");
    }
    match status.get("status").map(String::as_str) {
        None => problem!("run_status has no `status` (it must say `running` or `complete`)"),
        Some("complete") => {}
        Some("running") => {
            if let Some(k) = ["event_count", "final_hash", "signature", "signed_by"]
                .into_iter()
                .find(|k| status.contains_key(*k))
            {
                problem!(
                    "run_status says `running` but holds `{k}`, which only a finished run writes"
                );
            }
        }
        Some(other) => problem!("run_status `status` is {other:?}, not `running` or `complete`"),
    }
    if let Some(r) = status.get("resumed_at") {
        let counts: Option<Vec<u64>> = r.split(',').map(|n| n.parse().ok()).collect();
        let ok = counts.is_some_and(|c| {
            c.windows(2).all(|w| w[0] <= w[1]) && c.iter().all(|&n| n <= chain.len())
        });
        if !ok {
            problem!("run_status `resumed_at` {r:?} is not a list of committed event counts");
        }
    }
    Ok(())
}

/// The modules a trace stores (their sizes by hash) and the hashes referenced so far.
type StoredModules = (BTreeMap<Hash32, u64>, BTreeSet<Hash32>);

/// The signature `run_status` carries over `msg`, and whether it is the one `opts` requires:
/// its status, or the problem with the status to report beside it.
fn check_signature(
    status: &BTreeMap<String, String>,
    msg: &[u8],
    opts: &VerifyOptions,
) -> Result<SignatureStatus, (String, SignatureStatus)> {
    macro_rules! problem {
        ($($t:tt)*) => { return Err((format!($($t)*), SignatureStatus::NotChecked)) };
    }
    let signed = status.contains_key("signature") || status.contains_key("signed_by");
    let signature = if signed {
        let (Some(sig), Some(by)) = (status.get("signature"), status.get("signed_by")) else {
            problem!("run_status holds only one of `signature` and `signed_by`");
        };
        let Some(key) = PublicKey::from_hex(by) else {
            problem!("run_status `signed_by` is not an Ed25519 public key");
        };
        let Some(sig) = sign::unhex::<64>(sig) else {
            problem!("run_status `signature` is not 64 bytes of hex");
        };
        if !key.verifies(msg, &sig) {
            let status = SignatureStatus::Invalid {
                public_key: key.to_hex(),
                reason: "it does not verify: the trace changed after it was signed".into(),
            };
            return Err((
                format!(
                    "the signature by {key} does not verify: the trace changed after it was signed"
                ),
                status,
            ));
        }
        SignatureStatus::Valid {
            public_key: key.to_hex(),
        }
    } else {
        SignatureStatus::Unsigned
    };
    if let Some(want) = &opts.key {
        match &signature {
            SignatureStatus::Valid { public_key } if *public_key == want.to_hex() => {}
            SignatureStatus::Valid { public_key } => {
                return Err((
                    format!("signed by another key ({public_key}), not by {want}"),
                    signature.clone(),
                ))
            }
            _ => {
                return Err((
                    format!("the trace is not signed (a signature by {want} was required)"),
                    signature.clone(),
                ))
            }
        }
    }
    Ok(signature)
}
