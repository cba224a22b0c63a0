//! The state of one VHM and its vCPUs.

use crate::ipc::Message;
use rand_chacha::ChaCha20Rng;
use xdv_core::budget::{Budget, Quota};
use xdv_core::{CapId, ExitReason, Resource, VhmId};
use xdv_k::Stop;
use xdv_manifest::VhmSpec;

/// What a vCPU does at its next queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Enter the entry function.
    Start,
    /// The step that ran ahead stopped for this reason; handle it at the vCPU's clock.
    Stopped(Stop),
    /// The VHM's fuel budget cannot pay for the next step.
    FuelOut,
    /// Wake from the vCPU's [`Wait`].
    Wake,
}

/// A vCPU's scheduling state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VcpuState {
    /// Runnable; one event is queued at the vCPU's clock.
    Pending(Next),
    /// Its queued event is being handled right now.
    Running,
    /// Parked in a hypercall; `VcpuSlot::wait` says on what.
    Parked,
    /// Done (returned, or its VHM stopped).
    Halted,
}

/// What a parked vCPU waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wait {
    /// `sleep`: a wake event is queued at `until`; an interrupt cuts it short.
    Sleep { until: u64, interrupted: bool },
    /// `vhm_wait`: the VHM stopping.
    Child(VhmId),
    /// `q_wait`: the VHM's job completing.
    QJob(u32),
    /// `phi_exec`: the transform's end on the virtual clock; then the call returns `ret`.
    Until { until: u64, ret: i64 },
    /// `ipc_recv`: a message (or the peer closing) at an end of a channel.
    Recv(Inbox),
    /// `ipc_send` with the park flag: room in the queue of `to_end`.
    Send {
        channel: u32,
        to_end: u8,
        msg: Message,
    },
}

/// Where a receiver waits and where its message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inbox {
    pub(crate) channel: u32,
    pub(crate) end: u8,
    /// The receiver's buffer.
    pub(crate) ptr: u32,
    pub(crate) len: u32,
}

/// One vCPU slot.
#[derive(Clone)]
pub(crate) struct VcpuSlot {
    /// Whether its module exports the interrupt handler `xdv_irq`.
    pub(crate) has_irq: bool,
    /// Its interrupt handler runs (entered, not yet returned).
    pub(crate) in_irq: bool,
    /// Its exported memory's size after its last run (`None` without one): what host writes
    /// into it are checked against.
    pub(crate) memory: Option<u64>,
    /// The least fuel its next run needs (reported by its last run).
    pub(crate) min_fuel: u64,
    /// The value its answered hypercall returns, given to the edge with its next run.
    pub(crate) answer: Option<i64>,
    pub(crate) state: VcpuState,
    pub(crate) wait: Option<Wait>,
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
    /// A tick fired while the previous one was still pending: ticks are coalesced and the
    /// timer is re-armed, one period on, when the pending one is delivered.
    pub(crate) suspended: bool,
}

/// One VHM.
#[derive(Clone)]
pub(crate) struct Vhm {
    pub(crate) name: String,
    /// The tenant that created it through `xdv serve` (its index), if one.
    pub(crate) tenant: Option<u32>,
    /// The effective spec: the policy is already intersected with the parent's.
    pub(crate) spec: VhmSpec,
    pub(crate) parent: Option<VhmId>,
    pub(crate) level: u8,
    /// Live children, in creation order.
    pub(crate) children: Vec<VhmId>,
    /// The quota carved for it (given back to the parent when it stops).
    pub(crate) quota: Quota,
    pub(crate) budget: Budget,
    pub(crate) vcpus: Vec<VcpuSlot>,
    /// Allocations in order, with the capability each is held under.
    pub(crate) allocations: Vec<(Resource, CapId)>,
    /// Fuel its own vCPUs consumed.
    pub(crate) fuel_used: u64,
    pub(crate) timer: Option<Timer>,
    pub(crate) timer_generation: u64,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) exit: Option<(ExitReason, u64)>,
    /// vCPUs parked in `vhm_wait` on this VHM.
    pub(crate) exit_waiters: Vec<(VhmId, u32)>,
    /// Its Q container, while it holds one.
    pub(crate) q: Option<crate::q::Container>,
    /// Its Φ windows, in grant order.
    pub(crate) windows: Vec<xdv_phi::WindowId>,
    /// How many times this VHM (under its base name) was restarted before this incarnation.
    pub(crate) restarts: u32,
    /// Channel ends anchored at the VHM, in creation order: closed when it stops.
    pub(crate) anchored_ends: Vec<(u32, u8)>,
    /// Channel ends the VHM has queued messages at (some may have been received since): where
    /// its undelivered messages are when it stops.
    pub(crate) sent_to: std::collections::BTreeSet<(u32, u8)>,
    /// Modules the VHM loaded from bytes, with the footprint each holds in its memory budget
    /// (once per module).
    pub(crate) loaded: std::collections::BTreeMap<xdv_core::Hash32, u64>,
    /// Its module (index into the hypervisor's compiled modules), for restarts.
    pub(crate) module: usize,
}

impl Vhm {
    pub(crate) fn running(&self) -> bool {
        self.exit.is_none()
    }

    /// Charges `fuel` of host work done for the VHM outside its vCPUs (a timer tick, a Q
    /// simulation, Φ samples, a module load) to its budget and to what it has used.
    ///
    /// # Errors
    ///
    /// The budget's refusal when its fuel left cannot pay; nothing is charged.
    pub(crate) fn charge_host_work(
        &mut self,
        fuel: u64,
    ) -> Result<(), xdv_core::budget::CarveError> {
        self.budget.charge(fuel)?;
        self.fuel_used += fuel;
        Ok(())
    }
}

/// The VHM table, indexed by [`VhmId`]: ids are positions in creation order and never reused,
/// so a stopped VHM keeps its record (and its id means it) for the life of the host.
#[derive(Clone, Default)]
pub(crate) struct Vhms(Vec<Vhm>);

impl Vhms {
    /// The id the next VHM gets.
    pub(crate) fn next_id(&self) -> VhmId {
        VhmId(u32::try_from(self.0.len()).expect("the VHM count is bounded by budgets"))
    }

    /// Adds the VHM with id [`Vhms::next_id`].
    pub(crate) fn push(&mut self, v: Vhm) {
        self.0.push(v);
    }

    /// Every VHM with its id, in creation order.
    pub(crate) fn with_ids(&self) -> impl Iterator<Item = (VhmId, &Vhm)> {
        self.0.iter().enumerate().map(|(i, v)| (VhmId(i as u32), v))
    }

    /// Every id, in creation order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = VhmId> {
        (0..self.0.len() as u32).map(VhmId)
    }

    /// Every VHM, mutably, in creation order.
    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Vhm> {
        self.0.iter_mut()
    }

    /// Every VHM, in creation order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Vhm> {
        self.0.iter()
    }
}

impl std::ops::Index<VhmId> for Vhms {
    type Output = Vhm;
    fn index(&self, id: VhmId) -> &Vhm {
        &self.0[id.0 as usize]
    }
}

impl std::ops::IndexMut<VhmId> for Vhms {
    fn index_mut(&mut self, id: VhmId) -> &mut Vhm {
        &mut self.0[id.0 as usize]
    }
}
