//! The host footprint of a VHM beyond its linear memories: what the host holds on its behalf,
//! charged to its memory budget (`memory_quota − vcpus × memory_limit − carved`).
//!
//! - queued IPC messages it sent, and modules it loaded: held in `Budget::held`
//!   (`hypercalls/ipc.rs`, `hypercalls/nesting.rs`);
//! - its capability table: [`CapSpace::footprint_bytes`] over a free allowance of
//!   [`FREE_CAP_BYTES`], checked before every capability a guest's call adds to it.
//!
//! So a VHM's budgets bound the host memory it can make xdv hold (docs/reliability.md, "Host
//! resources").

use crate::hypervisor::Hypervisor;
use xdv_core::cap::{CAP_ENTRY_BYTES, CAP_SLOT_BYTES};
use xdv_core::VhmId;

/// Capability-table bytes every VHM holds free of charge: 128 capabilities' worth, more than
/// the hypervisor mints for a VHM of 64 vCPUs (its budget, vCPUs, module, Q container, windows,
/// up to 16 passed at spawn).
pub const FREE_CAP_BYTES: u64 = 128 * (CAP_ENTRY_BYTES + CAP_SLOT_BYTES);

impl Hypervisor {
    /// The part of `vhm`'s capability-table footprint charged to its memory budget.
    pub(crate) fn cap_charge(&self, vhm: u32) -> u64 {
        self.caps
            .footprint_bytes(VhmId(vhm))
            .saturating_sub(FREE_CAP_BYTES)
    }

    /// Memory `vhm`'s budget has left for host-held bytes, its capability table or children.
    pub(crate) fn memory_free(&self, vhm: u32) -> u64 {
        self.vhms[vhm as usize]
            .budget
            .memory_left()
            .saturating_sub(self.cap_charge(vhm))
    }

    /// Checks that `n` more capabilities (and `channels` more numbered channels) fit `vhm`'s
    /// memory budget; the refusal's reason when not.
    pub(crate) fn cap_room(&self, vhm: u32, n: u64, channels: u64) -> Result<(), String> {
        let now = self.caps.footprint_bytes(VhmId(vhm));
        let grow =
            n * (CAP_ENTRY_BYTES + CAP_SLOT_BYTES) + channels * xdv_core::cap::CAP_CHANNEL_BYTES;
        let more = (now + grow).saturating_sub(FREE_CAP_BYTES) - now.saturating_sub(FREE_CAP_BYTES);
        let free = self.memory_free(vhm);
        if more > free {
            return Err(format!(
                "memory budget: the capability table needs {more} more bytes, {free} left"
            ));
        }
        Ok(())
    }
}
