//! Property tests of the capability space and budgets over random operation sequences: the
//! space against an independent model of per-VHM tables, a VHM's table alone and beside
//! unlinked neighbours (one with a colliding tag), and the documented host cost per entry against
//! a counting allocator.

use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use xdv_core::budget::{Budget, Quota};
use xdv_core::cap::{
    rights, CapError, CapSpace, ChannelId, Object, Rights, CAP_CHANNEL_BYTES, CAP_ENTRY_BYTES,
    CAP_SLOT_BYTES,
};
use xdv_core::{CapId, Hash32, VhmId};

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
                    match s.derive(VhmId(holder.into()), h, Rights::from_bits_retain(r), u64::from(badge), VhmId(into.into())) {
                        Ok(c) => {
                            let n = s.node(s.resolve(VhmId(into.into()), c.0).unwrap());
                            prop_assert_eq!(n.rights.bits() & !src.rights.bits(), 0, "amplified");
                            prop_assert_eq!(n.object, src.object);
                            prop_assert!(r & !src.rights.bits() == 0, "accepted a request beyond the source");
                        }
                        Err(_) => prop_assert!(
                            r & !src.rights.bits() != 0
                                || (into == holder && !src.rights.contains(rights::DERIVE))
                                || (into != holder && !src.rights.contains(rights::TRANSFER))
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

// ---------------------------------------------------------------------------------------------
// An independent model of per-VHM tables and the derivation tree.

/// One capability of the model: never reclaimed, marked dead instead.
#[derive(Debug, Clone)]
struct MCap {
    owner: u8,
    object: Object,
    rights: u32,
    badge: u64,
    handle: u64,
    /// The nearest live ancestor (kept so by splicing on delete).
    parent: Option<usize>,
    alive: bool,
}

#[derive(Debug, Clone, Default)]
struct MTable {
    tag: u32,
    /// Generation of each slot (index 0 unused); `None` in `at` when empty.
    gens: Vec<u32>,
    at: Vec<Option<usize>>,
    numbers: BTreeMap<ChannelId, u64>,
    anchored: BTreeSet<ChannelId>,
    next_number: u64,
}

#[derive(Debug, Clone, Default)]
struct Model {
    caps: Vec<MCap>,
    tables: Vec<MTable>,
}

const GEN_MAX: u32 = (1 << 19) - 1;

/// The tag the ABI documents: BLAKE3 of the name, first 4 bytes little-endian, 20 bits, 0 → 1.
fn documented_tag(name: &str) -> u32 {
    let h = blake3::hash(name.as_bytes());
    let w = u32::from_le_bytes(h.as_bytes()[..4].try_into().unwrap()) & ((1 << 20) - 1);
    w.max(1)
}

impl Model {
    fn register(&mut self, name: &str) {
        self.tables.push(MTable {
            tag: documented_tag(name),
            gens: vec![0],
            at: vec![None],
            ..MTable::default()
        });
    }

    fn held_on(&self, v: u8, channel: ChannelId) -> bool {
        self.tables[v as usize]
            .at
            .iter()
            .flatten()
            .any(|&i| matches!(self.caps[i].object, Object::Endpoint(c, _) if c == channel))
    }

    fn insert(
        &mut self,
        owner: u8,
        object: Object,
        rights: u32,
        badge: u64,
        parent: Option<usize>,
    ) -> u64 {
        let id = self.caps.len();
        let t = &mut self.tables[owner as usize];
        let slot = (1..t.gens.len())
            .find(|&s| t.at[s].is_none() && t.gens[s] < GEN_MAX)
            .unwrap_or_else(|| {
                t.gens.push(0);
                t.at.push(None);
                t.gens.len() - 1
            });
        t.gens[slot] += 1;
        t.at[slot] = Some(id);
        let handle = slot as u64 | (u64::from(t.tag) << 24) | (u64::from(t.gens[slot]) << 44);
        if let Object::Endpoint(c, _) = object {
            if !t.numbers.contains_key(&c) {
                t.numbers.insert(c, t.next_number);
                t.next_number += 1;
            }
        }
        self.caps.push(MCap {
            owner,
            object,
            rights: rights & object.valid_rights().bits(),
            badge,
            handle,
            parent,
            alive: true,
        });
        handle
    }

    fn resolve(&self, v: u8, handle: u64) -> Option<usize> {
        let t = &self.tables[v as usize];
        let slot = (handle & 0xFF_FFFF) as usize;
        let tag = ((handle >> 24) & 0xF_FFFF) as u32;
        let generation = (handle >> 44) as u32;
        (slot != 0 && slot < t.gens.len() && tag == t.tag && t.gens[slot] == generation)
            .then(|| t.at[slot])
            .flatten()
    }

    /// Removes one capability, its children moving up to its parent.
    fn remove(&mut self, id: usize) -> (VhmId, CapId) {
        let parent = self.caps[id].parent;
        for c in &mut self.caps {
            if c.alive && c.parent == Some(id) {
                c.parent = parent;
            }
        }
        self.kill(id)
    }

    fn kill(&mut self, id: usize) -> (VhmId, CapId) {
        let c = &mut self.caps[id];
        c.alive = false;
        let (owner, handle, object) = (c.owner, c.handle, c.object);
        let t = &mut self.tables[owner as usize];
        t.at[(handle & 0xFF_FFFF) as usize] = None;
        if let Object::Endpoint(ch, _) = object {
            if !self.held_on(owner, ch) && !self.tables[owner as usize].anchored.contains(&ch) {
                self.tables[owner as usize].numbers.remove(&ch);
            }
        }
        (VhmId(owner.into()), CapId(handle))
    }

    fn descends_from(&self, mut id: usize, root: usize) -> bool {
        while let Some(p) = self.caps[id].parent {
            if p == root {
                return true;
            }
            id = p;
        }
        false
    }

    fn revoke(&mut self, root: usize) -> Vec<(VhmId, CapId)> {
        let ids: Vec<usize> = (0..self.caps.len())
            .filter(|&i| self.caps[i].alive && self.descends_from(i, root))
            .collect();
        ids.into_iter().map(|i| self.kill(i)).collect()
    }

    fn purge(&mut self, v: u8, dead: &[Object]) -> Vec<(VhmId, CapId)> {
        let ids: Vec<usize> = (0..self.caps.len())
            .filter(|&i| {
                self.caps[i].alive
                    && (self.caps[i].owner == v || dead.contains(&self.caps[i].object))
            })
            .collect();
        let out = ids.into_iter().map(|i| self.remove(i)).collect();
        let t = &mut self.tables[v as usize];
        t.numbers.clear();
        t.anchored.clear();
        out
    }

    fn footprint(&self, v: u8) -> u64 {
        let t = &self.tables[v as usize];
        let live = t.at.iter().flatten().count() as u64;
        live * CAP_ENTRY_BYTES
            + t.gens.len() as u64 * CAP_SLOT_BYTES
            + t.numbers.len() as u64 * CAP_CHANNEL_BYTES
    }

    /// What cap_info would report for a capability.
    fn number(&self, id: usize) -> u64 {
        let c = &self.caps[id];
        match c.object {
            Object::Endpoint(ch, end) => {
                (self.tables[c.owner as usize].numbers[&ch] << 1) | u64::from(end)
            }
            o => o.number(),
        }
    }
}

#[derive(Debug, Clone)]
enum MOp {
    Mint {
        holder: u8,
        kind: u8,
        n: u8,
    },
    Anchor {
        holder: u8,
        channel: u8,
    },
    /// `rights` masks the source's rights, or is taken as is when `exact` (mostly refused).
    Derive {
        holder: u8,
        pick: u8,
        rights: u32,
        exact: bool,
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
    Destroy {
        kind: u8,
        n: u8,
    },
    Forge {
        holder: u8,
        pick: u8,
        bits: u64,
    },
    Purge {
        holder: u8,
        kind: u8,
        n: u8,
        dead: bool,
    },
}

fn object(kind: u8, n: u8) -> Object {
    match kind % 4 {
        0 => Object::Endpoint(u32::from(n % 4), n / 4 % 2),
        1 => Object::Module(Hash32::of(&[n % 3])),
        2 => Object::QJob(VhmId(u32::from(n % 3)), u32::from(n)),
        _ => Object::Vhm(VhmId(u32::from(n % 3))),
    }
}

fn mop() -> impl Strategy<Value = MOp> {
    let v = 0..3u8;
    prop_oneof![
        2 => (v.clone(), any::<u8>(), any::<u8>()).prop_map(|(holder, kind, n)| MOp::Mint { holder, kind, n }),
        1 => (v.clone(), 0..4u8).prop_map(|(holder, channel)| MOp::Anchor { holder, channel }),
        8 => (v.clone(), any::<u8>(), 0..1024u32, proptest::bool::weighted(0.1), 0..3u8, v.clone()).prop_map(|(holder, pick, rights, exact, badge, into)| MOp::Derive { holder, pick, rights, exact, badge, into }),
        1 => (v.clone(), any::<u8>()).prop_map(|(holder, pick)| MOp::Revoke { holder, pick }),
        2 => (v.clone(), any::<u8>()).prop_map(|(holder, pick)| MOp::Delete { holder, pick }),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(kind, n)| MOp::Destroy { kind, n }),
        2 => (v.clone(), any::<u8>(), any::<u64>()).prop_map(|(holder, pick, bits)| MOp::Forge { holder, pick, bits }),
        1 => (v, any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(holder, kind, n, dead)| MOp::Purge { holder, kind, n, dead }),
    ]
}

/// The model's live handles of `v`, in slot order.
fn model_held(m: &Model, v: u8) -> Vec<usize> {
    m.tables[v as usize].at.iter().flatten().copied().collect()
}

/// Applies one operation to both; compares what each returned and the tables of `vhms`
/// afterwards.
fn step(s: &mut CapSpace, m: &mut Model, op: &MOp, vhms: &[u8]) -> Result<(), TestCaseError> {
    let pick_of = |m: &Model, v: u8, pick: u8| {
        let hs = model_held(m, v);
        (!hs.is_empty()).then(|| hs[pick as usize % hs.len()])
    };
    match *op {
        MOp::Mint { holder, kind, n } => {
            let o = object(kind, n);
            let r = if n % 4 == 0 {
                u32::from(n) * 7 % 1024
            } else {
                rights::ALL.bits()
            };
            let got = s.mint(
                VhmId(holder.into()),
                o,
                Rights::from_bits_retain(r),
                u64::from(n % 2),
            );
            let want = m.insert(holder, o, r, u64::from(n % 2), None);
            prop_assert_eq!(got.0, want);
        }
        MOp::Anchor { holder, channel } => {
            s.anchor(VhmId(holder.into()), channel.into());
            let t = &mut m.tables[holder as usize];
            t.anchored.insert(channel.into());
            if !t.numbers.contains_key(&channel.into()) {
                t.numbers.insert(channel.into(), t.next_number);
                t.next_number += 1;
            }
        }
        MOp::Derive {
            holder,
            pick,
            rights: r,
            exact,
            badge,
            into,
        } => {
            let Some(src) = pick_of(m, holder, pick) else {
                return Ok(());
            };
            let c = m.caps[src].clone();
            let r = if exact { r } else { r & c.rights };
            let needed = if into == holder {
                rights::DERIVE
            } else {
                rights::TRANSFER
            }
            .bits();
            let want = if c.rights & needed != needed || r & !c.rights != 0 {
                Err(CapError::Rights)
            } else if c.badge != 0 && badge != 0 && u64::from(badge) != c.badge {
                Err(CapError::Badge)
            } else {
                let b = if c.badge != 0 {
                    c.badge
                } else {
                    u64::from(badge)
                };
                Ok(m.insert(into, c.object, r, b, Some(src)))
            };
            let got = s.derive(
                VhmId(holder.into()),
                c.handle,
                Rights::from_bits_retain(r),
                u64::from(badge),
                VhmId(into.into()),
            );
            prop_assert_eq!(got.map(|h| h.0), want);
        }
        MOp::Revoke { holder, pick } => {
            let Some(id) = pick_of(m, holder, pick) else {
                return Ok(());
            };
            let h = m.caps[id].handle;
            prop_assert_eq!(s.revoke(VhmId(holder.into()), h), Ok(m.revoke(id)));
        }
        MOp::Delete { holder, pick } => {
            let Some(id) = pick_of(m, holder, pick) else {
                return Ok(());
            };
            let h = m.caps[id].handle;
            prop_assert_eq!(s.delete(VhmId(holder.into()), h), Ok(()));
            m.remove(id);
            prop_assert_eq!(s.delete(VhmId(holder.into()), h), Err(CapError::BadHandle));
        }
        MOp::Destroy { kind, n } => {
            let o = object(kind, n);
            let ids: Vec<usize> = (0..m.caps.len())
                .filter(|&i| m.caps[i].alive && m.caps[i].object == o)
                .collect();
            let want: Vec<_> = ids.into_iter().map(|i| m.remove(i)).collect();
            prop_assert_eq!(s.destroy(&o), want);
        }
        MOp::Forge { holder, pick, bits } => {
            // A random value, a held handle with one field changed, and a dead handle.
            let mut values = vec![bits & (u64::MAX >> 1)];
            if let Some(id) = pick_of(m, holder, pick) {
                let h = m.caps[id].handle;
                values.extend([h ^ (1 << (bits % 63)), h]);
            }
            if let Some(dead) = m.caps.iter().rev().find(|c| !c.alive) {
                values.push(dead.handle);
            }
            for v in values {
                let want = m.resolve(holder, v).map(|i| m.caps[i].handle);
                let got = s
                    .resolve(VhmId(holder.into()), v)
                    .ok()
                    .map(|i| s.node(i).handle.0);
                prop_assert_eq!(got, want, "resolving {:#x}", v);
            }
        }
        MOp::Purge {
            holder,
            kind,
            n,
            dead,
        } => {
            let dead: Vec<Object> = dead.then(|| object(kind, n)).into_iter().collect();
            prop_assert_eq!(s.purge(VhmId(holder.into()), &dead), m.purge(holder, &dead));
        }
    }
    for &v in vhms {
        let got: Vec<(u64, Object, u32, u64, u64)> = s
            .held_by(VhmId(v.into()))
            .map(|n| {
                (
                    n.handle.0,
                    n.object,
                    n.rights.bits(),
                    n.badge,
                    s.info_number(n),
                )
            })
            .collect();
        let want: Vec<(u64, Object, u32, u64, u64)> = model_held(m, v)
            .into_iter()
            .map(|i| {
                let c = &m.caps[i];
                (c.handle, c.object, c.rights, c.badge, m.number(i))
            })
            .collect();
        prop_assert_eq!(got, want, "table of vhm{}", v);
        prop_assert_eq!(s.footprint_bytes(VhmId(v.into())), m.footprint(v));
        for ch in 0..4u32 {
            for end in 0..2u8 {
                let want = m.tables[v as usize]
                    .numbers
                    .get(&ch)
                    .map(|&n| (n << 1) | u64::from(end));
                prop_assert_eq!(s.endpoint_number(VhmId(v.into()), ch, end), want);
            }
        }
    }
    if vhms.len() == 3 {
        prop_assert_eq!(s.live_nodes(), m.caps.iter().filter(|c| c.alive).count());
    }
    prop_assert_eq!(s.check(), Ok(()));
    Ok(())
}

const NAMES: [&str; 3] = ["vhm-0", "vhm-1", "vhm-2"];

/// A name other than `name` with the same tag, found by brute force (about 2^20 hashes).
fn colliding(name: &str) -> &'static str {
    static FOUND: OnceLock<String> = OnceLock::new();
    assert_eq!(name, NAMES[0]);
    FOUND.get_or_init(|| {
        let tag = documented_tag(name);
        (0u64..)
            .map(|i| format!("neighbour-{i}"))
            .find(|n| documented_tag(n) == tag)
            .unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(0x0dd), failure_persistence: None, ..ProptestConfig::default() })]

    /// The capability space behaves exactly as the model: every handle value, every refusal,
    /// every removal list and its order, every resolution of forged, stale and foreign values,
    /// every table's contents and `cap_info` numbers, every footprint.
    #[test]
    fn the_space_matches_an_independent_model(ops in proptest::collection::vec(mop(), 1..150)) {
        let mut s = CapSpace::default();
        let mut m = Model::default();
        for (v, name) in NAMES.iter().enumerate() {
            s.register(VhmId(v as u32), name);
            m.register(name);
        }
        for op in &ops {
            step(&mut s, &mut m, op, &[0, 1, 2])?;
        }
    }

    /// A VHM's own operations return the same values, and its table holds the same handles and
    /// numbers, alone and beside neighbours that create and remove capabilities and channels of
    /// their own (one of them with the same tag), as long as no capability passes between them.
    #[test]
    fn a_table_is_the_same_alone_and_beside_unlinked_neighbours(
        mine in proptest::collection::vec(mop(), 1..80),
        theirs in proptest::collection::vec(mop(), 0..200),
        collide in any::<bool>(),
    ) {
        // Confine the subject's operations to VHM 0 and the neighbours' to VHMs 1 and 2, with no
        // capability passing between them and no object destroyed across them.
        let confine = |op: &MOp, keep: &dyn Fn(u8) -> u8| -> Option<MOp> {
            let mut op = op.clone();
            match &mut op {
                MOp::Mint { holder, .. } | MOp::Anchor { holder, .. } | MOp::Revoke { holder, .. }
                | MOp::Delete { holder, .. } | MOp::Forge { holder, .. } => *holder = keep(*holder),
                MOp::Purge { holder, dead, .. } => { *holder = keep(*holder); *dead = false; }
                MOp::Derive { holder, into, .. } => { *holder = keep(*holder); *into = *holder; }
                MOp::Destroy { .. } => return None,
            }
            Some(op)
        };
        let mine: Vec<MOp> = mine.iter().filter_map(|op| confine(op, &|_| 0)).collect();
        // The neighbour with the subject's tag holds capabilities before the subject registers.
        let first = MOp::Mint { holder: 1, kind: 3, n: 1 };
        let theirs: Vec<MOp> = std::iter::once(first).chain(theirs.iter().filter_map(|op| confine(op, &|v| 1 + v % 2))).collect();
        let names = [NAMES[0], if collide { colliding(NAMES[0]) } else { NAMES[1] }, NAMES[2]];
        prop_assert!(!collide || documented_tag(names[0]) == documented_tag(names[1]));
        let run = |with_neighbours: bool| -> Result<Vec<String>, TestCaseError> {
            let mut s = CapSpace::default();
            let mut m = Model::default();
            for name in names {
                m.register(name);
            }
            let mut theirs = theirs.iter();
            let vhms: &[u8] = if with_neighbours {
                s.register(VhmId(1), names[1]);
                s.register(VhmId(2), names[2]);
                for op in theirs.by_ref().take(4) {
                    step(&mut s, &mut m, op, &[1, 2])?;
                }
                &[0, 1, 2]
            } else {
                &[0]
            };
            s.register(VhmId(0), names[0]);
            let mut out = Vec::new();
            for op in &mine {
                if with_neighbours {
                    for op in theirs.by_ref().take(3) {
                        step(&mut s, &mut m, op, vhms)?;
                    }
                }
                step(&mut s, &mut m, op, vhms)?;
                out.push(format!("{:?}", s.held_by(VhmId(0)).map(|n| (n.handle, n.rights, s.info_number(n))).collect::<Vec<_>>()));
                out.push(format!("{}", s.footprint_bytes(VhmId(0))));
            }
            Ok(out)
        };
        prop_assert_eq!(run(false)?, run(true)?);
    }
}

