//! Capabilities: per-VHM handle tables over one host-wide derivation tree (DESIGN §4).
//!
//! A VHM names kernel objects only through handles, 64-bit `(slot, tag, generation)` values into
//! its own table. Every capability is a node of one derivation tree: a node is minted by the
//! hypervisor (no parent) or derived from another with rights that are a subset of its source's.
//! Node ids grow in creation order and are never reused, so "every descendant, in creation order"
//! is a sorted walk.
//!
//! **What a VHM can observe depends only on its own history and its explicit links.** Its tag is
//! a function of its name ([`tag_of`]), never of other tables; its slots and generations change
//! only with what enters and leaves its own table; the number `cap_info` reports for an endpoint
//! is the holder's own number for the channel ([`CapSpace::info_number`]), not the host-wide one.
//!
//! **Host cost is bounded.** Removed nodes are reclaimed at once, so the space holds only live
//! nodes ([`CapSpace::footprint_bytes`]); each table keeps one generation word per slot it ever
//! used, and a slot is retired (never reused) when its generation would wrap. A node's children
//! are a shared *sibling group*; deleting a node merges its group into its parent's, smaller into
//! larger, so any sequence of `n` derivations and removals rewrites O(n log n) links
//! ([`CapSpace::relinks`]).
//!
//! Invariants (checked by [`CapSpace::check`], asserted in debug builds after every change while
//! the space is small, and exercised by property tests): a live node's rights are a subset of its parent's; a live node is
//! reachable through exactly one slot of its owner's table with the slot's current generation; a
//! removed node is reachable through none; sibling groups and parent links agree; each table's
//! channel numbers count exactly its live endpoint capabilities.

use crate::hash::Hash32;
use crate::ids::{CapId, VhmId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

bitflags::bitflags! {
    /// The rights a capability carries. Which mean something depends on the object type
    /// ([`Object::valid_rights`]); a guest's request may carry any bits, kept as given so that
    /// asking for more than a source holds is refused rather than silently dropped.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct Rights: u32 {
        /// Read the capability's description with `cap_info`, and the object's state.
        const INSPECT = 1 << 0;
        /// Derive copies inside the holder's own table.
        const DERIVE = 1 << 1;
        /// Pass a derived copy to another VHM (spawn, IPC).
        const TRANSFER = 1 << 2;
        /// Budget: carve a child VHM. Module: run it as a child's image.
        const SPAWN = 1 << 3;
        /// VHM: wait for it to stop.
        const WAIT = 1 << 4;
        /// VHM: stop it and its subtree.
        const KILL = 1 << 5;
        /// Endpoint: send.
        const SEND = 1 << 6;
        /// Endpoint: receive.
        const RECV = 1 << 7;
        /// Budget: create IPC channels.
        const CHANNEL = 1 << 8;
        /// Q container: submit jobs.
        const SUBMIT = 1 << 9;
    }
}

/// The rights by name, as the ABI numbers them (`rights::SEND` and so on).
pub mod rights {
    use super::Rights;

    /// Read the capability's description with `cap_info`, and the object's state.
    pub const INSPECT: Rights = Rights::INSPECT;
    /// Derive copies inside the holder's own table.
    pub const DERIVE: Rights = Rights::DERIVE;
    /// Pass a derived copy to another VHM (spawn, IPC).
    pub const TRANSFER: Rights = Rights::TRANSFER;
    /// Budget: carve a child VHM. Module: run it as a child's image.
    pub const SPAWN: Rights = Rights::SPAWN;
    /// VHM: wait for it to stop.
    pub const WAIT: Rights = Rights::WAIT;
    /// VHM: stop it and its subtree.
    pub const KILL: Rights = Rights::KILL;
    /// Endpoint: send.
    pub const SEND: Rights = Rights::SEND;
    /// Endpoint: receive.
    pub const RECV: Rights = Rights::RECV;
    /// Budget: create IPC channels.
    pub const CHANNEL: Rights = Rights::CHANNEL;
    /// Q container: submit jobs.
    pub const SUBMIT: Rights = Rights::SUBMIT;
    /// Every right.
    pub const ALL: Rights = Rights::all();

    /// Names of the rights, in bit order.
    pub const NAMES: [&str; 10] = [
        "inspect", "derive", "transfer", "spawn", "wait", "kill", "send", "recv", "channel",
        "submit",
    ];

