//! Φ benchmarks: window allocate + release with 10 000 windows held per port, and a 10 000-sample
//! gaussian play with its phase accounting.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::collections::BTreeMap;
use xdv_phi::{execute, Context, Freq, Port, Program, WindowSpec, WindowState, WindowTable};

fn port() -> Port {
    Port {
        name: "q0".into(),
        granularity_ns: 1,
        band: (Freq(4_000_000_000), Freq(6_000_000_000)),
        max_amp: 1_000_000,
        t2_ns: u64::MAX / 4,
    }
}

fn spec(t0: u64, t1: u64) -> WindowSpec {
    WindowSpec {
        port: 0,
        t0,
        t1,
        band: (Freq(4_000_000_000), Freq(6_000_000_000)),
        max_amp: 500_000,
        shared: false,
    }
}

fn windows(c: &mut Criterion) {
    let mut t = WindowTable::new(vec![port()]);
    // 10 000 windows of 100 ns with 100 ns gaps.
    for i in 0..10_000u64 {
        t.allocate(1, spec(i * 200, i * 200 + 100), None).unwrap();
    }
    let mut i = 0u64;
    c.bench_function("phi/window allocate+release (10k held)", |b| {
        b.iter(|| {
            // Into a gap, somewhere along the port.
            let k = (i * 7919) % 10_000;
            i += 1;
            let id = t
                .allocate(2, spec(k * 200 + 100, k * 200 + 200), None)
                .unwrap();
            black_box(t.release(id));
        })
    });
}

fn play(c: &mut Criterion) {
    let p = port();
    let program = Program::parse(
        "frame d0 = newframe(q0, 5.1e9, 0.3); play(d0, gaussian(0.5, 10000, 1000)); shift_phase(d0, pi/3);",
        "bench.phi",
    )
    .unwrap();
    let visible = BTreeMap::new();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    c.bench_function("phi/10k-sample gaussian play + accounting", |b| {
        b.iter(|| {
            let mut w = WindowState::new(spec(0, 20_000));
            let cx = Context {
                port: &p,
                visible: &visible,
                now: 0,
                delegated: &[],
                max_samples: xdv_phi::exec::MAX_TRANSFORM_SAMPLES,
            };
            black_box(execute(&program, &mut w, &cx, &mut rng).unwrap());
        })
    });
}

criterion_group!(benches, windows, play);
criterion_main!(benches);