// ---------------------------------------------------------------------------------------------
// Host memory: the documented per-entry costs bound what the allocator sees.

struct Counting;

thread_local! {
    /// Net bytes allocated by this thread.
    static NET: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    let _ = NET.try_with(|n| n.set(n.get() + delta));
}

// SAFETY: forwards every call to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn net() -> i64 {
    NET.with(Cell::get)
}

/// Builds one shape of table and checks the space's heap against `footprint_bytes`.
fn measure(shape: &str, build: impl FnOnce(&mut CapSpace)) {
    let a = VhmId(0);
    let before = net();
    let mut s = CapSpace::default();
    s.register(a, "a");
    let registered = net();
    build(&mut s);
    s.check().unwrap();
    let used = (net() - registered) as u64;
    let (live, charged) = (s.count(a) as u64, s.footprint_bytes(a));
    drop(s);
    // Measured before anything is printed: the test harness's output capture allocates too.
    let freed = net() == before;
    println!(
        "{shape}: {live} capabilities, {used} B on the heap ({} B each), footprint {charged} B",
        used / live.max(1)
    );
    assert!(
        used <= charged,
        "{shape}: {used} B used, {charged} B charged"
    );
    assert!(freed, "{shape}: everything is given back");
}

const N: u32 = 20_000;
const MODULE: Rights = rights::INSPECT
    .union(rights::DERIVE)
    .union(rights::TRANSFER)
    .union(rights::SPAWN);

