//! Channels: create them, send bytes with a capability attached, receive with the sender's
//! badge.
//!
//! ```no_run
//! use xdv_guest::cap::{Endpoint, Handle};
//! let ep = Handle::<Endpoint>::find(0).unwrap();
//! let mut buf = [0u8; 256];
//! let msg = xdv_guest::ipc::recv(ep, &mut buf).unwrap();
//! xdv_guest::ipc::send(ep, msg.payload(&buf), None, false).unwrap();
//! ```

use crate::cap::{Endpoint, Handle};
use crate::{check, sys, Result};

/// Bytes of the header [`recv`] writes before the payload (badge, capability).
pub const HEADER_BYTES: usize = core::mem::size_of::<sys::RecvHeader>();

/// Creates a channel of `capacity` messages each way; its two ends. Needs the budget's
/// `channel` right (a manifest `create_channels = true`, or the spawn flag).
///
/// # Errors
///
/// [`crate::Error::Perm`] without the right, [`crate::Error::Quota`] over the budget.
pub fn channel(capacity: u32) -> Result<(Handle<Endpoint>, Handle<Endpoint>)> {
    let mut ends = sys::ChannelEnds::default();
    // SAFETY: `ends` is a live, writable `ChannelEnds`, the 16 bytes the call writes.
    check(i64::from(unsafe {
        sys::ipc_channel(capacity as i32, (&mut ends as *mut sys::ChannelEnds).cast())
    }))?;
    Ok((Handle::from_raw(ends.end0), Handle::from_raw(ends.end1)))
}

/// Sends `payload` through `endpoint` to the other end, with a derived copy of `cap` (it needs
/// `transfer`) when given. With `park`, waits while the queue is full instead of
/// [`crate::Error::Full`].
///
/// # Errors
///
/// [`crate::Error::Full`], [`crate::Error::Closed`], [`crate::Error::Perm`] without `send`,
/// [`crate::Error::Quota`] over the memory budget.
pub fn send<T: crate::cap::Kind>(
    endpoint: Handle<Endpoint>,
    payload: &[u8],
    cap: Option<Handle<T>>,
    park: bool,
) -> Result<()> {
    let flags = if park { sys::IPC_SEND_PARK as i32 } else { 0 };
    let cap = cap.map_or(0, |c| c.raw() as i64);
    // SAFETY: the pointer and length name `payload`, which lives for the call.
    check(i64::from(unsafe {
        sys::ipc_send(endpoint.raw() as i64, payload.as_ptr(), payload.len() as i32, cap, flags)
    }))
    .map(drop)
}

/// A message [`recv`] wrote into its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// The sender's badge (0: none).
    pub badge: u64,
    /// The raw handle of the capability that came with it, in this VHM's table (0: none).
    pub cap: u64,
    /// Payload bytes.
    pub len: usize,
}

impl Message {
    /// The payload inside the buffer `recv` was given.
    pub fn payload<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[HEADER_BYTES..HEADER_BYTES + self.len]
    }

    /// The capability that came with it, as a handle of kind `T` (a wrong kind fails in the
    /// call that uses it).
    pub fn cap_as<T: crate::cap::Kind>(&self) -> Option<Handle<T>> {
        (self.cap != 0).then(|| Handle::from_raw(self.cap))
    }
}

/// Parks until a message arrives at `endpoint` and writes it into `buf`: the 16-byte header,
/// then the payload.
///
/// # Errors
///
/// [`crate::Error::TooBig`] when it does not fit (it stays queued), [`crate::Error::Closed`],
/// [`crate::Error::Inval`] for a buffer under 16 bytes.
pub fn recv(endpoint: Handle<Endpoint>, buf: &mut [u8]) -> Result<Message> {
    // SAFETY: the pointer and length name `buf`, which is writable and lives for the call.
    let n = check(unsafe {
        sys::ipc_recv(endpoint.raw() as i64, buf.as_mut_ptr(), buf.len() as i32)
    })?;
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[at..at + 8]);
        u64::from_le_bytes(b)
    };
    Ok(Message {
        badge: word(0),
        cap: word(8),
        len: n as usize,
    })
}
