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

/// A capability identifier: a 64-bit `(slot, generation)` handle inside one VHM's table.
///
/// The slot is the low 32 bits, the generation the high 32. A handle is meaningful only
/// together with the VHM that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CapId(pub u64);

impl CapId {
    /// Builds a handle from its slot and generation.
    pub const fn new(slot: u32, generation: u32) -> Self {
        Self(((generation as u64) << 32) | slot as u64)
    }
    /// The slot part of the handle.
    pub const fn slot(self) -> u32 {
        self.0 as u32
    }
    /// The generation part of the handle.
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
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
        let c = CapId::new(7, 3);
        assert_eq!((c.slot(), c.generation()), (7, 3));
        assert_eq!(c.to_string(), "cap:7.3");
    }
}