#[test]
fn the_documented_entry_costs_bound_the_heap() {
    let a = VhmId(0);
    let m = Object::Module(Hash32::of(b"m"));
    measure("star", |s| {
        let root = s.mint(a, m, MODULE, 0);
        for _ in 1..N {
            s.derive(a, root.0, MODULE, 0, a).unwrap();
        }
    });
    measure("chain", |s| {
        let mut h = s.mint(a, m, MODULE, 0);
        for _ in 1..N {
            h = s.derive(a, h.0, MODULE, 0, a).unwrap();
        }
    });
    measure("distinct objects", |s| {
        for j in 0..N {
            s.mint(a, Object::QJob(a, j), rights::ALL, 0);
        }
    });
    measure("distinct channels", |s| {
        for c in 0..N {
            s.mint(a, Object::Endpoint(c, 0), rights::ALL, 0);
        }
    });
    measure("anchored channels, no capabilities", |s| {
        for c in 0..N {
            s.anchor(a, c);
        }
    });
    measure("pairs, every other one removed", |s| {
        let mut hs = Vec::new();
        for j in 0..N / 2 {
            let root = s.mint(a, Object::Module(Hash32::of(&j.to_le_bytes())), MODULE, 0);
            hs.push(root);
            hs.push(
                s.derive(a, root.0, rights::INSPECT | rights::DERIVE, 0, a)
                    .unwrap(),
            );
        }
        for (i, h) in hs.iter().enumerate() {
            if i % 3 != 0 {
                s.delete(a, h.0).unwrap();
            }
        }
    });
}

/// 100 000 derive/drop cycles: the live node count, the footprint and the heap stay put.
#[test]
fn derive_drop_cycles_do_not_grow_host_memory() {
    let a = VhmId(0);
    let mut s = CapSpace::default();
    s.register(a, "a");
    let root = s.mint(a, Object::Endpoint(0, 0), rights::ALL, 0);
    let cycle = |s: &mut CapSpace| {
        let d = s
            .derive(a, root.0, rights::INSPECT | rights::DERIVE, 0, a)
            .unwrap();
        let e = s.derive(a, d.0, rights::INSPECT, 0, a).unwrap();
        s.delete(a, d.0).unwrap();
        s.delete(a, e.0).unwrap();
    };
    cycle(&mut s);
    let before = (s.live_nodes(), s.footprint_bytes(a), net());
    for _ in 0..100_000 {
        cycle(&mut s);
    }
    assert_eq!((s.live_nodes(), s.footprint_bytes(a), net()), before);
}
