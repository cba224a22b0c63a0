//! The hypervisor thread: the one place the core runs. It owns the [`Hypervisor`] and the trace
//! writer, applies requests at the core's pauses, commits them before they are acknowledged,
//! and publishes a [`Snapshot`] that the HTTP side reads without waiting for the core.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use xdv_core::event::{Event, EventSink, RequestRefusal, ServiceRequest, SinkError};
use xdv_core::{Hash32, VhmId};
use xdv_hv::service::{TenantView, VhmView};
use xdv_hv::{HvError, Hypervisor, Input, Requested, Served};
use xdv_manifest::ServeMode;
use xdv_trace::{ResourceRow, TableBuilder, TraceWriter};

/// How often, at most, the thread commits and publishes while the host runs without requests.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// What the HTTP side asks of the hypervisor thread.
pub(crate) enum Cmd {
    /// Apply a request at the next pause; the reply comes once it is committed.
    Request {
        /// The tenant, `None` for the operator.
        who: Option<u32>,
        /// The request.
        request: ServiceRequest,
        /// An upload's bytes.
        bytes: Option<Vec<u8>>,
        /// What it did.
        reply: oneshot::Sender<Result<Option<VhmId>, RequestRefusal>>,
    },
    /// Stop the service (SIGTERM): the operator's `Stop`, then the trace is finished.
    Stop,
}

/// What the HTTP side reads: the host as of its last publication.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// Virtual time, ns.
    pub(crate) now_ns: u64,
    /// Events committed to the trace.
    pub(crate) committed: u64,
    /// The service has stopped: its trace is finished.
    pub(crate) finished: bool,
    /// Every top-level VHM, in creation order (shared: a stopped VHM's view never changes).
    pub(crate) vhms: Vec<Arc<VhmView>>,
    /// Every tenant's budget left, by index.
    pub(crate) tenants: Vec<TenantView>,
    /// The Resource_Table, as of its last rebuild (at most [`TABLE_EVERY`] old).
    pub(crate) table: Arc<Vec<ResourceRow>>,
}

/// How often, at most, a large Resource_Table of the snapshot is rebuilt (it grows with every
/// VHM the service ever ran, so a large one is not rebuilt for every request).
const TABLE_EVERY: Duration = Duration::from_millis(200);
/// Below this many rows the table is rebuilt at every publication.
const SMALL_TABLE: usize = 4096;

/// What the hypervisor thread keeps to publish cheaply: the views so far, and which of them
/// can still change.
#[derive(Default)]
pub(crate) struct Views {
    views: Vec<Arc<VhmView>>,
    /// `(id, index in views)` of the running ones.
    live: Vec<(VhmId, usize)>,
    /// VHM ids below this were seen.
    scanned: u32,
    table: Arc<Vec<ResourceRow>>,
    table_at: Option<Instant>,
    /// Events the table had seen when it was last rebuilt.
    table_events: u64,
    /// Virtual time of the last publication.
    published_ns: u64,
}

impl Views {
    /// Brings the views up to date with `hv`: new top-level VHMs appended, running ones
    /// refreshed. Costs the running VHMs and the new ones, not every VHM ever created.
    fn refresh(&mut self, hv: &Hypervisor, table: &TableBuilder, events: u64) {
        let state = hv.state();
        self.published_ns = state.now();
        let count = state.vhm_count();
        for id in (self.scanned..count).map(VhmId) {
            if state.vhm_is_top_level(id) {
                self.live.push((id, self.views.len()));
                self.views.push(Arc::new(state.vhm_view(id)));
            }
        }
        self.scanned = count;
        self.live.retain(|&(id, i)| {
            let view = state.vhm_view(id);
            let running = view.state == "running";
            if *self.views[i] != view {
                self.views[i] = Arc::new(view);
            }
            running
        });
        let due = self.table.len() < SMALL_TABLE
            || self.table_at.is_none_or(|t| t.elapsed() >= TABLE_EVERY);
        if self.table_stale(events) && due {
            self.table = Arc::new(table.clone().finish());
            self.table_at = Some(Instant::now());
            self.table_events = events;
        }
    }

