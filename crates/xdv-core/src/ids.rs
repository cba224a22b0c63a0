//! Identifiers of hypervisor objects. All are plain integers assigned in a deterministic order.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A VHM's host-wide identifier: its position in creation order, starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VhmId(pub u32);

impl fmt::Display for VhmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vhm{}", self.0)
    }
}

/// A vCPU's index inside its VHM, starting at 0.
pub type VcpuIndex = u32;

/// A capability handle: a 64-bit value meaningful only inside the VHM whose table holds it.
///
/// Layout: bits 0–23 the slot, bits 24–43 the holder's tag, bits 44–62 the slot's generation
/// (1 … [`CapId::MAX_GENERATION`]); bit 63 is always 0, so a handle is never a negative `i64` (an
/// error code). The tag is a function of the holder's name alone (`xdv_core::cap::tag_of`), so a
/// VHM's handle values never depend on which VHMs exist beside it; two VHMs may share a tag, which
/// is harmless because a handle is only ever resolved in its presenter's own table. The
/// generation makes a handle stale once its slot is reused; a slot whose generation reaches the
/// maximum is retired rather than reused, so a stale handle stays stale forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CapId(pub u64);

impl CapId {
    const SLOT_BITS: u32 = 24;
    const TAG_BITS: u32 = 20;
    const GEN_BITS: u32 = 19;
    /// The largest slot number a handle can carry.
    pub const MAX_SLOT: u32 = (1 << Self::SLOT_BITS) - 1;
    /// The largest generation a handle can carry; a slot filled at this generation is retired
    /// when it is next freed.
    pub const MAX_GENERATION: u32 = (1 << Self::GEN_BITS) - 1;
    /// The largest holder tag.
    pub const MAX_TAG: u32 = (1 << Self::TAG_BITS) - 1;

    /// Builds a handle from its slot, its holder's tag and the slot's generation.
    pub const fn new(slot: u32, tag: u32, generation: u32) -> Self {
        let slot = (slot as u64) & ((1 << Self::SLOT_BITS) - 1);
        let tag = (tag as u64) & ((1 << Self::TAG_BITS) - 1);
        let generation = (generation as u64) & ((1 << Self::GEN_BITS) - 1);
        Self(slot | (tag << Self::SLOT_BITS) | (generation << (Self::SLOT_BITS + Self::TAG_BITS)))
    }
    /// The slot part of the handle.
    pub const fn slot(self) -> u32 {
        (self.0 & ((1 << Self::SLOT_BITS) - 1)) as u32
    }
    /// The holder tag part of the handle.
    pub const fn tag(self) -> u32 {
        ((self.0 >> Self::SLOT_BITS) & ((1 << Self::TAG_BITS) - 1)) as u32
    }
    /// The generation part of the handle.
    pub const fn generation(self) -> u32 {
        (self.0 >> (Self::SLOT_BITS + Self::TAG_BITS)) as u32
    }
}

impl fmt::Display for CapId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cap:{}.{}", self.slot(), self.generation())
    }
}

/// The three resource domains of a VHM (spec §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Domain {
    /// Classical compute: vCPUs, memory, fuel.
    K,
    /// Quantum: logical qubits in provider-bound containers.
    Q,
    /// Phase: coherence windows on Φ ports.
    Phi,
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Domain::K => "K",
            Domain::Q => "Q",
            Domain::Phi => "Phi",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_id_round_trips_slot_and_generation() {
        let c = CapId::new(7, 5, 3);
        assert_eq!((c.slot(), c.tag(), c.generation()), (7, 5, 3));
        assert_eq!(c.to_string(), "cap:7.3");
    }
}
