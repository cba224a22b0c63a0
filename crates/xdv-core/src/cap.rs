//! Capabilities: per-VHM handle tables over one host-wide derivation tree (DESIGN §4).
//!
//! A VHM names kernel objects only through handles, 64-bit `(slot, generation)` values into its
//! own table. Every capability is a node of one derivation tree: a node is minted by the
//! hypervisor (no parent) or derived from another with rights that are a subset of its source's.
//! Node ids grow in creation order, so "every descendant, in creation order" is a sorted walk.
//!
//! Invariants (checked by [`CapSpace::check`], asserted in debug builds after every change and
//! exercised by property tests): a live node's rights are a subset of its parent's; a live node is
//! reachable through exactly one slot of its owner's table with the slot's current generation; a
//! removed node is reachable through none.

use crate::chain::Hash32;
use crate::ids::{CapId, VhmId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Rights, a bitmask. Which bits mean something depends on the object type ([`Object::valid_rights`]).
pub mod rights {
    /// Read the capability's description with `cap_info`, and the object's state.
    pub const INSPECT: u32 = 1 << 0;
    /// Derive copies inside the holder's own table.
    pub const DERIVE: u32 = 1 << 1;
    /// Pass a derived copy to another VHM (spawn, IPC).
    pub const TRANSFER: u32 = 1 << 2;
    /// Budget: carve a child VHM. Module: run it as a child's image.
    pub const SPAWN: u32 = 1 << 3;
    /// VHM: wait for it to stop.
    pub const WAIT: u32 = 1 << 4;
    /// VHM: stop it and its subtree.
    pub const KILL: u32 = 1 << 5;
    /// Endpoint: send.
    pub const SEND: u32 = 1 << 6;
    /// Endpoint: receive.
    pub const RECV: u32 = 1 << 7;
    /// Budget: create IPC channels.
    pub const CHANNEL: u32 = 1 << 8;
    /// Q container: submit jobs.
    pub const SUBMIT: u32 = 1 << 9;
    /// Every right.
    pub const ALL: u32 = (1 << 10) - 1;

    /// Names of the rights, in bit order.
    pub const NAMES: [&str; 10] = [
        "inspect", "derive", "transfer", "spawn", "wait", "kill", "send", "recv", "channel",
        "submit",
    ];

    /// `"inspect|derive"`-style rendering.
    pub fn describe(r: u32) -> String {
        let names: Vec<&str> = NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| r & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join("|")
        }
    }
}

/// A channel's host-wide number.
pub type ChannelId = u32;

/// A kernel object a capability names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Object {
    /// A VHM (the parent's handle on a child).
    Vhm(VhmId),
    /// A VHM's budget: its quotas, from which children are carved.
    Budget(VhmId),
    /// One vCPU of a VHM.
    Vcpu(VhmId, u32),
    /// A guest module, by hash.
    Module(Hash32),
    /// One end (0 or 1) of an IPC channel.
    Endpoint(ChannelId, u8),
    /// A VHM's Q container: its logical qubits on one device and its decoherence budget.
    QContainer(VhmId),
    /// A Q job of a VHM, by the VHM's job number.
    QJob(VhmId, u32),
    /// A Φ coherence window, by its host-wide number.
    PhiWindow(VhmId, u32),
}

impl Object {
    /// The ABI's type code of the object (`cap_info`, `cap_find`).
    pub fn type_code(&self) -> u32 {
        match self {
            Object::Vhm(_) => 1,
            Object::Budget(_) => 2,
            Object::Module(_) => 3,
            Object::Endpoint(..) => 4,
            Object::Vcpu(..) => 5,
            Object::QContainer(_) => 6,
            Object::QJob(..) => 7,
            Object::PhiWindow(..) => 8,
        }
    }

