//! The IPC group: channels, send, receive; and the delivery paths parked vCPUs share.

use super::caps::cap_refusal;
use super::{bytes_of, Outcome};
use crate::ipc::{Message, RECV_HEADER};
use crate::state::{emit, State};
use crate::step::Effects;
use crate::vhm::{Inbox, Wait};
use crate::HvError;
use xdv_core::cap::{rights, Object};
use xdv_core::event::EventKind;
use xdv_core::refusal::{Arg, Buffer, Need, Refusal};
use xdv_core::VhmId;
use xdv_k::abi;
use xdv_k::layout;
use xdv_k::Call;
use zerocopy::IntoBytes;

/// The channel and end an endpoint capability names.
fn endpoint(o: &Object) -> Option<(xdv_core::cap::ChannelId, u8)> {
    match *o {
        Object::Endpoint(c, e) => Some((c, e)),
        _ => None,
    }
}

impl State {
    // Long by design: one arm per IPC hypercall, each the checks of docs/abi.md in their order.
    pub(super) fn ipc_call(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        call: Call,
    ) -> Result<Outcome, HvError> {
        let me = vhm;
        let record = call.record();
        Ok(match call {
            Call::IpcChannel { capacity, out } => {
                let may_create = self
                    .caps
                    .held_by(me)
                    .any(|n| n.object == Object::Budget(me) && n.rights.contains(rights::CHANNEL));
                if !may_create {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_PERM,
                        Refusal::NoChannelRight,
                    ));
                }
                let bound = xdv_core::bounds::CHANNEL_CAPACITY;
                if !bound.contains(&u64::from(capacity)) {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::OutOfRange {
                            arg: Arg::Capacity,
                            value: i64::from(capacity),
                            min: *bound.start() as i64,
                            max: *bound.end() as i64,
                        },
                    ));
                }
                if !self.caps.has_room(me, 2) {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_QUOTA,
                        Refusal::CapTableFull,
                    ));
                }
                if let Err(reason) = self.cap_room(vhm, 2, 1) {
                    return Ok(Outcome::refused(record, abi::E_QUOTA, reason));
                }
                // Check the output range before creating anything.
                if let Err((code, reason)) = self.write_guest(sink, vhm, vcpu, out, [0; 16]) {
                    return Ok(Outcome::refused(record, code, reason));
                }
                let channel = self.new_channel(sink, vhm, capacity, [vhm, vhm])?;
                let r = rights::INSPECT
                    | rights::DERIVE
                    | rights::TRANSFER
                    | rights::SEND
                    | rights::RECV;
                let e0 = self.mint(sink, vhm, Object::Endpoint(channel, 0), r, 0)?;
                let e1 = self.mint(sink, vhm, Object::Endpoint(channel, 1), r, 0)?;
                let ends = layout::ChannelEnds {
                    end0: e0.0.into(),
                    end1: e1.0.into(),
                };
                self.write_guest(sink, vhm, vcpu, out, ends.as_bytes())
                    .expect("range checked above");
                Outcome::ok(record, abi::OK)
            }
            Call::IpcSend {
                endpoint: ep,
                ptr,
                len,
                bytes,
                cap,
                flags,
            } => {
                let (channel, end, badge) =
                    match self.caps.require_as(me, ep, rights::SEND, endpoint) {
                        Ok(((c, e), n)) => (c, e, n.badge),
                        Err(e) => return Ok(cap_refusal(record, ep, e)),
                    };
                if flags & !1 != 0 {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::UnknownFlags {
                            flags: u64::from(flags),
                        },
                    ));
                }
                let bytes = match bytes_of(bytes, ptr, len) {
                    Ok(b) => b,
                    Err((code, reason)) => return Ok(Outcome::refused(record, code, reason)),
                };
                let cap = if cap == 0 {
                    None
                } else {
                    match self.caps.require(me, cap, rights::TRANSFER, |_| true) {
                        Ok(_) => Some((me, cap)),
                        Err(e) => return Ok(cap_refusal(record, cap, e)),
                    }
                };
                let msg = Message {
                    bytes,
                    badge,
                    cap,
                    sender: vhm,
                };
                // The sender's memory budget holds the message until it is received.
                let cost = msg.cost();
                let free = self.memory_free(vhm);
                if cost > free {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_QUOTA,
                        Refusal::Short {
                            need_for: Need::QueuedMessage(len),
                            need: cost,
                            left: free,
                        },
                    ));
                }
                self.vhms[vhm]
                    .budget
                    .hold(cost)
                    .expect("fits the memory left");
                let to_end = 1 - end;
                match self.try_send(sink, vhm, vcpu, channel, to_end, msg)? {
                    Ok(ret) => Outcome::ok(record, ret),
                    Err(msg) if flags & 1 != 0 => {
                        self.register_waiter((vhm, vcpu), channel, to_end, true);
                        let wait = Wait::Send {
                            channel,
                            to_end,
                            msg,
                        };
                        Outcome::park(record, wait)
                    }
                    Err(_) => {
                        self.vhms[vhm].budget.unhold(cost);
                        Outcome::ok(record, abi::E_FULL)
                    }
                }
            }
            Call::IpcRecv {
                endpoint: ep,
                ptr,
                len,
            } => {
                let (channel, end) = match self.caps.require_as(me, ep, rights::RECV, endpoint) {
                    Ok((ce, _)) => ce,
                    Err(e) => return Ok(cap_refusal(record, ep, e)),
                };
                if len < RECV_HEADER {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::BufferTooSmall {
                            what: Buffer::RecvHeader,
                            need: u64::from(RECV_HEADER),
                            have: u64::from(len),
                        },
                    ));
                }
                let checked = self.check_guest(vhm, vcpu, ptr, len, u32::MAX);
                if let Err(code) = checked {
                    let reason = Refusal::GuestMemory {
                        write: false,
                        addr: ptr,
                        len,
                        code,
                    };
                    return Ok(Outcome::refused(record, code, reason));
                }
                let at = Inbox {
                    channel,
                    end,
                    ptr,
                    len,
                };
                match self.try_receive(sink, vhm, vcpu, at)? {
                    // A buffer too small for the waiting message is a bad argument (the message
                    // stays queued); a closed channel is a state, not a refusal.
                    Some(abi::E_TOOBIG) => Outcome::refused(
                        record,
                        abi::E_TOOBIG,
                        Refusal::BufferTooSmall {
                            what: Buffer::NextMessage,
                            need: 0,
                            have: u64::from(len),
                        },
                    ),
                    Some(ret) => Outcome::ok(record, ret),
                    None => {
                        self.register_waiter((vhm, vcpu), channel, end, false);
                        Outcome::park(record, Wait::Recv(at))
                    }
                }
            }
            other => unreachable!("{:?} is not an IPC call", other.hypercall()),
        })
    }

    /// Lists vCPU `vcpu` of `vhm`, about to park on `end` of `channel` (receiving, or sending
    /// to a full queue when `send`), among the end's waiters, which a delivery or a close wakes.
    /// The one place waiters are registered, for a call that parks and for a woken vCPU that
    /// parks again.
    pub(crate) fn register_waiter(
        &mut self,
        (vhm, vcpu): (VhmId, u32),
        channel: u32,
        end: u8,
        send: bool,
    ) {
        let end = &mut self.channels[channel as usize].ends[end as usize];
        let waiters = if send {
            &mut end.send_waiters
        } else {
            &mut end.recv_waiters
        };
        waiters.push((vhm, vcpu));
    }

    /// Queues `msg` at `to_end` if there is room (returns 0, or E_CLOSED when the end is closed),
    /// waking its receivers or raising the IPC interrupt at its anchor; gives the message back when
    /// the queue is full.
    pub(crate) fn try_send(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        channel: u32,
        to_end: u8,
        msg: Message,
    ) -> Result<Result<i64, Message>, HvError> {
        let ch = &mut self.channels[channel as usize];
        // Either end closed ends the conversation: the receiver's, or the sender's own.
        if ch.ends[to_end as usize].closed || ch.ends[1 - to_end as usize].closed {
            self.vhms[msg.sender].budget.unhold(msg.cost());
            return Ok(Ok(abi::E_CLOSED));
        }
        if !ch.has_room(to_end) {
            return Ok(Err(msg));
        }
        let (len, badge, with_cap) = (msg.bytes.len() as u32, msg.badge, msg.cap.is_some());
        let end = &mut ch.ends[to_end as usize];
        let sender = msg.sender;
        end.queue.push_back(msg);
        self.vhms[sender].sent_to.insert((channel, to_end));
        let waiters = std::mem::take(&mut end.recv_waiters);
        let anchor = end.anchor;
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::IpcSent {
                vcpu,
                channel,
                to_end,
                len,
                badge,
                with_cap,
            },
        );
        if waiters.is_empty() {
            // Nobody is parked receiving: tell the anchor by interrupt, if it listens.
            let a = &self.vhms[anchor];
            if let Some(vector) = a.spec.k.ipc_vector {
                if a.running() && a.vcpus.first().is_some_and(|s| s.has_irq) {
                    // The anchor's own number for the channel: nothing host-wide reaches the guest.
                    let number =
                        self.caps
                            .endpoint_number(anchor, channel, to_end)
                            .expect("an anchored end is numbered") as i64;
                    self.raise_irq(sink, anchor, 0, vector, number)?;
                }
            }
        }
        for (w, c) in waiters {
            self.wake_now(w, c);
        }
        Ok(Ok(abi::OK))
    }

    /// Delivers the first message at `end` into the receiver's buffer and returns its length;
    /// E_TOOBIG (the message stays) when it does not fit, E_CLOSED when the queue is empty and the
    /// other end closed, `None` when the receiver must wait.
    pub(crate) fn try_receive(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        at: Inbox,
    ) -> Result<Option<i64>, HvError> {
        let Inbox {
            channel,
            end,
            ptr,
            len,
        } = at;
        let ch = &mut self.channels[channel as usize];
        if ch.ends[end as usize].closed {
            // The receiver's own end closed (its anchor stopped): nothing will arrive.
            return Ok(Some(abi::E_CLOSED));
        }
        let Some(front) = ch.ends[end as usize].queue.front() else {
            return Ok(if ch.ends[1 - end as usize].closed {
                Some(abi::E_CLOSED)
            } else {
                None
            });
        };
        if front.bytes.len() as u32 + RECV_HEADER > len {
            return Ok(Some(abi::E_TOOBIG));
        }
        let msg = ch.ends[end as usize]
            .queue
            .pop_front()
            .expect("front exists");
        // A drained queue gives its memory back: capacity nobody is charged for.
        let q = &mut ch.ends[end as usize].queue;
        if q.is_empty() && q.capacity() > 16 {
            q.shrink_to_fit();
        }
        let senders = std::mem::take(&mut ch.ends[end as usize].send_waiters);
        self.vhms[msg.sender].budget.unhold(msg.cost());
        // The capability is derived into the receiver now, with the rights it had at send time;
        // one revoked in flight arrives as none.
        // A capability the receiver's memory budget cannot hold arrives as none.
        let cap = msg
            .cap
            .filter(|_| self.cap_room(vhm, 1, 1).is_ok())
            .and_then(|(holder, h)| {
                let r = self
                    .caps
                    .resolve(holder, h)
                    .ok()
                    .map(|id| self.caps.node(id).rights)?;
                self.caps
                    .derive(holder, h, r, 0, vhm)
                    .ok()
                    .map(|c| (c, holder, h))
            });
        if let Some((c, holder, h)) = cap {
            self.record_cap(sink, vhm, c, Some((holder, xdv_core::CapId(h))))?;
        }
        let mut buf = Vec::with_capacity(RECV_HEADER as usize + msg.bytes.len());
        let header = layout::RecvHeader {
            badge: msg.badge.into(),
            cap: cap.map_or(0, |(c, _, _)| c.0).into(),
        };
        buf.extend_from_slice(header.as_bytes());
        buf.extend_from_slice(&msg.bytes);
        self.write_guest(sink, vhm, vcpu, ptr, buf)
            .expect("the buffer range was checked when the call was made");
        let cap = cap.map(|(c, _, _)| c);
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::IpcDelivered {
                vcpu,
                channel,
                end,
                len: msg.bytes.len() as u32,
                badge: msg.badge,
                cap,
            },
        );
        for (w, c) in senders {
            self.wake_now(w, c);
        }
        Ok(Some(i64::from(msg.bytes.len() as u32)))
    }

    /// Hands the messages a stopping VHM sent, still queued at open ends, to the receiving end's
    /// anchor: a queued message is memory of its sender's budget, and a stopped VHM's budget
    /// holds nothing, so the receiver's budget takes each one it has room for (in queue order),
    /// and the rest are dropped, recorded per queue in the stopping VHM's events. A message sent
    /// just before exiting is still delivered when its receiver can hold it.
    pub(crate) fn hand_over_sent(&mut self, sink: &mut Effects, vhm: VhmId) -> Result<(), HvError> {
        // Only the ends it sent to (in channel and end order), not every channel of the host.
        for (channel, end) in std::mem::take(&mut self.vhms[vhm].sent_to) {
            let e = &mut self.channels[channel as usize].ends[end as usize];
            if e.closed || !e.queue.iter().any(|m| m.sender == vhm) {
                continue;
            }
            let anchor = e.anchor;
            let queue = std::mem::take(&mut e.queue);
            let mut kept = std::collections::VecDeque::with_capacity(queue.len());
            let mut dropped = 0u32;
            for mut m in queue {
                if m.sender == vhm {
                    let fits = anchor != vhm
                        && self.vhms[anchor].running()
                        && m.cost() <= self.memory_free(anchor);
                    if !fits {
                        dropped += 1;
                        continue;
                    }
                    self.vhms[anchor]
                        .budget
                        .hold(m.cost())
                        .expect("fits the memory left");
                    m.sender = anchor;
                }
                kept.push_back(m);
            }
            self.channels[channel as usize].ends[end as usize].queue = kept;
            self.record_dropped(sink, vhm, channel, end, dropped)?;
        }
        Ok(())
    }

    /// Records, in `vhm`'s events, that `messages` queued at `end` of `channel` were dropped
    /// (nothing when none were).
    fn record_dropped(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        channel: u32,
        end: u8,
        messages: u32,
    ) -> Result<(), HvError> {
        if messages > 0 {
            emit(
                sink,
                &mut self.events,
                self.now,
                Some(vhm),
                EventKind::IpcDropped {
                    channel,
                    end,
                    messages,
                },
            );
        }
        Ok(())
    }

    /// Closes one end (its anchor stopped): drops its queue, wakes every vCPU parked on the
    /// channel (they see E_CLOSED or what is left to receive), records it in `vhm`'s events.
    pub(crate) fn close_end(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        channel: u32,
        end: u8,
    ) -> Result<(), HvError> {
        let ch = &mut self.channels[channel as usize];
        let e = &mut ch.ends[end as usize];
        e.closed = true;
        let dropped = e.queue.len() as u32;
        for m in std::mem::take(&mut e.queue) {
            self.vhms[m.sender].budget.unhold(m.cost());
        }
        let ch = &mut self.channels[channel as usize];
        let mut waiters = Vec::new();
        for side in &mut ch.ends {
            waiters.append(&mut side.recv_waiters);
            waiters.append(&mut side.send_waiters);
        }
        self.record_dropped(sink, vhm, channel, end, dropped)?;
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::IpcClosed { channel, end },
        );
        for (w, c) in waiters {
            self.wake_now(w, c);
        }
        // The peer learns of the death by interrupt (argument E_CLOSED), if it takes IPC ones.
        let peer = &self.channels[channel as usize].ends[1 - end as usize];
        let anchor = peer.anchor;
        if !peer.closed && anchor != vhm && self.vhms[anchor].running() {
            if let Some(vector) = self.vhms[anchor].spec.k.ipc_vector {
                self.raise_irq(sink, anchor, 0, vector, abi::E_CLOSED)?;
            }
        }
        Ok(())
    }
}
