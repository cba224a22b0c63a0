//! Compiling guests and checking them against the ABI.

use crate::abi::{self, IRQ_EXPORT, MEMORY_EXPORT};
use crate::vcpu::{HypercallTrap, VcpuData};
use crate::KError;
use wasmi::ValType;
use wasmi::{CompilationMode, Config, Engine, ExternType, FuncType, Linker, Module};

/// The shared wasmi engine with xdv's deterministic settings, and the linker that provides the
/// hypercalls. One per host.
#[derive(Clone)]
pub struct KEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: std::sync::Arc<Linker<VcpuData>>,
}

impl Default for KEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl KEngine {
    /// Builds the engine: eager compilation, fuel metering, the `deterministic` wasmi feature
    /// (enabled at build time), and a linker where every hypercall exits to the hypervisor.
    pub fn new() -> Self {
        let mut config = Config::default();
        config
            .consume_fuel(true)
            .compilation_mode(CompilationMode::Eager);
        crate::features::configure(&mut config);
        let engine = Engine::new(&config);
        let mut linker = Linker::<VcpuData>::new(&engine);
        for d in abi::HYPERCALLS {
            let ty = FuncType::new(d.params.iter().copied(), d.result);
            let call = d.call;
            linker
                .func_new("xdv", d.name, ty, move |_caller, params, _results| {
                    let mut args = [0i64; 5];
                    for (slot, v) in args.iter_mut().zip(params) {
                        *slot = v.i64().or(v.i32().map(i64::from)).unwrap_or(0);
                    }
                    Err(wasmi::Error::host(HypercallTrap { call, args }))
                })
                .expect("hypercall names are unique");
        }
        Self {
            engine,
            linker: std::sync::Arc::new(linker),
        }
    }
}

/// A compiled guest module that fits the ABI.
#[derive(Clone)]
pub struct GuestModule {
    /// The engine it was compiled by, which instantiates it.
    pub(crate) engine: KEngine,
    pub(crate) module: Module,
    pub(crate) entry: String,
    pub(crate) has_irq: bool,
    /// Bytes of linear memory the module declares initially (0 without a memory).
    pub(crate) initial_memory: u64,
    /// The ABI version its `xdv.abi` section declares, if it has one.
    pub(crate) abi_version: Option<u32>,
}

/// What a module's sections tell beyond what the engine exposes.
struct Sections {
    initial_memory: u64,
    abi_version: Option<u32>,
}

