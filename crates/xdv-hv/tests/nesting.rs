//! Nested VHMs: depth, budgets carved and returned, subtree termination, replay of the mapping.

mod common;

use common::*;
use xdv_core::{EventKind, ExitReason};

/// Spawns a child of its own module with the deepest nesting its budget allows (2, else 1,
/// else 0), waits for it, and exits with the child's exit code + 1. A VHM that may not spawn exits 0.
const NEST: &str = r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
  (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "n")
  (func $try (param $d i32) (result i64)
    (i64.store (i32.const 512) (call $cap_find (i32.const 2) (i32.const 0)))
    (i64.store (i32.const 520) (call $cap_find (i32.const 3) (i32.const 0)))
    (i32.store (i32.const 536) (i32.const 0))
    (i32.store (i32.const 540) (i32.const 1))
    (i32.store (i32.const 544) (i32.const 1))
    (i32.store (i32.const 548) (i32.add (local.get $d) (i32.const 1)))
    (i64.store (i32.const 552) (i64.const 65536))
    (i64.store (i32.const 560) (i64.mul (i64.const 65536) (i64.extend_i32_u (i32.add (local.get $d) (i32.const 1)))))
    (i64.store (i32.const 568) (i64.mul (i64.const 200000) (i64.extend_i32_u (i32.add (local.get $d) (i32.const 1)))))
    (i32.store (i32.const 576) (i32.const 1))
    (i32.store (i32.const 584) (local.get $d))
    (i32.store (i32.const 588) (i32.const 1))
    (call $vhm_spawn (i32.const 512) (i32.const 88)))
  (func (export "main") (local $c i64) (local $d i32)
    (local.set $d (i32.const 2))
    (loop $down
      (local.set $c (call $try (local.get $d)))
      (if (i64.lt_s (local.get $c) (i64.const 0))
        (then
          (if (i32.eqz (local.get $d)) (then (call $exit (i32.const 0))))
          (local.set $d (i32.sub (local.get $d) (i32.const 1)))
          (br $down))))
    (call $exit (i32.add (i32.const 1) (i32.wrap_i64 (call $vhm_wait (local.get $c)))))))"#;

fn nest_manifest(depth: u32) -> String {
    format!(
        "[[vhm]]\nname = \"root\"\n[vhm.k]\nmodule = \"nest.wat\"\nmemory_limit = \"64 KiB\"\n[vhm.policy]\nfuel_quota = 10_000_000\nmax_vcpus = 8\nmemory_quota = \"512 KiB\"\nmax_depth = {depth}\nmax_children = 1\n"
    )
}

#[test]
fn a_child_of_a_child_of_a_child_runs_and_reports_up() {
    let (_d, p) = prepare_inline(&nest_manifest(3), &[("nest.wat", NEST)]);
    let (s, events) = run(&p);
    let names: Vec<_> = s
        .vhms
        .iter()
        .map(|v| (v.name.as_str(), v.level, v.exit.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("root", 1, "exit(3)"),
            ("root/n", 2, "exit(2)"),
            ("root/n/n", 3, "exit(1)"),
            ("root/n/n/n", 4, "exit(0)")
        ],
        "{events:#?}"
    );
    // Every level carved from its parent and gave it back.
    let carved = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Carved { .. }))
        .count();
    let given = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::GivenBack { .. }))
        .count();
    assert_eq!((carved, given), (3, 3));
    // The deepest VHM may not spawn: its refusal is recorded.
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Refused { call, .. } if call == "vhm_spawn")));
}

