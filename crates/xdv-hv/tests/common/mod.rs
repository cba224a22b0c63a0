//! Helpers shared by the hypervisor's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use xdv_core::{Event, EventKind, VhmId};
use xdv_hv::{run_in_memory, HostBuilder, Prepared, RunSummary};

/// A loader for tests that drive the core without an engine: it compiles anything, and every
/// module instantiates and has no interrupt handler.
pub struct Fake;

impl xdv_hv::modules::Loader for Fake {
    fn compile(&mut self, _: usize, _: &[u8], _: &str) -> Result<bool, xdv_k::KError> {
        Ok(false)
    }
    fn probe(&mut self, _: usize, _: u64) -> Result<(), xdv_core::refusal::TrapCode> {
        Ok(())
    }
}

/// The repository's examples folder.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Prepares `manifest` with the `(file name, WAT text)` guests, all in memory (no file is
/// written or read). The first element stands where a directory used to be returned.
pub fn prepare_inline(manifest: &str, guests: &[(&str, &str)]) -> ((), Prepared) {
    let builder = guests
        .iter()
        .fold(HostBuilder::new(manifest, "m.toml"), |b, (name, text)| {
            b.module(name, text.as_bytes())
        });
    ((), builder.prepare().unwrap_or_else(|e| panic!("{e}")))
}

/// Runs a prepared manifest in memory with its own seed.
pub fn run(p: &Prepared) -> (RunSummary, Vec<Event>) {
    run_in_memory(p, p.manifest.host.seed).unwrap()
}

/// The id of the VHM called `name` in a run.
pub fn id_of(events: &[Event], name: &str) -> VhmId {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::VhmCreated { name: n, .. } if n == name => e.vhm,
            _ => None,
        })
        .unwrap()
}

/// A compute-bound guest that never stops.
pub const SPIN: &str = r#"(module (func (export "main") (loop $l (br $l))))"#;

/// A `[[vhm]]` table with the given name, module, weight and fuel quota.
pub fn vhm(name: &str, module: &str, weight: u32, fuel: u64) -> String {
    format!(
        "[[vhm]]\nname = \"{name}\"\n[vhm.k]\nmodule = \"{module}\"\nmemory_limit = \"64 KiB\"\n[vhm.policy]\nweight = {weight}\nfuel_quota = {fuel}\n"
    )
}