/// Reads the declared ABI version and the initial memory of a module that validated.
fn read_sections(wasm: &[u8]) -> Result<Sections, KError> {
    use wasmparser::{Parser, Payload};
    let invalid = |e: wasmparser::BinaryReaderError| KError::Invalid(e.to_string());
    let mut out = Sections {
        initial_memory: 0,
        abi_version: None,
    };
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::CustomSection(c) if c.name() == abi::ABI_SECTION => {
                let Ok(bytes) = <[u8; 4]>::try_from(c.data()) else {
                    return Err(KError::Abi(format!(
                        "custom section {:?} must hold one little-endian u32 (the ABI version), \
                         not {} bytes",
                        abi::ABI_SECTION,
                        c.data().len()
                    )));
                };
                if out.abi_version.is_some() {
                    return Err(KError::Abi(format!(
                        "the module has more than one {:?} section",
                        abi::ABI_SECTION
                    )));
                }
                out.abi_version = Some(u32::from_le_bytes(bytes));
            }
            Payload::MemorySection(r) => {
                if let Some(m) = r.into_iter().next() {
                    let m = m.map_err(invalid)?;
                    out.initial_memory = m.initial.saturating_mul(WASM_PAGE);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Bytes of one WebAssembly page.
pub const WASM_PAGE: u64 = 65_536;

/// `n` with a space every three digits (`1 114 112`), as messages print byte counts.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The libc functions C compilers emit calls to, which a guest must define itself.
const LIBC_BUILTINS: &[&str] = &["memset", "memcpy", "memmove", "memcmp", "bcmp", "strlen"];

impl GuestModule {
    /// Compiles `wasm` and checks it: imports only hypercalls from module `xdv` with their exact
    /// signatures, an `entry` export of type `() -> ()`, and if present an `xdv_irq` export of type
    /// `(i32, i64) -> ()`.
    pub fn new(engine: &KEngine, wasm: &[u8], entry: &str) -> Result<Self, KError> {
        let module = Module::new(&engine.engine, wasm).map_err(|e| {
            match crate::features::refused_feature_used(wasm) {
                Some(f) => KError::Abi(format!(
                    "the module uses the WebAssembly feature {:?}, which xdv does not accept ({}); \
                     accepted: {}",
                    f.name,
                    f.note,
                    crate::features::accepted_names()
                )),
                None => KError::Invalid(e.to_string()),
            }
        })?;
        let sections = read_sections(wasm)?;
        if let Some(v) = sections.abi_version {
            if !(abi::OLDEST_ABI_VERSION..=abi::ABI_VERSION).contains(&v) {
                return Err(KError::Abi(format!(
                    "the module was built for xdv ABI version {v}; this host implements version {} \
                     (it runs guests built for versions {} to {})",
                    abi::ABI_VERSION,
                    abi::OLDEST_ABI_VERSION,
                    abi::ABI_VERSION
                )));
            }
        }
        let exports_memory = matches!(
            module.get_export(MEMORY_EXPORT),
            Some(ExternType::Memory(_))
        );
        for import in module.imports() {
            let (m, n) = (import.module(), import.name());
            if m == "env" && LIBC_BUILTINS.contains(&n) {
                return Err(KError::Abi(format!(
                    "import env.{n}: guests may import only hypercalls from module \"xdv\"; the \
                     compiler emitted a call to {n}: define it (the C SDK's xdv.h does where \
                     XDV_IMPLEMENTATION is defined) and build with -mbulk-memory"
                )));
            }
            if m != "xdv" {
                return Err(KError::Abi(format!(
                    "import {m}.{n}: guests may import only hypercalls from module \"xdv\""
                )));
            }
            let Some(d) = abi::by_name(n) else {
                return Err(KError::Abi(format!(
                    "import xdv.{n}: no such hypercall in ABI version {}",
                    abi::ABI_VERSION
                )));
            };
            let ExternType::Func(ft) = import.ty() else {
                return Err(KError::Abi(format!("import xdv.{n}: must be a function")));
            };
            if ft.params() != d.params || ft.results() != d.result.as_slice() {
                return Err(KError::Abi(format!(
                    "import xdv.{n}: signature {} does not match the ABI's {}",
                    sig(ft.params(), ft.results()),
                    sig(d.params, d.result.as_slice())
                )));
            }
            if d.takes_pointer() && !exports_memory {
                return Err(KError::Abi(format!(
                    "import xdv.{n}: the call takes a pointer into guest memory, but the module \
                     exports no memory named {MEMORY_EXPORT:?}"
                )));
            }
        }
        match module.get_export(entry) {
            Some(ExternType::Func(ft)) if ft.params().is_empty() && ft.results().is_empty() => {}
            Some(ExternType::Func(ft)) => {
                return Err(KError::Abi(format!(
                    "entry export {entry:?} has type {}, expected () -> ()",
                    sig(ft.params(), ft.results())
                )))
            }
            _ => {
                return Err(KError::Abi(format!(
                    "the module exports no function {entry:?} (the VHM's entry)"
                )))
            }
        }
        let has_irq = match module.get_export(IRQ_EXPORT) {
            None => false,
            Some(ExternType::Func(ft))
                if ft.params() == [ValType::I32, ValType::I64] && ft.results().is_empty() =>
            {
                true
            }
            Some(_) => {
                return Err(KError::Abi(format!(
                    "export {IRQ_EXPORT:?} must be a function (i32, i64) -> ()"
                )))
            }
        };
        if let Some(t) = module.get_export(MEMORY_EXPORT) {
            if !matches!(t, ExternType::Memory(_)) {
                return Err(KError::Abi(format!(
                    "export {MEMORY_EXPORT:?} must be the guest's linear memory"
                )));
            }
        }
        Ok(Self {
            engine: engine.clone(),
            module,
            entry: entry.to_string(),
            has_irq,
            initial_memory: sections.initial_memory,
            abi_version: sections.abi_version,
        })
    }

    /// Bytes of linear memory the module declares initially (0 without a memory).
    pub fn initial_memory_bytes(&self) -> u64 {
        self.initial_memory
    }

    /// The ABI version the module's `xdv.abi` section declares, if it has one.
    pub fn abi_version(&self) -> Option<u32> {
        self.abi_version
    }

    /// `true` when the guest exports an interrupt handler.
    pub fn has_irq_handler(&self) -> bool {
        self.has_irq
    }

    /// The entry export the module was checked for.
    pub fn entry_name(&self) -> &str {
        &self.entry
    }
}

fn sig(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}
