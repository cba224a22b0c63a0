//! The Q domain end to end: containers on shared devices, nested carving, job admission against
//! decoherence budgets, outcomes recorded and injected on replay, orchestration independence.

mod common;

use common::*;
use std::collections::BTreeSet;
use xdv_core::{Event, EventKind};
use xdv_hv::{prepare, replay_trace, run_in_memory, run_to_trace, RunOptions};

fn placed(events: &[Event]) -> Vec<(String, Vec<u32>)> {
    let names: std::collections::BTreeMap<_, _> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::VhmCreated { name, .. } => Some((e.vhm.unwrap(), name.clone())),
            _ => None,
        })
        .collect();
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::QContainerPlaced { physical, .. } => {
                Some((names[&e.vhm.unwrap()].clone(), physical.clone()))
            }
            _ => None,
        })
        .collect()
}

fn logs(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Hypercall {
                call: xdv_core::HypercallRecord::Log { bytes, .. },
                ..
            } => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn ghz_on_three_disjoint_guarded_containers_of_one_device() {
    let p = prepare(&examples().join("q-ghz.toml")).unwrap();
    let (s, events) = run(&p);
    assert!(s.vhms.iter().all(|v| v.code == 0), "{s:#?}");
    let placed = placed(&events);
    assert_eq!(placed.len(), 3);
    let (_, edges) = xdv_q::device::Coupling::HeavyHex { rows: 3, width: 11 }.graph();
    for (i, (a, qa)) in placed.iter().enumerate() {
        for (b, qb) in &placed[i + 1..] {
            let sa: BTreeSet<_> = qa.iter().collect();
            assert!(qb.iter().all(|q| !sa.contains(q)), "{a} and {b} overlap");
            let touching = edges.iter().any(|&(x, y)| {
                (sa.contains(&(x as u32)) && qb.contains(&(y as u32)))
                    || (sa.contains(&(y as u32)) && qb.contains(&(x as u32)))
            });
            assert!(!touching, "{a} and {b} have no guard ring between them");
        }
    }
    // Exact provider: a GHZ state only ever reads 000 or 111.
    for e in &events {
        if let EventKind::QJobDone { outcomes, .. } = &e.kind {
            assert_eq!(outcomes.len(), 1000);
            assert!(outcomes.iter().all(|&o| o == 0 || o == 7));
        }
    }
    // The three jobs were admitted at the same instant and completed at the same instant: no
    // VHM's job waits for another's.
    let done: BTreeSet<u64> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::QJobDone { .. }))
        .map(|e| e.time_ns)
        .collect();
    assert_eq!(done.len(), 1, "{done:?}");
}

#[test]
fn replay_injects_recorded_outcomes_without_a_provider() {
    let dir = tempfile::tempdir().unwrap();
    for example in ["q-ghz.toml", "q-vqe.toml", "q-budget.toml"] {
        let p = prepare(&examples().join(example)).unwrap();
        let trace = dir.path().join(format!("{example}.db"));
        run_to_trace(&p, &trace, &RunOptions::default()).unwrap();
        let r = replay_trace(&trace).unwrap();
        assert!(r.identical(), "{example}: {:?}", r.divergence);
        assert_eq!(r.provider_runs, 0, "{example}");
        assert!(r.events_matched > 0);
    }
}

#[test]
fn vqe_loop_converges_to_the_ground_state() {
    let p = prepare(&examples().join("q-vqe.toml")).unwrap();
    let (s, events) = run(&p);
    assert_eq!(s.vhms[0].code, 0, "{s:#?}");
    let logs = logs(&events);
    assert!(
        logs.iter().any(|l| l == "vqe: converged at theta = 64"),
        "{logs:#?}"
    );
}

/// Replaces every outcome payload, the one outcome-dependent part of a trace.
fn blank_outcomes(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let EventKind::QJobDone { outcomes, .. } = &mut e.kind {
                outcomes.clear();
            }
            e
        })
        .collect()
}

