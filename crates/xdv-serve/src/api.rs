//! The `/v1` API: routes, authentication, confinement and errors. `docs/api/openapi.yaml`
//! describes every route and body here; a test checks that the two agree.

use crate::host::{Cmd, Shared, Snapshot};
use crate::limits::{Limits, StreamGuard};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use xdv_core::event::{RequestRefusal, ServiceRequest};
use xdv_core::{Hash32, VhmId};
use xdv_hv::service::{tenant_vhm_name, VhmView};

/// Who is asking: a tenant (by index) or the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Operator,
    Tenant(u32),
}

impl Who {
    /// The core's name for the requester: `None` for the operator.
    fn index(self) -> Option<u32> {
        match self {
            Who::Operator => None,
            Who::Tenant(t) => Some(t),
        }
    }
}

/// What every handler shares.
pub(crate) struct App {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cmds: SyncSender<Cmd>,
    /// Token hash (hex) → who.
    pub(crate) tokens: BTreeMap<String, Who>,
    /// Tenant names, by index.
    pub(crate) tenant_names: Vec<String>,
    pub(crate) limits: Limits,
    pub(crate) trace: PathBuf,
    pub(crate) mode: &'static str,
    pub(crate) epoch_ns: u64,
    pub(crate) openapi: Value,
    /// The host's settings, to check a `[[vhm]]` table before it is sent to the core.
    pub(crate) host: xdv_manifest::HostSpec,
}

type AppState = State<Arc<App>>;

/// An RFC 9457 problem: a status, a stable code and a message that names the field.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    retry_after: Option<u64>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// With a `Retry-After` header of `secs` seconds.
    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no {what}"))
    }

    fn bad(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = problem_response(self.status, self.code, &self.detail);
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

fn problem_response(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("https://xdv.invalid/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r
}

/// The API's answer to a refusal of the core.
fn refused(r: &RequestRefusal) -> Problem {
    let status = match r {
        RequestRefusal::BadSpec { .. } | RequestRefusal::BadModule { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        RequestRefusal::NoModule | RequestRefusal::NoVhm => StatusCode::NOT_FOUND,
        RequestRefusal::NameTaken => StatusCode::CONFLICT,
        RequestRefusal::OverBudget { .. } | RequestRefusal::Placement { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        RequestRefusal::Forbidden => StatusCode::FORBIDDEN,
        RequestRefusal::HostFull => StatusCode::SERVICE_UNAVAILABLE,
    };
    Problem::new(status, r.code(), r.to_string())
}

/// The router of the `/v1` API.
pub(crate) fn router(app: Arc<App>) -> Router {
    let body_limit = app.limits.max_body_bytes;
    Router::new()
        .route("/v1/host", get(host))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/modules", axum::routing::post(upload))
        .route("/v1/vhms", get(list_vhms).post(create_vhm))
        .route("/v1/vhms/{name}", get(get_vhm).delete(kill_vhm))
        .route("/v1/vhms/{name}/events", get(events))
        .route("/v1/channels", axum::routing::post(channel))
        .route("/v1/accounting", get(accounting))
        .route("/v1/trace", get(trace))
        .fallback(|| async { Problem::not_found("such route") })
        .layer(axum::middleware::map_response(as_problem))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit as usize))
        .with_state(app)
}

/// Answers that the stack makes itself (a body over the limit, a method not allowed, a body
/// that does not parse, a timeout) as problems too.
async fn as_problem(r: Response) -> Response {
    let is_problem = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let status = r.status();
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return r;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = String::from_utf8_lossy(&bytes).trim().to_string();
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        detail
    };
    let mut out = problem_response(status, code, &detail);
    for (k, v) in parts.headers.iter() {
        if k == header::RETRY_AFTER {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

/// The bearer token's holder, after the rate limit.
fn authenticate(app: &App, headers: &HeaderMap) -> Result<Who, Problem> {
    let unauthorized = || {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an `Authorization: Bearer TOKEN` header with a known token is required",
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let hash = blake3::hash(token.trim().as_bytes()).to_hex().to_string();
    let who = *app.tokens.get(&hash).ok_or_else(unauthorized)?;
    app.limits.request(who)?;
    Ok(who)
}

/// Sends a request to the hypervisor thread and waits until it is applied and committed.
async fn apply(
    app: &App,
    who: Who,
    request: ServiceRequest,
    bytes: Option<Vec<u8>>,
) -> Result<Result<Option<VhmId>, RequestRefusal>, Problem> {
    let (reply, answer) = oneshot::channel();
    let stopping = || {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the service is stopping",
        )
    };
    let cmd = Cmd::Request {
        who: who.index(),
        request,
        bytes,
        reply,
    };
    // The queue is bounded: a full one is the host's back-pressure, answered 503.
    match app.cmds.try_send(cmd) {
        Ok(()) => {}
        Err(std::sync::mpsc::TrySendError::Full(_)) => {
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the host's request queue is full; retry",
            ))
        }
        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(stopping()),
    }
    answer.await.map_err(|_| stopping())
}

/// The VHM `who` calls `name` in `snap`, if it may see it.
fn visible<'a>(app: &App, snap: &'a Snapshot, who: Who, name: &str) -> Option<&'a Arc<VhmView>> {
    snap.vhms.iter().find(|v| match (who, &v.tenant) {
        (Who::Tenant(t), Some(tn)) => *tn == app.tenant_names[t as usize] && v.name == name,
        (Who::Tenant(_), None) => false,
        (Who::Operator, Some(tn)) => tenant_vhm_name(tn, &v.name) == name,
        (Who::Operator, None) => v.name == name,
    })
}

