//! A run from a manifest to a trace file.

use crate::hypervisor::{Hypervisor, RunSummary};
use crate::HvError;
use std::path::Path;
use xdv_core::trace::{ModuleEntry, TraceHeader, TraceWriter};
use xdv_core::{Hash32, MemorySink, ResourceRow, TableBuilder};
use xdv_manifest::{LoadedModule, Manifest};

/// A manifest with its modules loaded and checked: everything a run needs.
pub struct Prepared {
    /// The validated manifest.
    pub manifest: Manifest,
    /// Its guest modules, in VHM order.
    pub modules: Vec<LoadedModule>,
}

/// Reads a manifest and its modules and checks everything that can be checked without running:
/// the manifest's keys and quotas, the modules against the ABI, and instantiation under each
/// VHM's memory limit.
pub fn prepare(path: &Path) -> Result<Prepared, HvError> {
    let manifest = Manifest::from_file(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let modules = manifest.load_modules(base)?;
    let hv = Hypervisor::new(&manifest, &modules, manifest.host.seed)?;
    hv.check_instantiation(&manifest.file)?;
    Ok(Prepared { manifest, modules })
}

/// Options of [`run_to_trace`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Seed overriding the manifest's.
    pub seed: Option<u64>,
    /// Abort the process after this many events (crash tests).
    pub crash_after: Option<u64>,
}

/// The header of a run's trace.
pub fn header(p: &Prepared, seed: u64) -> TraceHeader {
    TraceHeader {
        format_version: xdv_core::TRACE_FORMAT_VERSION,
        event_schema: xdv_core::EVENT_SCHEMA_VERSION,
        xdv_version: env!("CARGO_PKG_VERSION").to_string(),
        engine: xdv_k::ENGINE_ID.to_string(),
        seed,
        manifest_name: p.manifest.file.clone(),
        manifest_text: p.manifest.text.clone(),
        modules: p
            .modules
            .iter()
            .map(|m| ModuleEntry {
                name: m.name.clone(),
                hash: Hash32::of(&m.bytes),
            })
            .collect(),
    }
}

/// Runs a prepared manifest, writing the trace to `trace`. Returns the summary, the
/// Resource_Table and the final chain hash.
pub fn run_to_trace(
    p: &Prepared,
    trace: &Path,
    opts: &RunOptions,
) -> Result<(RunSummary, Vec<ResourceRow>, Hash32), HvError> {
    let seed = opts.seed.unwrap_or(p.manifest.host.seed);
    let mut hv = Hypervisor::new(&p.manifest, &p.modules, seed)?;
    let header = header(p, seed);
    let hashes: Vec<(Hash32, &[u8])> = p
        .modules
        .iter()
        .map(|m| (Hash32::of(&m.bytes), m.bytes.as_slice()))
        .collect();
    let mut writer = TraceWriter::create_with(
        trace,
        &header,
        &hashes,
        p.manifest.host.trace_batch_events,
        p.manifest.host.trace_durable,
    )?;
    if let Some(n) = opts.crash_after {
        writer.crash_after(n);
    }
    let mut tee = Tee {
        writer,
        table: TableBuilder::default(),
    };
    let summary = hv.run(&mut tee)?;
    let table = tee.table.finish();
    let head = tee.writer.finish(&table)?;
    Ok((summary, table, head))
}

/// Runs a prepared manifest in memory, returning the summary and every event.
pub fn run_in_memory(
    p: &Prepared,
    seed: u64,
) -> Result<(RunSummary, Vec<xdv_core::Event>), HvError> {
    let mut hv = Hypervisor::new(&p.manifest, &p.modules, seed)?;
    let mut sink = MemorySink::default();
    let summary = hv.run(&mut sink)?;
    Ok((summary, sink.events))
}

/// Writes events to the trace and feeds the Resource_Table as they pass.
struct Tee {
    writer: TraceWriter,
    table: TableBuilder,
}

impl xdv_core::EventSink for Tee {
    fn module(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<(), xdv_core::SinkError> {
        self.writer.module(hash, bytes)
    }

    fn emit(&mut self, event: &xdv_core::Event) -> Result<(), xdv_core::SinkError> {
        self.writer.emit(event)?;
        self.table.observe(event);
        Ok(())
    }
}
