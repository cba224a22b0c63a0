//! A run from a manifest to a trace file.

use crate::driver::{recorded_captures, recorded_outcomes, recorded_pause, Driver, Pause, QJobRun};
use crate::hypervisor::Hypervisor;
use crate::state::RunSummary;
use crate::HvError;
use std::path::Path;
use xdv_core::event::{Event, SinkError};
use xdv_core::{Hash32, MemorySink};
use xdv_manifest::{LoadedModule, Manifest};
use xdv_trace::{EventCursor, InputCheck, ModuleEntry, TraceHeader, TraceReader, TraceWriter};
use xdv_trace::{ResourceRow, TableBuilder};

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
    prepare_with_chaos(path, None)
}

/// Like [`prepare`], with `chaos`: random faults drawn from that seed are appended to the
/// manifest as `[[fault]]` tables (so the trace's stored manifest holds them and replays them).
/// One to four faults, each into a random manifest VHM, of a random class, at a random virtual
/// time before the time limit (or 1 ms).
pub fn prepare_with_chaos(path: &Path, chaos: Option<u64>) -> Result<Prepared, HvError> {
    let manifest = Manifest::from_file(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    crate::builder::prepared(manifest, chaos, |m| m.load_modules(base))
}

/// The `[[fault]]` tables `--chaos seed` adds to a manifest.
pub fn chaos_faults(manifest: &Manifest, seed: u64) -> String {
    use rand_core::{RngCore, SeedableRng};
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 0x0063_6861_6f73);
    let horizon = manifest.host.time_limit_ns.unwrap_or(1_000_000).max(1);
    let classes = xdv_manifest::InjectedFault::ALL;
    let n = 1 + rng.next_u64() % 4;
    let mut out = format!("\n# Injected by --chaos {seed}\n");
    for _ in 0..n {
        let vhm = &manifest.vhms[(rng.next_u64() % manifest.vhms.len() as u64) as usize].name;
        let class = classes[(rng.next_u64() % classes.len() as u64) as usize].name();
        let at = rng.next_u64() % horizon;
        out += &format!("[[fault]]\nvhm = {vhm:?}\nat_ns = {at}\nclass = \"{class}\"\n");
    }
    out
}

/// Options of [`run_to_trace`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Seed overriding the manifest's.
    pub seed: Option<u64>,
    /// Abort the process after this many events (crash tests).
    pub crash_after: Option<u64>,
    /// Stop the run after this many events, as a crashed host would, leaving the trace cut
    /// short at its last commit (in-process crash simulation).
    pub stop_after: Option<u64>,
    /// Check every invariant after every event (simulation testing).
    pub check_invariants: bool,
    /// Make the trace's storage fail (simulation testing): the run stops with a store error.
    pub storage_fault: Option<xdv_trace::StorageFault>,
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
    run_to_trace_observed(p, trace, opts, &mut |_| {})
}

/// [`run_to_trace`], calling `observe` with every event as it is written (what `xdv run`
/// prints guests' log lines from). The observer sees events; it cannot change the run.
///
/// # Errors
///
/// As [`run_to_trace`].
pub fn run_to_trace_observed(
    p: &Prepared,
    trace: &Path,
    opts: &RunOptions,
    observe: &mut dyn FnMut(&xdv_core::Event),
) -> Result<(RunSummary, Vec<ResourceRow>, Hash32), HvError> {
    let seed = opts.seed.unwrap_or(p.manifest.host.seed);
    let mut hv = Hypervisor::new(&p.manifest, &p.modules, seed)?;
    hv.check_every_step(opts.check_invariants);
    let mut writer = trace_writer(p, seed, trace)?;
    if let Some(n) = opts.crash_after {
        writer.crash_after(n);
    }
    if let Some(fault) = opts.storage_fault {
        writer.inject(fault)?;
    }
    let mut tee = Tee {
        writer,
        table: TableBuilder::default(),
        stop_after: opts.stop_after,
        observe,
    };
    let summary = hv.run(&mut tee)?;
    let table = tee.table.finish();
    let head = tee.writer.finish(&table)?;
    Ok((summary, table, head))
}

/// A new trace at `path` for a run of `p` with `seed`: its header and modules written, batched
/// and made durable as the manifest's `[host.trace]` says.
///
/// # Errors
///
/// [`HvError::Trace`] when the file cannot be created.
pub fn trace_writer(p: &Prepared, seed: u64, path: &Path) -> Result<TraceWriter, HvError> {
    let hashes: Vec<(Hash32, &[u8])> = p
        .modules
        .iter()
        .map(|m| (Hash32::of(&m.bytes), m.bytes.as_slice()))
        .collect();
    Ok(TraceWriter::create_with(
        path,
        &header(p, seed),
        &hashes,
        p.manifest.host.trace_batch_events,
        p.manifest.host.trace_durable,
    )?)
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
struct Tee<'o> {
    writer: TraceWriter,
    table: TableBuilder,
    stop_after: Option<u64>,
    observe: &'o mut dyn FnMut(&xdv_core::Event),
}

