//! Helpers shared by the hypervisor's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use xdv_core::{Event, EventKind, VhmId};
use xdv_hv::{prepare, run_in_memory, Prepared, RunSummary};

/// The repository's examples folder.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Writes `manifest` and the `(file name, WAT text)` guests into a fresh directory and prepares it.
pub fn prepare_inline(manifest: &str, guests: &[(&str, &str)]) -> (tempfile::TempDir, Prepared) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in guests {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("m.toml");
    std::fs::write(&path, manifest).unwrap();
    let p = prepare(&path).unwrap_or_else(|e| panic!("{e}"));
    (dir, p)
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
