//! Property tests of the capability space and budgets over random operation sequences.

use proptest::prelude::*;
use xdv_core::budget::{Budget, Quota};
use xdv_core::cap::{rights, CapSpace, Object};
use xdv_core::VhmId;

#[derive(Debug, Clone)]
enum Op {
    Derive {
        holder: u8,
        pick: u8,
        rights: u32,
        badge: u8,
        into: u8,
    },
    Revoke {
        holder: u8,
        pick: u8,
    },
    Delete {
        holder: u8,
        pick: u8,
    },
    Forge {
        holder: u8,
        value: u64,
    },
    Purge {
        holder: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8, any::<u8>(), 0..512u32, 0..3u8, 0..3u8).prop_map(|(holder, pick, rights, badge, into)| Op::Derive { holder, pick, rights, badge, into }),
        1 => (0..3u8, any::<u8>()).prop_map(|(holder, pick)| Op::Revoke { holder, pick }),
        1 => (0..3u8, any::<u8>()).prop_map(|(holder, pick)| Op::Delete { holder, pick }),
        1 => (0..3u8, any::<u64>()).prop_map(|(holder, value)| Op::Forge { holder, value }),
        1 => (1..3u8).prop_map(|holder| Op::Purge { holder }),
    ]
}

/// The handles a VHM holds, in slot order.
fn held(s: &CapSpace, v: u8) -> Vec<u64> {
    s.held_by(VhmId(v.into())).map(|n| n.handle.0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed), failure_persistence: None, ..ProptestConfig::default() })]

    /// No capability ever holds rights its source lacks; after a revoke none of the removed
    /// handles resolve; forged values never resolve to anything but a handle the VHM holds; the
    /// structure's invariants hold after every step.
    #[test]
    fn capabilities_never_amplify_and_revoke_is_complete(ops in proptest::collection::vec(op(), 1..120)) {
        let mut s = CapSpace::default();
        for v in 0..3u32 {
            s.register(VhmId(v), &format!("vhm-{v}"));
        }
        s.mint(VhmId(0), Object::Endpoint(0, 0), rights::ALL, 0);
        s.mint(VhmId(0), Object::Module(xdv_core::Hash32::of(b"m")), rights::ALL, 0);
        for op in ops {
            match op {
                Op::Derive { holder, pick, rights: r, badge, into } => {
                    let hs = held(&s, holder);
                    if hs.is_empty() { continue; }
                    let h = hs[pick as usize % hs.len()];
                    let src = s.node(s.resolve(VhmId(holder.into()), h).unwrap()).clone();
                    match s.derive(VhmId(holder.into()), h, r, u64::from(badge), VhmId(into.into())) {
                        Ok(c) => {
                            let n = s.node(s.resolve(VhmId(into.into()), c.0).unwrap());
                            prop_assert_eq!(n.rights & !src.rights, 0, "amplified");
                            prop_assert_eq!(n.object, src.object);
                            prop_assert!(r & !src.rights == 0, "accepted a request beyond the source");
                        }
                        Err(_) => prop_assert!(
                            r & !src.rights != 0
                                || (into == holder && src.rights & rights::DERIVE == 0)
                                || (into != holder && src.rights & rights::TRANSFER == 0)
                                || (src.badge != 0 && badge != 0 && u64::from(badge) != src.badge),
                            "refused a valid derivation"
                        ),
                    }
                }
                Op::Revoke { holder, pick } => {
                    let hs = held(&s, holder);
                    if hs.is_empty() { continue; }
                    let h = hs[pick as usize % hs.len()];
                    let removed = s.revoke(VhmId(holder.into()), h).unwrap();
                    for (v, c) in &removed {
                        prop_assert!(s.resolve(*v, c.0).is_err(), "a revoked descendant still resolves");
                    }
                    prop_assert!(s.resolve(VhmId(holder.into()), h).is_ok(), "revoke keeps the capability itself");
                }
                Op::Delete { holder, pick } => {
                    let hs = held(&s, holder);
                    if hs.is_empty() { continue; }
                    let h = hs[pick as usize % hs.len()];
                    s.delete(VhmId(holder.into()), h).unwrap();
                    prop_assert!(s.resolve(VhmId(holder.into()), h).is_err());
                }
                Op::Forge { holder, value } => {
                    if s.resolve(VhmId(holder.into()), value).is_ok() {
                        prop_assert!(held(&s, holder).contains(&value), "a forged value resolved");
                    }
                }
                Op::Purge { holder } => {
                    s.purge(VhmId(holder.into()), &[]);
                    prop_assert_eq!(s.count(VhmId(holder.into())), 0);
                }
            }
            prop_assert_eq!(s.check(), Ok(()));
        }
    }

    /// Carving and giving back in any order keeps every budget conserved, and a carve that is
    /// refused changes nothing.
    #[test]
    fn budgets_are_conserved(steps in proptest::collection::vec((0..3u8, 0..4u32, 0..(3u64 << 16), 0..2000u64, 0..3u32), 1..80)) {
        let quota = Quota { vcpus: 6, memory: 6 << 16, fuel: 10_000, depth: 3, children: 4 };
        let mut b = Budget::new(quota, 1, 1 << 16);
        let mut live: Vec<Quota> = Vec::new();
        for (kind, vcpus, memory, fuel, depth) in steps {
            match kind {
                0 => {
                    let child = Quota { vcpus, memory, fuel, depth, children: 1 };
                    let before = b;
                    if b.carve(&child).is_ok() { live.push(child) } else { prop_assert_eq!(b, before) }
                }
                1 if !live.is_empty() => {
                    let child = live.remove(0);
                    b.give_back(&child, child.fuel / 2);
                }
                _ => {
                    let spend = fuel.min(b.fuel_left());
                    b.spend(spend);
                }
            }
            prop_assert!(b.conserved());
            let sum = live.iter().fold(Quota::default(), |a, q| Quota { vcpus: a.vcpus + q.vcpus, memory: a.memory + q.memory, fuel: a.fuel + q.fuel, depth: 0, children: a.children + 1 });
            prop_assert_eq!((sum.vcpus, sum.memory, sum.fuel, sum.children), (b.carved.vcpus, b.carved.memory, b.carved.fuel, b.carved.children));
        }
    }
}
