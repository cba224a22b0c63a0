//! Fuzz-style and property tests: guests that call every hypercall with random handles and
//! arguments (tests/guests/chaos.wat), over many seeds.

mod common;

use common::*;
use proptest::prelude::*;
use xdv_core::{Event, EventKind};
use xdv_k::abi;

const CHAOS: &str = include_str!("../../xdv-sim/guests/chaos.wat");

fn manifest(seed: u64, with_chaos: bool) -> String {
    let mut m = format!("[host]\nseed = {seed}\nslice_fuel = 3000\ntime_limit_ns = 3_000_000\n");
    m += "[[host.phi.port]]\nname = \"q0\"\ngranularity_ns = 4\nband = [4.5e9, 5.5e9]\nt2_ns = 50_000\n";
    m += "[[vhm]]\nname = \"bystander\"\n[vhm.k]\nmodule = \"hello.wat\"\nmemory_limit = \"64 KiB\"\n";
    if with_chaos {
        for (name, t0, t1) in [("chaos-a", 0, 1_500_000), ("chaos-b", 1_500_000, 3_000_000)] {
            m += &format!(
                "[[vhm]]\nname = \"{name}\"\n[vhm.k]\nmodule = \"chaos.wat\"\nmemory_limit = \"64 KiB\"\nirq_vectors = 4\n\
                 [vhm.q]\ndevice = \"noisy-line\"\nqubits = 4\nbudget = 5\n\
                 [[vhm.phi.window]]\nport = \"q0\"\nstart_ns = {t0}\nend_ns = {t1}\nband = [4.9e9, 5.1e9]\n\
                 [vhm.policy]\nfuel_quota = 5_000_000\nmax_vcpus = 8\nmemory_quota = \"1 MiB\"\nmax_depth = 3\nmax_children = 3\ncreate_channels = true\n"
            );
        }
        m += "[[channel]]\nends = [\"chaos-a\", \"chaos-b\"]\ncapacity = 2\n";
    }
    m
}

fn hello() -> String {
    std::fs::read_to_string(examples().join("guests/hello.wat")).unwrap()
}

/// Every hypercall that returned a "bad argument" code was refused with a recorded reason.
fn refusals_are_recorded(events: &[Event]) -> Result<(), String> {
    let bad = [
        abi::E_INVAL,
        abi::E_FAULT,
        abi::E_TOOBIG,
        abi::E_NOMEM,
        abi::E_BADHANDLE,
        abi::E_PERM,
        abi::E_TYPE,
        abi::E_QUOTA,
    ];
    for (i, e) in events.iter().enumerate() {
        if let EventKind::Hypercall { call, ret, .. } = &e.kind {
            if bad.contains(ret) {
                let before = i.checked_sub(1).map(|j| &events[j].kind);
                if !matches!(before, Some(EventKind::Refused { call: c, .. }) if c == call.name()) {
                    return Err(format!(
                        "event {i}: {} returned {ret} without a refused event",
                        call.name()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A seed proptest once found: a receive buffer too small for the waiting message must be a
/// recorded refusal.
#[test]
fn chaos_regression_small_receive_buffer() {
    let seed = 13647780225071506520u64;
    let hello = hello();
    let (_d, p) = prepare_inline(
        &manifest(seed, true),
        &[("chaos.wat", CHAOS), ("hello.wat", &hello)],
    );
    let mut hv = xdv_hv::Hypervisor::new(&p.manifest, &p.modules, seed).unwrap();
    hv.check_every_step(true);
    let mut sink = xdv_core::MemorySink::default();
    hv.run(&mut sink).unwrap();
    assert_eq!(hv.check_invariants(), Ok(()));
    assert_eq!(refusals_are_recorded(&sink.events), Ok(()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), failure_persistence: None, ..ProptestConfig::default() })]

    /// Random handles and arguments to every hypercall: the host never panics, its invariants
    /// hold (no amplified rights, nothing dangling after revoke, budgets conserved and summed),
    /// every refusal is recorded, a second run is identical, and the bystander is undisturbed.
    #[test]
    fn chaos_never_breaks_the_host(seed in any::<u64>()) {
        let hello = hello();
        let (_d, p) = prepare_inline(&manifest(seed, true), &[("chaos.wat", CHAOS), ("hello.wat", &hello)]);
        let mut hv = xdv_hv::Hypervisor::new(&p.manifest, &p.modules, seed).unwrap();
        hv.check_every_step(true);
        let mut sink = xdv_core::MemorySink::default();
        hv.run(&mut sink).unwrap();
        prop_assert_eq!(hv.check_invariants(), Ok(()));
        let events = sink.events;
        prop_assert_eq!(refusals_are_recorded(&events), Ok(()));
        let (_, again) = xdv_hv::run_in_memory(&p, seed).unwrap();
        prop_assert!(again == events, "a second run differs");
        let (_d2, alone) = prepare_inline(&manifest(seed, false), &[("hello.wat", &hello)]);
        let (_, alone) = xdv_hv::run_in_memory(&alone, seed).unwrap();
        prop_assert_eq!(xdv_trace::project(&alone, "bystander"), xdv_trace::project(&events, "bystander"));
    }
}

#[test]
fn chaos_runs_exercise_every_group_and_replay_from_their_traces() {
    let hello = hello();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..12u64 {
        let (_d, p) = prepare_inline(
            &manifest(seed, true),
            &[("chaos.wat", CHAOS), ("hello.wat", &hello)],
        );
        let trace = dir.path().join(format!("chaos{seed}.xdv"));
        let (_, _, _) = xdv_hv::run_to_trace(&p, &trace, &xdv_hv::RunOptions::default()).unwrap();
        let report = xdv_hv::replay_trace(&trace).unwrap();
        assert!(report.identical(), "seed {seed}: {:?}", report.divergence);
        for e in xdv_trace::TraceReader::open(&trace)
            .unwrap()
            .events()
            .unwrap()
        {
            match &e.kind {
                EventKind::Hypercall { call, ret, .. } if *ret >= 0 => {
                    seen.insert(format!("ok {}", call.name()));
                }
                other => {
                    seen.insert(other.name().to_string());
                }
            }
        }
    }
    for needed in [
        "ok cap_derive",
        "ok cap_revoke",
        "ok vhm_spawn",
        "ok ipc_send",
        "ok ipc_channel",
        "refused",
        "cap_removed",
        "carved",
        "given_back",
        "ipc_sent",
        "ok q_submit",
        "q_job_done",
        "ok q_result",
        "ok phi_exec",
        "phi_window_granted",
    ] {
        assert!(
            seen.contains(needed),
            "no {needed} in twelve chaos runs: {seen:?}"
        );
    }
}

/// A longer sweep for local use: `XDV_CHAOS_SEEDS=2000 cargo test -p xdv-hv --test fuzz -- --ignored`.
#[test]
#[ignore]
fn chaos_sweep() {
    let n: u64 = std::env::var("XDV_CHAOS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let hello = hello();
    for i in 0..n {
        let seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let (_d, p) = prepare_inline(
            &manifest(seed, true),
            &[("chaos.wat", CHAOS), ("hello.wat", &hello)],
        );
        let mut hv = xdv_hv::Hypervisor::new(&p.manifest, &p.modules, seed).unwrap();
        hv.check_every_step(true);
        let mut sink = xdv_core::MemorySink::default();
        hv.run(&mut sink).unwrap();
        assert_eq!(hv.check_invariants(), Ok(()), "seed {seed}");
        assert_eq!(refusals_are_recorded(&sink.events), Ok(()), "seed {seed}");
    }
}
