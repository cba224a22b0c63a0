//! Hostile hypercall arguments: error codes or faults per policy, never a host crash.

mod common;

use common::*;
use xdv_core::{EventKind, ExitReason, FaultClass, HypercallRecord};
use xdv_hv::HostBuilder;
use xdv_k::abi::{E_FAULT, E_INVAL, E_NOENT, E_TOOBIG};

const HOSTILE: &str = r#"(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (import "xdv" "timer_set" (func $timer (param i64) (result i32)))
  (import "xdv" "irq_send" (func $irq (param i32 i32 i64) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "main")
    (drop (call $log (i32.const 65530) (i32.const 100)))        ;; crosses the end of memory
    (drop (call $log (i32.const -1) (i32.const 1)))             ;; 0xffffffff
    (drop (call $log (i32.const 0) (i32.const -1)))             ;; 4 GiB length
    (drop (call $log (i32.const 0) (i32.const 5000)))           ;; over the log limit
    (drop (call $sleep (i64.const -5)))
    (drop (call $timer (i64.const -1)))
    (drop (call $irq (i32.const 9) (i32.const 0) (i64.const 0)))  ;; no vCPU 9
    (drop (call $irq (i32.const 0) (i32.const 99) (i64.const 0)))  ;; no vector 99
    (drop (call $irq (i32.const -1) (i32.const -1) (i64.const 0)))
    (drop (call $log (i32.const 0) (i32.const 0)))              ;; empty, fine
    (call $exit (i32.const 0))))"#;

const NO_MEMORY: &str = r#"(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (memory 1)
  (func (export "main") (drop (call $log (i32.const 0) (i32.const 4)))))"#;

fn rets(events: &[xdv_core::Event]) -> Vec<(&'static str, i64)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Hypercall { call, ret, .. } => Some((call.name(), *ret)),
            _ => None,
        })
        .collect()
}

#[test]
fn hostile_arguments_get_error_codes_under_the_default_policy() {
    let m = "[[vhm]]\nname = \"h\"\n[vhm.k]\nmodule = \"h.wat\"\nirq_vectors = 2\n";
    let (_d, p) = prepare_inline(m, &[("h.wat", HOSTILE)]);
    let (s, events) = run(&p);
    assert_eq!(
        rets(&events),
        vec![
            ("log", E_FAULT),
            ("log", E_FAULT),
            ("log", E_TOOBIG),
            ("log", E_TOOBIG),
            ("sleep", E_INVAL),
            ("timer_set", E_INVAL),
            ("irq_send", E_NOENT),
            ("irq_send", E_NOENT),
            ("irq_send", E_NOENT),
            ("log", 0),
            ("exit", 0),
        ]
    );
    assert_eq!(s.vhms[0].exit, "exit(0)");
    // Pointers are recorded as the guest's unsigned wasm32 values.
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::Hypercall {
            call: HypercallRecord::Log {
                ptr: 0xffff_ffff,
                ..
            },
            ..
        }
    )));
}

#[test]
fn hostile_arguments_fault_the_vhm_under_the_fault_policy() {
    let m = format!(
        "[[vhm]]\nname = \"h\"\n[vhm.k]\nmodule = \"h.wat\"\n[vhm.policy]\non_bad_hypercall = \"fault\"\n{}",
        vhm("bystander", "spin.wat", 1, 100_000)
    );
    let (_d, p) = prepare_inline(&m, &[("h.wat", HOSTILE), ("spin.wat", SPIN)]);
    let (s, events) = run(&p);
    assert_eq!(
        s.vhms[0].exit,
        ExitReason::Fault(FaultClass::BadHypercall).to_string()
    );
    assert_eq!(
        rets(&events),
        vec![("log", E_FAULT)],
        "the first refused call faults the VHM"
    );
    assert_eq!(
        s.vhms[1].exit,
        ExitReason::Fault(FaultClass::FuelExhausted).to_string()
    );
}

/// A module that imports a pointer-taking call but exports no memory is refused before it
/// runs; the core still answers `E_NOMEM` for a vCPU that reports no memory (see `step.rs`).
#[test]
fn pointer_calls_without_an_exported_memory_are_refused_at_load() {
    let m = "[[vhm]]\nname = \"n\"\n[vhm.k]\nmodule = \"n.wat\"\n";
    let e = HostBuilder::new(m, "m.toml")
        .module("n.wat", NO_MEMORY.as_bytes())
        .prepare()
        .err()
        .expect("refused");
    assert!(
        e.to_string().contains(
            "import xdv.log: the call takes a pointer into guest memory, but the module exports no memory named \"memory\""
        ),
        "{e}"
    );
}

#[test]
fn modules_that_do_not_fit_the_abi_are_refused_before_running() {
    let cases: &[(&str, &str)] = &[
        (
            r#"(module (import "xdv" "format_disk" (func)) (func (export "main")))"#,
            "import xdv.format_disk: no such hypercall",
        ),
        (
            r#"(module (import "env" "f" (func)) (func (export "main")))"#,
            "guests may import only hypercalls from module \"xdv\"",
        ),
        (
            r#"(module (import "xdv" "log" (func (param i64))) (func (export "main")))"#,
            "signature (i64) -> () does not match the ABI's (i32, i32) -> (i32)",
        ),
        (
            r#"(module (func (export "start")))"#,
            "exports no function \"main\"",
        ),
        (
            r#"(module (func (export "main") (param i32)))"#,
            "entry export \"main\" has type (i32) -> ()",
        ),
        (
            r#"(module (func (export "main")) (func (export "xdv_irq") (param i32)))"#,
            "\"xdv_irq\" must be a function (i32, i64) -> ()",
        ),
        (
            r#"(module (func $s) (start $s) (func (export "main")))"#,
            "start function",
        ),
        (
            r#"(module (memory 4) (func (export "main")))"#,
            "cannot instantiate",
        ),
        ("(module (func", "invalid WAT"),
    ];
    for (wat, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("g.wat"), wat).unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[[vhm]]\nname = \"g\"\n[vhm.k]\nmodule = \"g.wat\"\nmemory_limit = \"128 KiB\"\n",
        )
        .unwrap();
        let err = xdv_hv::prepare(&path)
            .err()
            .unwrap_or_else(|| panic!("{wat} was accepted"))
            .to_string();
        assert!(
            err.contains(expected),
            "{wat}: got {err:?}, expected {expected:?}"
        );
        assert!(err.contains("m.toml"), "{err:?} names the manifest");
    }
}