    /// Events reached the trace since the table was rebuilt.
    fn table_stale(&self, events: u64) -> bool {
        self.table_at.is_none() || self.table_events != events
    }

    /// Something a reader sees changed since the last publication: events, or virtual time
    /// (an idle paced host), or a table left stale by the rate limit on its rebuilds.
    fn behind(&self, hv: &Hypervisor, events: u64, dirty: bool) -> bool {
        dirty || self.published_ns != hv.state().now() || self.table_stale(events)
    }
}

/// The state the two sides share.
pub(crate) struct Shared {
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    /// Events committed, for the event streams to wait on.
    pub(crate) committed: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            committed: watch::channel(0).0,
        }
    }

    /// The last published snapshot.
    pub(crate) fn read(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("never poisoned").clone()
    }
}

/// The service's sink: events to the trace, the Resource_Table and the names as they pass.
pub(crate) struct ServeSink {
    pub(crate) writer: TraceWriter,
    pub(crate) table: TableBuilder,
    /// Events handed since the last commit.
    dirty: bool,
    views: Views,
}

impl ServeSink {
    pub(crate) fn new(writer: TraceWriter, table: TableBuilder) -> Self {
        Self {
            writer,
            table,
            // A resumed writer may hold events the resume appended: commit them first.
            dirty: true,
            views: Views::default(),
        }
    }
}