/// The id of the VHM `who` calls `name`, or 404.
fn visible_id(app: &App, who: Who, name: &str) -> Result<VhmId, Problem> {
    let snap = app.shared.read();
    visible(app, &snap, who, name)
        .map(|v| VhmId(v.id))
        .ok_or_else(|| Problem::not_found("such VHM"))
}

/// VHM `id` as the last snapshot shows it (published before a request is answered).
fn published_view(app: &App, id: VhmId) -> Result<VhmView, Problem> {
    let snap = app.shared.read();
    snap.vhms
        .iter()
        .find(|v| v.id == id.0)
        .map(|v| VhmView::clone(v))
        .ok_or_else(|| Problem::internal("the VHM is not published"))
}

/// The VHMs `who` may see.
fn visible_all<'a>(app: &App, snap: &'a Snapshot, who: Who) -> Vec<&'a Arc<VhmView>> {
    snap.vhms
        .iter()
        .filter(|v| match (who, &v.tenant) {
            (Who::Tenant(t), Some(tn)) => *tn == app.tenant_names[t as usize],
            (Who::Tenant(_), None) => false,
            (Who::Operator, _) => true,
        })
        .collect()
}

async fn host(State(app): AppState) -> Json<Value> {
    let snap = app.shared.read();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "event_schema": xdv_core::EVENT_SCHEMA_VERSION,
        "virtual_time_ns": snap.now_ns,
        "mode": app.mode,
        "epoch_ns": app.epoch_ns,
        "health": if snap.finished { "stopped" } else { "ok" },
    }))
}

async fn openapi(State(app): AppState) -> Json<Value> {
    Json(app.openapi.clone())
}

/// `POST /v1/modules`: WebAssembly bytes, or WAT text; checked against the guest ABI.
async fn upload(
    State(app): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let who = authenticate(&app, &headers)?;
    if who == Who::Operator {
        return Err(Problem::forbidden(
            "modules belong to tenants: upload with a tenant's token",
        ));
    }
    let wasm = if body.starts_with(b"\0asm") {
        body.to_vec()
    } else {
        wat::parse_bytes(&body)
            .map(|b| b.into_owned())
            .map_err(|e| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bad_module",
                    format!("body: neither WebAssembly nor valid WAT: {e}"),
                )
            })?
    };
    let check = wasm.clone();
    tokio::task::spawn_blocking(move || {
        let engine = xdv_k::KEngine::new();
        xdv_k::GuestModule::new(&engine, &check, "main").map(|_| ())
    })
    .await
    .map_err(|_| Problem::internal("the check failed"))?
    .map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_module",
            format!("module: {e}"),
        )
    })?;
    let id = Hash32::of(&wasm);
    let size = wasm.len();
    let request = ServiceRequest::Upload {
        module: id,
        size: size as u64,
    };
    match apply(&app, who, request, Some(wasm)).await? {
        Ok(_) => {
            let body = json!({ "id": id.to_hex(), "size": size });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Err(r) => Err(refused(&r)),
    }
}

async fn list_vhms(State(app): AppState, headers: HeaderMap) -> Result<Json<Value>, Problem> {
    let who = authenticate(&app, &headers)?;
    let snap = app.shared.read();
    let vhms: Vec<&VhmView> = visible_all(&app, &snap, who)
        .into_iter()
        .map(|v| &**v)
        .collect();
    Ok(Json(json!({ "vhms": vhms })))
}

