//! The host footprint of a VHM beyond its linear memories: what the host holds on its behalf,
//! charged to its memory budget (`memory_quota − vcpus × memory_limit − carved`).
//!
//! - queued IPC messages it sent, and modules it loaded: held in `Budget::held`
//!   (`hypercalls/ipc.rs`, `hypercalls/nesting.rs`);
//! - its capability table: [`CapSpace::footprint_bytes`] over a free allowance of
//!   [`FREE_CAP_BYTES`], checked before every capability a guest's call adds to it;
//! - its Q jobs: each one's circuit (until it completes) and outcome words (8 bytes a shot) and
//!   a record, until `q_result`, over [`FREE_JOB_BYTES`], checked when a job is admitted.
//!
//! So a VHM's budgets bound the host memory it can make xdv hold (docs/reliability.md, "Host
//! resources").

use crate::state::State;
use xdv_core::cap::{CAP_ENTRY_BYTES, CAP_SLOT_BYTES};
use xdv_core::refusal::{Need, Refusal};
use xdv_core::VhmId;

/// Bytes of uncollected Q job outcomes every VHM holds free of charge (64 KiB: 8 000 shots),
/// so a container of a VHM sized exactly for its vCPUs still runs ordinary jobs.
pub const FREE_JOB_BYTES: u64 = 64 * 1024;

/// Capability-table bytes every VHM holds free of charge: 128 capabilities' worth, more than
/// the hypervisor mints for a VHM of 64 vCPUs (its budget, vCPUs, module, Q container, windows,
/// up to 16 passed at spawn).
pub const FREE_CAP_BYTES: u64 = 128 * (CAP_ENTRY_BYTES + CAP_SLOT_BYTES);

impl State {
    /// The part of `vhm`'s capability-table footprint charged to its memory budget.
    pub(crate) fn cap_charge(&self, vhm: VhmId) -> u64 {
        self.caps
            .footprint_bytes(vhm)
            .saturating_sub(FREE_CAP_BYTES)
    }

    /// The bytes of `vhm`'s uncollected Q jobs (outcome words and records).
    pub(crate) fn job_bytes(&self, vhm: VhmId) -> u64 {
        self.vhms[vhm]
            .q
            .as_ref()
            .map_or(0, |c| c.jobs.values().map(|j| j.held).sum())
    }

    /// The part of `vhm`'s uncollected Q jobs charged to its memory budget.
    pub(crate) fn job_charge(&self, vhm: VhmId) -> u64 {
        self.job_bytes(vhm).saturating_sub(FREE_JOB_BYTES)
    }

    /// The charged bytes a new job of `bytes` would add.
    pub(crate) fn job_growth(&self, vhm: VhmId, bytes: u64) -> u64 {
        charged_growth(self.job_bytes(vhm), bytes, FREE_JOB_BYTES)
    }

    /// Memory `vhm`'s budget has left for host-held bytes, its capability table, its Q jobs or
    /// children.
    pub(crate) fn memory_free(&self, vhm: VhmId) -> u64 {
        self.vhms[vhm]
            .budget
            .memory_left()
            .saturating_sub(self.cap_charge(vhm))
            .saturating_sub(self.job_charge(vhm))
    }

    /// The charged bytes `n` more capabilities (and `channels` more numbered channels) would add
    /// to `vhm`'s capability table.
    pub(crate) fn cap_growth(&self, vhm: VhmId, n: u64, channels: u64) -> u64 {
        let grow =
            n * (CAP_ENTRY_BYTES + CAP_SLOT_BYTES) + channels * xdv_core::cap::CAP_CHANNEL_BYTES;
        charged_growth(self.caps.footprint_bytes(vhm), grow, FREE_CAP_BYTES)
    }

    /// Checks that `n` more capabilities (and `channels` more numbered channels) fit `vhm`'s
    /// memory budget; the refusal's reason when not.
    pub(crate) fn cap_room(&self, vhm: VhmId, n: u64, channels: u64) -> Result<(), Refusal> {
        let more = self.cap_growth(vhm, n, channels);
        let free = self.memory_free(vhm);
        if more > free {
            return Err(Refusal::Short {
                need_for: Need::CapTable,
                need: more,
                left: free,
            });
        }
        Ok(())
    }
}

/// How much of `grow` more bytes, on top of `now`, falls beyond a free allowance of `free`.
fn charged_growth(now: u64, grow: u64, free: u64) -> u64 {
    now.saturating_add(grow).saturating_sub(free) - now.saturating_sub(free)
}