    /// `"inspect|derive"`-style rendering of the bits `r` (a trace records rights as bits).
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

/// The object types by ABI code, as `cap_find` takes and `cap_info` reports them.
pub const OBJECT_TYPES: [(u32, &str); 8] = [
    (1, "vhm"),
    (2, "budget"),
    (3, "module"),
    (4, "endpoint"),
    (5, "vcpu"),
    (6, "q_container"),
    (7, "q_job"),
    (8, "phi_window"),
];

/// A channel's host-wide number (never shown to guests: see [`CapSpace::info_number`]).
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
    pub fn valid_rights(&self) -> Rights {
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

    /// The part of `cap_info`'s number that does not depend on the holder: 0 for VHMs and
    /// budgets, the index for a vCPU, the first 8 bytes of the hash for a module, the end, 0 or
    /// 1, for an endpoint, 0 for a Q container or a Φ window, the job number for a Q job. What
    /// `cap_info` reports is [`CapSpace::info_number`], which adds the holder's own channel
    /// number to an endpoint's.
    pub fn number(&self) -> u64 {
        match *self {
            // Host-wide VHM ids would tell a guest how many VHMs exist beside it: not exposed.
            Object::Vhm(_) | Object::Budget(_) | Object::QContainer(_) => 0,
            Object::QJob(_, j) => u64::from(j),
            // Window numbers are host-wide: they would tell how many windows others hold.
            Object::PhiWindow(..) => 0,
            Object::Vcpu(_, i) => u64::from(i),
            Object::Module(h) => u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes")),
            // Channel numbers are host-wide: they would tell how many channels others created.
            Object::Endpoint(_, side) => u64::from(side),
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
    /// The destination table holds [`MAX_CAPS_PER_VHM`] capabilities already (or, after about
    /// 2^43 fills, every slot number it can use is taken or retired).
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

/// A capability's host-wide id: its position in creation order, never reused.
pub type NodeId = usize;

/// A sibling group's id (internal, never shown).
type GroupId = u64;

/// Host bytes one live capability costs at most, everything included, with every B-tree node
/// at its minimum occupancy (5 of 11 entries): its [`Node`] (96 bytes) in the node map (≤ 282),
/// its entry in the per-object index, in the worst case a new object with an index set of its
/// own (≤ 270), the group of its own children, in the worst case holding one child (≤ 217), and
/// its place in its parent's group (≤ 29): 798, rounded up. The per-table costs are separate
/// ([`CAP_SLOT_BYTES`], [`CAP_CHANNEL_BYTES`]); `tests/cap_properties.rs` checks all three
/// against a counting allocator.
pub const CAP_ENTRY_BYTES: u64 = 1024;

/// Host bytes a table spends per slot it has ever used, live or not: 24 bytes, twice over for
/// the vector's growth, and its place in the free list (≤ 24). A slot's generation must outlive
/// its capability so that a stale handle stays stale, so slots are never given back to the host
/// (until the table is unregistered). A table has at most 1 + the most capabilities it held at
/// once + one retired slot per 2^19 − 1 fills of a slot.
pub const CAP_SLOT_BYTES: u64 = 72;

/// Host bytes per channel a table currently numbers, one it holds an endpoint of or one with an
/// end anchored at the holder (≤ 60 at minimum occupancy, rounded up).
pub const CAP_CHANNEL_BYTES: u64 = 96;

/// The handle tag of the VHM called `name`: the first 4 bytes (little-endian) of
/// `BLAKE3(name)`, masked to 20 bits, with 0 replaced by 1 so that a tag is never 0.
///
/// A function of the name alone, never of other tables: two VHMs may share a tag. That is
/// harmless, because a handle is only ever resolved in the table of the VHM presenting it: a
/// handle copied from a VHM with the same tag that happens to resolve names one of the
/// presenter's *own* capabilities, which it could name anyway.
pub fn tag_of(name: &str) -> u32 {
    let hash = blake3::hash(name.as_bytes());
    let word = u32::from_le_bytes(hash.as_bytes()[..4].try_into().expect("4 bytes"));
    (word & CapId::MAX_TAG).max(1)
}

/// A capability: one node of the derivation tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it names.
    pub object: Object,
    /// What it allows.
    pub rights: Rights,
    /// The badge stamped on messages sent through it (0: none).
    pub badge: u64,
    /// The VHM whose table holds it.
    pub owner: VhmId,
    /// Its handle in the owner's table.
    pub handle: CapId,
    /// The group of its parent's children it belongs to; `None` for a root.
    siblings: Option<GroupId>,
    /// The group of its own children; `None` when it has none.
    children: Option<GroupId>,
}

/// The children of one node. A node's children point at the group, not at the node, so that a
/// deleted node's children can join its parent's by moving the smaller group into the larger.
#[derive(Debug, Clone)]
struct Group {
    parent: NodeId,
    members: BTreeSet<NodeId>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The generation of the slot's current (or last) capability; 0 before the first fill.
    generation: u32,
    node: Option<NodeId>,
}

/// A table's own number for a channel (what `cap_info` reports for its endpoints).
#[derive(Debug, Clone)]
struct ChannelNumber {
    number: u64,
    /// Live endpoint capabilities on the channel in this table.
    caps: u32,
    /// An end of the channel is anchored at the holder: the number stays while it is.
    anchored: bool,
}

#[derive(Debug, Clone)]
struct Table {
    /// The holder's tag, part of every handle in the table.
    tag: u32,
    /// Slot i. Slot 0 is never used, so handle 0 is always invalid.
    slots: Vec<Slot>,
    /// Empty slots that can be filled again (not retired), lowest first.
    free: BTreeSet<u32>,
    live: usize,
    /// Empty slots at [`CapId::MAX_GENERATION`]: never filled again.
    retired: usize,
    /// The holder's numbers for the channels it holds endpoints of or anchors.
    channels: BTreeMap<ChannelId, ChannelNumber>,
    /// The next channel number: channels are numbered in the order they first appear in the
    /// table (again, with a new number, after leaving it).
    next_channel: u64,
}

impl Table {
    fn number_channel(&mut self, channel: ChannelId) -> &mut ChannelNumber {
        let next = &mut self.next_channel;
        self.channels.entry(channel).or_insert_with(|| {
            let number = *next;
            *next += 1;
            ChannelNumber {
                number,
                caps: 0,
                anchored: false,
            }
        })
    }

    /// Slots still fillable: free ones and never-used slot numbers.
    fn room(&self) -> usize {
        self.free.len() + (CapId::MAX_SLOT as usize + 1 - self.slots.len())
    }
}

/// Every capability of the host: the derivation tree and each VHM's table.
#[derive(Debug, Clone, Default)]
pub struct CapSpace {
    /// Live nodes only, by id (creation order).
    nodes: BTreeMap<NodeId, Node>,
    next_node: NodeId,
    /// Non-empty sibling groups, each owned by a live node.
    groups: BTreeMap<GroupId, Group>,
    next_group: GroupId,
    tables: BTreeMap<VhmId, Table>,
    /// Live capabilities per object, for destroying an object's capabilities everywhere.
    by_object: BTreeMap<Object, BTreeSet<NodeId>>,
    /// Group memberships rewritten by removals, a work counter.
    relinks: u64,
    /// Slots of every table together (what a full check walks besides the nodes).
    slots_total: usize,
}

impl CapSpace {
    /// Creates `vhm`'s empty table, tagged [`tag_of`]`(name)`: its handles depend on its name and
    /// its own history only.
    pub fn register(&mut self, vhm: VhmId, name: &str) {
        let table = Table {
            tag: tag_of(name),
            slots: vec![Slot {
                generation: 0,
                node: None,
            }],
            free: BTreeSet::new(),
            live: 0,
            retired: 0,
            channels: BTreeMap::new(),
            next_channel: 0,
        };
        let old = self.tables.insert(vhm, table);
        assert!(old.is_none(), "{vhm}'s table is registered once");
        self.slots_total += 1;
    }

    /// Forgets `vhm`'s table, which must be empty (a stopped VHM, after [`CapSpace::purge`]), to
    /// give its slots' memory back. Its handles stay invalid: nothing resolves in a missing table,
    /// and nothing can be put in one ([`CapSpace::has_room`] is false).
    pub fn unregister(&mut self, vhm: VhmId) {
        if let Some(t) = self.tables.get(&vhm) {
            assert!(t.live == 0, "{vhm}'s table is empty before it is forgotten");
            self.slots_total -= t.slots.len();
            self.tables.remove(&vhm);
        }
    }

    /// Resolves `handle` in `owner`'s table to a live node id.
    pub fn resolve(&self, owner: VhmId, handle: u64) -> Result<NodeId, CapError> {
        let h = CapId(handle);
        let table = self.tables.get(&owner).ok_or(CapError::BadHandle)?;
        match table.slots.get(h.slot() as usize) {
            Some(&Slot {
                generation,
                node: Some(node),
            }) if h.slot() != 0 && h.tag() == table.tag && generation == h.generation() => Ok(node),
            _ => Err(CapError::BadHandle),
        }
    }

    /// Resolves a handle and checks its type and rights.
    pub fn require(
        &self,
        owner: VhmId,
        handle: u64,
        needed: Rights,
        is_type: impl Fn(&Object) -> bool,
    ) -> Result<&Node, CapError> {
        let n = self.node(self.resolve(owner, handle)?);
        if !is_type(&n.object) {
            return Err(CapError::WrongType);
        }
        if !n.rights.contains(needed) {
            return Err(CapError::Rights);
        }
        Ok(n)
    }

    /// [`CapSpace::require`] for an object `pick` accepts: what `pick` takes from it, and the
    /// capability. Lets a caller name the object's parts without matching on it twice.
    ///
    /// # Errors
    ///
    /// As [`CapSpace::require`]; [`CapError::WrongType`] where `pick` gives `None`.
    pub fn require_as<T>(
        &self,
        owner: VhmId,
        handle: u64,
        needed: Rights,
        pick: impl Fn(&Object) -> Option<T>,
    ) -> Result<(T, &Node), CapError> {
        let n = self.node(self.resolve(owner, handle)?);
        let Some(t) = pick(&n.object) else {
            return Err(CapError::WrongType);
        };
        if !n.rights.contains(needed) {
            return Err(CapError::Rights);
        }
        Ok((t, n))
    }

    /// The live node with id `id` (from [`CapSpace::resolve`]); panics for a removed one.
    pub fn node(&self, id: NodeId) -> &Node {
        self.nodes.get(&id).expect("a live capability")
    }

    /// Live capabilities held by `owner`, in slot order.
    pub fn held_by(&self, owner: VhmId) -> impl Iterator<Item = &Node> + '_ {
        self.tables.get(&owner).into_iter().flat_map(move |t| {
            t.slots
                .iter()
                .filter_map(move |s| s.node.map(|i| self.node(i)))
        })
    }

    /// Number of live capabilities held by `owner`.
    pub fn count(&self, owner: VhmId) -> usize {
        self.tables.get(&owner).map_or(0, |t| t.live)
    }

    /// Number of live capabilities on the host: the nodes the space holds (removed ones are
    /// reclaimed at once).
    pub fn live_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Group memberships rewritten by removals so far, a work counter: a deleted node's children
    /// join its parent's children smaller group into larger, so over any sequence of `n`
    /// insertions and removals this stays O(n log n).
    pub fn relinks(&self) -> u64 {
        self.relinks
    }

    /// Host bytes `owner`'s capabilities cost at most: `live × CAP_ENTRY_BYTES + slots ×
    /// CAP_SLOT_BYTES + numbered channels × CAP_CHANNEL_BYTES`. It never exceeds
    /// `MAX_CAPS_PER_VHM × (CAP_ENTRY_BYTES + CAP_SLOT_BYTES + CAP_CHANNEL_BYTES)` plus the
    /// retired slots and the channels anchored at `owner`, and does not grow with fuel when the
    /// number of capabilities does not. 0 for an unknown VHM.
    pub fn footprint_bytes(&self, owner: VhmId) -> u64 {
        self.tables.get(&owner).map_or(0, |t| {
            t.live as u64 * CAP_ENTRY_BYTES
                + t.slots.len() as u64 * CAP_SLOT_BYTES
                + t.channels.len() as u64 * CAP_CHANNEL_BYTES
        })
    }

    /// What `cap_info` reports as the number of the capability `node`, in its holder's terms:
    /// [`Object::number`], except for an endpoint `holder's channel number × 2 + end`, where
    /// the holder numbers channels from 0 in the order they first appear in its table (an
    /// endpoint capability arriving, or an end anchored at it with [`CapSpace::anchor`]). A
    /// channel keeps its number while the holder holds an endpoint of it or anchors an end;
    /// after that, if it comes back, it gets a new one. The number depends on the holder's own
    /// history only, never on how many channels others created.
    pub fn info_number(&self, node: &Node) -> u64 {
        match node.object {
            Object::Endpoint(channel, end) => self
                .endpoint_number(node.owner, channel, end)
                .expect("a held endpoint's channel is numbered"),
            other => other.number(),
        }
    }

    /// `holder`'s number for `end` of `channel` (as [`CapSpace::info_number`]): for the IPC
    /// interrupt's `arg`. `None` when `holder` neither holds an endpoint of the channel nor
    /// anchors one of its ends.
    pub fn endpoint_number(&self, holder: VhmId, channel: ChannelId, end: u8) -> Option<u64> {
        let n = self.tables.get(&holder)?.channels.get(&channel)?;
        Some((n.number << 1) | u64::from(end & 1))
    }

    /// Records that an end of `channel` is anchored at `holder`, so it keeps its number for the
    /// channel (for the IPC interrupt) while the end is open, even when it holds no endpoint
    /// capability. Forgotten when the holder is purged. Call it when the channel is created,
    /// before minting its endpoints.
    pub fn anchor(&mut self, holder: VhmId, channel: ChannelId) {
        self.tables
            .get_mut(&holder)
            .expect("a VHM's table is registered before use")
            .number_channel(channel)
            .anchored = true;
    }

    fn insert(
        &mut self,
        owner: VhmId,
        object: Object,
        rights: Rights,
        badge: u64,
        parent: Option<NodeId>,
    ) -> CapId {
        let id = self.next_node;
        self.next_node += 1;
        let rights = rights & object.valid_rights();
        let table = self
            .tables
            .get_mut(&owner)
            .expect("a VHM's table is registered before use");
        assert!(
            table.live < MAX_CAPS_PER_VHM && table.room() > 0,
            "callers check has_room first"
        );
        let slot = match table.free.pop_first() {
            Some(s) => s,
            None => {
                table.slots.push(Slot {
                    generation: 0,
                    node: None,
                });
                self.slots_total += 1;
                (table.slots.len() - 1) as u32
            }
        };
        let entry = &mut table.slots[slot as usize];
        assert!(
            entry.node.is_none() && entry.generation < CapId::MAX_GENERATION,
            "a free slot is empty and not retired"
        );
        // Generations run 1 … MAX_GENERATION and never wrap: 0 never resolves, and a slot at the
        // last generation is retired when freed.
        entry.generation += 1;
        entry.node = Some(id);
        table.live += 1;
        let handle = CapId::new(slot, table.tag, entry.generation);
        if let Object::Endpoint(channel, _) = object {
            table.number_channel(channel).caps += 1;
        }
        let siblings = parent.map(|p| {
            let pn = self.nodes.get_mut(&p).expect("a live source");
            assert!(
                pn.rights.contains(rights) && pn.object == object,
                "a derivation keeps the object and never amplifies"
            );
            let g = *pn.children.get_or_insert_with(|| {
                let g = self.next_group;
                self.next_group += 1;
                self.groups.insert(
                    g,
                    Group {
                        parent: p,
                        members: BTreeSet::new(),
                    },
                );
                g
            });
            self.groups
                .get_mut(&g)
                .expect("a node's group exists")
                .members
                .insert(id);
            g
        });
        self.nodes.insert(
            id,
            Node {
                object,
                rights,
                badge,
                owner,
                handle,
                siblings,
                children: None,
            },
        );
        self.by_object.entry(object).or_default().insert(id);
        if let Err(e) = self.check_node(id) {
            panic!("capability invariant broken by an insert: {e}");
        }
        handle
    }

    /// Mints a root capability (the hypervisor creating an object for `owner`). The caller has
    /// checked [`CapSpace::has_room`] (a fresh table always has room).
    pub fn mint(&mut self, owner: VhmId, object: Object, rights: Rights, badge: u64) -> CapId {
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
        rights: Rights,
        badge: u64,
        into: VhmId,
        needed: Rights,
    ) -> Result<(NodeId, u64), CapError> {
        let src = self.resolve(owner, handle)?;
        let s = self.node(src);
        if !s.rights.contains(needed) || !s.rights.contains(rights) {
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
        rights: Rights,
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
        rights: Rights,
        badge: u64,
        into: VhmId,
    ) -> Result<CapId, CapError> {
        self.derive_needing(owner, handle, rights, badge, into, rights::TRANSFER)
    }

    fn derive_needing(
        &mut self,
        owner: VhmId,
        handle: u64,
        rights: Rights,
        badge: u64,
        into: VhmId,
        needed: Rights,
    ) -> Result<CapId, CapError> {
        let (src, badge) = self.can_derive(owner, handle, rights, badge, into, needed)?;
        let object = self.node(src).object;
        let h = self.insert(into, object, rights, badge, Some(src));
        self.debug_check();
        Ok(h)
    }

    /// `true` when `owner`'s table can take `n` more capabilities: it holds at most
    /// `MAX_CAPS_PER_VHM − n` and has `n` slots left that are neither in use nor retired.
    pub fn has_room(&self, owner: VhmId, n: usize) -> bool {
        self.tables
            .get(&owner)
            .is_some_and(|t| t.live + n <= MAX_CAPS_PER_VHM && t.room() >= n)
    }

    /// Removes node `id` (delete semantics): its children move up to its parent (or become roots,
    /// for a root), so a revoke from above still reaches them.
    fn remove(&mut self, id: NodeId) -> (VhmId, CapId) {
        let node = self
            .nodes
            .remove(&id)
            .expect("a capability is removed once");
        let parent = node.siblings.map(|g| self.groups[&g].parent);
        if let Some(g) = node.siblings {
            let group = self.groups.get_mut(&g).expect("a node's group exists");
            assert!(group.members.remove(&id), "a node is in its sibling group");
        }
        match (node.siblings, node.children) {
            (None, None) => {}
            (Some(g), None) => {
                if self.groups[&g].members.is_empty() {
                    let parent = self.groups.remove(&g).expect("the group exists").parent;
                    self.nodes
                        .get_mut(&parent)
                        .expect("a group's parent is live")
                        .children = None;
                }
            }
            // A root's children become roots: each node does so at most once.
            (None, Some(c)) => {
                let group = self.groups.remove(&c).expect("the group exists");
                for m in group.members {
                    self.nodes.get_mut(&m).expect("a live member").siblings = None;
                    self.relinks += 1;
                }
            }
            // The children join the parent's: move the smaller group into the larger one, which
            // then belongs to the parent.
            (Some(g), Some(c)) => {
                let parent = self.groups[&g].parent;
                let (small, large) =
                    if self.groups[&g].members.len() >= self.groups[&c].members.len() {
                        (c, g)
                    } else {
                        (g, c)
                    };
                let moved = self
                    .groups
                    .remove(&small)
                    .expect("the group exists")
                    .members;
                for &m in &moved {
                    self.nodes.get_mut(&m).expect("a live member").siblings = Some(large);
                }
                self.relinks += moved.len() as u64;
                let into = self.groups.get_mut(&large).expect("the group exists");
                into.members.extend(moved);
                into.parent = parent;
                self.nodes
                    .get_mut(&parent)
                    .expect("a group's parent is live")
                    .children = Some(large);
            }
        }
        // The parent took the removed node's children: its links must still hold.
        if let Some(p) = parent {
            if let Err(e) = self.check_node(p) {
                panic!("capability invariant broken by a removal: {e}");
            }
        }
        self.unlink(id, &node)
    }

    /// Takes a removed node out of the object index and its owner's table.
    fn unlink(&mut self, id: NodeId, n: &Node) -> (VhmId, CapId) {
        let set = self
            .by_object
            .get_mut(&n.object)
            .expect("a live capability is indexed");
        assert!(set.remove(&id), "a live capability is indexed");
        if set.is_empty() {
            self.by_object.remove(&n.object);
        }
        let table = self
            .tables
            .get_mut(&n.owner)
            .expect("the owner's table exists");
        let slot = n.handle.slot();
        let entry = &mut table.slots[slot as usize];
        assert!(entry.node == Some(id), "a live capability is in its slot");
        entry.node = None;
        if entry.generation == CapId::MAX_GENERATION {
            // Filling it again would wrap the generation and revive stale handles: retire it.
            table.retired += 1;
        } else {
            table.free.insert(slot);
        }
        table.live -= 1;
        if let Object::Endpoint(channel, _) = n.object {
            let number = table
                .channels
                .get_mut(&channel)
                .expect("a held endpoint's channel is numbered");
            number.caps -= 1;
            if number.caps == 0 && !number.anchored {
                table.channels.remove(&channel);
            }
        }
        (n.owner, n.handle)
    }

    /// Removes every descendant of `owner`'s `handle` (not the capability itself), in creation
    /// order, returning each removed `(holder, handle)`.
    pub fn revoke(&mut self, owner: VhmId, handle: u64) -> Result<Vec<(VhmId, CapId)>, CapError> {
        let id = self.resolve(owner, handle)?;
        // The whole subtree goes: no links to repair inside it, only the root's child group.
        let mut stack: Vec<GroupId> = self
            .nodes
            .get_mut(&id)
            .expect("a live capability")
            .children
            .take()
            .into_iter()
            .collect();
        let mut subtree = Vec::new();
        while let Some(g) = stack.pop() {
            let group = self.groups.remove(&g).expect("a node's group exists");
            for m in group.members {
                stack.extend(self.node(m).children);
                subtree.push(m);
            }
        }
        subtree.sort_unstable();
        let removed = subtree
            .into_iter()
            .map(|d| {
                let n = self.nodes.remove(&d).expect("a live descendant");
                self.unlink(d, &n)
            })
            .collect();
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

    /// The VHM `owner` stopped: removes every capability it holds and every capability anywhere
    /// that names one of the `dead` objects, in creation order, and forgets its channel numbers
    /// (its anchored ends are closed). Returns the removed `(holder, handle)` pairs.
    pub fn purge(&mut self, owner: VhmId, dead: &[Object]) -> Vec<(VhmId, CapId)> {
        let mut ids: BTreeSet<NodeId> = self
            .tables
            .get(&owner)
            .map(|t| t.slots.iter().filter_map(|s| s.node).collect())
            .unwrap_or_default();
        for o in dead {
            ids.extend(self.by_object.get(o).into_iter().flatten());
        }
        let removed = ids.into_iter().map(|i| self.remove(i)).collect();
        if let Some(t) = self.tables.get_mut(&owner) {
            assert!(t.live == 0, "a purged table is empty");
            t.channels.clear();
        }
        self.debug_check();
        removed
    }

    /// Removes every capability naming `object`, in any table, in creation order (the object
    /// was destroyed: a released window, a finished job).
    pub fn destroy(&mut self, object: &Object) -> Vec<(VhmId, CapId)> {
        let ids: BTreeSet<NodeId> = self.by_object.get(object).cloned().unwrap_or_default();
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

    /// Checks one live capability: in its owner's table at its handle's slot and generation,
    /// with its table's tag, rights its type has, indexed by its object, linked to its parent
    /// (whose object it names, whose rights it does not exceed, and which is older) and to its
    /// own children's group. O(log n): cheap enough for every mutation point.
    ///
    /// # Errors
    ///
    /// The first broken rule, in words.
    pub fn check_node(&self, id: NodeId) -> Result<(), String> {
        let Some(n) = self.nodes.get(&id) else {
            return Err(format!("capability {id} is not live"));
        };
        self.check_live(id, n)
    }

    /// [`CapSpace::check_node`] of the live capability `n`, numbered `id`.
    fn check_live(&self, id: NodeId, n: &Node) -> Result<(), String> {
        if id >= self.next_node {
            return Err(format!("capability {id} has an id from the future"));
        }
        let table = self.tables.get(&n.owner);
        let slot = table.and_then(|t| t.slots.get(n.handle.slot() as usize).copied());
        if !slot.is_some_and(|s| s.generation == n.handle.generation() && s.node == Some(id)) {
            return Err(format!(
                "capability {id} is not in its owner's table at {}",
                n.handle
            ));
        }
        if table.is_none_or(|t| t.tag != n.handle.tag()) {
            return Err(format!("capability {id} has another table's tag"));
        }
        if !n.object.valid_rights().contains(n.rights) {
            return Err(format!(
                "capability {id} holds rights its type does not have"
            ));
        }
        if !self
            .by_object
            .get(&n.object)
            .is_some_and(|s| s.contains(&id))
        {
            return Err(format!("capability {id} is not indexed by its object"));
        }
        if let Some(g) = n.siblings {
            let Some(group) = self.groups.get(&g) else {
                return Err(format!("capability {id} is in a missing group"));
            };
            let p = group.parent;
            let Some(parent) = self.nodes.get(&p) else {
                return Err(format!("capability {id} has a dead parent {p}"));
            };
            if !group.members.contains(&id) || parent.children != Some(g) {
                return Err(format!("capability {id} is unlinked from its parent {p}"));
            }
            if !parent.rights.contains(n.rights) {
                return Err(format!(
                    "capability {id} has rights its parent {p} lacks (amplified)"
                ));
            }
            if n.object != parent.object {
                return Err(format!(
                    "capability {id} names another object than its parent"
                ));
            }
            if p >= id {
                return Err(format!("capability {id} is older than its parent {p}"));
            }
        }
        if let Some(g) = n.children {
            if self.groups.get(&g).is_none_or(|gr| gr.parent != id) {
                return Err(format!("capability {id}'s children group is not its own"));
            }
        }
        Ok(())
    }

    /// Checks every invariant; returns the first violation.
    pub fn check(&self) -> Result<(), String> {
        for (&id, n) in &self.nodes {
            self.check_live(id, n)?;
        }
        for (g, group) in &self.groups {
            if group.members.is_empty() {
                return Err(format!("sibling group {g} is empty"));
            }
            for m in &group.members {
                if self.nodes.get(m).is_none_or(|n| n.siblings != Some(*g)) {
                    return Err(format!("sibling group {g} holds {m}, which is not in it"));
                }
            }
        }
        let indexed: usize = self.by_object.values().map(BTreeSet::len).sum();
        if indexed != self.nodes.len() || self.by_object.values().any(BTreeSet::is_empty) {
            return Err(format!(
                "the object index holds {indexed} capabilities, the tree {}",
                self.nodes.len()
            ));
        }
        for (vhm, t) in &self.tables {
            let used = t.slots.iter().skip(1).filter(|s| s.node.is_some()).count();
            if used != t.live || t.slots[0].node.is_some() {
                return Err(format!(
                    "{vhm}: live count {} but {used} slots in use",
                    t.live
                ));
            }
            let retired = t
                .slots
                .iter()
                .skip(1)
                .filter(|s| s.node.is_none() && s.generation == CapId::MAX_GENERATION)
                .count();
            if retired != t.retired
                || t.free.len() + t.live + t.retired + 1 != t.slots.len()
                || t.free.iter().any(|&f| {
                    t.slots.get(f as usize).is_none_or(|s| {
                        f == 0 || s.node.is_some() || s.generation >= CapId::MAX_GENERATION
                    })
                })
            {
                return Err(format!("{vhm}: free and retired slots disagree"));
            }
            if t.slots.iter().any(|s| s.generation > CapId::MAX_GENERATION) {
                return Err(format!("{vhm}: a generation past the maximum"));
            }
            let mut held: BTreeMap<ChannelId, u32> = BTreeMap::new();
            for s in &t.slots {
                if let Some(Object::Endpoint(c, _)) =
                    s.node.and_then(|i| self.nodes.get(&i)).map(|n| n.object)
                {
                    *held.entry(c).or_default() += 1;
                }
            }
            let numbers: BTreeSet<u64> = t.channels.values().map(|c| c.number).collect();
            if numbers.len() != t.channels.len()
                || numbers.last().is_some_and(|&n| n >= t.next_channel)
                || t.channels.iter().any(|(c, n)| {
                    n.caps != held.get(c).copied().unwrap_or(0) || (n.caps == 0 && !n.anchored)
                })
                || held.keys().any(|c| !t.channels.contains_key(c))
            {
                return Err(format!(
                    "{vhm}: channel numbers disagree with its endpoints"
                ));
            }
        }
        Ok(())
    }

    fn debug_check(&self) {
        // A full check walks every node and slot: only while that stays small.
        #[cfg(debug_assertions)]
        if self.nodes.len() + self.slots_total < 2048 {
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

    #[test]
    fn object_types_table_agrees_with_the_objects() {
        let h = Hash32([0; 32]);
        let all = [
            Object::Vhm(A),
            Object::Budget(A),
            Object::Module(h),
            Object::Endpoint(0, 0),
            Object::Vcpu(A, 0),
            Object::QContainer(A),
            Object::QJob(A, 0),
            Object::PhiWindow(A, 0),
        ];
        let got: Vec<(u32, &str)> = all.iter().map(|o| (o.type_code(), o.type_name())).collect();
        assert_eq!(got, OBJECT_TYPES.to_vec());
    }

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

    /// A name whose tag equals `tag_of(name)`, other than `name` (brute force over ~2^20 names).
    fn colliding(name: &str) -> String {
        let tag = tag_of(name);
        (0u64..)
            .map(|i| format!("n{i}"))
            .find(|n| n != name && tag_of(n) == tag)
            .expect("some name collides")
    }

    #[test]
    fn tags_depend_on_the_name_alone_and_a_shared_tag_is_harmless() {
        assert!((1..=CapId::MAX_TAG).contains(&tag_of("a")));
        assert_eq!(
            tag_of("supervisor"),
            0xccb59,
            "docs/abi.md's example handle"
        );
        let other = colliding("a");
        // Alone, and after a VHM with the same tag that already holds capabilities.
        let mut alone = CapSpace::default();
        alone.register(A, "a");
        let mut beside = CapSpace::default();
        beside.register(B, &other);
        let theirs = beside.mint(B, Object::Budget(B), ALL, 0);
        beside.register(A, "a");
        let mine = beside.mint(A, Object::Budget(A), ALL, 0);
        assert_eq!(mine, alone.mint(A, Object::Budget(A), ALL, 0));
        // Same tag, same slot, same generation: the same value, resolved per table.
        assert_eq!(mine, theirs);
        let id = beside.resolve(A, theirs.0).unwrap();
        assert_eq!(
            beside.node(id).owner,
            A,
            "it names the presenter's own capability"
        );
        assert_eq!(beside.node(id).object, Object::Budget(A));
        beside.check().unwrap();
    }

    #[test]
    fn a_slot_is_retired_before_its_generation_wraps() {
        let mut s = space();
        let root = s.mint(A, Object::Module(Hash32::of(b"m")), ALL, 0);
        let first = s.derive(A, root.0, INSPECT, 0, A).unwrap();
        s.delete(A, first.0).unwrap();
        let mut last = first;
        // Every generation of slot 2, 1 … MAX_GENERATION, once.
        for generation in 2..=CapId::MAX_GENERATION {
            let h = s.insert(A, Object::Module(Hash32::of(b"m")), INSPECT, 0, None);
            assert_eq!((h.slot(), h.generation()), (first.slot(), generation));
            let id = s.resolve(A, h.0).unwrap();
            s.remove(id);
            last = h;
        }
        s.check().unwrap();
        let t = &s.tables[&A];
        assert_eq!((t.retired, t.free.len()), (1, 0), "slot 2 is retired");
        // The next capability takes a fresh slot; no old handle of slot 2 ever resolves again.
        let next = s.derive(A, root.0, INSPECT, 0, A).unwrap();
        assert_eq!((next.slot(), next.generation()), (first.slot() + 1, 1));
        for stale in [first, last] {
            assert_eq!(s.resolve(A, stale.0), Err(CapError::BadHandle));
        }
        assert!(
            s.footprint_bytes(A) >= 4 * CAP_SLOT_BYTES,
            "the retired slot is charged"
        );
        s.check().unwrap();
    }

    #[test]
    fn sixty_five_thousand_drops_and_a_hub_chain_take_n_log_n_relinks() {
        let mut s = space();
        const M: Rights = INSPECT.union(DERIVE).union(TRANSFER).union(SPAWN);
        let root = s.mint(A, Object::Module(Hash32::of(b"m")), ALL, 0);
        let handles: Vec<CapId> = (0..65_000)
            .map(|_| s.derive(A, root.0, M, 0, A).unwrap())
            .collect();
        for h in &handles {
            s.delete(A, h.0).unwrap();
        }
        assert_eq!((s.live_nodes(), s.relinks()), (1, 0));
        // A chain of hubs with many leaves under the deepest: deleting the hubs deepest first
        // moves the leaves up each time; smaller into larger, they move not at all.
        const HUBS: usize = 30_000;
        const LEAVES: usize = 30_000;
        let mut hubs = vec![root];
        for _ in 0..HUBS {
            let top = *hubs.last().unwrap();
            hubs.push(s.derive(A, top.0, M, 0, A).unwrap());
        }
        let deepest = *hubs.last().unwrap();
        for _ in 0..LEAVES {
            s.derive(A, deepest.0, M, 0, A).unwrap();
        }
        for h in hubs[1..].iter().rev() {
            s.delete(A, h.0).unwrap();
        }
        let n = (HUBS + LEAVES) as u64;
        assert!(
            s.relinks() <= n * 17,
            "{} relinks for {n} nodes",
            s.relinks()
        );
        s.check().unwrap();
        assert_eq!(s.revoke(A, root.0).unwrap().len(), LEAVES);
        assert_eq!(s.live_nodes(), 1);
        assert!(s.groups.is_empty());
        s.check().unwrap();
    }

    #[test]
    fn removed_capabilities_are_reclaimed() {
        let mut s = space();
        const E: Rights = INSPECT
            .union(DERIVE)
            .union(TRANSFER)
            .union(SEND)
            .union(RECV);
        let root = s.mint(A, Object::Endpoint(3, 1), ALL, 0);
        let keep = s.derive(A, root.0, E, 0, B).unwrap();
        // One round first, so that A's table has the two slots the loop uses.
        let d = s.derive(A, root.0, E, 0, A).unwrap();
        s.derive(A, d.0, E, 0, A).unwrap();
        s.revoke(A, d.0).unwrap();
        s.delete(A, d.0).unwrap();
        let before = (
            s.live_nodes(),
            s.groups.len(),
            s.by_object.len(),
            s.footprint_bytes(A),
        );
        for i in 0..100_000u32 {
            let d = s.derive(A, root.0, E, 0, A).unwrap();
            let d2 = s.derive(A, d.0, E, 0, A).unwrap();
            if i % 2 == 0 {
                s.delete(A, d.0).unwrap();
                s.delete(A, d2.0).unwrap();
            } else {
                s.revoke(A, root.0).unwrap();
                s.derive(A, root.0, E, 0, B).unwrap();
            }
        }
        let after = (
            s.live_nodes(),
            s.groups.len(),
            s.by_object.len(),
            s.footprint_bytes(A),
        );
        assert_eq!(before, after, "host memory does not grow with fuel");
        assert!(s.resolve(B, keep.0).is_err(), "revoked along the way");
        s.check().unwrap();
    }

    #[test]
    fn channel_numbers_are_the_holders_own() {
        let mut s = space();
        // A numbers channels in its own order of first appearance, whatever their host numbers.
        let a9 = s.mint(A, Object::Endpoint(9, 1), ALL, 0);
        s.anchor(A, 4);
        let a4 = s.mint(A, Object::Endpoint(4, 0), ALL, 0);
        let b9 = s.derive(A, a9.0, SEND | INSPECT, 0, B).unwrap();
        let num =
            |s: &CapSpace, v: VhmId, h: CapId| s.info_number(s.node(s.resolve(v, h.0).unwrap()));
        assert_eq!(num(&s, A, a9), 1);
        assert_eq!(num(&s, A, a4), 2);
        assert_eq!(num(&s, B, b9), 1, "B's first channel");
        // Leaving the table forgets the number, unless an end is anchored at the holder.
        s.delete(A, a4.0).unwrap();
        assert_eq!(s.endpoint_number(A, 4, 0), Some(2));
        s.delete(B, b9.0).unwrap();
        assert_eq!(s.endpoint_number(B, 9, 1), None);
        let b9 = s.derive(A, a9.0, SEND, 0, B).unwrap();
        assert_eq!(
            num(&s, B, b9),
            3,
            "a channel that comes back gets a new number"
        );
        assert_eq!(Object::Endpoint(9, 1).number(), 1, "no host-wide number");
        s.purge(A, &[]);
        assert_eq!(s.endpoint_number(A, 4, 0), None, "a purged holder forgets");
        assert_eq!(s.footprint_bytes(A), 3 * CAP_SLOT_BYTES);
        s.check().unwrap();
    }
}
