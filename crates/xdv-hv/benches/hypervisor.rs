//! Hypervisor benchmarks (results and reproduction in docs/benchmarks.md):
//!
//! - `overhead/*`: a compute-bound guest run to completion by the hypervisor (with the trace
//!   written to disk, as `xdv run` does, and without a trace), against the same module called
//!   directly in bare wasmi with the same engine settings and fuel metering.
//! - `create_vhm`: VHM creation — instantiate, register, allocate, trace events — into a trace.
//! - `switch/*`: slice end → next slice start, with one-fuel slices so each slice is all switch.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;
use xdv_core::budget::Quota;
use xdv_core::{Hash32, NullSink};
use xdv_hv::Hypervisor;
use xdv_manifest::{LoadedModule, Manifest};
use xdv_trace::{TraceHeader, TraceWriter};

/// 160 million iterations of a multiply-add, then returns (about 2 billion fuel).
const WORK: &str = r#"(module
  (func (export "main") (local $i i64) (local $x i64)
    (loop $l
      (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005)) (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const 160000000))))))"#;

const SPIN: &str = r#"(module (func (export "main") (loop $l (br $l))))"#;

fn setup(guest: &str, host: &str) -> (Manifest, Vec<LoadedModule>) {
    let text = format!("[host]\n{host}\n[[vhm]]\nname = \"g\"\n[vhm.k]\nmodule = \"g.wat\"\nmemory_limit = \"64 KiB\"\n[vhm.policy]\nfuel_quota = 10_000_000_000\n");
    let m = Manifest::parse(&text, "bench.toml").unwrap();
    let modules = vec![LoadedModule {
        name: "g.wat".into(),
        bytes: wat::parse_str(guest).unwrap(),
    }];
    (m, modules)
}

fn header(m: &Manifest) -> TraceHeader {
    TraceHeader {
        format_version: xdv_core::TRACE_FORMAT_VERSION,
        event_schema: xdv_core::EVENT_SCHEMA_VERSION,
        xdv_version: "bench".into(),
        engine: xdv_k::ENGINE_ID.into(),
        seed: 0,
        manifest_name: m.file.clone(),
        manifest_text: m.text.clone(),
        modules: vec![],
    }
}

fn bare_wasmi(wasm: &[u8]) {
    let mut config = wasmi::Config::default();
    config
        .consume_fuel(true)
        .compilation_mode(wasmi::CompilationMode::Eager);
    let engine = wasmi::Engine::new(&config);
    let module = wasmi::Module::new(&engine, wasm).unwrap();
    let mut store = wasmi::Store::new(&engine, ());
    let instance = wasmi::Linker::new(&engine)
        .instantiate_and_start(&mut store, &module)
        .unwrap();
    store.set_fuel(10_000_000_000).unwrap();
    instance
        .get_typed_func::<(), ()>(&store, "main")
        .unwrap()
        .call(&mut store, ())
        .unwrap();
}

fn overhead(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bench.xdv");
    let mut g = c.benchmark_group("overhead");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    let (m, modules) = setup(WORK, "");
    g.bench_function("bare_wasmi", |b| b.iter(|| bare_wasmi(&modules[0].bytes)));
    // The default slice (100 000 fuel) and a ten times shorter one.
    for (name, host) in [("", ""), ("_slice_10000", "slice_fuel = 10_000")] {
        let (m, modules) = setup(WORK, host);
        g.bench_function(format!("xdv_no_trace{name}"), |b| {
            b.iter(|| {
                let s = Hypervisor::new(&m, &modules, 0)
                    .unwrap()
                    .run(&mut NullSink)
                    .unwrap();
                assert_eq!(s.vhms[0].exit, "halted");
            });
        });
        g.bench_function(format!("xdv_with_trace{name}"), |b| {
            b.iter(|| {
                let mut w = TraceWriter::create(&trace, &header(&m), &[], 4096).unwrap();
                Hypervisor::new(&m, &modules, 0)
                    .unwrap()
                    .run(&mut w)
                    .unwrap();
                w.finish(&[]).unwrap();
            });
        });
    }
    g.bench_function("empty_trace_create_finish", |b| {
        b.iter(|| {
            TraceWriter::create(&trace, &header(&m), &[], 4096)
                .unwrap()
                .finish(&[])
                .unwrap()
        });
    });
    g.finish();
}

