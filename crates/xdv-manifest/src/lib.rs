//! The xdv manifest: a TOML file that describes one host and its VHMs.
//!
//! [`Manifest::parse`] turns text into validated values without touching the filesystem (replay
//! parses the manifest stored in a trace); [`Manifest::load_modules`] then reads the guest modules
//! the manifest names. Every error is a [`ManifestError`] that names the file, line, column and
//! key. The keys are documented in `docs/manifest.md`.
//!
//! Files are read only when they are regular files (a FIFO, a device or a directory is refused
//! before it is opened, so nothing blocks or reads without end), and only up to a limit:
//! [`MAX_MANIFEST_BYTES`] for the manifest, [`MAX_MODULE_BYTES`] for each module. The manifest
//! text is limited in [`Manifest::parse`] too, since replay parses the copy stored in a trace.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod raw;
mod serve;
mod size;

use std::fmt;
use std::path::{Path, PathBuf};

pub use serve::{serve_defaults, ServeMode, ServeSpec, TenantSpec};
pub use size::ByteSize;

/// Size of a WebAssembly page; memory limits are whole pages.
pub const WASM_PAGE: u64 = xdv_core::bounds::WASM_PAGE;

/// Largest manifest, in bytes (1 MiB): a larger file, or larger text given to
/// [`Manifest::parse`], is refused at `1:1` before the TOML parser sees it.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Largest guest module file, in bytes (16 MiB), `.wasm` binary or `.wat` text alike. A larger
/// file is refused at the manifest key that names it; at most this many bytes and one more are
/// ever read, so a file that grows while it is read is refused too.
pub const MAX_MODULE_BYTES: u64 = 16 << 20;

/// The virtual-time horizon, ns (2⁶², the same as `xdv_k::abi::TIME_HORIZON_NS`): no window may
/// end past it.
pub const TIME_HORIZON_NS: u64 = 1 << 62;

/// Memory a VHM's default `memory_quota` holds above `vcpus × memory_limit` (256 KiB): room for
/// what the host holds on its behalf (queued IPC messages it sent, module code it loads).
pub const DEFAULT_MEMORY_HEADROOM: u64 = 256 * 1024;

/// A manifest error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {key}{sep}{message}", sep = if key.is_empty() { "" } else { ": " })]
pub struct ManifestError {
    /// The manifest file (or the label given to [`Manifest::parse`]).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// The dotted key the error is about (`vhm[1].k.vcpus`), empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Manifest {
    /// An error found after parsing (a placement the host refuses, a module that does not
    /// compile), placed at `at` under `key`.
    pub fn error_at(&self, at: Location, key: String, message: String) -> ManifestError {
        ManifestError {
            file: self.file.clone(),
            line: at.line,
            col: at.col,
            key,
            message,
        }
    }
}

/// A place in the manifest text, kept for errors found after parsing (missing module files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// What the hypervisor does when a guest passes invalid hypercall arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadHypercallPolicy {
    /// Return an error code to the guest (the call is still recorded).
    #[default]
    Error,
    /// Fault the VHM.
    Fault,
}

/// Host-wide settings (`[host]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Seed of every random stream of the run.
    pub seed: u64,
    /// Virtual nanoseconds per unit of fuel at weight 1.
    pub ns_per_fuel: u64,
    /// Length of a scheduling slice, in fuel.
    pub slice_fuel: u64,
    /// Stop the run at this virtual time, if set.
    pub time_limit_ns: Option<u64>,
    /// Total memory the host offers to VHM quotas, if limited.
    pub memory: Option<u64>,
    /// Events per trace commit.
    pub trace_batch_events: u32,
    /// Sync every batch commit to disk (survives a host crash, not only a killed process).
    pub trace_durable: bool,
    /// Seed of the Q providers' measurement sampling (`[host.q] seed`); the host seed when unset.
    pub q_seed: Option<u64>,
    /// The host's Φ ports (`[[host.phi.port]]`), in declaration order.
    pub phi_ports: Vec<PortSpec>,
}

/// A Φ port of the host (`[[host.phi.port]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Its name.
    pub name: String,
    /// Time granularity, ns.
    pub granularity_ns: u64,
    /// Frequency band, Hz, inclusive.
    pub band: (i64, i64),
    /// Largest amplitude, ppm of full scale.
    pub max_amp_ppm: u32,
    /// Coherence limit (T2), ns.
    pub t2_ns: u64,
}

