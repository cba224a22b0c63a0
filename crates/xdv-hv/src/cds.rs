//! CDS: the deterministic event queue over the one virtual clock.
//!
//! Pending events are ordered by the total order `(time, class, VHM id, vCPU index, sequence)`.
//! `class` orders simultaneous events of different kinds ([`Class`]); the sequence number (the
//! order of insertion) only ever separates events of the same vCPU and class, whose relative
//! insertion order depends on that vCPU alone — so a VHM's own order never depends on its
//! neighbours.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use xdv_core::VhmId;

/// The class of a pending event; simultaneous events run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// A vCPU enters its entry function.
    Start,
    /// A VHM's virtual timer fires.
    Timer,
    /// A Q job completes.
    QDone,
    /// A parked vCPU wakes.
    Wake,
    /// A vCPU's hypercall is handled.
    Hypercall,
    /// A vCPU's function (entry or interrupt handler) returned.
    Returned,
    /// A vCPU's slice ends.
    SliceEnd,
    /// A fault is raised.
    Fault,
}

/// What a pending event acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// A vCPU; `generation` invalidates events superseded since they were queued.
    Vcpu {
        /// Its VHM.
        vhm: VhmId,
        /// Its index.
        vcpu: u32,
        /// The vCPU's generation when queued.
        generation: u64,
    },
    /// A VHM's timer.
    Timer {
        /// The VHM.
        vhm: VhmId,
        /// The timer's generation when queued.
        generation: u64,
    },
    /// An injected fault (`[[fault]]`), by its index.
    Inject {
        /// The VHM it targets.
        vhm: VhmId,
        /// The fault's index.
        index: u32,
    },
    /// A VHM's Q job.
    QJob {
        /// The VHM.
        vhm: VhmId,
        /// The job number.
        job: u32,
    },
}

/// The total order key of a pending event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Virtual time, ns.
    pub time: u64,
    /// Event class.
    pub class: Class,
    /// VHM id.
    pub vhm: VhmId,
    /// vCPU index (0 for VHM-wide events).
    pub vcpu: u32,
    /// Insertion sequence.
    pub seq: u64,
}

/// The queue.
#[derive(Debug, Default, Clone)]
pub struct Cds {
    heap: BinaryHeap<Reverse<(Key, Target)>>,
    seq: u64,
}

impl Cds {
    /// Queues an event.
    pub fn push(&mut self, time: u64, class: Class, target: Target) {
        let (vhm, vcpu) = match target {
            Target::Vcpu { vhm, vcpu, .. } => (vhm, vcpu),
            Target::Timer { vhm, .. } | Target::QJob { vhm, .. } | Target::Inject { vhm, .. } => {
                (vhm, 0)
            }
        };
        self.seq += 1;
        self.heap.push(Reverse((
            Key {
                time,
                class,
                vhm,
                vcpu,
                seq: self.seq,
            },
            target,
        )));
    }

    /// Removes the least pending event in the total order.
    pub fn pop(&mut self) -> Option<(Key, Target)> {
        self.heap.pop().map(|Reverse(x)| x)
    }

    /// The least pending event, without removing it.
    pub fn peek(&self) -> Option<(Key, Target)> {
        self.heap.peek().map(|Reverse(x)| *x)
    }

    /// The least pending event's time.
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((k, _))| k.time)
    }

    /// Number of pending events (including superseded ones not yet popped).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// `true` when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_total_order() {
        let mut q = Cds::default();
        let t = |vhm, vcpu| Target::Vcpu {
            vhm: VhmId(vhm),
            vcpu,
            generation: 0,
        };
        q.push(10, Class::SliceEnd, t(0, 0));
        q.push(10, Class::Hypercall, t(1, 0));
        q.push(5, Class::Fault, t(2, 0));
        q.push(10, Class::Hypercall, t(0, 1));
        q.push(
            10,
            Class::Timer,
            Target::Timer {
                vhm: VhmId(3),
                generation: 0,
            },
        );
        let order: Vec<_> = std::iter::from_fn(|| q.pop())
            .map(|(k, _)| (k.time, k.class, k.vhm.0, k.vcpu))
            .collect();
        assert_eq!(
            order,
            vec![
                (5, Class::Fault, 2, 0),
                (10, Class::Timer, 3, 0),
                (10, Class::Hypercall, 0, 1),
                (10, Class::Hypercall, 1, 0),
                (10, Class::SliceEnd, 0, 0)
            ]
        );
    }
}