impl xdv_core::EventSink for Tee<'_> {
    fn module(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<(), xdv_core::SinkError> {
        self.writer.module(hash, bytes)
    }

    fn emit(&mut self, event: &xdv_core::Event) -> Result<(), xdv_core::SinkError> {
        if self.stop_after == Some(self.writer.len()) {
            return Err(xdv_core::SinkError::Stopped("simulated host crash".into()));
        }
        self.writer.emit(event)?;
        self.table.observe(event);
        (self.observe)(event);
        Ok(())
    }
}

/// What [`resume_trace`] did.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The run's summary.
    pub summary: RunSummary,
    /// The Resource_Table.
    pub table: Vec<ResourceRow>,
    /// The final chain hash.
    pub head: Hash32,
    /// Committed events the trace held when resumed (re-derived, then checked byte for byte).
    pub committed: u64,
}

/// Continues a run whose writer was killed: rebuilds the exact state by re-executing the run
/// from the trace's header against its committed events (each reproduced event must equal the
/// recorded one byte for byte), then appends the rest of the run to the same file. The finished
/// trace equals that of an uninterrupted run with the same seed, event for event; the resume is
/// recorded in `run_status` (`resumed_at`), not among the events.
pub fn resume_trace(trace: &Path, crash_after: Option<u64>) -> Result<Resumed, HvError> {
    let reader = TraceReader::open_to_resume(trace)?;
    let (mut hv, mut sink) = ResumeSink::open(trace, &reader, false)?;
    if let Some(n) = crash_after {
        sink.writer.crash_after(n);
    }
    let committed = sink.committed;
    let summary = hv.run_driven(&mut sink)?;
    sink.rederived()?;
    let ResumeSink {
        mut writer, table, ..
    } = sink;
    // Finishing takes the file back out of WAL mode, which needs it to be the only connection.
    drop(reader);
    writer.confirm_status()?;
    let table = table.finish();
    let head = writer.finish(&table)?;
    Ok(Resumed {
        summary,
        table,
        head,
        committed,
    })
}

/// A service's host resumed from its trace ([`resume_service`]), paused and ready for a live
/// service to take over.
pub struct ResumedService {
    /// The host, at a pause (or finished).
    pub hv: Hypervisor,
    /// Where it stands.
    pub at: crate::Served,
    /// The writer, appending after the re-executed events.
    pub writer: TraceWriter,
    /// The Resource_Table so far.
    pub table: TableBuilder,
    /// Committed events the trace held.
    pub committed: u64,
}

/// Continues a service (`xdv serve --resume`) whose process was killed: re-executes its
/// committed events (feeding back its recorded requests at the pauses where they were
/// applied; each re-executed event must equal the recorded one byte for byte) and runs on to
/// the first pause after them, so a live service can take the host over there. Requests that
/// were never committed were never acknowledged, and are not in the trace.
///
/// # Errors
///
/// As [`resume_trace`].
pub fn resume_service(trace: &Path) -> Result<ResumedService, HvError> {
    let reader = TraceReader::open_to_resume(trace)?;
    let (mut hv, mut sink) = ResumeSink::open(trace, &reader, true)?;
    let committed = sink.committed;
    let at = hv.run_until_handed_over(&mut sink)?;
    sink.rederived()?;
    let ResumeSink {
        mut writer, table, ..
    } = sink;
    drop(reader);
    writer.confirm_status()?;
    Ok(ResumedService {
        hv,
        at,
        writer,
        table,
        committed,
    })
}

impl<'r> ResumeSink<'r> {
    /// Checks that the run re-derived the whole committed prefix (it may have ended before).
    fn rederived(&self) -> Result<(), HvError> {
        if self.pos < self.committed {
            return Err(HvError::Sink(xdv_core::SinkError::Diverged {
                seq: self.pos,
            }));
        }
        Ok(())
    }

