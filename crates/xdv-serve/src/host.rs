//! The hypervisor thread: the one place the core runs. It owns the [`Hypervisor`] and the trace
//! writer, applies requests at the core's pauses, commits them before they are acknowledged,
//! and publishes a [`Snapshot`] that the HTTP side reads without waiting for the core.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use xdv_core::event::{Event, EventKind, EventSink, RequestRefusal, ServiceRequest, SinkError};
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
    /// Every top-level VHM, in creation order.
    pub(crate) vhms: Vec<VhmView>,
    /// Every tenant's budget left, by index.
    pub(crate) tenants: Vec<TenantView>,
    /// Every VHM's host name, by id (children included): the event stream's `vhm_name`.
    pub(crate) names: BTreeMap<VhmId, String>,
    /// The Resource_Table so far.
    pub(crate) table: Vec<ResourceRow>,
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
    pub(crate) names: BTreeMap<VhmId, String>,
    /// Events handed since the last commit.
    dirty: bool,
}

impl ServeSink {
    pub(crate) fn new(writer: TraceWriter, table: TableBuilder) -> Self {
        Self {
            writer,
            table,
            names: BTreeMap::new(),
            dirty: false,
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
        if let (Some(v), EventKind::VhmCreated { name, .. }) = (event.vhm, &event.kind) {
            self.names.insert(v, name.clone());
        }
        self.dirty = true;
        Ok(())
    }
}

impl xdv_hv::driver::Driver for ServeSink {}

/// Runs the host from `at` until it stops: requests from `rx` are applied at pauses, each
/// acknowledged after the commit that holds it. Returns the trace's final chain hash.
pub(crate) fn run(
    mut hv: Hypervisor,
    mut sink: ServeSink,
    mut at: Served,
    rx: Receiver<Cmd>,
    shared: Arc<Shared>,
    mode: ServeMode,
) -> Result<Hash32, HvError> {
    let epoch = hv.state().epoch_ns().expect("a service host");
    let started = Instant::now();
    let wall_origin = hv.state().now();
    let mut pending: VecDeque<Cmd> = VecDeque::new();
    commit_and_publish(&hv, &mut sink, &shared)?;
    'host: while let Served::Paused { idle } = at {
        let mut idle = idle;
        let mut last = Instant::now();
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
                for (reply, result) in replies {
                    // A client that went away misses its answer; the request stands.
                    let _ = reply.send(result);
                }
                if at == Served::Finished {
                    break 'host;
                }
                continue;
            }
            if sink.dirty && last.elapsed() >= PUBLISH_EVERY {
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
        let until = hv.state().now().saturating_add(epoch);
        at = hv.drive(&mut sink, Input::Continue { until_ns: until })?;
    }
    // Requests that arrived after the stop are never applied: their clients are told so by
    // their dropped reply.
    drop(rx);
    let ServeSink { writer, table, .. } = sink;
    let rows = table.finish();
    let head = writer.finish(&rows)?;
    let mut snap = (*shared.read()).clone();
    snap.finished = true;
    snap.table = rows;
    snap.vhms = hv.state().vhm_views(None);
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
    sink.writer.commit()?;
    sink.dirty = false;
    let state = hv.state();
    let tenants = (0u32..)
        .map_while(|t| state.tenant_view(t))
        .collect::<Vec<_>>();
    let snap = Snapshot {
        now_ns: state.now(),
        committed: sink.writer.len(),
        finished: false,
        vhms: state.vhm_views(None),
        tenants,
        names: sink.names.clone(),
        table: sink.table.clone().finish(),
    };
    let committed = snap.committed;
    *shared.snapshot.write().expect("never poisoned") = Arc::new(snap);
    shared.committed.send_replace(committed);
    Ok(())
}
