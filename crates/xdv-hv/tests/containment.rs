//! Faults are contained: the other VHMs' events are exactly those of a run without the faulting VHM.

mod common;

use common::*;
use xdv_core::{EventKind, ExitReason, FaultClass};

const TRAP: &str = r#"(module
  (memory 1)
  (func (export "main") (local $i i32)
    (loop $w (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $w (i32.lt_u (local.get $i) (i32.const 3000))))
    (i32.store (i32.const 0x7fff0000) (i32.const 1))))"#;
const DIV0: &str =
    r#"(module (func (export "main") (drop (i32.div_u (i32.const 1) (i32.const 0)))))"#;
const UNREACHABLE: &str = r#"(module (func (export "main") unreachable))"#;

fn host() -> &'static str {
    "[host]\nseed = 9\nslice_fuel = 2000\ntime_limit_ns = 400000\n"
}

#[test]
fn trapping_vhms_fault_alone() {
    let guests = [
        ("spin.wat", SPIN),
        ("trap.wat", TRAP),
        ("div0.wat", DIV0),
        ("unreachable.wat", UNREACHABLE),
    ];
    let without = format!(
        "{}{}{}",
        host(),
        vhm("a", "spin.wat", 1, 1 << 30),
        vhm("b", "spin.wat", 2, 1 << 30)
    );
    let with = format!(
        "{}{}{}{}{}{}",
        host(),
        vhm("t1", "trap.wat", 1, 1 << 30),
        vhm("a", "spin.wat", 1, 1 << 30),
        vhm("t2", "div0.wat", 3, 1 << 30),
        vhm("b", "spin.wat", 2, 1 << 30),
        vhm("t3", "unreachable.wat", 1, 1 << 30)
    );
    let (_d1, p1) = prepare_inline(&without, &guests);
    let (_d2, p2) = prepare_inline(&with, &guests);
    let (_, e1) = run(&p1);
    let (s2, e2) = run(&p2);
    for name in ["a", "b"] {
        assert_eq!(
            xdv_trace::project(&e1, name),
            xdv_trace::project(&e2, name),
            "VHM {name} was disturbed"
        );
    }
    for name in ["t1", "t2", "t3"] {
        let v = s2.vhms.iter().find(|v| v.name == name).unwrap();
        assert_eq!(
            v.exit,
            ExitReason::Fault(FaultClass::Trap).to_string(),
            "{name}"
        );
        let own = xdv_trace::project(&e2, name);
        assert!(own.iter().any(|(_, k)| matches!(
            k,
            EventKind::Fault {
                class: FaultClass::Trap,
                ..
            }
        )));
        // Everything allocated was released, in reverse order, before the exit.
        let released: Vec<_> = own
            .iter()
            .filter_map(|(_, k)| {
                if let EventKind::Released { cap, .. } = k {
                    Some(*cap)
                } else {
                    None
                }
            })
            .collect();
        let allocated: Vec<_> = own
            .iter()
            .filter_map(|(_, k)| {
                if let EventKind::Allocated { cap, .. } = k {
                    Some(*cap)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(released, allocated.into_iter().rev().collect::<Vec<_>>());
        assert!(matches!(own.last().unwrap().1, EventKind::VhmExited { .. }));
    }
}

#[test]
fn memory_limit_caps_growth_per_vcpu() {
    let grow = r#"(module
      (import "xdv" "exit" (func $exit (param i32)))
      (memory 1)
      (func (export "main")
        ;; one more page fits the 128 KiB limit, the next does not: memory.grow returns -1.
        (if (i32.ne (memory.grow (i32.const 1)) (i32.const 1)) (then unreachable))
        (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (call $exit (i32.const 7))))"#;
    let m = "[[vhm]]\nname = \"g\"\n[vhm.k]\nmodule = \"grow.wat\"\nvcpus = 2\nmemory_limit = \"128 KiB\"\n";
    let (_d, p) = prepare_inline(m, &[("grow.wat", grow)]);
    let (s, _) = run(&p);
    assert_eq!(s.vhms[0].exit, "exit(7)");
}

#[test]
fn exit_from_one_vcpu_stops_its_siblings_and_charges_no_unobserved_fuel() {
    let g = r#"(module
      (import "xdv" "vcpu_id" (func $id (result i32)))
      (import "xdv" "exit" (func $exit (param i32)))
      (func (export "main")
        (if (i32.eqz (call $id)) (then (call $exit (i32.const 3))))
        (loop $l (br $l))))"#;
    let m = "[host]\nslice_fuel = 100000\n[[vhm]]\nname = \"x\"\n[vhm.k]\nmodule = \"g.wat\"\nvcpus = 3\n";
    let (_d, p) = prepare_inline(m, &[("g.wat", g)]);
    let (s, events) = run(&p);
    assert_eq!(s.vhms[0].exit, "exit(3)");
    // vCPUs 1 and 2 ran ahead a whole slice, but the VHM stopped before their clocks got there.
    assert!(s.vhms[0].fuel_used < 100, "charged {}", s.vhms[0].fuel_used);
    assert!(!events
        .iter()
        .any(|e| matches!(e.kind, EventKind::SliceEnded { .. })));
}
