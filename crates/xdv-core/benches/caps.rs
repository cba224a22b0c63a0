//! Capability benchmarks (results in docs/benchmarks.md): lookup in a populated table, and
//! derive + revoke of a 10 000-node derivation tree.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use xdv_core::cap::{rights, CapSpace, Object};
use xdv_core::VhmId;

fn lookup(c: &mut Criterion) {
    let mut s = CapSpace::default();
    s.register(VhmId(0), "a");
    let root = s.mint(VhmId(0), Object::Endpoint(0, 0), rights::ALL, 0);
    let handles: Vec<u64> = (0..1000)
        .map(|_| {
            s.derive(VhmId(0), root.0, rights::SEND, 0, VhmId(0))
                .unwrap()
                .0
        })
        .collect();
    let mut i = 0;
    c.bench_function("cap/lookup", |b| {
        b.iter(|| {
            i = (i + 1) % handles.len();
            black_box(
                s.require(VhmId(0), black_box(handles[i]), rights::SEND, |o| {
                    matches!(o, Object::Endpoint(..))
                })
                .is_ok(),
            )
        })
    });
}

fn derive_revoke(c: &mut Criterion) {
    const NODES: usize = 10_000;
    const MODULE_RIGHTS: xdv_core::cap::Rights = rights::INSPECT
        .union(rights::DERIVE)
        .union(rights::TRANSFER)
        .union(rights::SPAWN);
    let mut g = c.benchmark_group("cap");
    g.sample_size(20);
    g.bench_function("derive_and_revoke_10000", |b| {
        b.iter_batched(
            || {
                let mut s = CapSpace::default();
                for v in 0..4 {
                    s.register(VhmId(v), &format!("v{v}"));
                }
                let root = s.mint(
                    VhmId(0),
                    Object::Module(xdv_core::Hash32::of(b"m")),
                    rights::ALL,
                    0,
                );
                (s, root)
            },
            |(mut s, root)| {
                // A tree: each node derives from one of the previous ones, spread over 4 tables.
                let mut nodes = vec![(VhmId(0), root.0)];
                for i in 1..NODES {
                    let (holder, h) = nodes[(i * 7919) % nodes.len()];
                    let into = VhmId((i % 4) as u32);
                    let c = s.derive(holder, h, MODULE_RIGHTS, 0, into).unwrap();
                    nodes.push((into, c.0));
                }
                let removed = s.revoke(VhmId(0), root.0).unwrap();
                assert_eq!(removed.len(), NODES - 1);
                s
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, lookup, derive_revoke);
criterion_main!(benches);