    /// The host recorded in `trace` (read through `reader`), before it runs, and the sink
    /// that re-derives its committed prefix and appends after it; `hand_over`: return at the
    /// first pause past the prefix. The committed prefix streams from the reader's connection
    /// while the writer appends after it on its own (the trace is in WAL mode): nothing past
    /// the prefix is ever read.
    ///
    /// # Errors
    ///
    /// A trace of an older schema, one that cannot be resumed, or one whose host does not
    /// build.
    fn open(
        trace: &Path,
        reader: &'r TraceReader,
        hand_over: bool,
    ) -> Result<(Hypervisor, Self), HvError> {
        let label = trace.display().to_string();
        if let Some(reason) = crate::replay::older_schema(&reader.header()?) {
            return Err(HvError::Trace(xdv_trace::TraceError::NotATrace {
                path: label,
                reason: format!("it cannot be resumed: {reason}"),
            }));
        }
        let (manifest, modules, seed) = crate::replay::load_from_trace(reader, &label)?;
        let (writer, committed) = TraceWriter::resume(
            trace,
            manifest.host.trace_batch_events,
            manifest.host.trace_durable,
        )?;
        let hv = Hypervisor::new(&manifest, &modules, seed)?
            .recorded_with_schema(reader.header()?.event_schema);
        let sink = Self {
            reader,
            hand_over,
            recorded: reader.cursor(),
            committed,
            pos: 0,
            writer,
            table: TableBuilder::default(),
            buf: Vec::with_capacity(256),
            inputs: InputCheck::default(),
        };
        Ok((hv, sink))
    }
}

/// Checks the re-executed prefix against the committed events, then writes the rest.
struct ResumeSink<'r> {
    reader: &'r TraceReader,
    /// Past the committed prefix, return at the first pause (a service takes the host over).
    hand_over: bool,
    recorded: EventCursor<'r>,
    committed: u64,
    pos: u64,
    writer: TraceWriter,
    table: TableBuilder,
    buf: Vec<u8>,
    inputs: InputCheck,
}

impl ResumeSink<'_> {
    /// The committed event the next re-executed one is compared with; `None` past the prefix.
    fn next_recorded(&mut self) -> Result<Option<&Event>, SinkError> {
        if self.pos >= self.committed {
            return Ok(None);
        }
        self.recorded
            .peek()
            .map_err(|e| SinkError::Store(e.to_string()))
    }
}

impl xdv_core::EventSink for ResumeSink<'_> {
    fn module(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<(), SinkError> {
        self.writer.module(hash, bytes)
    }

    fn emit(&mut self, event: &Event) -> Result<(), SinkError> {
        self.table.observe(event);
        if self.pos < self.committed {
            let diverged = SinkError::Diverged { seq: self.pos };
            let body = self
                .recorded
                .next_body()
                .map_err(|e| SinkError::Store(e.to_string()))?
                .ok_or(SinkError::Diverged { seq: self.pos })?
                .body;
            self.buf.clear();
            event.encode_into(&mut self.buf);
            if self.buf != body {
                return Err(diverged);
            }
            // A recorded input that does not fit its job was never the run's: the resume
            // stops rather than continue from it. (Equal bytes: the event is the recorded one.)
            if self.inputs.observe(event).is_err() {
                return Err(diverged);
            }
            self.pos += 1;
            return Ok(());
        }
        if self.pos == self.committed {
            // The whole committed prefix was re-derived: the resume is real.
            self.pos += 1;
            self.writer
                .confirm_status()
                .map_err(|e| SinkError::Store(e.to_string()))?;
        }
        self.writer.emit(event)
    }
}

impl Driver for ResumeSink<'_> {
    /// The committed prefix's outcomes where it records the job's completion; the provider for
    /// the rest (which reproduces them: outcomes depend only on the seeds).
    fn q_outcomes(&mut self, job: &QJobRun<'_>) -> Result<Vec<u64>, SinkError> {
        let next = self.next_recorded()?;
        Ok(recorded_outcomes(next, job).unwrap_or_else(|| job.execute()))
    }

    fn phi_captures(
        &mut self,
        vhm: xdv_core::VhmId,
        computed: Vec<(i64, i64)>,
    ) -> Result<Vec<(i64, i64)>, SinkError> {
        let next = self.next_recorded()?;
        Ok(recorded_captures(next, vhm, computed))
    }

    /// The committed prefix's request at this pause; past the prefix, a live run's answer
    /// (or nothing, when the resume hands the host to a live service).
    fn at_pause(&mut self, pause: &Pause) -> Result<Option<crate::Input>, SinkError> {
        if self.pos >= self.committed {
            if self.hand_over {
                return Ok(None);
            }
            return Ok(Some(pause.unattended()));
        }
        let reader = self.reader;
        let next = self.next_recorded()?;
        Ok(recorded_pause(next, pause, |h| {
            reader.module(h).ok().flatten()
        }))
    }
}