/// Runs a GHZ job, collects its outcomes into memory and never looks at them.
const OBLIVIOUS: &str = r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (import "xdv" "q_wait" (func $q_wait (param i64) (result i32)))
  (import "xdv" "q_result" (func $q_result (param i64 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "OPENQASM 2.0; include \"qelib1.inc\"; qreg q[3]; creg c[3]; h q[0]; cx q[0],q[1]; cx q[1],q[2]; measure q -> c;")
  (func (export "main") (local $j i64)
    (local.set $j (call $q_submit (call $cap_find (i32.const 6) (i32.const 0)) (i32.const 0) (i32.const 109) (i64.const 500) (i32.const 0)))
    (drop (call $q_wait (local.get $j)))
    (drop (call $q_result (local.get $j) (i32.const 8192) (i32.const 4000)))
    (call $exit (i32.const 0))))"#;

#[test]
fn orchestration_does_not_depend_on_measurement_outcomes() {
    let manifest = |q_seed: u64| {
        std::fs::read_to_string(examples().join("q-ghz.toml"))
            .unwrap()
            .replace("seed = 2026", &format!("seed = {q_seed}"))
            .replace("guests/q-ghz.wat", "ghz.wat")
    };
    let mut runs = Vec::new();
    for q_seed in [1u64, 2, 3, 99] {
        let (_d, p) = prepare_inline(&manifest(q_seed), &[("ghz.wat", OBLIVIOUS)]);
        let (s, events) = run(&p);
        assert!(s.vhms.iter().all(|v| v.code == 0), "{events:#?}");
        runs.push(events);
    }
    for other in &runs[1..] {
        assert_eq!(blank_outcomes(&runs[0]), blank_outcomes(other));
        assert_ne!(&runs[0], other, "different seeds sample different outcomes");
    }
}

#[test]
fn budget_refusal_is_recorded_and_leaves_the_neighbour_alone() {
    let p = prepare(&examples().join("q-budget.toml")).unwrap();
    let (s, events) = run(&p);
    assert!(s.vhms.iter().all(|v| v.code == 0), "{s:#?}");
    let refused: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Refused { call, reason, .. } if call == "q_submit" => {
                Some(reason.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].starts_with("decoherence budget: the job costs"),
        "{}",
        refused[0]
    );
    // "steady" alone behaves exactly as beside "greedy".
    let alone = std::fs::read_to_string(examples().join("q-budget.toml")).unwrap();
    let alone = alone[alone.find("[[vhm]]\nname = \"steady\"").unwrap()..]
        .replace("guests/q-ghz.wat", "ghz.wat");
    let guest = std::fs::read_to_string(examples().join("guests/q-ghz.wat")).unwrap();
    let (_d, p2) = prepare_inline(
        &format!("[host]\nseed = 11\n{alone}"),
        &[("ghz.wat", &guest)],
    );
    let (_, events_alone) = run(&p2);
    // Only the physical placement differs (the device's first free qubits): a host-side fact
    // the guest cannot observe.
    let unplaced = |events: &[Event]| -> Vec<_> {
        xdv_trace::project(events, "steady")
            .into_iter()
            .map(|(t, mut k)| {
                if let EventKind::QContainerPlaced { physical, .. }
                | EventKind::QScrubbed { physical, .. } = &mut k
                {
                    physical.clear();
                }
                (t, k)
            })
            .collect()
    };
    assert_eq!(unplaced(&events), unplaced(&events_alone));
}

/// A parent that tries its first qubit (lent to its child), waits for the child, tries again, and
/// exits with (first result == E_BUSY) + 2 × (second result ≥ 0).
const PARENT: &str = r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "OPENQASM 2.0; qreg q[1]; creg c[1]; U(1,0,0) q[0]; measure q[0] -> c[0];")
  (func (export "main") (local $c i64) (local $a i64) (local $b i64)
    (local.set $c (call $cap_find (i32.const 6) (i32.const 0)))
    (local.set $a (call $q_submit (local.get $c) (i32.const 0) (i32.const 72) (i64.const 10) (i32.const 0)))
    (drop (call $vhm_wait (call $cap_find (i32.const 1) (i32.const 0))))
    (local.set $b (call $q_submit (local.get $c) (i32.const 0) (i32.const 72) (i64.const 10) (i32.const 0)))
    (call $exit (i32.add
      (i32.wrap_i64 (i64.extend_i32_u (i64.eq (local.get $a) (i64.const -12))))
      (i32.mul (i32.const 2) (i64.ge_s (local.get $b) (i64.const 0)))))))"#;