    /// The type's name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::Vhm(_) => "vhm",
            Object::Budget(_) => "budget",
            Object::Module(_) => "module",
            Object::Endpoint(..) => "endpoint",
            Object::Vcpu(..) => "vcpu",
            Object::QContainer(_) => "q_container",
            Object::QJob(..) => "q_job",
            Object::PhiWindow(..) => "phi_window",
        }
    }

    /// The same object with its VHM id mapped through `f` (for comparing runs by VHM name).
    pub fn map_vhm(self, f: &impl Fn(VhmId) -> VhmId) -> Self {
        match self {
            Object::Vhm(v) => Object::Vhm(f(v)),
            Object::Budget(v) => Object::Budget(f(v)),
            Object::Vcpu(v, i) => Object::Vcpu(f(v), i),
            Object::QContainer(v) => Object::QContainer(f(v)),
            Object::QJob(v, j) => Object::QJob(f(v), j),
            Object::PhiWindow(v, w) => Object::PhiWindow(f(v), w),
            other => other,
        }
    }

    /// The rights that mean something for this type; derivations are clipped to nothing else.
    pub fn valid_rights(&self) -> u32 {
        use rights::*;
        match self {
            Object::Vhm(_) => INSPECT | DERIVE | TRANSFER | WAIT | KILL,
            Object::Budget(_) => INSPECT | DERIVE | SPAWN | CHANNEL,
            Object::Module(_) => INSPECT | DERIVE | TRANSFER | SPAWN,
            Object::Endpoint(..) => INSPECT | DERIVE | TRANSFER | SEND | RECV,
            Object::Vcpu(..) => INSPECT,
            // Containers and jobs never leave their VHM: a child gets its own container, carved.
            Object::QContainer(_) => INSPECT | DERIVE | SUBMIT,
            Object::QJob(..) => INSPECT | WAIT | RECV,
            // Frames never leave their window, and a window never leaves its VHM.
            Object::PhiWindow(..) => INSPECT | DERIVE | SUBMIT,
        }
    }

    /// A number identifying the object inside its type, for `cap_info`: 0 for VHMs and budgets,
    /// the index for a vCPU, the first 8 bytes of the hash for a module, `channel × 2 + end` for
    /// an endpoint, 0 for a Q container or a Φ window, the job number for a Q job.
    pub fn number(&self) -> u64 {
        match *self {
            // Host-wide VHM ids would tell a guest how many VHMs exist beside it: not exposed.
            Object::Vhm(_) | Object::Budget(_) | Object::QContainer(_) => 0,
            Object::QJob(_, j) => u64::from(j),
            // Window numbers are host-wide: they would tell how many windows others hold.
            Object::PhiWindow(..) => 0,
            Object::Vcpu(_, i) => u64::from(i),
            Object::Module(h) => u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes")),
            Object::Endpoint(c, side) => (u64::from(c) << 1) | u64::from(side),
        }
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Vhm(v) => write!(f, "vhm {v}"),
            Object::Budget(v) => write!(f, "budget of {v}"),
            Object::Vcpu(v, i) => write!(f, "vcpu {i} of {v}"),
            Object::Module(h) => write!(f, "module {}", h.short()),
            Object::Endpoint(c, s) => write!(f, "channel {c} end {s}"),
            Object::QContainer(v) => write!(f, "q container of {v}"),
            Object::QJob(v, j) => write!(f, "q job {j} of {v}"),
            Object::PhiWindow(v, w) => write!(f, "phi window {w} of {v}"),
        }
    }
}

/// Why a capability operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapError {
    /// No live capability under that handle in the caller's table: forged, stale (a generation
    /// from before a revoke or drop), empty, or another VHM's.
    BadHandle,
    /// The capability lacks a right the operation needs, or a derivation asked for rights the
    /// source does not hold.
    Rights,
    /// The capability names another type of object than the operation needs.
    WrongType,
    /// The badge of an already badged capability cannot change.
    Badge,
    /// The destination table holds [`MAX_CAPS_PER_VHM`] capabilities already.
    TableFull,
}

/// Most capabilities one VHM may hold at once.
pub const MAX_CAPS_PER_VHM: usize = 1 << 16;

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapError::BadHandle => "no such capability (forged, stale or foreign handle)",
            CapError::Rights => "insufficient rights",
            CapError::WrongType => "wrong object type",
            CapError::Badge => "a badged capability keeps its badge",
            CapError::TableFull => "the capability table is full",
        })
    }
}

