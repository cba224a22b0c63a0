//! Interrupt delivery, timers and sleep.

mod common;

use common::*;
use xdv_core::EventKind;

fn rets(events: &[xdv_core::Event], name: &str) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Hypercall { call, ret, .. } if call.name() == name => Some(*ret),
            _ => None,
        })
        .collect()
}

const SELF_IPI: &str = r#"(module
  (import "xdv" "irq_send" (func $irq (param i32 i32 i64) (result i32)))
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (global $got (mut i64) (i64.const 0))
  (func (export "xdv_irq") (param i32 i64) (global.set $got (local.get 1)))
  (func (export "main")
    ;; A self-IPI is accepted and delivered on return from irq_send.
    (if (i32.ne (call $irq (i32.const 0) (i32.const 1) (i64.const 42)) (i32.const 0)) (then unreachable))
    (if (i64.ne (global.get $got) (i64.const 42)) (then unreachable))
    (call $exit (i32.const 0))))"#;

#[test]
fn a_vcpu_can_interrupt_itself() {
    let m = "[[vhm]]\nname = \"s\"\n[vhm.k]\nmodule = \"s.wat\"\nirq_vectors = 2\n";
    let (_d, p) = prepare_inline(m, &[("s.wat", SELF_IPI)]);
    let (s, events) = run(&p);
    assert_eq!(s.vhms[0].exit, "exit(0)", "{:#?}", events);
    assert_eq!(rets(&events, "irq_send"), vec![0]);
}

const TICKS: &str = r#"(module
  (import "xdv" "timer_set" (func $timer (param i64) (result i32)))
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "time" (func $time (result i64)))
  (global $ticks (mut i32) (i32.const 0))
  (func (export "xdv_irq") (param i32 i64) (global.set $ticks (i32.add (global.get $ticks) (i32.const 1))))
  (func (export "main") (local $i i32)
    (drop (call $timer (i64.const 1000)))
    ;; Busy for longer than a period inside one slice: the tick is pending before sleep is called,
    ;; so sleep returns 1 at once instead of parking.
    (loop $busy (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $busy (i32.lt_u (local.get $i) (i32.const 2000))))
    (if (i32.ne (call $sleep (i64.const 1000000000)) (i32.const 1)) (then unreachable))
    ;; Then return: the timer belongs to this vCPU and stops with it.
  ))"#;

#[test]
fn a_pending_interrupt_ends_sleep_at_once_and_the_timer_stops_with_its_vcpu() {
    let m = "[host]\nslice_fuel = 1000000\n[[vhm]]\nname = \"t\"\n[vhm.k]\nmodule = \"t.wat\"\n";
    let (_d, p) = prepare_inline(m, &[("t.wat", TICKS)]);
    let (s, events) = run(&p);
    assert_eq!(s.vhms[0].exit, "halted", "{events:#?}");
    assert_eq!(rets(&events, "sleep"), vec![1]);
    let ticks = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TimerFired { .. }))
        .count();
    assert!(ticks >= 1);
    // The run ends when the VHM does, not at a superseded deadline.
    let last = events.last().unwrap();
    assert!(matches!(last.kind, EventKind::HostFinished { .. }));
    assert_eq!(last.time_ns, s.vhms[0].end_ns);
    assert!(last.time_ns < 1_000_000_000);
}

#[test]
fn the_interrupts_example_ends_when_its_vhm_exits() {
    let p = xdv_hv::prepare(&examples().join("interrupts.toml")).unwrap();
    let (s, events) = run(&p);
    assert_eq!(s.vhms[0].exit, "exit(0)");
    assert_eq!(s.end_ns, s.vhms[0].end_ns);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TimerFired { .. }))
            .count(),
        6
    );
    // Each of vCPUs 1..3 was woken by an IPI at least once.
    for vcpu in 1..4 {
        assert!(events.iter().any(
            |e| matches!(e.kind, EventKind::VcpuWoken { vcpu: v, interrupted: true, .. } if v == vcpu)
        ));
    }
}
