//! Trace append throughput: typical events through the batched, hash-chained SQLite writer.
//! Results and reproduction in docs/benchmarks.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use xdv_core::{Event, EventKind, EventSink, HypercallRecord, VhmId};
use xdv_trace::{TraceHeader, TraceWriter};

fn header() -> TraceHeader {
    TraceHeader {
        format_version: xdv_core::TRACE_FORMAT_VERSION,
        event_schema: xdv_core::EVENT_SCHEMA_VERSION,
        xdv_version: "bench".into(),
        engine: "bench".into(),
        seed: 0,
        manifest_name: "bench.toml".into(),
        manifest_text: String::new(),
        modules: vec![],
    }
}

fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            time_ns: i * 1000,
            vhm: Some(VhmId((i % 8) as u32)),
            kind: if i % 4 == 0 {
                EventKind::Hypercall {
                    vcpu: 0,
                    call: HypercallRecord::Log {
                        ptr: 1024,
                        len: 24,
                        bytes: b"progress: 1000 iterations".to_vec(),
                    },
                    ret: 0,
                }
            } else {
                EventKind::SliceEnded {
                    vcpu: (i % 3) as u32,
                    fuel: 10_000,
                }
            },
        })
        .collect()
}

fn append(c: &mut Criterion) {
    const N: u64 = 100_000;
    let evs = events(N);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("append.xdv");
    let mut g = c.benchmark_group("trace_append");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(N));
    for batch in [4096u32, 256] {
        g.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| {
                let mut w = TraceWriter::create(&path, &header(), &[], batch).unwrap();
                for e in &evs {
                    w.emit(e).unwrap();
                }
                w.finish(&[]).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
