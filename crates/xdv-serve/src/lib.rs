//! `xdv serve`: the hypervisor as a long-running, multi-tenant service.
//!
//! - The hypervisor core runs on its own thread ([`host`]) and is the only writer of the trace.
//!   Requests reach it through a bounded channel and take effect at its pauses (every
//!   `[serve] epoch_ns` of virtual time); each is a recorded input event, committed before the
//!   client is answered, so `xdv replay` of the trace re-executes the whole service history.
//! - The HTTP side ([`api`]) is axum on hyper: it authenticates bearer tokens, confines each
//!   tenant to its own VHMs, modules and rows (another tenant's object is 404), enforces the
//!   limits ([`limits`]) and answers errors as `application/problem+json`.
//!
//! The API is described in `docs/api/openapi.yaml` and served at `GET /v1/openapi.json`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod host;
mod limits;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use xdv_core::Hash32;
use xdv_hv::{HvError, Hypervisor, Prepared, Served};
use xdv_manifest::ServeMode;

/// The OpenAPI document of the `/v1` API, as committed.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/api/openapi.yaml");

/// Errors that stop the service.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config has no `[serve]` table.
    #[error("{0}: not a service config: it has no [serve] table (see docs/serve.md)")]
    NotAService(String),
    /// The hypervisor stopped on an error.
    #[error(transparent)]
    Host(#[from] HvError),
    /// The listener could not be opened or served.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
    /// The host did not start (the reason was reported first).
    #[error("the host did not start")]
    NotStarted,
    /// The OpenAPI document does not parse (a build defect).
    #[error("docs/api/openapi.yaml: {0}")]
    OpenApi(String),
}

/// Where and how to serve.
pub struct ServeOptions {
    /// The config, prepared (its static VHMs' modules loaded and checked).
    pub config: Prepared,
    /// The address to listen on (the config's `[serve] listen` when `None`).
    pub listen: Option<SocketAddr>,
    /// Listen on this Unix socket instead of TCP (its access is the file's permissions; the
    /// bearer tokens still apply).
    pub unix: Option<PathBuf>,
    /// The trace to write (or to continue, with `resume`).
    pub trace: PathBuf,
    /// Continue the service recorded in `trace` after a crash.
    pub resume: bool,
    /// Called once the listener is bound, with where it listens: `http://ADDR` (tests bind
    /// port 0) or `unix:PATH`.
    pub on_listening: Option<Box<dyn FnOnce(String) + Send>>,
}

/// A fresh bearer token (32 random bytes, hex) and the BLAKE3 hash a config holds for it.
///
/// # Errors
///
/// When the operating system's random source fails.
pub fn new_token() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The hash a config holds for `token`: BLAKE3, hex.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.trim().as_bytes()).to_hex().to_string()
}

/// The OpenAPI document as JSON.
///
/// # Errors
///
/// [`ServeError::OpenApi`] when the committed YAML does not parse.
pub fn openapi_json() -> Result<serde_json::Value, ServeError> {
    serde_yaml_ng::from_str(OPENAPI_YAML).map_err(|e| ServeError::OpenApi(e.to_string()))
}

/// Runs the service until SIGTERM or SIGINT (or the host finishing): the core on its thread,
/// the API on a Tokio runtime. Returns the finished trace's chain hash.
///
/// # Errors
///
/// [`ServeError`] when the config is not a service's, the listener cannot be bound, or the
/// host stops on an error (the trace is then left cut short at its last commit, and
/// `--resume` continues it).
pub fn serve(opts: ServeOptions) -> Result<Hash32, ServeError> {
    let manifest = &opts.config.manifest;
    let Some(spec) = manifest.serve.clone() else {
        return Err(ServeError::NotAService(manifest.file.clone()));
    };
    let shared = Arc::new(host::Shared::new());
    let (cmds, rx) = std::sync::mpsc::sync_channel(1024);
    let mut tokens = std::collections::BTreeMap::new();
    if let Some(h) = &spec.operator_token_hash {
        tokens.insert(h.clone(), api::Who::Operator);
    }
    for (i, t) in manifest.tenants.iter().enumerate() {
        tokens.insert(t.token_hash.clone(), api::Who::Tenant(i as u32));
    }
    let app = Arc::new(api::App {
        shared: shared.clone(),
        cmds: cmds.clone(),
        tokens,
        tenant_names: manifest.tenants.iter().map(|t| t.name.clone()).collect(),
        limits: limits::Limits::new(&spec, manifest.tenants.len()),
        trace: opts.trace.clone(),
        mode: match spec.mode {
            ServeMode::FreeRun => "free-run",
            ServeMode::Paced { .. } => "paced",
        },
        epoch_ns: spec.epoch_ns,
        openapi: openapi_json()?,
        host: manifest.host.clone(),
    });
    let mode = spec.mode;
    let host_shared = shared.clone();
    // The host is built on its own thread (its engine's instances stay there) and says when it
    // is ready, or why it cannot start, before anything listens.
    let (ready, started) = std::sync::mpsc::sync_channel::<Result<(), ServeError>>(1);
    let (config, trace, resume) = (opts.config, opts.trace.clone(), opts.resume);
    let core = std::thread::Builder::new().name("xdv-host".into()).spawn(
        move || -> Result<Hash32, ServeError> {
            let begun = if resume {
                start_resumed(&trace)
            } else {
                start_fresh(&config, &trace)
            };
            let (hv, sink, at) = match begun {
                Ok(b) => b,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return Err(ServeError::NotStarted);
                }
            };
            let ready = move || {
                let _ = ready.send(Ok(()));
            };
            Ok(host::run(hv, sink, at, (rx, ready), host_shared, mode)?)
        },
    )?;
    match started.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        // The thread stopped before it was ready: its own error says why.
        Err(_) => {
            return Err(match core.join() {
                Ok(Err(e)) => e,
                _ => ServeError::NotStarted,
            })
        }
    }
    let listen = match (opts.unix, opts.listen) {
        (Some(path), _) => Endpoint::Unix(path),
        (None, Some(a)) => Endpoint::Tcp(a),
        (None, None) => Endpoint::Tcp(spec.listen.parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("[serve] listen = {:?}: {e}", spec.listen),
            )
        })?),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(spec.api_threads as usize)
        .enable_all()
        .build()?;
    let served = runtime.block_on(listen_and_serve(
        app,
        listen,
        Duration::from_millis(spec.header_timeout_ms),
        Duration::from_millis(spec.request_timeout_ms),
        opts.on_listening,
        (shared.clone(), cmds.clone()),
    ));
    // Stop the host whatever ended the server, and wait for its trace to be finished.
    let _ = cmds.send(host::Cmd::Stop);
    drop(cmds);
    let head = core
        .join()
        .map_err(|_| std::io::Error::other("the hypervisor thread panicked"))??;
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    Ok(head)
}

