//! The virtual clock never goes back and never passes the horizon, whatever times a guest
//! asks for: a property over random sequences of timers, sleeps and windows whose arguments
//! are drawn from the edges of the range (0, 1, around 2⁶², around 2⁶³, −1).

mod common;

use common::*;
use proptest::prelude::*;
use xdv_k::abi::TIME_HORIZON_NS;

/// Values at the edges of what a guest can pass, as i64.
fn edge() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(1),
        1i64..100_000,
        Just(TIME_HORIZON_NS as i64 - 1),
        Just(TIME_HORIZON_NS as i64),
        Just(TIME_HORIZON_NS as i64 + 1),
        Just(i64::MAX - 1),
        Just(i64::MAX),
        Just(-1),
        any::<i64>(),
    ]
}

#[derive(Debug, Clone)]
enum Call {
    Timer(i64),
    Sleep(i64),
    Window(i64, i64),
    Spin(u16),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        edge().prop_map(Call::Timer),
        edge().prop_map(Call::Sleep),
        (edge(), edge()).prop_map(|(a, b)| Call::Window(a, b)),
        any::<u16>().prop_map(Call::Spin),
    ]
}

fn guest(calls: &[Call]) -> String {
    let mut body = String::new();
    for c in calls {
        body += &match c {
            Call::Timer(p) => format!("(drop (call $timer_set (i64.const {p})))\n"),
            Call::Sleep(t) => format!("(drop (call $sleep (i64.const {t})))\n"),
            Call::Window(t0, t1) => format!(
                "(i64.store (i32.const 8) (i64.const {t0})) (i64.store (i32.const 16) (i64.const {t1}))\n\
                 (drop (call $phi_window (i32.const 0) (i32.const 48)))\n"
            ),
            Call::Spin(n) => format!(
                "(local.set $i (i32.const {n})) (loop $l (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if $l (i32.gt_s (local.get $i) (i32.const 0))))\n"
            ),
        };
    }
    format!(
        r#"(module
  (import "xdv" "timer_set" (func $timer_set (param i64) (result i32)))
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "phi_window" (func $phi_window (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (func (export "xdv_irq") (param i32 i64))
  (func (export "main") (local $i i32)
    (i64.store (i32.const 24) (i64.const 4900000000))
    (i64.store (i32.const 32) (i64.const 5100000000))
    (i32.store (i32.const 40) (i32.const 100000))
    {body}))"#
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn the_clock_never_goes_back_nor_past_the_horizon(calls in proptest::collection::vec(call(), 1..12)) {
        let manifest = "[[host.phi.port]]\nname = \"q0\"\ngranularity_ns = 4\nband = [4.5e9, 5.5e9]\nt2_ns = 100_000\n\
                        [[vhm]]\nname = \"t\"\n[vhm.k]\nmodule = \"t.wat\"\nirq_vectors = 2\n\
                        [vhm.policy]\nfuel_quota = 200_000\nphi_port_time = 4611686018427387904\n";
        let (_d, p) = prepare_inline(manifest, &[("t.wat", &guest(&calls))]);
        let (summary, events) = run(&p);
        let mut last = 0;
        for e in &events {
            prop_assert!(e.time_ns >= last, "{} after {}", e.time_ns, last);
            prop_assert!(e.time_ns <= TIME_HORIZON_NS + 1);
            last = e.time_ns;
        }
        prop_assert!(summary.end_ns <= TIME_HORIZON_NS + 1);
    }
}