/// A coherence window a VHM asks for (`[[vhm.phi.window]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowReq {
    /// The port's index in `host.phi_ports`.
    pub port: usize,
    /// Start, ns.
    pub t0: u64,
    /// End, ns (exclusive).
    pub t1: u64,
    /// Band, Hz; the port's (or the parent window's) when unset.
    pub band: Option<(i64, i64)>,
    /// Amplitude cap, ppm; the port's (or the parent window's) when unset.
    pub max_amp_ppm: Option<u32>,
    /// Share grant.
    pub shared: bool,
    /// Where the window is written.
    pub at: Location,
}

/// The quantum part of a VHM (`[vhm.q]`): a container of logical qubits on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QSpec {
    /// The device and where it is written (a nested VHM's is its parent's).
    pub device: (String, Location),
    /// Logical qubits.
    pub qubits: u32,
    /// Where `qubits` is written, for allocation errors.
    pub qubits_at: Location,
    /// Decoherence budget, micro-units of log-fidelity.
    pub budget: u64,
}

/// The classical part of a VHM (`[vhm.k]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KSpec {
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Linear memory limit of each vCPU, bytes (a multiple of 64 KiB).
    pub memory_limit: u64,
    /// The guest module path as written in the manifest.
    pub module: String,
    /// Where `module` is written, for errors about the file.
    pub module_at: Location,
    /// Exported function every vCPU starts in.
    pub entry: String,
    /// Number of interrupt vectors (vector 0 is the virtual timer).
    pub irq_vectors: u32,
    /// The vector raised when a message arrives on one of the VHM's endpoints, if any.
    pub ipc_vector: Option<u32>,
    /// The vector raised when a child under `on_fault = "notify-parent"` faults, if any.
    pub fault_vector: Option<u32>,
    /// Further modules the VHM holds capabilities to (to spawn children from), with where each is
    /// written.
    pub modules: Vec<(String, Location)>,
}

/// A VHM's policy (`[vhm.policy]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Scheduling weight: each vCPU runs at `weight` fuel per `ns_per_fuel` virtual ns.
    pub weight: u32,
    /// Total fuel the VHM may consume.
    pub fuel_quota: u64,
    /// Total memory of all the VHM's vCPUs, bytes.
    pub memory_quota: u64,
    /// Reaction to invalid hypercall arguments.
    pub on_bad_hypercall: BadHypercallPolicy,
    /// vCPUs of the VHM and all its descendants.
    pub max_vcpus: u32,
    /// Levels of nesting allowed below the VHM (0: no children).
    pub max_depth: u32,
    /// Live direct children allowed.
    pub max_children: u32,
    /// Whether the VHM may create IPC channels.
    pub create_channels: bool,
    /// What happens when the VHM faults.
    pub on_fault: FaultPolicy,
    /// Restarts allowed under `on_fault = "restart"`.
    pub max_restarts: u32,
    /// Φ port-time, ns: how much window time a top-level VHM may hold at once, summed over its
    /// windows (its manifest windows and those `phi_window` grants it). Defaults to the sum of
    /// its manifest windows; a nested VHM's windows lie in its parent's and need none.
    pub phi_port_time: u64,
}

/// What the hypervisor does when a VHM faults (`[vhm.policy] on_fault`). In every case the
/// VHM's subtree is stopped and its resources reclaimed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultPolicy {
    /// The VHM stays stopped.
    #[default]
    Kill,
    /// The VHM is created again from its spec (a new name `name#n`), at most `max_restarts`
    /// times.
    Restart,
    /// The parent is interrupted on its `k.fault_vector` with the child's `vhm_wait` value.
    NotifyParent,
}

impl FaultPolicy {
    /// The manifest's word for it.
    pub fn name(&self) -> &'static str {
        match self {
            FaultPolicy::Kill => "kill",
            FaultPolicy::Restart => "restart",
            FaultPolicy::NotifyParent => "notify-parent",
        }
    }
}

impl InjectedFault {
    /// Every class, in the order the documentation lists them.
    pub const ALL: [InjectedFault; 6] = [
        InjectedFault::Trap,
        InjectedFault::FuelExhausted,
        InjectedFault::BadHypercall,
        InjectedFault::Kill,
        InjectedFault::Coherence,
        InjectedFault::QProvider,
    ];