impl EventSink for ServeSink {
    fn module(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<(), SinkError> {
        self.writer.module(hash, bytes)
    }

    fn emit(&mut self, event: &Event) -> Result<(), SinkError> {
        self.writer.emit(event)?;
        self.table.observe(event);
        self.dirty = true;
        Ok(())
    }
}

impl xdv_hv::driver::Driver for ServeSink {}

/// Runs the host from `at` until it stops: requests from `rx` are applied at pauses, each
/// acknowledged after the commit that holds it. `ready` is called once the first snapshot is
/// published, before anything can be asked. Returns the trace's final chain hash.
pub(crate) fn run(
    mut hv: Hypervisor,
    mut sink: ServeSink,
    mut at: Served,
    (rx, ready): (Receiver<Cmd>, impl FnOnce()),
    shared: Arc<Shared>,
    mode: ServeMode,
) -> Result<Hash32, HvError> {
    let epoch = hv.state().epoch_ns().expect("a service host");
    let started = Instant::now();
    let wall_origin = hv.state().now();
    let mut pending: VecDeque<Cmd> = VecDeque::new();
    commit_and_publish(&hv, &mut sink, &shared)?;
    ready();
    let mut last = Instant::now();
    'host: while let Served::Paused { idle } = at {
        let mut idle = idle;
        loop {
            pending.extend(drain(&rx));
            if !pending.is_empty() {
                let mut replies = Vec::new();
                while let Some(cmd) = pending.pop_front() {
                    let (who, request, bytes, reply) = match cmd {
                        Cmd::Request {
                            who,
                            request,
                            bytes,
                            reply,
                        } => (who, request, bytes, Some(reply)),
                        Cmd::Stop => (None, ServiceRequest::Stop, None, None),
                    };
                    let input = Input::Request(Box::new(Requested {
                        tenant: who,
                        request,
                        bytes,
                    }));
                    at = hv.drive(&mut sink, input)?;
                    let result = hv.state().last_request().cloned().unwrap_or(Ok(None));
                    if let Some(reply) = reply {
                        replies.push((reply, result));
                    }
                    match at {
                        Served::Finished => break,
                        Served::Paused { idle: i } => idle = i,
                    }
                }
                commit_and_publish(&hv, &mut sink, &shared)?;
                last = Instant::now();
                for (reply, result) in replies {
                    // A client that went away misses its answer; the request stands.
                    let _ = reply.send(result);
                }
                if at == Served::Finished {
                    break 'host;
                }
                // On to the epoch's end, not back to the queue: requests arriving faster than
                // they are applied must not hold the host at this pause.
            }
            let behind = sink.views.behind(&hv, sink.writer.len(), sink.dirty);
            if behind && last.elapsed() >= PUBLISH_EVERY {
                commit_and_publish(&hv, &mut sink, &shared)?;
                last = Instant::now();
            }
            // When the next epoch may start: now (free-run with work to do), never without a
            // request (free-run, idle), or when wall time catches up (paced).
            let wait = match mode {
                ServeMode::FreeRun if !idle => break,
                ServeMode::FreeRun => PUBLISH_EVERY,
                ServeMode::Paced { factor } => {
                    let virtual_ns = hv.state().now().saturating_add(epoch) - wall_origin;
                    let due = started + Duration::from_nanos(virtual_ns / factor.max(1));
                    match due.checked_duration_since(Instant::now()) {
                        None => break,
                        Some(d) => d.min(PUBLISH_EVERY),
                    }
                }
            };
            match rx.recv_timeout(wait) {
                Ok(cmd) => pending.push_back(cmd),
                Err(RecvTimeoutError::Timeout) => {}
                // The server is gone: stop as on SIGTERM.
                Err(RecvTimeoutError::Disconnected) => pending.push_back(Cmd::Stop),
            }
        }
        // Free-run skips the empty pauses before the next queued event; paced keeps every
        // one, so a request waits at most an epoch of wall time.
        let next = match mode {
            ServeMode::FreeRun => hv.state().pause_at(idle).next_epoch(),
            ServeMode::Paced { .. } => Input::Continue {
                until_ns: hv.state().now().saturating_add(epoch),
            },
        };
        at = hv.drive(&mut sink, next)?;
    }
    // Requests that arrived after the stop are never applied: their clients are told so by
    // their dropped reply.
    drop(rx);
    let ServeSink {
        writer,
        table,
        mut views,
        ..
    } = sink;
    views.table_at = None;
    views.refresh(&hv, &table, u64::MAX);
    let rows = table.finish();
    let head = writer.finish(&rows)?;
    let mut snap = (*shared.read()).clone();
    snap.finished = true;
    snap.table = Arc::new(rows);
    snap.vhms = views.views;
    *shared.snapshot.write().expect("never poisoned") = Arc::new(snap);
    shared.committed.send_replace(u64::MAX);
    Ok(head)
}

/// Everything queued now; a `Stop` when the server is gone.
fn drain(rx: &Receiver<Cmd>) -> Vec<Cmd> {
    let mut out = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(c) => out.push(c),
            Err(std::sync::mpsc::TryRecvError::Empty) => return out,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                if out.is_empty() {
                    out.push(Cmd::Stop);
                }
                return out;
            }
        }
    }
}

/// Commits what was handed to the writer and publishes the host as it is now.
fn commit_and_publish(
    hv: &Hypervisor,
    sink: &mut ServeSink,
    shared: &Shared,
) -> Result<(), HvError> {
    if sink.dirty {
        sink.writer.commit()?;
        sink.dirty = false;
    }
    sink.views.refresh(hv, &sink.table, sink.writer.len());
    let state = hv.state();
    let tenants = (0u32..)
        .map_while(|t| state.tenant_view(t))
        .collect::<Vec<_>>();
    let snap = Snapshot {
        now_ns: state.now(),
        committed: sink.writer.len(),
        finished: false,
        vhms: sink.views.views.clone(),
        tenants,
        table: sink.views.table.clone(),
    };
    let committed = snap.committed;
    *shared.snapshot.write().expect("never poisoned") = Arc::new(snap);
    shared.committed.send_replace(committed);
    Ok(())
}
