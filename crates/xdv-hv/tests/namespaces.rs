//! What a VHM can observe depends only on its own history and its explicit links: its handles,
//! the numbers `cap_info` reports, the values its calls return and the interrupts it gets are
//! the same alone and beside any neighbours it has no link to, including a neighbour whose
//! handle tag is its own and neighbours that create many channels and capabilities.
//!
//! The comparison is on projections (`xdv_trace::project`: VHM ids mapped to names) with channel
//! numbers mapped to their order of first appearance in the VHM's events: host-wide channel
//! numbers appear only in the trace (which the guest cannot read), never in what the guest sees.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use xdv_core::cap::Object;
use xdv_core::{Event, EventKind};

/// Creates three channels, reads their endpoints' `cap_info`, sends itself a badged, derived
/// endpoint over each (raising its own IPC interrupt, whose `arg` the handler logs), receives it,
/// revokes, drops, derives and drops budget copies, and enumerates its endpoints; every handle,
/// description and received header is logged.
const SUBJECT: &str = r#"(module
  (import "xdv" "log" (func $log (param i32 i32) (result i32)))
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
  (import "xdv" "cap_revoke" (func $cap_revoke (param i64) (result i32)))
  (import "xdv" "cap_drop" (func $cap_drop (param i64) (result i32)))
  (import "xdv" "cap_info" (func $cap_info (param i64 i32) (result i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "ipc_channel" (func $ipc_channel (param i32 i32) (result i32)))
  (import "xdv" "ipc_send" (func $ipc_send (param i64 i32 i32 i64 i32) (result i32)))
  (import "xdv" "ipc_recv" (func $ipc_recv (param i64 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 200) "hello")
  (func (export "xdv_irq") (param $vector i32) (param $arg i64)
    (i64.store (i32.const 400) (local.get $arg))
    (drop (call $log (i32.const 400) (i32.const 8))))
  (func (export "main")
    (local $r i32) (local $i i32) (local $e0 i64) (local $e1 i64) (local $d i64) (local $b i64) (local $h i64)
    (local.set $b (call $cap_find (i32.const 2) (i32.const 0)))
    (loop $round
      (drop (call $ipc_channel (i32.const 2) (i32.const 0)))
      (local.set $e0 (i64.load (i32.const 0)))
      (local.set $e1 (i64.load (i32.const 8)))
      (drop (call $cap_info (local.get $e0) (i32.const 64)))
      (drop (call $cap_info (local.get $e1) (i32.const 88)))
      (drop (call $log (i32.const 0) (i32.const 112)))
      ;; inspect|derive|transfer|send, badged with the round number
      (local.set $d (call $cap_derive (local.get $e0) (i32.const 71)
        (i64.extend_i32_u (i32.add (local.get $r) (i32.const 1)))))
      (drop (call $ipc_send (local.get $d) (i32.const 200) (i32.const 5) (local.get $d) (i32.const 0)))
      (drop (call $ipc_recv (local.get $e1) (i32.const 300) (i32.const 64)))
      (drop (call $log (i32.const 300) (i32.const 21)))
      (drop (call $cap_info (i64.load (i32.const 308)) (i32.const 64)))
      (drop (call $log (i32.const 64) (i32.const 24)))
      (drop (call $cap_revoke (local.get $e0)))
      (if (i32.eq (local.get $r) (i32.const 1))
        (then (drop (call $cap_drop (local.get $e1)))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br_if $round (i32.lt_u (local.get $r) (i32.const 3))))
    (loop $many
      (local.set $h (call $cap_derive (local.get $b) (i32.const 1) (i64.const 0)))
      (drop (call $cap_info (local.get $h) (i32.const 64)))
      (if (i32.rem_u (local.get $i) (i32.const 3))
        (then (drop (call $cap_drop (local.get $h)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $many (i32.lt_u (local.get $i) (i32.const 30))))
    (local.set $i (i32.const 0))
    (loop $find
      (i64.store (i32.const 16) (call $cap_find (i32.const 4) (local.get $i)))
      (drop (call $log (i32.const 16) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $find (i32.lt_u (local.get $i) (i32.const 6))))
    (call $exit (i32.const 0))))"#;

/// Creates 1 to 40 channels (as many as its seeded random stream says), derives, inspects, sends
/// on and drops endpoints, then derives and drops up to 200 budget copies.
const NOISY: &str = r#"(module
  (import "xdv" "exit" (func $exit (param i32)))
  (import "xdv" "random" (func $random (result i64)))
  (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
  (import "xdv" "cap_drop" (func $cap_drop (param i64) (result i32)))
  (import "xdv" "cap_info" (func $cap_info (param i64 i32) (result i32)))
  (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
  (import "xdv" "ipc_channel" (func $ipc_channel (param i32 i32) (result i32)))
  (import "xdv" "ipc_send" (func $ipc_send (param i64 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "main")
    (local $n i32) (local $e0 i64) (local $h i64) (local $b i64)
    (local.set $b (call $cap_find (i32.const 2) (i32.const 0)))
    (local.set $n (i32.add (i32.wrap_i64 (i64.rem_u (call $random) (i64.const 40))) (i32.const 1)))
    (loop $ch
      (drop (call $ipc_channel (i32.const 1) (i32.const 0)))
      (local.set $e0 (i64.load (i32.const 0)))
      (local.set $h (call $cap_derive (local.get $e0) (i32.const 65) (i64.const 0)))
      (drop (call $cap_info (local.get $h) (i32.const 64)))
      (drop (call $ipc_send (local.get $e0) (i32.const 100) (i32.const 3) (i64.const 0) (i32.const 0)))
      (if (i32.and (local.get $n) (i32.const 1))
        (then (drop (call $cap_drop (local.get $h)))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $ch (i32.gt_s (local.get $n) (i32.const 0))))
    (local.set $n (i32.wrap_i64 (i64.rem_u (call $random) (i64.const 200))))
    (loop $d
      (local.set $h (call $cap_derive (local.get $b) (i32.const 1) (i64.const 0)))
      (if (i32.and (local.get $n) (i32.const 1))
        (then (drop (call $cap_drop (local.get $h)))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $d (i32.gt_s (local.get $n) (i32.const 0))))
    (call $exit (i32.const 0))))"#;

const SUBJECT_NAME: &str = "subject";

/// A VHM's handle tag as docs/abi.md defines it: the first 4 bytes (little-endian) of
/// BLAKE3(name), masked to 20 bits, 0 replaced by 1.
fn tag_of(name: &str) -> u32 {
    let h = blake3::hash(name.as_bytes());
    (u32::from_le_bytes(h.as_bytes()[..4].try_into().unwrap()) & 0xF_FFFF).max(1)
}

/// A VHM name other than the subject's with the subject's handle tag, found by brute force over
/// the 20-bit tag space (about a million hashes; BLAKE3 is optimised in test builds too).
fn collider() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let tag = tag_of(SUBJECT_NAME);
        (0u64..)
            .map(|i| format!("nb-{i}"))
            .find(|n| tag_of(n) == tag)
            .expect("a colliding name exists")
    })
}

/// One neighbour: its name, whether it is a static child of the previous neighbour, whether it
/// runs the channel-making guest (else it spins until its fuel runs out).
#[derive(Debug, Clone)]
struct Neighbour {
    name: String,
    child_of_previous: bool,
    noisy: bool,
    before: bool,
}

fn vhm_table(name: &str, module: &str, parent: Option<&str>, fuel: u64) -> String {
    let (quota, depth, vcpus) = if parent.is_some() {
        ("256 KiB", 0, 1)
    } else {
        ("1 MiB", 2, 2)
    };
    let parent = parent.map_or(String::new(), |p| format!("parent = \"{p}\"\n"));
    format!(
        "[[vhm]]\nname = \"{name}\"\n{parent}[vhm.k]\nmodule = \"{module}\"\nmemory_limit = \"64 KiB\"\n\
         [vhm.policy]\ncreate_channels = true\nfuel_quota = {fuel}\nmemory_quota = \"{quota}\"\nmax_depth = {depth}\nmax_children = {depth}\nmax_vcpus = {vcpus}\n"
    )
}

/// A manifest with the subject and `neighbours` (in order, those marked `before` above it), and
/// a manifest channel between every two consecutive top-level neighbours.
fn manifest(seed: u64, neighbours: &[Neighbour]) -> String {
    let mut m = format!("[host]\nseed = {seed}\nslice_fuel = 2000\ntime_limit_ns = 20_000_000\n");
    let mut tops = Vec::new();
    let write = |m: &mut String, list: &[&Neighbour], tops: &mut Vec<String>| {
        let mut previous: Option<&str> = None;
        for n in list {
            let parent = if n.child_of_previous { previous } else { None };
            let module = if n.noisy { "noisy.wat" } else { "spin.wat" };
            // A static child's quota is carved from its parent's.
            *m += &vhm_table(
                &n.name,
                module,
                parent,
                if parent.is_some() { 500_000 } else { 2_000_000 },
            );
            if parent.is_none() {
                tops.push(n.name.clone());
                previous = Some(&n.name);
            } else {
                previous = None;
            }
        }
    };
    let before: Vec<&Neighbour> = neighbours.iter().filter(|n| n.before).collect();
    let after: Vec<&Neighbour> = neighbours.iter().filter(|n| !n.before).collect();
    write(&mut m, &before, &mut tops);
    m += &vhm_table(SUBJECT_NAME, "subject.wat", None, 5_000_000);
    write(&mut m, &after, &mut tops);
    for pair in tops.windows(2) {
        m += &format!(
            "[[channel]]\nends = [\"{}\", \"{}\"]\ncapacity = 2\n",
            pair[0], pair[1]
        );
    }
    m
}

/// Channel numbers in a projection replaced by their order of first appearance.
fn map_channels(projection: Vec<(u64, EventKind)>) -> Vec<(u64, EventKind)> {
    let mut seen: BTreeMap<u32, u32> = BTreeMap::new();
    let mut map = |c: &mut u32| {
        let next = seen.len() as u32;
        *c = *seen.entry(*c).or_insert(next);
    };
    projection
        .into_iter()
        .map(|(t, mut e)| {
            match &mut e {
                EventKind::ChannelCreated { channel, .. }
                | EventKind::IpcSent { channel, .. }
                | EventKind::IpcDelivered { channel, .. }
                | EventKind::IpcDropped { channel, .. }
                | EventKind::IpcClosed { channel, .. } => map(channel),
                EventKind::CapCreated {
                    object: Object::Endpoint(channel, _),
                    ..
                } => map(channel),
                _ => {}
            }
            (t, e)
        })
        .collect()
}

/// The host-wide channel numbers the subject's events name, in order.
fn raw_channels(events: &[Event]) -> Vec<u32> {
    xdv_trace::project(events, SUBJECT_NAME)
        .into_iter()
        .filter_map(|(_, e)| match e {
            EventKind::ChannelCreated { channel, .. } => Some(channel),
            _ => None,
        })
        .collect()
}

fn run_with(seed: u64, neighbours: &[Neighbour]) -> Vec<Event> {
    let (_d, p) = prepare_inline(
        &manifest(seed, neighbours),
        &[
            ("subject.wat", SUBJECT),
            ("noisy.wat", NOISY),
            ("spin.wat", SPIN),
        ],
    );
    let (_, events) = xdv_hv::run_in_memory(&p, seed).unwrap();
    events
}

/// What the subject's guest observed: every value its calls returned (handles included), every
/// byte it logged (handles, `cap_info` descriptions, received headers, interrupt arguments),
/// in order.
fn observed(events: &[Event]) -> Vec<String> {
    xdv_trace::project(events, SUBJECT_NAME)
        .into_iter()
        .filter_map(|(_, e)| match e {
            EventKind::Hypercall { call, ret, .. } => Some(format!("{call:?} -> {ret}")),
            EventKind::VcpuWoken { ret, .. } => Some(format!("woken -> {ret}")),
            EventKind::IrqDelivered { vector, arg, .. } => Some(format!("irq {vector} ({arg})")),
            _ => None,
        })
        .collect()
}

/// Checks the subject beside `neighbours` against the subject alone.
fn same_as_alone(seed: u64, neighbours: &[Neighbour]) -> Result<(), TestCaseError> {
    let alone = run_with(seed, &[]);
    let beside = run_with(seed, neighbours);
    let subject_exit = |events: &[Event]| {
        events.iter().find_map(|e| match &e.kind {
            EventKind::VhmExited { reason, .. } if e.vhm == Some(id_of(events, SUBJECT_NAME)) => {
                Some(format!("{reason:?}"))
            }
            _ => None,
        })
    };
    prop_assert_eq!(subject_exit(&alone), Some("Exit(0)".to_string()));
    let diff = first_difference(&observed(&alone), &observed(&beside));
    prop_assert!(
        diff.is_none(),
        "the guest observes a difference: {:?}",
        diff
    );
    let diff = first_difference(
        &map_channels(xdv_trace::project(&alone, SUBJECT_NAME)),
        &map_channels(xdv_trace::project(&beside, SUBJECT_NAME)),
    );
    prop_assert!(diff.is_none(), "the projections differ: {:?}", diff);
    Ok(())
}

/// The first position where two sequences differ, with both items there (`None`: past the end).
fn first_difference<T: PartialEq + std::fmt::Debug>(
    a: &[T],
    b: &[T],
) -> Option<(usize, String, String)> {
    (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .map(|i| (i, format!("{:?}", a.get(i)), format!("{:?}", b.get(i))))
}

fn neighbour() -> impl Strategy<Value = Neighbour> {
    (
        0u32..1000,
        any::<bool>(),
        proptest::bool::weighted(0.8),
        any::<bool>(),
    )
        .prop_map(|(n, child_of_previous, noisy, before)| Neighbour {
            name: format!("n{n}"),
            child_of_previous,
            noisy,
            before,
        })
}

/// The subject's guest really sees handles, endpoint numbers, received headers and its IPC
/// interrupt: the test would notice them moving.
#[test]
fn the_subject_observes_handles_numbers_and_interrupts() {
    let events = run_with(7, &[]);
    let seen = observed(&events);
    assert!(
        seen.iter().filter(|s| s.starts_with("irq 1")).count() >= 3,
        "{seen:#?}"
    );
    assert!(seen.iter().any(|s| s.starts_with("CapInfo")));
    assert!(seen.iter().any(|s| s.starts_with("IpcRecv")));
    assert_eq!(raw_channels(&events), vec![0, 1, 2]);
}

/// A neighbour declared above the subject, holding capabilities under the subject's tag when the
/// subject's table is made, and another creating channels first: the subject sees exactly what
/// it sees alone, although its channels' host numbers moved.
#[test]
fn a_neighbour_with_the_subjects_tag_changes_nothing_it_sees() {
    let name = collider();
    assert_eq!(tag_of(name), tag_of(SUBJECT_NAME));
    let neighbours = vec![
        Neighbour {
            name: "parent-n".into(),
            child_of_previous: false,
            noisy: true,
            before: true,
        },
        // The review's case: a child of an unrelated VHM whose name collides.
        Neighbour {
            name: name.to_string(),
            child_of_previous: true,
            noisy: true,
            before: true,
        },
        Neighbour {
            name: "other-n".into(),
            child_of_previous: false,
            noisy: true,
            before: true,
        },
    ];
    let beside = run_with(7, &neighbours);
    // The collider really holds handles under the subject's tag.
    let tag = tag_of(SUBJECT_NAME);
    let theirs = id_of(&beside, name);
    assert!(beside.iter().any(|e| e.vhm == Some(theirs)
        && matches!(&e.kind, EventKind::CapCreated { cap, .. } if cap.tag() == tag)));
    assert_ne!(
        raw_channels(&beside),
        raw_channels(&run_with(7, &[])),
        "the subject's channels have other host numbers beside the neighbours"
    );
    same_as_alone(7, &neighbours).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, rng_seed: proptest::test_runner::RngSeed::Fixed(0x7a9), failure_persistence: None, ..ProptestConfig::default() })]

    /// Random neighbours above and below the subject, some static children of others, most
    /// creating channels and capabilities, one possibly with the subject's tag.
    #[test]
    fn a_vhm_observes_the_same_alone_and_beside_random_neighbours(
        seed in 0u64..1000,
        mut neighbours in proptest::collection::vec(neighbour(), 1..5),
        collide in proptest::option::of(0usize..5),
    ) {
        if let Some(i) = collide {
            let i = i % neighbours.len();
            neighbours[i].name = collider().to_string();
        }
        neighbours.sort_by(|a, b| a.name.cmp(&b.name));
        neighbours.dedup_by(|a, b| a.name == b.name);
        same_as_alone(seed, &neighbours)?;
    }
}