async fn get_vhm(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<VhmView>, Problem> {
    let who = authenticate(&app, &headers)?;
    let snap = app.shared.read();
    visible(&app, &snap, who, &name)
        .map(|v| Json(VhmView::clone(v)))
        .ok_or_else(|| Problem::not_found("such VHM"))
}

/// `POST /v1/vhms`: the JSON form of a manifest `[[vhm]]` table.
async fn create_vhm(
    State(app): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let who = authenticate(&app, &headers)?;
    let Who::Tenant(_) = who else {
        return Err(Problem::forbidden(
            "VHMs are created by tenants: the operator's are the config's",
        ));
    };
    app.limits.create(who)?;
    let spec: Value =
        serde_json::from_slice(&body).map_err(|e| Problem::bad(format!("body: not JSON: {e}")))?;
    let module = spec
        .pointer("/k/module")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::bad("k.module: the id of an uploaded module is required"))?;
    let module = Hash32::from_hex(module)
        .ok_or_else(|| Problem::bad("k.module: not a module id (64 hex digits)"))?;
    let text = vhm_toml(&spec)?;
    if text.len() > xdv_hv::service::MAX_SPEC_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "body: the [[vhm]] table is {} bytes as TOML, more than {} (it is recorded in the trace)",
                text.len(),
                xdv_hv::service::MAX_SPEC_BYTES
            ),
        ));
    }
    // An invalid table is answered here, with the manifest check's own words, and never
    // reaches the trace; the core checks it again (the trace records only its key).
    if let Err(e) = xdv_manifest::VhmSpec::parse_request(&app.host, &text, "body") {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_spec",
            format!("{}: {}", e.key, e.message),
        ));
    }
    let request = ServiceRequest::Create { spec: text, module };
    match apply(&app, who, request, None).await? {
        Ok(Some(id)) => {
            let view = published_view(&app, id)?;
            let mut r = (StatusCode::CREATED, Json(view.clone())).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/v1/vhms/{}", view.name)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Ok(r)
        }
        Ok(None) => Err(Problem::internal("nothing created")),
        Err(r) => Err(refused(&r)),
    }
}

/// The `[[vhm]]` table as TOML text: JSON objects become tables, `null` is refused.
fn vhm_toml(spec: &Value) -> Result<String, Problem> {
    if !spec.is_object() {
        return Err(Problem::bad(
            "body: a JSON object (a [[vhm]] table) is expected",
        ));
    }
    let wrapped = json!({ "vhm": [spec] });
    let value: toml::Value = serde::Deserialize::deserialize(wrapped)
        .map_err(|e: serde_json::Error| Problem::bad(format!("body: {e}")))?;
    toml::to_string(&value).map_err(|e| Problem::bad(format!("body: {e} (null is not a value)")))
}

async fn kill_vhm(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<VhmView>, Problem> {
    let who = authenticate(&app, &headers)?;
    let id = visible_id(&app, who, &name)?;
    match apply(&app, who, ServiceRequest::Kill { vhm: id }, None).await? {
        Ok(_) => published_view(&app, id).map(Json),
        Err(r) => Err(refused(&r)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    ends: [String; 2],
    #[serde(default = "default_capacity")]
    capacity: u32,
}

fn default_capacity() -> u32 {
    16
}

/// `POST /v1/channels`: a channel between two running VHMs the requester may act on (across
/// tenants, the operator only: a tenant cannot name another's VHMs).
async fn channel(
    State(app): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let who = authenticate(&app, &headers)?;
    let body: ChannelBody =
        serde_json::from_slice(&body).map_err(|e| Problem::bad(format!("body: {e}")))?;
    let mut ends = [VhmId(0); 2];
    for (i, n) in body.ends.iter().enumerate() {
        ends[i] = visible_id(&app, who, n)
            .map_err(|_| Problem::not_found(&format!("VHM {n:?} (ends[{i}])")))?;
    }
    let request = ServiceRequest::Channel {
        ends,
        capacity: body.capacity,
    };
    match apply(&app, who, request, None).await? {
        Ok(_) => Ok((
            StatusCode::CREATED,
            Json(json!({ "ends": body.ends, "capacity": body.capacity })),
        )
            .into_response()),
        Err(r) => Err(refused(&r)),
    }
}

async fn accounting(State(app): AppState, headers: HeaderMap) -> Result<Json<Value>, Problem> {
    let who = authenticate(&app, &headers)?;
    let snap = app.shared.read();
    let rows: Vec<_> = match who {
        Who::Operator => snap.table.iter().collect(),
        Who::Tenant(t) => {
            let prefix = format!("{}:", app.tenant_names[t as usize]);
            snap.table
                .iter()
                .filter(|r| r.vhm_name.starts_with(&prefix))
                .collect()
        }
    };
    let budget = match who {
        Who::Operator => Value::Null,
        Who::Tenant(t) => json!(snap.tenants.get(t as usize)),
    };
    Ok(Json(json!({ "resource_table": rows, "budget": budget })))
}

/// `GET /v1/trace`: the trace committed so far, as one consistent SQLite file.
async fn trace(State(app): AppState, headers: HeaderMap) -> Result<Response, Problem> {
    let who = authenticate(&app, &headers)?;
    if who != Who::Operator {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "operator_only",
            "the trace is the operator's",
        ));
    }
    let path = app.trace.clone();
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        // One file per request: two snapshots at once never share one.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = snapshot_dir(&path);
        let copy = dir.join(format!(".snapshot-{}-{n}.xdv", std::process::id()));
        let _ = std::fs::remove_file(&copy);
        let reader = xdv_trace::TraceReader::open(&path).map_err(|e| e.to_string())?;
        reader.snapshot(&copy).map_err(|e| e.to_string())?;
        let bytes = std::fs::read(&copy).map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&copy);
        bytes
    })
    .await
    .map_err(|_| Problem::internal("snapshot failed"))?
    .map_err(Problem::internal)?;
    let mut r = (StatusCode::OK, Body::from(bytes)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    Ok(r)
}

