//! The CDS scheduler: weighted shares, non-interference, quotas, determinism.

mod common;

use common::*;
use proptest::prelude::*;
use xdv_core::{Event, EventKind, ExitReason, FaultClass};

/// Fuel each VHM consumed in the virtual-time window `[from, to)`, from its slice-end events.
fn fuel_in_window(events: &[Event], vhm: xdv_core::VhmId, from: u64, to: u64) -> u64 {
    events
        .iter()
        .filter(|e| e.vhm == Some(vhm) && e.time_ns >= from && e.time_ns < to)
        .map(|e| match e.kind {
            EventKind::SliceEnded { fuel, .. } => fuel,
            _ => 0,
        })
        .sum()
}

fn share_manifest(slice: u64, ns_per_fuel: u64, w_heavy: u32, w_light: u32, limit: u64) -> String {
    format!(
        "[host]\nseed = 1\nns_per_fuel = {ns_per_fuel}\nslice_fuel = {slice}\ntime_limit_ns = {limit}\n{}{}",
        vhm("heavy", "spin.wat", w_heavy, 1 << 40),
        vhm("light", "spin.wat", w_light, 1 << 40)
    )
}

#[test]
fn weight_two_gets_two_thirds_of_the_fuel_in_every_window() {
    let slice = 1000;
    let (_d, p) = prepare_inline(
        &share_manifest(slice, 1, 2, 1, 3_000_000),
        &[("spin.wat", SPIN)],
    );
    let (summary, events) = run(&p);
    let (h, l) = (id_of(&events, "heavy"), id_of(&events, "light"));
    // Whole run: exactly 2:1 (both stopped by the time limit at the same virtual time).
    assert_eq!(
        summary.vhms[0].fuel_used,
        2 * summary.vhms[1].fuel_used + (summary.vhms[0].fuel_used % 2)
    );
    for (from, to) in [
        (0, 100_000),
        (12_345, 67_890),
        (500_000, 2_900_000),
        (1_000_000, 1_003_000),
        (0, 3_000_000),
    ] {
        let (fh, fl) = (
            fuel_in_window(&events, h, from, to),
            fuel_in_window(&events, l, from, to),
        );
        let total = fh + fl;
        // heavy's share is 2/3 of the total, within one slice.
        let diff = (3 * fh).abs_diff(2 * total);
        assert!(
            diff <= 3 * slice,
            "window [{from}, {to}): heavy {fh}, light {fl}"
        );
    }
}

#[test]
fn a_vhm_runs_the_same_alone_or_beside_neighbours() {
    let alone = format!(
        "[host]\nseed = 5\nslice_fuel = 700\ntime_limit_ns = 500000\n{}",
        vhm("a", "spin.wat", 3, 1 << 30)
    );
    let crowded = format!(
        "[host]\nseed = 5\nslice_fuel = 700\ntime_limit_ns = 500000\n{}{}{}{}",
        vhm("b", "spin.wat", 1, 1 << 30),
        vhm("a", "spin.wat", 3, 1 << 30),
        vhm("c", "spin.wat", 7, 1 << 30),
        vhm("d", "spin.wat", 2, 20_000)
    );
    let (_d1, p1) = prepare_inline(&alone, &[("spin.wat", SPIN)]);
    let (_d2, p2) = prepare_inline(&crowded, &[("spin.wat", SPIN)]);
    let (_, e1) = run(&p1);
    let (_, e2) = run(&p2);
    let a1 = xdv_trace::project(&e1, "a");
    assert!(a1.len() > 100);
    assert_eq!(a1, xdv_trace::project(&e2, "a"));
}

#[test]
fn a_runaway_guest_is_preempted_every_slice_and_stopped_by_its_quota() {
    let m = format!(
        "[host]\nslice_fuel = 1000\n{}",
        vhm("runaway", "spin.wat", 1, 50_000)
    );
    let (_d, p) = prepare_inline(&m, &[("spin.wat", SPIN)]);
    let (summary, events) = run(&p);
    let slices = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::SliceEnded { .. }))
        .count();
    assert!((45..=50).contains(&slices), "{slices} slices");
    assert!(events.iter().any(|e| matches!(
        e.kind,
        EventKind::Fault {
            class: FaultClass::FuelExhausted,
            ..
        }
    )));
    assert!(summary.vhms[0].fuel_used <= 50_000);
    assert!(events.iter().any(|e| matches!(
        e.kind,
        EventKind::VhmExited {
            reason: ExitReason::Fault(FaultClass::FuelExhausted),
            ..
        }
    )));
}

#[test]
fn same_seed_same_events_and_other_seed_or_weight_differs() {
    let m = |seed: u64, weight: u32| {
        format!(
            "[host]\nseed = {seed}\nslice_fuel = 5000\n{}",
            vhm("hello", "hello.wat", weight, 10_000_000)
        )
    };
    let hello = std::fs::read_to_string(examples().join("guests/hello.wat")).unwrap();
    let go = |seed, weight| {
        let (_d, p) = prepare_inline(&m(seed, weight), &[("hello.wat", &hello)]);
        run(&p).1
    };
    let a = go(1, 1);
    assert_eq!(a, go(1, 1));
    assert_ne!(a, go(2, 1), "the seed feeds the VHM's random stream");
    assert_ne!(a, go(1, 2), "the weight changes the virtual times");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), failure_persistence: None, ..ProptestConfig::default() })]

    /// For any slice length, rate and pair of weights, shares follow the weights within one slice
    /// per VHM, and a second run is identical.
    #[test]
    fn shares_follow_weights(slice in 50u64..5000, ns in 1u64..5, wa in 1u32..6, wb in 1u32..6) {
        let limit = slice * ns * 40;
        let (_d, p) = prepare_inline(&share_manifest(slice, ns, wa, wb, limit), &[("spin.wat", SPIN)]);
        let (s1, e1) = run(&p);
        let (s2, e2) = run(&p);
        prop_assert_eq!(&e1, &e2);
        prop_assert_eq!(s1, s2);
        let (h, l) = (id_of(&e1, "heavy"), id_of(&e1, "light"));
        let (fh, fl) = (fuel_in_window(&e1, h, 0, limit + 1), fuel_in_window(&e1, l, 0, limit + 1));
        // fh / wa ≈ fl / wb: cross-multiplied, within one slice of each side.
        let lhs = u128::from(fh) * u128::from(wb);
        let rhs = u128::from(fl) * u128::from(wa);
        let tol = u128::from(slice) * u128::from(wa.max(wb)) * 2;
        prop_assert!(lhs.abs_diff(rhs) <= tol, "fh {} fl {} wa {} wb {}", fh, fl, wa, wb);
    }
}
