//! IPC: delivery with badges and capabilities, bounded queues, peer death; hostile isolation.

mod common;

use common::*;
use xdv_core::cap::rights;
use xdv_core::{EventKind, HypercallRecord};
use xdv_k::abi;

fn rets(events: &[xdv_core::Event], vhm: &str, call: &str) -> Vec<i64> {
    let id = id_of(events, vhm);
    events
        .iter()
        .filter(|e| e.vhm == Some(id))
        .filter_map(|e| match &e.kind {
            EventKind::Hypercall { call: c, ret, .. } if c.name() == call => Some(*ret),
            _ => None,
        })
        .collect()
}

#[test]
fn client_server_exchange_carries_badges_and_a_derived_capability() {
    let p = xdv_hv::prepare(&examples().join("client-server.toml")).unwrap();
    let (s, events) = run(&p);
    assert!(s.vhms.iter().all(|v| v.exit == "exit(0)"), "{:#?}", s.vhms);
    let logs: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Hypercall {
                call: HypercallRecord::Log { bytes, .. },
                ..
            } => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect();
    assert!(
        logs.contains(&"client: reply: pong: hello server".to_string()),
        "{logs:?}"
    );
    // The server received the client's badge (1) and a capability whose rights are exactly the
    // send-only copy the client derived.
    let delivered = events.iter().find_map(|e| match &e.kind {
        EventKind::IpcDelivered {
            badge,
            cap: Some(c),
            ..
        } => Some((*badge, *c, e.vhm.unwrap())),
        _ => None,
    });
    let (badge, cap, server) = delivered.expect("a delivery with a capability");
    assert_eq!(badge, 1);
    let created = events.iter().find_map(|e| match &e.kind {
        EventKind::CapCreated {
            cap: c,
            rights: r,
            from: Some(_),
            ..
        } if *c == cap && e.vhm == Some(server) => Some(*r),
        _ => None,
    });
    assert_eq!(
        created,
        Some((rights::INSPECT | rights::TRANSFER | rights::SEND).bits())
    );
}

const SENDER: &str = r#"(module
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "ipc_send" (func $send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "main") (local $ep i64)
    (local.set $ep (call $cap_find (i32.const 4) (i32.const 0)))
    (drop (call $send (local.get $ep) (i32.const 0) (i32.const 4) (i64.const 0) (i32.const 0)))
    (drop (call $send (local.get $ep) (i32.const 0) (i32.const 4) (i64.const 0) (i32.const 0)))
    (drop (call $send (local.get $ep) (i32.const 0) (i32.const 4) (i64.const 0) (i32.const 0)))
    ;; park while full; the receiver's death wakes it with E_CLOSED
    (drop (call $send (local.get $ep) (i32.const 0) (i32.const 4) (i64.const 0) (i32.const 1)))
    (call $exit (i32.const 0))))"#;

const IDLE_THEN_EXIT: &str = r#"(module
  (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
  (func (export "main") (drop (call $sleep (i64.const 1000000)))))"#;

#[test]
fn a_full_queue_refuses_or_parks_and_a_dead_peer_closes_the_channel() {
    let m = "[[vhm]]\nname = \"tx\"\n[vhm.k]\nmodule = \"tx.wat\"\n[[vhm]]\nname = \"rx\"\n[vhm.k]\nmodule = \"rx.wat\"\n\
             [[channel]]\nends = [\"tx\", \"rx\"]\ncapacity = 1\n";
    let (_d, p) = prepare_inline(m, &[("tx.wat", SENDER), ("rx.wat", IDLE_THEN_EXIT)]);
    let (s, events) = run(&p);
    // 1st queued, 2nd and 3rd refused as full, 4th parked (recorded 0) and then woken by the close.
    assert_eq!(
        rets(&events, "tx", "ipc_send"),
        vec![0, abi::E_FULL, abi::E_FULL, 0]
    );
    assert_eq!(s.vhms[0].exit, "exit(0)");
    let closed = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::IpcClosed { .. }))
        .unwrap();
    let dropped = events
        .iter()
        .position(|e| matches!(e.kind, EventKind::IpcDropped { messages: 1, .. }))
        .unwrap();
    assert!(dropped < closed);
    assert!(events[closed..]
        .iter()
        .any(|e| matches!(e.kind, EventKind::VhmExited { .. })
            && e.vhm == Some(id_of(&events, "tx"))));
}