#[test]
fn killing_a_vhm_stops_its_subtree_deepest_first_and_returns_every_budget() {
    // The root spawns a chain three deep whose leaf spins; the root then kills its child.
    let spin_leaf = NEST.replace(
        r#"(if (i32.eqz (local.get $d)) (then (call $exit (i32.const 0))))"#,
        r#"(if (i32.eqz (local.get $d)) (then (loop $spin (br $spin))))"#,
    );
    let killer = r#"(module
      (import "xdv" "exit" (func $exit (param i32)))
      (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
      (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
      (import "xdv" "vhm_kill" (func $vhm_kill (param i64) (result i32)))
      (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
      (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "c")
      (func (export "main") (local $c i64)
        (i64.store (i32.const 512) (call $cap_find (i32.const 2) (i32.const 0)))
        (i64.store (i32.const 520) (call $cap_find (i32.const 3) (i32.const 1)))
        (i32.store (i32.const 536) (i32.const 0))
        (i32.store (i32.const 540) (i32.const 1))
        (i32.store (i32.const 544) (i32.const 1))
        (i32.store (i32.const 548) (i32.const 3))
        (i64.store (i32.const 552) (i64.const 65536))
        (i64.store (i32.const 560) (i64.const 196608))
        (i64.store (i32.const 568) (i64.const 3000000))
        (i32.store (i32.const 576) (i32.const 1))
        (i32.store (i32.const 584) (i32.const 2))
        (i32.store (i32.const 588) (i32.const 1))
        (local.set $c (call $vhm_spawn (i32.const 512) (i32.const 88)))
        (drop (call $sleep (i64.const 200000)))
        (drop (call $vhm_kill (local.get $c)))
        ;; kind 3 = killed
        (call $exit (i32.wrap_i64 (i64.shr_u (call $vhm_wait (local.get $c)) (i64.const 32))))))"#;
    let m = "[[vhm]]\nname = \"root\"\n[vhm.k]\nmodule = \"killer.wat\"\nmodules = [\"leaf.wat\"]\nmemory_limit = \"64 KiB\"\n[vhm.policy]\nfuel_quota = 10_000_000\nmax_vcpus = 4\nmemory_quota = \"256 KiB\"\nmax_depth = 3\nmax_children = 1\n";
    let (_d, p) = prepare_inline(m, &[("killer.wat", killer), ("leaf.wat", &spin_leaf)]);
    let mut hv = xdv_hv::Hypervisor::new(&p.manifest, &p.modules, 0).unwrap();
    hv.check_every_step(true);
    let mut sink = xdv_core::MemorySink::default();
    let s = hv.run(&mut sink).unwrap();
    hv.check_invariants().unwrap();
    let events = sink.events;
    assert_eq!(s.vhms[0].exit, "exit(3)", "{:#?}", s.vhms);
    assert!(
        s.vhms[1..]
            .iter()
            .all(|v| v.exit == ExitReason::Killed.to_string()),
        "{:#?}",
        s.vhms
    );
    // Exits in reverse creation order: the leaf first.
    let exits: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::VhmExited { .. }))
        .map(|e| e.vhm.unwrap().0)
        .collect();
    assert_eq!(exits, vec![3, 2, 1, 0]);
    // Each given-back happens in the parent right after the child's exit.
    let given: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let EventKind::GivenBack { child, .. } = e.kind {
                Some((e.vhm.unwrap().0, child.0))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(given, vec![(2, 3), (1, 2), (0, 1)]);
}

#[test]
fn statically_nested_vhms_are_carved_from_their_parent() {
    let m = "[[vhm]]\nname = \"p\"\n[vhm.k]\nmodule = \"spin.wat\"\nmemory_limit = \"64 KiB\"\n[vhm.policy]\nfuel_quota = 100_000\nmax_vcpus = 2\nmemory_quota = \"128 KiB\"\nmax_depth = 1\n\
         [[vhm]]\nname = \"c\"\nparent = \"p\"\n[vhm.k]\nmodule = \"spin.wat\"\nmemory_limit = \"64 KiB\"\n[vhm.policy]\nfuel_quota = 40_000\n"
        .to_string();
    let (_d, p) = prepare_inline(&m, &[("spin.wat", SPIN)]);
    let (s, events) = run(&p);
    assert_eq!(
        (
            s.vhms[1].name.as_str(),
            s.vhms[1].level,
            s.vhms[1].parent.as_deref()
        ),
        ("c", 2, Some("p"))
    );
    // Parent and child share the parent's 100 000 fuel: the child's 40 000 are carved out, and
    // what the child leaves unused comes back to the parent when it stops.
    assert!(
        s.vhms[1].fuel_used <= 40_000 && s.vhms[0].fuel_used + s.vhms[1].fuel_used <= 100_000,
        "{:#?}",
        s.vhms
    );
    assert!(
        s.vhms[0].fuel_used > 60_000,
        "the child's unused fuel came back"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Carved { .. })));
}