fn create_vhm(c: &mut Criterion) {
    const N: u64 = 2000;
    let (m, modules) = setup(SPIN, "");
    let quota = Quota {
        vcpus: 1,
        memory: 65536,
        fuel: 10_000_000_000,
        depth: 0,
        children: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("create.xdv");
    let mut g = c.benchmark_group("create_vhm");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(N));
    g.bench_function("into_trace", |b| {
        b.iter_batched(
            || {
                (
                    Hypervisor::new(&m, &modules, 0).unwrap(),
                    TraceWriter::create(&trace, &header(&m), &[(Hash32::of(b""), b"")], 4096)
                        .unwrap(),
                )
            },
            |(mut hv, mut w)| {
                for i in 0..N {
                    let mut spec = m.vhms[0].clone();
                    spec.name = format!("g{i}");
                    hv.create_vhm(&mut xdv_hv::driver::Live(&mut w), spec, 0, None, quota)
                        .unwrap();
                }
                // Until every creation event is committed to the file.
                w.finish(&[]).unwrap();
                hv
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

fn switch(c: &mut Criterion) {
    // One-fuel slices: the guest executes a single instruction per slice, so the time per slice is
    // the cost of a slice end, the scheduler's pick and the next slice start.
    const FUEL: u64 = 200_000;
    let (m, modules) = setup(SPIN, &format!("slice_fuel = 1\ntime_limit_ns = {FUEL}"));
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("switch.xdv");
    let mut g = c.benchmark_group("switch");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(FUEL));
    g.bench_function("no_trace", |b| {
        b.iter(|| {
            Hypervisor::new(&m, &modules, 0)
                .unwrap()
                .run(&mut NullSink)
                .unwrap()
        })
    });
    g.bench_function("with_trace", |b| {
        b.iter(|| {
            let mut w = TraceWriter::create(&trace, &header(&m), &[], 4096).unwrap();
            Hypervisor::new(&m, &modules, 0)
                .unwrap()
                .run(&mut w)
                .unwrap();
            w.finish(&[]).unwrap();
        })
    });
    g.finish();
}

/// Ping: sends 4 bytes and waits for the reply, `ROUNDS` times. Pong: echoes. Each round trip is
/// send, delivery, receive and the reply's send, delivery, receive.
const PING: &str = r#"(module
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "ipc_send" (func $send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "ipc_recv" (func $recv (param i64 i32 i32) (result i64)))
  (import "xdv" "exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "main") (local $ep i64) (local $i i32)
    (local.set $ep (call $cap_find (i32.const 4) (i32.const 0)))
    (loop $l
      (drop (call $send (local.get $ep) (i32.const 0) (i32.const 4) (i64.const 0) (i32.const 1)))
      (drop (call $recv (local.get $ep) (i32.const 64) (i32.const 64)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
    (call $exit (i32.const 0))))"#;
const PONG: &str = r#"(module
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "ipc_send" (func $send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "ipc_recv" (func $recv (param i64 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (func (export "main") (local $ep i64)
    (local.set $ep (call $cap_find (i32.const 4) (i32.const 0)))
    (loop $l
      (br_if 1 (i64.lt_s (call $recv (local.get $ep) (i32.const 64) (i32.const 64)) (i64.const 0)))
      (drop (call $send (local.get $ep) (i32.const 80) (i32.const 4) (i64.const 0) (i32.const 1)))
      (br $l))))"#;
const ROUNDS: u64 = 10_000;

fn ipc(c: &mut Criterion) {
    let text = "[[vhm]]\nname = \"ping\"\n[vhm.k]\nmodule = \"ping.wat\"\n[[vhm]]\nname = \"pong\"\n[vhm.k]\nmodule = \"pong.wat\"\n[[channel]]\nends = [\"ping\", \"pong\"]\n";
    let m = Manifest::parse(text, "ipc.toml").unwrap();
    let modules = vec![
        LoadedModule {
            name: "ping.wat".into(),
            bytes: wat::parse_str(PING).unwrap(),
        },
        LoadedModule {
            name: "pong.wat".into(),
            bytes: wat::parse_str(PONG).unwrap(),
        },
    ];
    let mut g = c.benchmark_group("ipc");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(ROUNDS));
    g.bench_function("round_trip", |b| {
        b.iter(|| {
            let s = Hypervisor::new(&m, &modules, 0)
                .unwrap()
                .run(&mut NullSink)
                .unwrap();
            assert_eq!(s.vhms[0].exit, "exit(0)");
        })
    });
    g.finish();
}

/// Spawns a child from its own budget and a child module, waits for it, `CHILDREN` times.
const SPAWNER: &str = r#"(module
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "vhm_spawn" (func $spawn (param i32 i32) (result i64)))
  (import "xdv" "vhm_wait" (func $wait (param i64) (result i64)))
  (import "xdv" "cap_drop" (func $drop_cap (param i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "c")
  (func (export "main") (local $i i32) (local $c i64)
    (i64.store (i32.const 512) (call $cap_find (i32.const 2) (i32.const 0)))
    (i64.store (i32.const 520) (call $cap_find (i32.const 3) (i32.const 1)))
    (i32.store (i32.const 536) (i32.const 0))
    (i32.store (i32.const 540) (i32.const 1))
    (i32.store (i32.const 544) (i32.const 1))
    (i32.store (i32.const 548) (i32.const 1))
    (i64.store (i32.const 552) (i64.const 65536))
    (i64.store (i32.const 560) (i64.const 65536))
    (i64.store (i32.const 568) (i64.const 1000))
    (i32.store (i32.const 576) (i32.const 1))
    (loop $l
      (local.set $c (call $spawn (i32.const 512) (i32.const 88)))
      (drop (call $wait (local.get $c)))
      (drop (call $drop_cap (local.get $c)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 5000))))))"#;
const CHILD: &str = r#"(module (func (export "main")))"#;
const CHILDREN: u64 = 5000;

fn nested_spawn(c: &mut Criterion) {
    let text = "[[vhm]]\nname = \"parent\"\n[vhm.k]\nmodule = \"spawner.wat\"\nmodules = [\"child.wat\"]\nmemory_limit = \"64 KiB\"\n[vhm.policy]\nmax_vcpus = 2\nmemory_quota = \"128 KiB\"\nmax_depth = 1\nmax_children = 1\nfuel_quota = 1_000_000_000\n";
    let m = Manifest::parse(text, "spawn.toml").unwrap();
    let modules = vec![
        LoadedModule {
            name: "spawner.wat".into(),
            bytes: wat::parse_str(SPAWNER).unwrap(),
        },
        LoadedModule {
            name: "child.wat".into(),
            bytes: wat::parse_str(CHILD).unwrap(),
        },
    ];
    let mut g = c.benchmark_group("nested_spawn");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(CHILDREN));
    g.bench_function("spawn_wait_drop", |b| {
        b.iter(|| {
            let s = Hypervisor::new(&m, &modules, 0)
                .unwrap()
                .run(&mut NullSink)
                .unwrap();
            assert_eq!(s.vhms.len() as u64, CHILDREN + 1);
        })
    });
    g.finish();
}

criterion_group!(benches, overhead, create_vhm, switch, ipc, nested_spawn);
criterion_main!(benches);