    /// The manifest's word for it (`[[fault]] class`).
    pub fn name(&self) -> &'static str {
        match self {
            InjectedFault::Trap => "trap",
            InjectedFault::FuelExhausted => "fuel-exhausted",
            InjectedFault::BadHypercall => "bad-hypercall",
            InjectedFault::Kill => "kill",
            InjectedFault::Coherence => "coherence",
            InjectedFault::QProvider => "q-provider",
        }
    }
}

/// A fault to inject (`[[fault]]`), for tests and demonstrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    /// The VHM (manifest index).
    pub vhm: usize,
    /// When.
    pub trigger: FaultTrigger,
    /// What.
    pub class: InjectedFault,
}

/// When an injected fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTrigger {
    /// At this virtual time.
    AtNs(u64),
    /// Once this many events have been recorded.
    AfterEvents(u64),
}

/// The classes of injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// A trap, as if the guest executed `unreachable`.
    Trap,
    /// The fuel quota exhausted.
    FuelExhausted,
    /// A refused hypercall under a fault policy.
    BadHypercall,
    /// The VHM killed (its channel peers see it die).
    Kill,
    /// Every Φ window of the VHM loses coherence.
    Coherence,
    /// The VHM's next Q job fails in the provider.
    QProvider,
}

/// One VHM (`[[vhm]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhmSpec {
    /// Unique name.
    pub name: String,
    /// Index of the parent VHM (an earlier `[[vhm]]`), for a statically nested VHM.
    pub parent: Option<usize>,
    /// Classical part.
    pub k: KSpec,
    /// Policy.
    pub policy: PolicySpec,
    /// Quantum part, if any.
    pub q: Option<QSpec>,
    /// Φ windows asked for at creation, in order.
    pub phi: Vec<WindowReq>,
}

impl VhmSpec {
    /// Parses one `[[vhm]]` table sent to `xdv serve` (`text` holds only it) as a top-level
    /// VHM of a host with `host`'s settings; `file` labels errors, whose keys read `vhm[0].…`.
    ///
    /// # Errors
    ///
    /// The first invalid key, as [`Manifest::parse`] reports it.
    pub fn parse_request(host: &HostSpec, text: &str, file: &str) -> Result<Self, ManifestError> {
        check_size(text, file)?;
        raw::request_vhm(host, text, file)
    }
}

/// Refuses text over [`MAX_MANIFEST_BYTES`] at `1:1`, before the TOML parser sees it.
fn check_size(text: &str, file: &str) -> Result<(), ManifestError> {
    if text.len() as u64 <= MAX_MANIFEST_BYTES {
        return Ok(());
    }
    Err(ManifestError {
        file: file.to_string(),
        line: 1,
        col: 1,
        key: String::new(),
        message: format!(
            "the manifest is {} bytes, more than the {} a manifest may be (MAX_MANIFEST_BYTES)",
            text.len(),
            MAX_MANIFEST_BYTES
        ),
    })
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The label errors use (the file path).
    pub file: String,
    /// The text it was parsed from.
    pub text: String,
    /// Host settings.
    pub host: HostSpec,
    /// VHMs in declaration order, which is creation order.
    pub vhms: Vec<VhmSpec>,
    /// IPC channels declared between VHMs.
    pub channels: Vec<ChannelSpec>,
    /// Faults to inject (`[[fault]]`), in declaration order.
    pub faults: Vec<FaultSpec>,
    /// `[serve]`: present in a service's config (`xdv serve`).
    pub serve: Option<ServeSpec>,
    /// `[[tenant]]` tables, in declaration order (their index is the tenant's number).
    pub tenants: Vec<TenantSpec>,
}

/// An IPC channel declared in the manifest (`[[channel]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// The two VHMs (indices), end 0 and end 1.
    pub ends: [usize; 2],
    /// Messages each direction holds.
    pub capacity: u32,
    /// The badge of each end's capability (stamped on what is sent through it).
    pub badges: [u64; 2],
}

/// A guest module read from disk and turned into WebAssembly binary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModule {
    /// The path as written in the manifest.
    pub name: String,
    /// The module's binary (`.wat` files are assembled).
    pub bytes: Vec<u8>,
}