/// Runs one 10-shot job on its first qubit and exits 0 when admitted.
const CHILD: &str = r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (import "xdv" "q_wait" (func $q_wait (param i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "OPENQASM 2.0; qreg q[1]; creg c[1]; U(1,0,0) q[0]; measure q[0] -> c[0];")
  (func (export "main") (local $j i64)
    (local.set $j (call $q_submit (call $cap_find (i32.const 6) (i32.const 0)) (i32.const 0) (i32.const 72) (i64.const 10) (i32.const 0)))
    (if (i64.lt_s (local.get $j) (i64.const 0)) (then (call $exit (i32.const 1))))
    (drop (call $q_wait (local.get $j)))
    (call $exit (i32.const 0))))"#;

#[test]
fn a_nested_child_gets_a_subset_of_its_parents_qubits_and_budget() {
    let manifest = r#"
[[vhm]]
name = "parent"
[vhm.k]
module = "parent.wat"
[vhm.q]
device = "ideal-grid"
qubits = 4
budget = 10
[vhm.policy]
max_depth = 1
max_vcpus = 2
memory_quota = "2 MiB"
fuel_quota = 200_000_000

[[vhm]]
name = "child"
parent = "parent"
[vhm.k]
module = "child.wat"
[vhm.q]
qubits = 2
budget = 4
"#;
    let (_d, p) = prepare_inline(manifest, &[("parent.wat", PARENT), ("child.wat", CHILD)]);
    let (s, events) = run(&p);
    assert_eq!(
        s.vhms.iter().map(|v| v.code).collect::<Vec<_>>(),
        vec![3, 0],
        "{events:#?}"
    );
    let placed = placed(&events);
    let parent: BTreeSet<_> = placed[0].1.iter().collect();
    assert!(placed[1].1.iter().all(|q| parent.contains(q)));
    // The child's spending is charged to the parent's budget (QReturned); each Resource_Table
    // row shows what the VHM's own jobs used.
    let decoherence: Vec<(u64, Option<u64>)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Released {
                resource: xdv_core::Resource::Decoherence(b),
                used,
                ..
            } => Some((*b, *used)),
            _ => None,
        })
        .collect();
    let (child_budget, child_used) = decoherence[0];
    let (parent_budget, parent_used) = decoherence[1];
    assert_eq!((child_budget, parent_budget), (4_000_000, 10_000_000));
    let own: u64 = events
        .iter()
        .filter_map(|e| match (&e.kind, e.vhm) {
            (EventKind::QJobSubmitted { cost, .. }, Some(v)) if v == id_of(&events, "parent") => {
                Some(*cost)
            }
            _ => None,
        })
        .sum();
    assert_eq!(parent_used.unwrap(), own);
    let returned = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::QReturned { used, budget, .. } => Some((*used, *budget)),
            _ => None,
        })
        .unwrap();
    assert_eq!(returned, (child_used.unwrap(), child_budget));
}

/// Submits the same one-qubit job twice at once, waits for both, exits 0.
const TWICE: &str = r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (import "xdv" "q_wait" (func $q_wait (param i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "OPENQASM 2.0; qreg q[1]; creg c[1]; U(1,0,0) q[0]; measure q[0] -> c[0];")
  (func (export "main") (local $c i64) (local $a i64) (local $b i64)
    (local.set $c (call $cap_find (i32.const 6) (i32.const 0)))
    (local.set $a (call $q_submit (local.get $c) (i32.const 0) (i32.const 72) (i64.const 10) (i32.const 0)))
    (local.set $b (call $q_submit (local.get $c) (i32.const 0) (i32.const 72) (i64.const 10) (i32.const 0)))
    (drop (call $q_wait (local.get $b)))
    (drop (call $q_wait (local.get $a)))
    (call $exit (i32.const 0))))"#;

#[test]
fn jobs_of_one_container_run_one_after_another() {
    let manifest = "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.q]\ndevice = \"noisy-line\"\nqubits = 1\n";
    let (_d, p) = prepare_inline(manifest, &[("g.wat", TWICE)]);
    let (s, events) = run(&p);
    assert_eq!(s.vhms[0].code, 0, "{events:#?}");
    let submitted: Vec<(u64, u64, u64)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::QJobSubmitted {
                queued_ns,
                duration_ns,
                ..
            } => Some((e.time_ns, *queued_ns, *duration_ns)),
            _ => None,
        })
        .collect();
    let done: Vec<u64> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::QJobDone { .. }))
        .map(|e| e.time_ns)
        .collect();
    let (t0, q0, d0) = submitted[0];
    let (t1, q1, d1) = submitted[1];
    assert_eq!(q0, 0);
    assert_eq!(
        t1 + q1,
        t0 + d0,
        "the second job starts when the first ends"
    );
    assert_eq!(done, vec![t0 + d0, t1 + q1 + d1]);
}