/// A new service host: its trace created, `Start` applied.
fn start_fresh(
    p: &Prepared,
    trace: &Path,
) -> Result<(Hypervisor, host::ServeSink, Served), ServeError> {
    let mut hv = Hypervisor::new(&p.manifest, &p.modules, p.manifest.host.seed)?;
    let writer = xdv_hv::trace_writer(p, p.manifest.host.seed, trace)?;
    let mut sink = host::ServeSink::new(writer, xdv_trace::TableBuilder::default());
    let at = hv.drive(&mut sink, xdv_hv::Input::Start)?;
    Ok((hv, sink, at))
}

/// The service recorded in `trace`, re-executed to its first pause after the last commit.
fn start_resumed(trace: &Path) -> Result<(Hypervisor, host::ServeSink, Served), ServeError> {
    let resumed = xdv_hv::run::resume_service(trace)?;
    let sink = host::ServeSink::new(resumed.writer, resumed.table);
    Ok((resumed.hv, sink, resumed.at))
}

/// Accepts connections until a signal (or the host finishing), serving each with hyper:
/// headers must arrive within `header_timeout` (which also closes idle keep-alive
/// connections), and every request but an event stream is answered within `request_timeout`.
async fn listen_and_serve(
    app: Arc<api::App>,
    listen: Endpoint,
    header_timeout: Duration,
    request_timeout: Duration,
    on_listening: Option<Box<dyn FnOnce(String) + Send>>,
    (shared, cmds): (Arc<host::Shared>, std::sync::mpsc::SyncSender<host::Cmd>),
) -> Result<(), ServeError> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    let router = api::router(app).layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        request_timeout,
    ));
    let listener = Listener::bind(listen).await?;
    if let Some(f) = on_listening {
        f(listener.describe()?);
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut finished = shared.committed.subscribe();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // A failed accept (out of descriptors) drops that connection, not the server.
                Err(_) => continue,
            },
            () = &mut signal => break,
            changed = finished.changed() => {
                if changed.is_err() || *finished.borrow() == u64::MAX { break }
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    // The host stops (its trace finished), which ends the event streams; open connections get
    // a moment to finish, then are dropped.
    let _ = cmds.send(host::Cmd::Stop);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
    Ok(())
}

/// Where the server listens.
enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A bound listener of either kind.
enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
}

/// A connection of either kind.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

impl Listener {
    async fn bind(at: Endpoint) -> std::io::Result<Self> {
        match at {
            Endpoint::Tcp(a) => Ok(Self::Tcp(tokio::net::TcpListener::bind(a).await?)),
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                // A socket left by a killed server is replaced; any other file is not.
                use std::os::unix::fs::FileTypeExt;
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket()) {
                    std::fs::remove_file(&path)?;
                }
                Ok(Self::Unix(tokio::net::UnixListener::bind(&path)?, path))
            }
            #[cfg(not(unix))]
            Endpoint::Unix(_) => Err(std::io::Error::other("Unix sockets need a Unix host")),
        }
    }

    fn describe(&self) -> std::io::Result<String> {
        Ok(match self {
            Self::Tcp(l) => format!("http://{}", l.local_addr()?),
            #[cfg(unix)]
            Self::Unix(_, path) => format!("unix:{}", path.display()),
        })
    }

    async fn accept(&self) -> std::io::Result<Box<dyn Conn>> {
        Ok(match self {
            Self::Tcp(l) => Box::new(l.accept().await?.0),
            #[cfg(unix)]
            Self::Unix(l, _) => Box::new(l.accept().await?.0),
        })
    }
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
