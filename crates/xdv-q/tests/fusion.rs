//! Gate fusion changes how the state is updated, never the result: the fused statevector
//! provider, at every fusion width, cache-block size and precision, against a plain
//! gate-by-gate simulation on random circuits; and every SIMD variant and thread count gives
//! the same bits.

use proptest::prelude::*;
use std::collections::BTreeMap;
use xdv_q::circuit::Register;
use xdv_q::kernels::Isa;
use xdv_q::statevector::{Options, Plan, Precision};
use xdv_q::{statevector, Circuit, Op};

type C = (f64, f64);

fn mul(a: C, b: C) -> C {
    (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
}

/// One gate at a time over the whole state, no fusion, no threads.
fn reference(circuit: &Circuit) -> BTreeMap<String, f64> {
    let n = circuit.num_qubits();
    let mut v: Vec<C> = vec![(0.0, 0.0); 1 << n];
    v[0] = (1.0, 0.0);
    for op in &circuit.ops {
        match *op {
            Op::U {
                q,
                theta,
                phi,
                lambda,
            } => {
                let (c, s) = ((theta / 2.0).cos(), (theta / 2.0).sin());
                let e = |r: f64, t: f64| (r * t.cos(), r * t.sin());
                let m = [e(c, 0.0), e(-s, lambda), e(s, phi), e(c, phi + lambda)];
                for i in 0..v.len() {
                    if i & (1 << q) == 0 {
                        let (a, b) = (v[i], v[i | 1 << q]);
                        let add = |x: C, y: C| (x.0 + y.0, x.1 + y.1);
                        v[i] = add(mul(m[0], a), mul(m[1], b));
                        v[i | 1 << q] = add(mul(m[2], a), mul(m[3], b));
                    }
                }
            }
            Op::Cx { c, t } => {
                for i in 0..v.len() {
                    if i & (1 << c) != 0 && i & (1 << t) == 0 {
                        v.swap(i, i | 1 << t);
                    }
                }
            }
            Op::CPhase { a, b, lambda } => {
                for (i, x) in v.iter_mut().enumerate() {
                    if i & (1 << a) != 0 && i & (1 << b) != 0 {
                        *x = mul(*x, (lambda.cos(), lambda.sin()));
                    }
                }
            }
            Op::Swap { a, b } => {
                for i in 0..v.len() {
                    if i & (1 << a) != 0 && i & (1 << b) == 0 {
                        v.swap(i, (i ^ 1 << a) | 1 << b);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for (i, x) in v.iter().enumerate() {
        let p = x.0 * x.0 + x.1 * x.1;
        if p != 0.0 {
            let bits: Vec<bool> = (0..n).map(|q| i & (1 << q) != 0).collect();
            *out.entry(circuit.format_bits(&bits)).or_insert(0.0) += p;
        }
    }
    out
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    let angle = -4.0..4.0f64;
    let pair = (0..n, 0..n).prop_filter("distinct", |(a, b)| a != b);
    prop_oneof![
        (0..n, angle.clone(), angle.clone(), angle.clone()).prop_map(|(q, theta, phi, lambda)| {
            Op::U {
                q,
                theta,
                phi,
                lambda,
            }
        }),
        pair.clone().prop_map(|(c, t)| Op::Cx { c, t }),
        (pair.clone(), angle).prop_map(|((a, b), lambda)| Op::CPhase { a, b, lambda }),
        pair.prop_map(|(a, b)| Op::Swap { a, b }),
    ]
}

fn circuit_of(n: usize, ops: Vec<Op>) -> Circuit {
    let ops: Vec<Op> = ops
        .into_iter()
        .filter(|o| match *o {
            Op::U { q, .. } => q < n,
            Op::Cx { c: a, t: b } | Op::CPhase { a, b, .. } | Op::Swap { a, b } => a < n && b < n,
            _ => true,
        })
        .collect();
    let mut circuit = Circuit {
        qregs: vec![Register {
            name: "q".into(),
            offset: 0,
            size: n,
        }],
        cregs: vec![Register {
            name: "c".into(),
            offset: 0,
            size: n,
        }],
        ops,
    };
    circuit.ops.extend((0..n).map(|q| Op::Measure { q, c: q }));
    circuit
}

/// The final basis-state probabilities, bit for bit.
fn bits(circuit: &Circuit, options: &Options) -> Vec<u64> {
    let (p, _) = Plan::new(circuit, options)
        .unwrap()
        .probabilities()
        .unwrap();
    p.into_iter().map(f64::to_bits).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fused_and_plain_simulation_agree(
        n in 2..8usize,
        ops in proptest::collection::vec(op(7), 1..80),
        fused in 1..=5usize,
        block_bits in 0..5usize,
        single in any::<bool>(),
    ) {
        let circuit = circuit_of(n, ops);
        let precision = if single { Precision::F32 } else { Precision::F64 };
        let options = Options { fused, block_bits, ..Options::new(precision) };
        // f32 rounds each of up to 80 gates at ~6e-8 relative.
        let tolerance = if single { 1e-5 } else { 1e-12 };
        let got = statevector::distribution_with(&circuit, &options).unwrap();
        let plain = reference(&circuit);
        for (k, p) in &plain {
            let f = got.get(k).copied().unwrap_or(0.0);
            prop_assert!((f - p).abs() < tolerance, "{k}: fused {f}, plain {p} ({options:?})");
        }
        for (k, f) in &got {
            prop_assert!(plain.contains_key(k) || f.abs() < tolerance, "{k}: fused {f}, plain 0");
        }
    }

    /// Every kernel variant this CPU runs gives the portable variant's bits, in both
    /// precisions; states of 2^9 to 2^11 amplitudes have whole vector groups and tails.
    #[test]
    fn simd_variants_are_bit_identical(
        n in 1..12usize,
        ops in proptest::collection::vec(op(11), 1..60),
        fused in 1..=5usize,
    ) {
        let circuit = circuit_of(n, ops);
        for precision in [Precision::F64, Precision::F32] {
            let portable = Options { fused, isa: Isa::Portable, ..Options::new(precision) };
            let want = bits(&circuit, &portable);
            for isa in Isa::available() {
                let got = bits(&circuit, &Options { isa, ..portable });
                prop_assert!(got == want, "{} differs from portable ({precision:?}, k = {fused})", isa.name());
            }
        }
    }
}

/// A state large enough for the threaded paths (whole-state kernels split across threads,
/// cache blocks in parallel): one thread and four give the same bits, in each variant.
#[test]
fn thread_counts_give_the_same_bits() {
    let n = 17;
    let mut ops = Vec::new();
    for layer in 0..4 {
        for q in 0..n {
            ops.push(Op::U {
                q,
                theta: 0.3 + 0.01 * (q + layer) as f64,
                phi: 0.2 * layer as f64,
                lambda: 0.1 * q as f64,
            });
        }
        for q in (layer % 2..n - 1).step_by(2) {
            ops.push(Op::Cx { c: q, t: q + 1 });
            ops.push(Op::CPhase {
                a: q,
                b: (q + 5) % n,
                lambda: 0.7,
            });
        }
    }
    let circuit = circuit_of(n, ops);
    for precision in [Precision::F64, Precision::F32] {
        for isa in Isa::available() {
            let options = Options {
                isa,
                ..Options::new(precision)
            };
            let on = |threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| bits(&circuit, &options))
            };
            assert!(on(1) == on(4), "{precision:?} {}", isa.name());
        }
    }
}