/// Spawns a child from its own module with a 104-byte spec asking for `qubits` qubits and 1 unit
/// of budget; the child (same module, `main` entry) finds its container and exits 0, or exits 7
/// without one. The parent exits with the spawn's error code negated, or the child's exit code.
const SPAWNER: &str = r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
  (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
  (import "xdv" "q_info" (func $q_info (param i64 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "kid")
  (func (export "main")
    (if (i64.eq (call $q_info (call $cap_find (i32.const 6) (i32.const 0)) (i32.const 0)) (i64.const 2))
      (then (call $exit (i32.const 0))))
    (call $exit (i32.const 7)))
  (func (export "parent") (local $h i64)
    (i64.store (i32.const 512) (call $cap_find (i32.const 2) (i32.const 0)))
    (i64.store (i32.const 520) (call $cap_find (i32.const 3) (i32.const 0)))
    (i32.store (i32.const 536) (i32.const 0))
    (i32.store (i32.const 540) (i32.const 3))
    (i32.store (i32.const 544) (i32.const 1))
    (i32.store (i32.const 548) (i32.const 1))
    (i64.store (i32.const 552) (i64.const 65536))
    (i64.store (i32.const 560) (i64.const 65536))
    (i64.store (i32.const 568) (i64.const 1000000))
    (i32.store (i32.const 576) (i32.const 1))
    (i32.store (i32.const 600) (i32.const 2))
    (i64.store (i32.const 608) (i64.const 1000000))
    (local.set $h (call $vhm_spawn (i32.const 512) (i32.const 104)))
    (if (i64.lt_s (local.get $h) (i64.const 0)) (then (call $exit (i32.wrap_i64 (i64.sub (i64.const 0) (local.get $h))))))
    (call $exit (i32.wrap_i64 (call $vhm_wait (local.get $h))))))"#;

#[test]
fn vhm_spawn_carves_a_container_for_the_child() {
    let manifest = |qubits: u32| {
        format!(
            "[[vhm]]\nname = \"p\"\n[vhm.k]\nmodule = \"g.wat\"\nentry = \"parent\"\n[vhm.q]\ndevice = \"ideal-grid\"\nqubits = {qubits}\nbudget = 2\n\
             [vhm.policy]\nmax_depth = 1\nmax_vcpus = 2\nmemory_quota = \"2 MiB\"\n"
        )
    };
    let (_d, p) = prepare_inline(&manifest(3), &[("g.wat", SPAWNER)]);
    let (s, events) = run(&p);
    assert_eq!(
        s.vhms
            .iter()
            .map(|v| (v.name.as_str(), v.code))
            .collect::<Vec<_>>(),
        vec![("p", 0), ("p/kid", 0)],
        "{events:#?}"
    );
    let placed = placed(&events);
    let parent: BTreeSet<_> = placed[0].1.iter().collect();
    assert_eq!(placed[1].1.len(), 2);
    assert!(placed[1].1.iter().all(|q| parent.contains(q)));
    // A parent with one qubit cannot carve two: the spawn is refused with E_QUOTA.
    let (_d, p) = prepare_inline(&manifest(1), &[("g.wat", SPAWNER)]);
    let (s, events) = run(&p);
    assert_eq!(s.vhms[0].code, 9, "{events:#?}");
}

#[test]
fn placement_errors_name_the_manifest_line() {
    let cases = [
        (
            "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.q]\ndevice = \"nowhere\"\nqubits = 2\n",
            "m.toml:6:10: vhm[0].q.device: no device \"nowhere\"",
        ),
        (
            "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.q]\ndevice = \"noisy-line\"\nqubits = 13\n",
            "m.toml:7:10: vhm[0].q.qubits: 13 qubits on noisy-line: no 13 connected free qubits",
        ),
        (
            "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.q]\nqubits = 1\n",
            "vhm[0].q.device: a Q container needs a device",
        ),
    ];
    for (manifest, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("g.wat"), SPIN).unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, manifest).unwrap();
        let err = match prepare(&path) {
            Ok(_) => panic!("{manifest} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{err}\n  does not contain\n{want}");
    }
}

/// Submits a program from memory and exits with the result's error code negated (0 when
/// admitted).
fn submitter(program: &str, shots: i64) -> String {
    format!(
        r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{}")
  (func (export "main") (local $j i64)
    (local.set $j (call $q_submit (call $cap_find (i32.const 6) (i32.const 0)) (i32.const 0) (i32.const {}) (i64.const {shots}) (i32.const 0)))
    (if (i64.lt_s (local.get $j) (i64.const 0)) (then (call $exit (i32.wrap_i64 (i64.sub (i64.const 0) (local.get $j))))))
    (call $exit (i32.const 0))))"#,
        program.replace('"', "\\\""),
        program.len()
    )
}