/// A capability: one node of the derivation tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it names.
    pub object: Object,
    /// What it allows.
    pub rights: u32,
    /// The badge stamped on messages sent through it (0: none).
    pub badge: u64,
    /// The VHM whose table holds it.
    pub owner: VhmId,
    /// Its handle in the owner's table.
    pub handle: CapId,
    parent: Option<usize>,
    children: Vec<usize>,
    alive: bool,
}

#[derive(Debug, Clone, Default)]
struct Table {
    /// The holder's tag, part of every handle in the table.
    tag: u32,
    /// Slot i holds (generation, node). Slot 0 is never used, so handle 0 is always invalid.
    slots: Vec<(u32, Option<usize>)>,
    free: BTreeSet<u32>,
    live: usize,
}

/// Every capability of the host: the derivation tree and each VHM's table.
#[derive(Debug, Clone, Default)]
pub struct CapSpace {
    nodes: Vec<Node>,
    tables: BTreeMap<VhmId, Table>,
    /// Live capabilities per object, for destroying an object's capabilities everywhere.
    by_object: BTreeMap<Object, BTreeSet<usize>>,
    /// The table each tag was last given to.
    tags: BTreeMap<u32, VhmId>,
}

impl CapSpace {
    /// Creates `vhm`'s empty table. Its tag comes from the VHM's name, so it does not depend on
    /// other VHMs; a tag already used by a live table is probed onward deterministically.
    pub fn register(&mut self, vhm: VhmId, name: &str) {
        let mask = (1u32 << 20) - 1;
        let hash = blake3::hash(name.as_bytes());
        let mut tag = u32::from_le_bytes(hash.as_bytes()[..4].try_into().expect("4 bytes")) & mask;
        while tag == 0
            || self
                .tags
                .get(&tag)
                .is_some_and(|v| self.tables.get(v).is_some_and(|t| t.live > 0))
        {
            tag = (tag + 1) & mask;
        }
        self.tags.insert(tag, vhm);
        self.tables.insert(
            vhm,
            Table {
                tag,
                slots: vec![(0, None)],
                ..Table::default()
            },
        );
    }

    /// Resolves `handle` in `owner`'s table to a live node id.
    pub fn resolve(&self, owner: VhmId, handle: u64) -> Result<usize, CapError> {
        let h = CapId(handle);
        let table = self.tables.get(&owner).ok_or(CapError::BadHandle)?;
        match table.slots.get(h.slot() as usize) {
            Some(&(generation, Some(node)))
                if h.slot() != 0 && h.tag() == table.tag && generation == h.generation() =>
            {
                Ok(node)
            }
            _ => Err(CapError::BadHandle),
        }
    }

    /// Resolves a handle and checks its type and rights.
    pub fn require(
        &self,
        owner: VhmId,
        handle: u64,
        needed: u32,
        is_type: impl Fn(&Object) -> bool,
    ) -> Result<&Node, CapError> {
        let n = &self.nodes[self.resolve(owner, handle)?];
        if !is_type(&n.object) {
            return Err(CapError::WrongType);
        }
        if n.rights & needed != needed {
            return Err(CapError::Rights);
        }
        Ok(n)
    }

    /// The node with id `id`.
    pub fn node(&self, id: usize) -> &Node {
        &self.nodes[id]
    }

