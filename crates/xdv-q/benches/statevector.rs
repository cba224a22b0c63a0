//! The statevector providers' speed: the fusion widths, both precisions and every kernel
//! variant this CPU runs, on the QFT and random circuits of `bench/q_speed.py` (docs/benchmarks.md).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::f64::consts::PI;
use xdv_q::circuit::Register;
use xdv_q::kernels::Isa;
use xdv_q::statevector::{Options, Plan, Precision};
use xdv_q::{Circuit, Op};

fn circuit(n: usize, ops: Vec<Op>) -> Circuit {
    let reg = |name: &str| Register {
        name: name.into(),
        offset: 0,
        size: n,
    };
    let mut c = Circuit {
        qregs: vec![reg("q")],
        cregs: vec![reg("c")],
        ops,
    };
    c.ops.extend((0..n).map(|q| Op::Measure { q, c: q }));
    c
}

/// The textbook QFT with an input layer and the final swaps.
fn qft(n: usize) -> Circuit {
    let h = |q| Op::U {
        q,
        theta: PI / 2.0,
        phi: 0.0,
        lambda: PI,
    };
    let mut ops: Vec<Op> = (0..n).map(h).collect();
    for j in (0..n).rev() {
        ops.push(h(j));
        for k in (0..j).rev() {
            ops.push(Op::CPhase {
                a: j,
                b: k,
                lambda: PI / f64::from(1u32 << (j - k).min(31)),
            });
        }
    }
    ops.extend((0..n / 2).map(|i| Op::Swap { a: i, b: n - 1 - i }));
    circuit(n, ops)
}

/// 20 layers of a random one-qubit gate on every qubit, then CX on a random pairing.
fn random(n: usize) -> Circuit {
    // xorshift64: any fixed stream will do.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ops = Vec::new();
    for _ in 0..20 {
        for q in 0..n {
            let mut angle = || (next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * PI;
            let (theta, phi, lambda) = (angle(), angle(), angle());
            ops.push(Op::U {
                q,
                theta,
                phi,
                lambda,
            });
        }
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        for p in perm.chunks_exact(2) {
            ops.push(Op::Cx { c: p[0], t: p[1] });
        }
    }
    circuit(n, ops)
}

fn run(c: &Circuit, options: &Options) -> f64 {
    let (p, _) = Plan::new(c, options).unwrap().probabilities().unwrap();
    p[0]
}

fn fusion_widths(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("fusion_width_20q");
    g.sample_size(10);
    for (name, c) in [("qft", qft(20)), ("random", random(20))] {
        for precision in [Precision::F64, Precision::F32] {
            for k in 1..=5 {
                let options = Options {
                    fused: k,
                    ..Options::new(precision)
                };
                let id = BenchmarkId::new(format!("{name}/{}", precision.provider()), k);
                g.bench_function(id, |b| b.iter(|| run(&c, &options)));
            }
        }
    }
    g.finish();
}

fn variants(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("kernel_variant_random_16q");
    g.sample_size(10);
    let c = random(16);
    for precision in [Precision::F64, Precision::F32] {
        for isa in Isa::available() {
            let options = Options {
                isa,
                ..Options::new(precision)
            };
            let id = BenchmarkId::new(precision.provider(), isa.name());
            g.bench_function(id, |b| b.iter(|| run(&c, &options)));
        }
    }
    g.finish();
}

fn block_sizes(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("cache_block_bits_random_22q");
    g.sample_size(10);
    let c = random(22);
    for bits in [0, 12, 13, 14, 15, 16, 17] {
        let options = Options {
            block_bits: bits,
            ..Options::new(Precision::F64)
        };
        g.bench_function(BenchmarkId::new("statevector", bits), |b| {
            b.iter(|| run(&c, &options))
        });
    }
    g.finish();
}

criterion_group!(benches, fusion_widths, variants, block_sizes);
criterion_main!(benches);
