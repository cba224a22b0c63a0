//! IPC channels: two ends, a bounded queue into each, messages copied (never shared).
//!
//! A message sent through end `e` is queued at end `1 − e` and received there. Each end has an
//! anchor VHM: when the anchor stops, the end closes, its queue is dropped, and every vCPU parked
//! on the channel wakes. Capabilities travel as a reference to the sender's handle and are
//! derived into the receiver's table at delivery (never amplified; a capability revoked in
//! flight arrives as none).

use std::collections::VecDeque;
use xdv_core::VhmId;

/// Host bytes a queued message costs its sender beyond its payload (its queue entry).
pub(crate) const MESSAGE_OVERHEAD: u64 = 64;
/// Bytes `ipc_recv` writes before the payload: badge (u64) and capability handle (u64).
pub(crate) const RECV_HEADER: u32 = xdv_k::layout::size::<xdv_k::layout::RecvHeader>();

/// A message in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) bytes: Vec<u8>,
    pub(crate) badge: u64,
    /// The capability to derive into the receiver: its holder and handle at send time.
    pub(crate) cap: Option<(VhmId, u64)>,
    /// The sending VHM, whose memory budget holds the message until it is received or dropped.
    pub(crate) sender: VhmId,
}

impl Message {
    /// The host bytes the message holds in its sender's memory budget.
    pub(crate) fn cost(&self) -> u64 {
        self.bytes.len() as u64 + MESSAGE_OVERHEAD
    }
}

/// One end of a channel.
#[derive(Debug, Clone)]
pub(crate) struct End {
    /// Messages waiting to be received at this end.
    pub(crate) queue: VecDeque<Message>,
    /// The VHM whose stopping closes this end.
    pub(crate) anchor: VhmId,
    pub(crate) closed: bool,
    /// vCPUs parked receiving at this end.
    pub(crate) recv_waiters: Vec<(VhmId, u32)>,
    /// vCPUs parked sending to this end (its queue was full).
    pub(crate) send_waiters: Vec<(VhmId, u32)>,
}

/// A channel.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) capacity: u32,
    pub(crate) ends: [End; 2],
}

impl Channel {
    pub(crate) fn new(capacity: u32, anchors: [VhmId; 2]) -> Self {
        let end = |anchor| End {
            queue: VecDeque::new(),
            anchor,
            closed: false,
            recv_waiters: Vec::new(),
            send_waiters: Vec::new(),
        };
        Self {
            capacity,
            ends: [end(anchors[0]), end(anchors[1])],
        }
    }

    /// `true` when the queue at `end` has room.
    pub(crate) fn has_room(&self, end: u8) -> bool {
        (self.ends[end as usize].queue.len() as u32) < self.capacity
    }
}
