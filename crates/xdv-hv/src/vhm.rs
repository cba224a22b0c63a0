//! The state of one VHM and its vCPUs.

use rand_chacha::ChaCha20Rng;
use xdv_core::{CapId, ExitReason, Resource};
use xdv_k::{Stop, Vcpu};
use xdv_manifest::VhmSpec;

/// What a vCPU does at its next queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Enter the entry function.
    Start,
    /// The step that ran ahead stopped for this reason; handle it at the vCPU's clock.
    Stopped(Stop),
    /// The VHM's fuel quota cannot pay for the next step.
    FuelOut,
    /// Wake from `sleep`.
    Wake {
        /// `true` when an interrupt cut the sleep short.
        interrupted: bool,
    },
}

/// A vCPU's scheduling state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VcpuState {
    /// Runnable; one event is queued at the vCPU's clock.
    Pending(Next),
    /// Its queued event is being handled right now.
    Running,
    /// In `sleep`; a wake event is queued at `until`.
    Parked { until: u64 },
    /// Done (returned, or its VHM stopped).
    Halted,
}

/// One vCPU slot.
pub(crate) struct VcpuSlot {
    pub(crate) vcpu: Vcpu,
    pub(crate) state: VcpuState,
    /// Bumped whenever queued events for this vCPU are superseded.
    pub(crate) generation: u64,
    /// Virtual time at the anchor; the clock is `anchor_time + (fuel − anchor_fuel) × ns_per_fuel / weight`,
    /// computed from totals so no rounding error accumulates.
    pub(crate) anchor_time: u64,
    pub(crate) anchor_fuel: u64,
    /// Fuel this vCPU has consumed in total.
    pub(crate) fuel: u64,
    /// Fuel consumed in the current slice.
    pub(crate) slice_used: u64,
    /// Fuel of the step that ran ahead of the clock and whose stop is still queued. Execution
    /// runs ahead only until the next stop, which has no effect outside the vCPU until the clock
    /// reaches it; if the VHM stops earlier, this fuel was never observed and is not charged.
    pub(crate) ahead: u64,
    /// Pending interrupt vectors (bit i = vector i), coalesced like a real interrupt controller.
    pub(crate) irq_pending: u64,
    /// The argument of the latest raise of each vector.
    pub(crate) irq_args: Vec<i64>,
}

/// The VHM's periodic virtual timer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timer {
    pub(crate) period: u64,
    pub(crate) next: u64,
    pub(crate) vcpu: u32,
    pub(crate) ticks: u64,
}

/// One VHM.
pub(crate) struct Vhm {
    pub(crate) name: String,
    pub(crate) spec: VhmSpec,
    pub(crate) vcpus: Vec<VcpuSlot>,
    /// Allocations in order, with the capability each is held under.
    pub(crate) allocations: Vec<(Resource, CapId)>,
    pub(crate) fuel_used: u64,
    pub(crate) timer: Option<Timer>,
    pub(crate) timer_generation: u64,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) exit: Option<(ExitReason, u64)>,
}

impl Vhm {
    pub(crate) fn running(&self) -> bool {
        self.exit.is_none()
    }
}
