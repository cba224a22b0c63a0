//! Fault policies and injection: restart with a limit, notify-parent, injected kills, and the
//! bystander untouched by all of it.

mod common;

use common::*;
use xdv_core::EventKind;
use xdv_hv::prepare;

#[test]
fn policies_restart_notify_and_contain() {
    let p = prepare(&examples().join("faults.toml")).unwrap();
    let (s, events) = run(&p);
    let exits: Vec<(&str, &str)> = s
        .vhms
        .iter()
        .map(|v| (v.name.as_str(), v.exit.as_str()))
        .collect();
    assert_eq!(
        exits,
        vec![
            ("phoenix", "fault: trap"),
            ("supervisor", "halted"),
            ("child", "fault: trap"),
            ("victim", "killed"),
            ("bystander", "halted"),
            ("phoenix#2", "fault: trap"),
            ("phoenix#3", "fault: trap"),
        ]
    );
    let refused = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::RestartRefused { reason } if reason.to_string().contains("max_restarts (2)")))
        .count();
    assert_eq!(refused, 1);
    // The parent was interrupted on its fault vector with the child's wait value (trap = 2 << 32).
    let sup = id_of(&events, "supervisor");
    assert!(events.iter().any(|e| e.vhm == Some(sup)
        && matches!(e.kind, EventKind::IrqDelivered { vector: 2, arg, .. } if arg == 2 << 32)));
    // The injected kill fired at its time.
    let victim = id_of(&events, "victim");
    let killed = events
        .iter()
        .find(|e| e.vhm == Some(victim) && matches!(e.kind, EventKind::FaultInjected { .. }))
        .unwrap();
    assert_eq!(killed.time_ns, 500_000);
    // The bystander behaves exactly as when it runs alone.
    let (_d, alone) = prepare_inline(
        "[host]\nseed = 3\ntime_limit_ns = 5_000_000\n[[vhm]]\nname = \"bystander\"\n[vhm.k]\nmodule = \"hello.wat\"\n",
        &[("hello.wat", &std::fs::read_to_string(examples().join("guests/hello.wat")).unwrap())],
    );
    let (_, alone) = run(&alone);
    assert_eq!(
        xdv_trace::project(&events, "bystander"),
        xdv_trace::project(&alone, "bystander")
    );
}

#[test]
fn event_count_faults_and_every_injected_class() {
    for (class, check) in [
        ("trap", "fault: trap"),
        ("fuel-exhausted", "fault: fuel-exhausted"),
        ("bad-hypercall", "fault: bad-hypercall"),
        ("kill", "killed"),
    ] {
        let m = format!(
            "[host]\ntime_limit_ns = 1_000_000\nslice_fuel = 1000\n[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"spin.wat\"\n\
             [[fault]]\nvhm = \"a\"\nafter_events = 20\nclass = \"{class}\"\n"
        );
        let (_d, p) = prepare_inline(&m, &[("spin.wat", SPIN)]);
        let (s, events) = run(&p);
        assert_eq!(s.vhms[0].exit, check, "{class}");
        let at = events
            .iter()
            .position(|e| matches!(e.kind, EventKind::FaultInjected { .. }))
            .unwrap();
        assert_eq!(at, 20, "{class}: fires once 20 events are recorded");
    }
}

#[test]
fn fault_manifest_errors_name_their_place() {
    for (m, want) in [
        ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[[fault]]\nvhm = \"b\"\nat_ns = 1\nclass = \"trap\"\n", "m.toml:6:7: fault[0].vhm: no VHM named \"b\""),
        ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[[fault]]\nvhm = \"a\"\nat_ns = 1\nclass = \"boom\"\n", "fault[0].class: \"boom\": expected trap"),
        ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[[fault]]\nvhm = \"a\"\nclass = \"trap\"\n", "give exactly one of at_ns"),
        ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.policy]\non_fault = \"notify-parent\"\n", "notify-parent needs a parent"),
        ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.policy]\non_fault = \"retry\"\n", "expected \"kill\", \"restart\" or \"notify-parent\""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("g.wat"), SPIN).unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, m).unwrap();
        let err = match prepare(&path) {
            Ok(_) => panic!("accepted: {m}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{err}\n  does not contain\n{want}");
    }
}
