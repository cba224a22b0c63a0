//! Reads and verifies a trace.

use super::{sql, TraceError, TraceHeader};
use crate::accounting::{derive_resource_table, ResourceRow};
use crate::chain::{ChainHash, Hash32};
use crate::event::Event;
use crate::ids::{Domain, VhmId};
use crate::{EVENT_SCHEMA_VERSION, TRACE_FORMAT_VERSION};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};

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

/// The outcome of [`TraceReader::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Events whose chain link checked out, from the first.
    pub events_verified: u64,
    /// `true` when the run finished and wrote its final status.
    pub complete: bool,
    /// Chain hash after the last verified event.
    pub head: String,
    /// The first integrity problem found, if any. `None` means the trace is intact (possibly cut
    /// short, see `complete`).
    pub problem: Option<String>,
}

impl VerifyReport {
    /// `true` when no integrity problem was found.
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// An open trace file.
pub struct TraceReader {
    conn: Connection,
    path: PathBuf,
}

impl TraceReader {
    /// Opens a trace. A trace left behind by a killed writer is recovered (its WAL replayed) when
    /// the file is writable, and read as it is otherwise.
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        if !path.is_file() {
            return Err(TraceError::NotATrace {
                path: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        let e = sql(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_else(|_| Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY))
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
        if h.format_version != TRACE_FORMAT_VERSION || h.event_schema != EVENT_SCHEMA_VERSION {
            return Err(TraceError::NotATrace {
                path: path.display().to_string(),
                reason: format!(
                    "format {} / event schema {} (this xdv reads {TRACE_FORMAT_VERSION} / {EVENT_SCHEMA_VERSION})",
                    h.format_version, h.event_schema
                ),
            });
        }
        Ok(reader)
    }

    /// The run's header.
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
    pub fn is_complete(&self) -> Result<bool, TraceError> {
        Ok(self.status_value("status")?.as_deref() == Some("complete"))
    }

    /// The final chain hash the writer recorded, for a complete trace.
    pub fn final_hash(&self) -> Result<Option<Hash32>, TraceError> {
        Ok(self
            .status_value("final_hash")?
            .and_then(|h| Hash32::from_hex(&h)))
    }

    /// Visits stored events in sequence order. Rows that do not decode are reported as errors
    /// naming the sequence number.
    pub fn for_each_event(
        &self,
        mut f: impl FnMut(StoredEvent) -> Result<bool, String>,
    ) -> Result<(), TraceError> {
        let e = sql(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT seq, body, hash FROM events ORDER BY seq")
            .map_err(&e)?;
        let mut rows = stmt.query([]).map_err(&e)?;
        while let Some(row) = rows.next().map_err(&e)? {
            let seq: i64 = row.get(0).map_err(&e)?;
            let body: Vec<u8> = row.get(1).map_err(&e)?;
            let hash: Vec<u8> = row.get(2).map_err(&e)?;
            let corrupt = |reason: String| TraceError::NotATrace {
                path: self.path.display().to_string(),
                reason,
            };
            let event = Event::decode(&body)
                .map_err(|err| corrupt(format!("event {seq}: body does not decode: {err}")))?;
            let hash: [u8; 32] = hash
                .try_into()
                .map_err(|_| corrupt(format!("event {seq}: hash is not 32 bytes")))?;
            let keep_going = f(StoredEvent {
                seq: seq as u64,
                event,
                body,
                hash: Hash32(hash),
            })
            .map_err(corrupt)?;
            if !keep_going {
                break;
            }
        }
        Ok(())
    }

    /// All stored events, decoded.
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
    pub fn resource_table(&self) -> Result<(Vec<ResourceRow>, bool), TraceError> {
        if !self.is_complete()? {
            return Ok((derive_resource_table(&self.events()?), true));
        }
        let e = sql(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT vhm_id, vhm_name, parent_id, level, domain, allocated_resource, amount, used, start_ns, end_ns, duration_ns, capability_id FROM resource_table ORDER BY row")
            .map_err(&e)?;
        let rows = stmt
            .query_map([], |r| {
                let domain: String = r.get(4)?;
                Ok(ResourceRow {
                    vhm_id: r.get(0)?,
                    vhm_name: r.get(1)?,
                    parent_id: r.get(2)?,
                    level: r.get(3)?,
                    domain: match domain.as_str() {
                        "Q" => Domain::Q,
                        "Phi" => Domain::Phi,
                        _ => Domain::K,
                    },
                    resource: r.get(5)?,
                    amount: r.get::<_, i64>(6)? as u64,
                    used: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                    start_ns: r.get::<_, i64>(8)? as u64,
                    end_ns: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
                    duration_ns: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
                    capability_id: r.get::<_, i64>(11)? as u64,
                })
            })
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(&e)?;
        Ok((rows, false))
    }

    /// Checks the trace's integrity: SQLite's own page check, every module's hash, the header as
    /// the chain's genesis, every event's link and columns, the final status, and the
    /// Resource_Table against the events. Stops at the first problem.
    pub fn verify(&self) -> Result<VerifyReport, TraceError> {
        let header = self.header()?;
        let complete = self.is_complete()?;
        let mut chain = ChainHash::genesis(&header.canonical());
        let report = |chain: &ChainHash, problem: Option<String>| VerifyReport {
            events_verified: chain.len(),
            complete,
            head: chain.head().to_hex(),
            problem,
        };
        let check: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(sql(&self.path))?;
        if check != "ok" {
            return Ok(report(
                &chain,
                Some(format!("SQLite integrity check: {check}")),
            ));
        }
        for m in &header.modules {
            match self.module(&m.hash)? {
                None => {
                    return Ok(report(
                        &chain,
                        Some(format!("module {} ({}) is missing", m.name, m.hash.short())),
                    ))
                }
                Some(bytes) if Hash32::of(&bytes) != m.hash => {
                    return Ok(report(
                        &chain,
                        Some(format!(
                            "module {} does not match its hash {}",
                            m.name,
                            m.hash.short()
                        )),
                    ))
                }
                Some(_) => {}
            }
        }
        let mut problem = None;
        let mut events = Vec::new();
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
            let stored: Vec<u8> = row.get(5).map_err(&e)?;
            if seq as u64 != chain.len() {
                problem = Some(format!(
                    "event {} is missing (found {seq} next)",
                    chain.len()
                ));
                break;
            }
            let mut next = chain;
            let (_, hash) = next.link(&body);
            if stored != hash.0 {
                problem = Some(format!(
                    "event {seq}: hash chain broken (stored {}, computed {})",
                    short_hex(&stored),
                    hash.short()
                ));
                break;
            }
            let event = match Event::decode(&body) {
                Ok(ev) => ev,
                Err(err) => {
                    problem = Some(format!("event {seq}: body does not decode: {err}"));
                    break;
                }
            };
            if event.time_ns as i64 != time
                || event.vhm.map(|v| i64::from(v.0)) != vhm
                || event.kind.name() != kind
            {
                problem = Some(format!(
                    "event {seq}: columns (time_ns, vhm, kind) disagree with the hashed body"
                ));
                break;
            }
            if let crate::EventKind::ModuleLoaded { hash, .. } = &event.kind {
                match self.module(hash)? {
                    Some(bytes) if Hash32::of(&bytes) == *hash => {}
                    _ => {
                        problem = Some(format!(
                            "event {seq}: module {} is missing or altered",
                            hash.short()
                        ));
                        break;
                    }
                }
            }
            chain = next;
            events.push(event);
        }
        if problem.is_none() && complete {
            let count = self.status_value("event_count")?;
            let final_hash = self.final_hash()?;
            if count != Some(chain.len().to_string()) {
                problem = Some(format!(
                    "run status says {} events, trace holds {}",
                    count.unwrap_or_default(),
                    chain.len()
                ));
            } else if final_hash != Some(chain.head()) {
                problem = Some("final hash does not match the last event's hash".into());
            } else if self.resource_table()?.0 != derive_resource_table(&events) {
                problem =
                    Some("resource_table does not match the one derived from the events".into());
            }
        }
        Ok(report(&chain, problem))
    }

    /// Names of the VHMs in creation order, from the events.
    pub fn vhm_names(&self) -> Result<Vec<(VhmId, String)>, TraceError> {
        let mut out = Vec::new();
        self.for_each_event(|s| {
            if let (Some(v), crate::EventKind::VhmCreated { name, .. }) =
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