    /// Live capabilities held by `owner`, in slot order.
    pub fn held_by(&self, owner: VhmId) -> impl Iterator<Item = &Node> + '_ {
        self.tables.get(&owner).into_iter().flat_map(move |t| {
            t.slots
                .iter()
                .filter_map(move |(_, n)| n.map(|i| &self.nodes[i]))
        })
    }

    /// Number of live capabilities held by `owner`.
    pub fn count(&self, owner: VhmId) -> usize {
        self.tables.get(&owner).map_or(0, |t| t.live)
    }

    fn insert(
        &mut self,
        owner: VhmId,
        object: Object,
        rights: u32,
        badge: u64,
        parent: Option<usize>,
    ) -> CapId {
        let id = self.nodes.len();
        let table = self
            .tables
            .get_mut(&owner)
            .expect("a VHM's table is registered before use");
        let slot = match table.free.pop_first() {
            Some(s) => s,
            None => {
                table.slots.push((0, None));
                (table.slots.len() - 1) as u32
            }
        };
        let entry = &mut table.slots[slot as usize];
        // Generations live in 19 bits of a handle; skip 0 so a zeroed handle never resolves.
        entry.0 = (entry.0 + 1) & 0x7_FFFF;
        if entry.0 == 0 {
            entry.0 = 1;
        }
        entry.1 = Some(id);
        table.live += 1;
        let handle = CapId::new(slot, table.tag, entry.0);
        self.nodes.push(Node {
            object,
            rights: rights & object.valid_rights(),
            badge,
            owner,
            handle,
            parent,
            children: Vec::new(),
            alive: true,
        });
        if let Some(p) = parent {
            self.nodes[p].children.push(id);
        }
        self.by_object.entry(object).or_default().insert(id);
        handle
    }

    /// Mints a root capability (the hypervisor creating an object for `owner`).
    pub fn mint(&mut self, owner: VhmId, object: Object, rights: u32, badge: u64) -> CapId {
        let h = self.insert(owner, object, rights, badge, None);
        self.debug_check();
        h
    }

    /// Checks a derivation without performing it: the source resolves, `rights` ⊆ its rights, it
    /// holds `needed` (`DERIVE` into its own table, `TRANSFER` into another), the badge rule
    /// holds, and the destination table has room. Returns the source node and the badge the copy
    /// will carry.
    pub fn can_derive(
        &self,
        owner: VhmId,
        handle: u64,
        rights: u32,
        badge: u64,
        into: VhmId,
        needed: u32,
    ) -> Result<(usize, u64), CapError> {
        let src = self.resolve(owner, handle)?;
        let s = &self.nodes[src];
        if s.rights & needed != needed || rights & !s.rights != 0 {
            return Err(CapError::Rights);
        }
        let badge = match (s.badge, badge) {
            (0, b) => b,
            (old, 0) => old,
            (old, b) if old == b => b,
            _ => return Err(CapError::Badge),
        };
        if !self.has_room(into, 1) {
            return Err(CapError::TableFull);
        }
        Ok((src, badge))
    }

    /// Derives a capability from `owner`'s `handle` into `into`'s table with `rights` (which must
    /// be a subset of the source's) and `badge` (0 keeps the source's; a badged source keeps its
    /// badge). Deriving into the owner's own table needs `DERIVE`; into another VHM, `TRANSFER`.
    pub fn derive(
        &mut self,
        owner: VhmId,
        handle: u64,
        rights: u32,
        badge: u64,
        into: VhmId,
    ) -> Result<CapId, CapError> {
        let needed = if into == owner {
            rights::DERIVE
        } else {
            rights::TRANSFER
        };
        self.derive_needing(owner, handle, rights, badge, into, needed)
    }

    /// Passes a copy of a capability to `into` (spawn, IPC): needs `TRANSFER`, even when `into` is
    /// the holder itself (a VHM sending a capability over a channel to itself).
    pub fn transfer(
        &mut self,
        owner: VhmId,
        handle: u64,
        rights: u32,
        badge: u64,
        into: VhmId,
    ) -> Result<CapId, CapError> {
        self.derive_needing(owner, handle, rights, badge, into, rights::TRANSFER)
    }

    fn derive_needing(
        &mut self,
        owner: VhmId,
        handle: u64,
        rights: u32,
        badge: u64,
        into: VhmId,
        needed: u32,
    ) -> Result<CapId, CapError> {
        let (src, badge) = self.can_derive(owner, handle, rights, badge, into, needed)?;
        let object = self.nodes[src].object;
        let h = self.insert(into, object, rights, badge, Some(src));
        self.debug_check();
        Ok(h)
    }

    /// `true` when `owner`'s table can take `n` more capabilities.
    pub fn has_room(&self, owner: VhmId, n: usize) -> bool {
        self.tables
            .get(&owner)
            .is_some_and(|t| t.live + n <= MAX_CAPS_PER_VHM)
    }

    fn remove(&mut self, id: usize) -> (VhmId, CapId) {
        let children = std::mem::take(&mut self.nodes[id].children);
        let parent = self.nodes[id].parent;
        // Children of a removed node move up to its parent, so a revoke from above still reaches them.
        for &c in &children {
            self.nodes[c].parent = parent;
        }
        if let Some(p) = parent {
            let siblings = &mut self.nodes[p].children;
            siblings.retain(|&c| c != id);
            siblings.extend(children);
            siblings.sort_unstable();
        }
        self.unlink(id)
    }

    /// Marks a node removed and frees its slot, leaving the tree links to the caller.
    fn unlink(&mut self, id: usize) -> (VhmId, CapId) {
        let n = &mut self.nodes[id];
        debug_assert!(n.alive, "a capability is removed once");
        n.alive = false;
        let (owner, handle, object) = (n.owner, n.handle, n.object);
        if let Some(set) = self.by_object.get_mut(&object) {
            set.remove(&id);
            if set.is_empty() {
                self.by_object.remove(&object);
            }
        }

        let table = self
            .tables
            .get_mut(&owner)
            .expect("the owner's table exists");
        table.slots[handle.slot() as usize].1 = None;
        table.free.insert(handle.slot());
        table.live -= 1;
        (owner, handle)
    }

    fn descendants(&self, id: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = self.nodes[id].children.clone();
        while let Some(c) = stack.pop() {
            out.push(c);
            stack.extend(&self.nodes[c].children);
        }
        out.sort_unstable();
        out
    }

    /// Removes every descendant of `owner`'s `handle` (not the capability itself), in creation
    /// order, returning each removed `(holder, handle)`.
    pub fn revoke(&mut self, owner: VhmId, handle: u64) -> Result<Vec<(VhmId, CapId)>, CapError> {
        let id = self.resolve(owner, handle)?;
        // The whole subtree goes: no links to repair inside it, only the root's child list.
        let subtree = self.descendants(id);
        let removed = subtree
            .into_iter()
            .map(|d| {
                self.nodes[d].children.clear();
                self.nodes[d].parent = None;
                self.unlink(d)
            })
            .collect();
        self.nodes[id].children.clear();
        self.debug_check();
        Ok(removed)
    }

    /// Removes `owner`'s `handle` itself; capabilities derived from it move up to its parent.
    pub fn delete(&mut self, owner: VhmId, handle: u64) -> Result<(), CapError> {
        let id = self.resolve(owner, handle)?;
        self.remove(id);
        self.debug_check();
        Ok(())
    }

    /// Removes every capability `owner` holds and every capability anywhere that names one of
    /// the `dead` objects, in creation order. Returns the removed `(holder, handle)` pairs.
    pub fn purge(&mut self, owner: VhmId, dead: &[Object]) -> Vec<(VhmId, CapId)> {
        let mut ids: BTreeSet<usize> = self
            .tables
            .get(&owner)
            .map(|t| t.slots.iter().filter_map(|(_, n)| *n).collect())
            .unwrap_or_default();
        for o in dead {
            ids.extend(self.by_object.get(o).into_iter().flatten());
        }
        let removed = ids.into_iter().map(|i| self.remove(i)).collect();
        self.debug_check();
        removed
    }

    /// Removes every capability naming `object`, in any table, in creation order (the object
    /// was destroyed: a released window, a finished job).
    pub fn destroy(&mut self, object: &Object) -> Vec<(VhmId, CapId)> {
        let ids: BTreeSet<usize> = self.by_object.get(object).cloned().unwrap_or_default();
        let removed = ids.into_iter().map(|i| self.remove(i)).collect();
        self.debug_check();
        removed
    }

    /// The `index`-th live capability of type `type_code` in `owner`'s table, in slot order.
    pub fn find(&self, owner: VhmId, type_code: u32, index: u32) -> Option<CapId> {
        self.held_by(owner)
            .filter(|n| n.object.type_code() == type_code)
            .nth(index as usize)
            .map(|n| n.handle)
    }

    /// Checks every invariant; returns the first violation.
    pub fn check(&self) -> Result<(), String> {
        for (id, n) in self.nodes.iter().enumerate() {
            let slot = self
                .tables
                .get(&n.owner)
                .and_then(|t| t.slots.get(n.handle.slot() as usize).copied());
            if n.alive {
                if slot != Some((n.handle.generation(), Some(id))) {
                    return Err(format!(
                        "capability {id} is not in its owner's table at {}",
                        n.handle
                    ));
                }
                if n.rights & !n.object.valid_rights() != 0 {
                    return Err(format!(
                        "capability {id} holds rights its type does not have"
                    ));
                }
                if let Some(p) = n.parent {
                    let parent = &self.nodes[p];
                    if !parent.alive || !parent.children.contains(&id) {
                        return Err(format!("capability {id} has a dead or unlinked parent {p}"));
                    }
                    if n.rights & !parent.rights != 0 {
                        return Err(format!(
                            "capability {id} has rights its parent {p} lacks (amplified)"
                        ));
                    }
                    if n.object != parent.object {
                        return Err(format!(
                            "capability {id} names another object than its parent"
                        ));
                    }
                }
            } else if slot.is_some_and(|(_, node)| node == Some(id)) {
                return Err(format!("removed capability {id} still resolves"));
            }
        }
        for (vhm, t) in &self.tables {
            let live = t.slots.iter().filter(|(_, n)| n.is_some()).count();
            if live != t.live {
                return Err(format!(
                    "{vhm}: live count {} but {live} slots in use",
                    t.live
                ));
            }
        }
        Ok(())
    }

    fn debug_check(&self) {
        #[cfg(debug_assertions)]
        if self.nodes.len() < 4096 {
            if let Err(e) = self.check() {
                panic!("capability invariant broken: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rights::*;

    const A: VhmId = VhmId(0);
    const B: VhmId = VhmId(1);

    fn space() -> CapSpace {
        let mut s = CapSpace::default();
        s.register(A, "a");
        s.register(B, "b");
        s
    }

    #[test]
    fn derive_never_amplifies_and_revoke_reaches_every_descendant() {
        let mut s = space();
        let root = s.mint(A, Object::Endpoint(0, 0), SEND | DERIVE | TRANSFER, 0);
        let d1 = s.derive(A, root.0, SEND | TRANSFER, 7, A).unwrap();
        assert_eq!(
            s.derive(A, d1.0, SEND, 0, A),
            Err(CapError::Rights),
            "no DERIVE on d1"
        );
        let d2 = s.derive(A, d1.0, SEND, 0, B).unwrap();
        assert_eq!(
            s.node(s.resolve(B, d2.0).unwrap()).badge,
            7,
            "badge inherited"
        );
        assert_eq!(
            s.derive(A, root.0, SEND | RECV, 0, A),
            Err(CapError::Rights),
            "RECV not held"
        );
        assert_eq!(
            d2.slot(),
            root.slot(),
            "same slot and generation in another table"
        );
        assert_eq!(d2.generation(), root.generation());
        assert_ne!(d2.tag(), root.tag());
        assert_eq!(
            s.resolve(A, d2.0),
            Err(CapError::BadHandle),
            "B's handle means nothing in A"
        );
        let removed = s.revoke(A, root.0).unwrap();
        assert_eq!(removed, vec![(A, d1), (B, d2)]);
        assert_eq!(s.resolve(A, d1.0), Err(CapError::BadHandle));
        // The slot is reused with a new generation: the stale handle stays dead.
        let again = s.derive(A, root.0, SEND, 0, A).unwrap();
        assert_eq!(again.slot(), d1.slot());
        assert_ne!(again, d1);
        assert_eq!(s.resolve(A, d1.0), Err(CapError::BadHandle));
        s.check().unwrap();
    }

    #[test]
    fn delete_moves_children_up_and_purge_removes_by_owner_and_object() {
        let mut s = space();
        let root = s.mint(A, Object::Vhm(B), ALL, 0);
        let mid = s.derive(A, root.0, INSPECT | DERIVE | WAIT, 0, A).unwrap();
        let leaf = s.derive(A, mid.0, INSPECT, 0, A).unwrap();
        s.delete(A, mid.0).unwrap();
        assert_eq!(s.revoke(A, root.0).unwrap(), vec![(A, leaf)]);
        s.mint(B, Object::Budget(B), ALL, 0);
        let other = s.mint(A, Object::Budget(A), ALL, 0);
        let removed = s.purge(B, &[Object::Vhm(B)]);
        assert_eq!(removed.len(), 2);
        assert_eq!(s.count(B), 0);
        assert!(s.resolve(A, other.0).is_ok());
        s.check().unwrap();
    }
}
