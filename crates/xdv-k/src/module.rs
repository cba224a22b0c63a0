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
}

impl GuestModule {
    /// Compiles `wasm` and checks it: imports only hypercalls from module `xdv` with their exact
    /// signatures, an `entry` export of type `() -> ()`, and if present an `xdv_irq` export of type
    /// `(i32, i64) -> ()`.
    pub fn new(engine: &KEngine, wasm: &[u8], entry: &str) -> Result<Self, KError> {
        let module =
            Module::new(&engine.engine, wasm).map_err(|e| KError::Invalid(e.to_string()))?;
        for import in module.imports() {
            let (m, n) = (import.module(), import.name());
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
        })
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