const RECEIVER: &str = r#"(module
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "ipc_recv" (func $recv (param i64 i32 i32) (result i64)))
  (import "xdv" "exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "main")
    ;; parks: nobody ever sends; the peer's exit closes the channel
    (call $exit (i32.wrap_i64 (call $recv (call $cap_find (i32.const 4) (i32.const 0)) (i32.const 0) (i32.const 64))))))"#;

#[test]
fn a_receiver_parked_on_a_dead_peer_gets_e_closed() {
    let m = "[[vhm]]\nname = \"rx\"\n[vhm.k]\nmodule = \"rx.wat\"\n[[vhm]]\nname = \"peer\"\n[vhm.k]\nmodule = \"peer.wat\"\n\
             [[channel]]\nends = [\"rx\", \"peer\"]\n";
    let (_d, p) = prepare_inline(m, &[("rx.wat", RECEIVER), ("peer.wat", IDLE_THEN_EXIT)]);
    let (s, _) = run(&p);
    assert_eq!(s.vhms[0].exit, format!("exit({})", abi::E_CLOSED));
    assert_eq!(
        s.vhms[0].end_ns, s.vhms[1].end_ns,
        "woken when the peer stopped"
    );
}

#[test]
fn a_bystander_runs_the_same_beside_the_hostile_guest() {
    let p = xdv_hv::prepare(&examples().join("hostile.toml")).unwrap();
    let (s, events) = run(&p);
    assert_eq!(
        s.vhms[1].exit, "exit(0)",
        "the hostile guest counted no successful attempt"
    );
    let refused = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Refused { .. }))
        .count();
    assert_eq!(refused, 9, "each attempt refused and recorded");
    let hello = std::fs::read_to_string(examples().join("guests/hello.wat")).unwrap();
    let alone = "[host]\nseed = 13\n[[vhm]]\nname = \"bystander\"\n[vhm.k]\nmodule = \"hello.wat\"\nmemory_limit = \"64 KiB\"\n";
    let (_d, p2) = prepare_inline(alone, &[("hello.wat", &hello)]);
    let (_, alone) = run(&p2);
    assert_eq!(
        xdv_trace::project(&alone, "bystander"),
        xdv_trace::project(&events, "bystander")
    );
}

const SELF_SEND: &str = r#"(module
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "ipc_channel" (func $channel (param i32 i32) (result i32)))
  (import "xdv" "ipc_send" (func $send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "ipc_recv" (func $recv (param i64 i32 i32) (result i64)))
  (import "xdv" "exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "main")
    (drop (call $channel (i32.const 1) (i32.const 256)))
    ;; send end 0 a capability (its own module) through end 1, receive it at end 0
    (drop (call $send (i64.load (i32.const 264)) (i32.const 0) (i32.const 1) (call $cap_find (i32.const 3) (i32.const 0)) (i32.const 0)))
    (drop (call $recv (i64.load (i32.const 256)) (i32.const 512) (i32.const 64)))
    ;; exit 0 when a capability arrived
    (call $exit (i64.eqz (i64.load (i32.const 520))))))"#;

#[test]
fn a_vhm_can_send_a_capability_to_itself() {
    let m = "[[vhm]]\nname = \"me\"\n[vhm.k]\nmodule = \"me.wat\"\n[vhm.policy]\ncreate_channels = true\n";
    let (_d, p) = prepare_inline(m, &[("me.wat", SELF_SEND)]);
    let (s, _) = run(&p);
    assert_eq!(s.vhms[0].exit, "exit(0)");
}