/// Where a snapshot of `trace` is written: beside it.
fn snapshot_dir(trace: &std::path::Path) -> PathBuf {
    trace
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

/// `GET /v1/vhms/{name}/events?since=SEQ`: the VHM's events (those `trace show --vhm NAME
/// --json` prints) as Server-Sent Events, committed ones only, from sequence number `SEQ`
/// (or the `Last-Event-ID` header's successor), live until the VHM has stopped and its last
/// event was sent.
async fn events(
    State(app): AppState,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Since>,
) -> Result<Response, Problem> {
    let who = authenticate(&app, &headers)?;
    let id = visible_id(&app, who, &name)?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| s + 1);
    let from = q.since.or(last_id).unwrap_or(0);
    let guard = app.limits.open_stream(who)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, std::convert::Infallible>>(64);
    let app2 = app.clone();
    tokio::spawn(async move { stream_events(app2, id, from, tx, guard).await });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Feeds one event stream: committed events of `vhm` from `from` on, waiting for commits.
async fn stream_events(
    app: Arc<App>,
    vhm: VhmId,
    mut from: u64,
    tx: tokio::sync::mpsc::Sender<Result<SseEvent, std::convert::Infallible>>,
    _guard: StreamGuard,
) {
    let mut committed = app.shared.committed.subscribe();
    loop {
        committed.borrow_and_update();
        // The snapshot, not the notice: it is published after the commit it names, so a VHM
        // it shows stopped has every event below its count.
        let snap = app.shared.read();
        let upto = if snap.finished {
            u64::MAX
        } else {
            snap.committed
        };
        let path = app.trace.clone();
        // The stream holds only this VHM's events: its name is the only one they name.
        let names: BTreeMap<VhmId, String> = snap
            .vhms
            .iter()
            .find(|v| v.id == vhm.0)
            .map(|v| match &v.tenant {
                Some(t) => tenant_vhm_name(t, &v.name),
                None => v.name.clone(),
            })
            .map(|n| [(vhm, n)].into_iter().collect())
            .unwrap_or_default();
        let batch = tokio::task::spawn_blocking(move || -> Result<Vec<(u64, String)>, String> {
            let reader = xdv_trace::TraceReader::open(&path).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            reader
                .for_each_event_in(from, upto, Some(vhm), |s| {
                    out.push((s.seq, xdv_trace::event_json(&s, &names).to_string()));
                    out.len() < 4096
                })
                .map_err(|e| e.to_string())?;
            Ok(out)
        })
        .await;
        let Ok(Ok(batch)) = batch else { return };
        let full = batch.len() >= 4096;
        for (seq, data) in batch {
            from = seq + 1;
            let ev = SseEvent::default().id(seq.to_string()).data(data);
            if tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
        if full {
            continue;
        }
        let stopped = snap
            .vhms
            .iter()
            .find(|v| v.id == vhm.0)
            .is_none_or(|v| v.state != "running");
        // A stopped VHM's events all precede the commit that published its stop.
        if stopped || snap.finished {
            return;
        }
        if committed.changed().await.is_err() {
            return;
        }
    }
}