#[test]
fn bad_jobs_are_refused_with_their_reason() {
    let cases: [(&str, i64, i32, &str); 6] = [
        (
            "OPENQASM 2.0; qreg q[1]; foo q[0];",
            10,
            1,
            "line 1, column 26",
        ),
        (
            "OPENQASM 2.0; qreg q[3];",
            10,
            1,
            "declares 3 qubits; the container holds 2",
        ),
        ("OPENQASM 2.0; qreg q[1];", 0, 1, "shots must be 1 to 65536"),
        (
            "OPENQASM 2.0; qreg q[1]; creg c[65];",
            1,
            1,
            "65 classical bits",
        ),
        (
            "OPENQASM 2.0; qreg q[2]; CX q[0],q[1];",
            65_536,
            9,
            "decoherence budget",
        ),
        ("OPENQASM 2.0; qreg q[2]; CX q[0],q[1];", 1, 0, ""),
    ];
    for (program, shots, code, reason) in cases {
        let manifest = "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.q]\ndevice = \"noisy-line\"\nqubits = 2\nbudget = 1\n";
        let (_d, p) = prepare_inline(manifest, &[("g.wat", &submitter(program, shots))]);
        let (s, events) = run_in_memory(&p, 1).unwrap();
        assert_eq!(s.vhms[0].code, code, "{program}: {events:#?}");
        let refusal = events.iter().find_map(|e| match &e.kind {
            EventKind::Refused { reason, .. } => Some(reason.to_string()),
            _ => None,
        });
        match refusal {
            Some(r) => assert!(r.contains(reason), "{program}: {r}"),
            None => assert_eq!(code, 0),
        }
    }
}

/// Submits a program the density provider cannot run (a reset), then a good one, then 70 more
/// without collecting any; exits with the number admitted.
const PICKY: &str = r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "q_submit" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "OPENQASM 2.0; qreg q[1]; creg c[1]; reset q[0]; measure q[0] -> c[0];")
  (data (i32.const 100) "OPENQASM 2.0; qreg q[1]; creg c[1]; U(1,0,0) q[0]; measure q[0] -> c[0];")
  (func (export "main") (local $c i64) (local $n i32) (local $i i32)
    (local.set $c (call $cap_find (i32.const 6) (i32.const 0)))
    (if (i64.ge_s (call $q_submit (local.get $c) (i32.const 0) (i32.const 69) (i64.const 4) (i32.const 0)) (i64.const 0))
      (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
    (loop $more
      (if (i64.ge_s (call $q_submit (local.get $c) (i32.const 100) (i32.const 72) (i64.const 4) (i32.const 0)) (i64.const 0))
        (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 71))))
    (call $exit (local.get $n))))"#;

/// A provider's refusal is decided from the circuit alone, so the replay (which runs no
/// provider) refuses it too; and a container holds at most 64 uncollected jobs.
#[test]
fn provider_refusals_replay_and_uncollected_jobs_are_bounded() {
    let m = "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.q]\ndevice = \"noisy-line\"\nqubits = 1\nbudget = 1000\n";
    let (_, p) = prepare_inline(m, &[("g.wat", PICKY)]);
    let dir = tempfile::tempdir().unwrap();
    let (s, events) = run(&p);
    assert_eq!(s.vhms[0].code, xdv_k::abi::MAX_Q_JOBS as i32, "{events:#?}");
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Refused { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        reasons[0].contains("needs every measurement at the end"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons
            .last()
            .unwrap()
            .contains("64 jobs not yet collected"),
        "{reasons:?}"
    );
    let trace = dir.path().join("p.xdv");
    run_to_trace(&p, &trace, &RunOptions::default()).unwrap();
    let r = replay_trace(&trace).unwrap();
    assert!(r.identical(), "{:?}", r.divergence);
}

/// A job keeps its circuit until it completes: a small program text that expands to 100 000
/// operations holds megabytes, which the VHM's memory budget must pay for before it is admitted.
#[test]
fn a_job_whose_circuit_exceeds_the_memory_budget_is_refused() {
    let ten = |g: &str| vec![format!("{g} x0;"); 10].join(" ");
    let mut program = String::from("OPENQASM 2.0; qreg q[1]; gate g0 x0 { U(0,0,0) x0; }");
    for level in 1..=5 {
        program += &format!(
            " gate g{level} x0 {{ {} }}",
            ten(&format!("g{}", level - 1))
        );
    }
    program += " g5 q[0];";
    let manifest = "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.q]\ndevice = \"noisy-line\"\nqubits = 1\nbudget = 1000000\n";
    let (_d, p) = prepare_inline(manifest, &[("g.wat", &submitter(&program, 1))]);
    let (s, events) = run_in_memory(&p, 1).unwrap();
    assert_eq!(s.vhms[0].code, 9, "E_QUOTA: {events:#?}");
    let refusal = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Refused { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(
        refusal.contains("the job's circuit and outcomes hold"),
        "{refusal}"
    );
}