#[test]
fn a_static_child_over_its_parents_quota_is_a_manifest_error() {
    let m = "[[vhm]]\nname = \"p\"\n[vhm.k]\nmodule = \"spin.wat\"\n[vhm.policy]\nfuel_quota = 100\nmax_depth = 1\n\
             [[vhm]]\nname = \"c\"\nparent = \"p\"\n[vhm.k]\nmodule = \"spin.wat\"\n";
    let err = xdv_manifest::Manifest::parse(m, "m.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("m.toml:10:10: vhm[1].parent: over quota: vcpus"),
        "{err}"
    );
}

/// A parent that spawns a child from module bytes in its own memory (and, second, tries to
/// pass its budget capability with a different badge than it has — refused, not a crash).
fn bytes_spawner() -> String {
    let child = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
    let escaped: String = child.iter().map(|b| format!("\\{b:02x}")).collect();
    let len = child.len();
    format!(
        r#"(module
      (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
      (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
      (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
      (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "b")
      (data (i32.const 1024) "{escaped}")
      (func $spec (param $ncaps i32)
        (i64.store (i32.const 512) (call $cap_find (i32.const 2) (i32.const 0)))
        (i64.store (i32.const 520) (i64.const 0))
        (i32.store (i32.const 528) (i32.const 1024))
        (i32.store (i32.const 532) (i32.const {len}))
        (i32.store (i32.const 536) (i32.const 0))
        (i32.store (i32.const 540) (i32.const 1))
        (i32.store (i32.const 544) (i32.const 1))
        (i32.store (i32.const 548) (i32.const 1))
        (i64.store (i32.const 552) (i64.const 65536))
        (i64.store (i32.const 560) (i64.const 65536))
        (i64.store (i32.const 568) (i64.const 10000))
        (i32.store (i32.const 576) (i32.const 1))
        (i32.store (i32.const 592) (local.get $ncaps))
        (i32.store (i32.const 596) (i32.const 2048)))
      (func (export "main") (local $badged i64)
        ;; a module capability badged 5, passed with badge 6: refused
        (local.set $badged (call $cap_derive (call $cap_find (i32.const 3) (i32.const 0)) (i32.const 7) (i64.const 5)))
        (i64.store (i32.const 2048) (local.get $badged))
        (i32.store (i32.const 2056) (i32.const 7))
        (i64.store (i32.const 2064) (i64.const 6))
        (call $spec (i32.const 1))
        (if (i64.ge_s (call $vhm_spawn (i32.const 512) (i32.const 88)) (i64.const 0)) (then unreachable))
        (call $spec (i32.const 0))
        (call $exit (i32.wrap_i64 (call $vhm_wait (call $vhm_spawn (i32.const 512) (i32.const 88)))))))"#
    )
}

#[test]
fn children_spawned_from_bytes_are_stored_in_the_trace_and_badges_cannot_be_rewritten() {
    // 64 KiB above the two vCPUs' memory: the loaded module's footprint is held there.
    let m = "[[vhm]]\nname = \"p\"\n[vhm.k]\nmodule = \"p.wat\"\nmemory_limit = \"64 KiB\"\n[vhm.policy]\nmax_vcpus = 2\nmemory_quota = \"192 KiB\"\nmax_depth = 1\n";
    let (_, p) = prepare_inline(m, &[("p.wat", &bytes_spawner())]);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bytes.xdv");
    let (s, _, _) = xdv_hv::run_to_trace(&p, &trace, &xdv_hv::RunOptions::default()).unwrap();
    assert_eq!(s.vhms[1].exit, "halted", "{:#?}", s.vhms);
    assert_eq!(s.vhms[1].name, "p/b");
    let reader = xdv_trace::TraceReader::open(&trace).unwrap();
    let v = reader.verify().unwrap();
    assert!(v.intact(), "{v:?}");
    let events = reader.events().unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::ModuleLoaded { .. })));
    // vhm_wait's value for a halted child: kind 1 in the high half.
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::VcpuWoken { ret, .. } if ret == 1 << 32)));
    assert!(events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Refused { reason, .. } if reason.to_string().contains("badge"))));
    assert!(xdv_hv::replay_trace(&trace).unwrap().identical());
}