impl Manifest {
    /// Reads and validates a manifest file: a regular file of at most [`MAX_MANIFEST_BYTES`].
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let err = |message: String| ManifestError {
            file: path.display().to_string(),
            line: 1,
            col: 1,
            key: String::new(),
            message,
        };
        let bytes = read_regular(
            path,
            MAX_MANIFEST_BYTES,
            "the manifest",
            "MAX_MANIFEST_BYTES",
        )
        .map_err(|e| err(format!("cannot read manifest: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| err("cannot read manifest: it is not valid UTF-8".into()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates manifest text of at most [`MAX_MANIFEST_BYTES`]; `file` labels
    /// errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ManifestError> {
        check_size(text, file)?;
        raw::parse(text, file)
    }

    /// Every module path the manifest names, once each, in order of appearance (each VHM's
    /// `module`, then its `modules`), with the place and key that name it first.
    pub fn module_paths(&self) -> Vec<(String, Location, String)> {
        let mut out: Vec<(String, Location, String)> = Vec::new();
        for (i, v) in self.vhms.iter().enumerate() {
            let named = std::iter::once((&v.k.module, v.k.module_at, format!("vhm[{i}].k.module")))
                .chain(
                    v.k.modules
                        .iter()
                        .enumerate()
                        .map(|(j, (m, at))| (m, *at, format!("vhm[{i}].k.modules[{j}]"))),
                );
            for (m, at, key) in named {
                if !out.iter().any(|(p, _, _)| p == m) {
                    out.push((m.clone(), at, key));
                }
            }
        }
        out
    }

    /// Reads every module the manifest names ([`Manifest::module_paths`]), relative to
    /// `base_dir`, assembling `.wat` text. Each must be a regular file of at most
    /// [`MAX_MODULE_BYTES`].
    pub fn load_modules(&self, base_dir: &Path) -> Result<Vec<LoadedModule>, ManifestError> {
        self.load_modules_with(|name| {
            let path: PathBuf = base_dir.join(name);
            read_regular(&path, MAX_MODULE_BYTES, "a module", "MAX_MODULE_BYTES")
                .map(|bytes| (bytes, path.display().to_string()))
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        })
    }

    /// [`Manifest::load_modules`] from `source`, which gives each module's bytes by the name
    /// the manifest uses (and the label its errors name), or why it cannot: the builder's way
    /// to a host without files.
    ///
    /// # Errors
    ///
    /// As [`Manifest::load_modules`], placed at the manifest line that names the module.
    pub fn load_modules_with(
        &self,
        mut source: impl FnMut(&str) -> Result<(Vec<u8>, String), String>,
    ) -> Result<Vec<LoadedModule>, ManifestError> {
        self.module_paths()
            .into_iter()
            .map(|(name, at, key)| {
                let err = |message: String| self.error_at(at, key.clone(), message);
                let (bytes, label) = source(&name).map_err(&err)?;
                let is_wat = Path::new(&name)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("wat"));
                let bytes = if is_wat {
                    wat::parse_bytes(&bytes)
                        .map(|b| b.into_owned())
                        .map_err(|mut e| {
                            e.set_path(Path::new(&label));
                            err(format!("invalid WAT: {e}"))
                        })?
                } else {
                    bytes
                };
                if !bytes.starts_with(b"\0asm") {
                    return Err(err(format!(
                        "{label} is not a WebAssembly module (.wasm binary or .wat text)"
                    )));
                }
                Ok(LoadedModule { name, bytes })
            })
            .collect()
    }
}

/// Reads `path` if it is a regular file of at most `limit` bytes (`what`, `limit_name`: for the
/// message). The type is checked before the file is opened, so a FIFO never blocks and a device
/// is never read, and again on the open file, in case it was replaced in between. At most
/// `limit + 1` bytes are read, so a file growing meanwhile is refused too. The CLI reads every
/// input file this way.
///
/// # Errors
///
/// The reason, without the path: not found, not a regular file, or over the limit.
pub fn read_regular(
    path: &Path,
    limit: u64,
    what: &str,
    limit_name: &str,
) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let regular = |meta: &std::fs::Metadata| -> Result<(), String> {
        if meta.is_file() {
            Ok(())
        } else {
            Err(format!("not a regular file ({})", kind(&meta.file_type())))
        }
    };
    let too_big = || format!("larger than {limit} bytes, the most {what} may be ({limit_name})");
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    regular(&meta)?;
    if meta.len() > limit {
        return Err(too_big());
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    regular(&file.metadata().map_err(|e| e.to_string())?)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// What a file that is not a regular file is, for messages.
fn kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

impl fmt::Display for BadHypercallPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadHypercallPolicy::Error => "error",
            BadHypercallPolicy::Fault => "fault",
        })
    }
}
