//! The WebAssembly features a guest may use: one list that configures the engine, names the
//! feature a refused module uses, and is what `docs/guests.md` and `xdv abi` print.
//!
//! Everything the engine accepts is deterministic under wasmi's `deterministic` build (NaNs are
//! canonicalised, fuel counts every instruction). SIMD is refused because this build of the
//! engine does not include it, and relaxed SIMD would be refused even then: its results may
//! differ between hosts.

use wasmparser::{Validator, WasmFeatures};

/// One WebAssembly feature and whether guests may use it.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    /// Its name as the WebAssembly proposals (and `clang -m…`, `-C target-feature=+…`) spell it.
    pub name: &'static str,
    /// `true` when xdv accepts modules that use it.
    pub accepted: bool,
    /// Why, in a few words.
    pub note: &'static str,
    flag: WasmFeatures,
}

const fn f(name: &'static str, accepted: bool, note: &'static str, flag: WasmFeatures) -> Feature {
    Feature {
        name,
        accepted,
        note,
        flag,
    }
}

/// Every feature xdv decides on, accepted ones first.
pub const FEATURES: &[Feature] = &[
    f("mutable-global", true, "", WasmFeatures::MUTABLE_GLOBAL),
    f("sign-ext", true, "", WasmFeatures::SIGN_EXTENSION),
    f(
        "nontrapping-fptoint",
        true,
        "",
        WasmFeatures::SATURATING_FLOAT_TO_INT,
    ),
    f("multivalue", true, "", WasmFeatures::MULTI_VALUE),
    f(
        "bulk-memory",
        true,
        "memory.copy and memory.fill, which the SDKs' memcpy/memset use",
        WasmFeatures::BULK_MEMORY,
    ),
    f("reference-types", true, "", WasmFeatures::REFERENCE_TYPES),
    f("tail-call", true, "", WasmFeatures::TAIL_CALL),
    f("extended-const", true, "", WasmFeatures::EXTENDED_CONST),
    f(
        "multi-memory",
        true,
        "validates, but a guest may instantiate only one linear memory",
        WasmFeatures::MULTI_MEMORY,
    ),
    f(
        "simd128",
        false,
        "not in this build of the engine",
        WasmFeatures::SIMD,
    ),
    f(
        "relaxed-simd",
        false,
        "results may differ between hosts",
        WasmFeatures::RELAXED_SIMD,
    ),
    f(
        "threads",
        false,
        "a vCPU has its own memory; nothing is shared",
        WasmFeatures::THREADS,
    ),
    f(
        "exception-handling",
        false,
        "not supported by the engine",
        WasmFeatures::EXCEPTIONS,
    ),
    f(
        "memory64",
        false,
        "not supported by the engine",
        WasmFeatures::MEMORY64,
    ),
    f("gc", false, "not supported by the engine", WasmFeatures::GC),
    f(
        "function-references",
        false,
        "not supported by the engine",
        WasmFeatures::FUNCTION_REFERENCES,
    ),
    f(
        "custom-page-sizes",
        false,
        "not supported by the engine",
        WasmFeatures::CUSTOM_PAGE_SIZES,
    ),
    f(
        "wide-arithmetic",
        false,
        "not supported by the engine",
        WasmFeatures::WIDE_ARITHMETIC,
    ),
];

/// The set the engine is configured with: the accepted features and the base ones (floats,
/// GC types as reference types need them).
pub(crate) fn accepted() -> WasmFeatures {
    let mut set = WasmFeatures::FLOATS | WasmFeatures::GC_TYPES;
    for f in FEATURES.iter().filter(|f| f.accepted) {
        set |= f.flag;
    }
    set
}

/// Configures `config` with exactly the accepted features, so that an engine upgrade cannot
/// change what guests may use without this list changing.
pub(crate) fn configure(config: &mut wasmi::Config) {
    let on = |name| FEATURES.iter().any(|f| f.name == name && f.accepted);
    config
        .wasm_mutable_global(on("mutable-global"))
        .wasm_sign_extension(on("sign-ext"))
        .wasm_saturating_float_to_int(on("nontrapping-fptoint"))
        .wasm_multi_value(on("multivalue"))
        .wasm_bulk_memory(on("bulk-memory"))
        .wasm_reference_types(on("reference-types"))
        .wasm_tail_call(on("tail-call"))
        .wasm_extended_const(on("extended-const"))
        .wasm_multi_memory(on("multi-memory"))
        .wasm_custom_page_sizes(on("custom-page-sizes"))
        .wasm_wide_arithmetic(on("wide-arithmetic"));
}

/// The first refused feature whose addition makes `wasm` valid: what to tell its author.
pub(crate) fn refused_feature_used(wasm: &[u8]) -> Option<&'static Feature> {
    let base = accepted();
    if Validator::new_with_features(base)
        .validate_all(wasm)
        .is_ok()
    {
        return None;
    }
    FEATURES.iter().filter(|f| !f.accepted).find(|f| {
        // SIMD's extensions validate only with SIMD itself.
        let extra = if f.flag == WasmFeatures::RELAXED_SIMD {
            WasmFeatures::SIMD
        } else {
            WasmFeatures::empty()
        };
        Validator::new_with_features(base | f.flag | extra)
            .validate_all(wasm)
            .is_ok()
    })
}

/// The accepted features' names, comma-separated.
pub fn accepted_names() -> String {
    FEATURES
        .iter()
        .filter(|f| f.accepted)
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}
