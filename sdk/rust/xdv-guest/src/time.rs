//! The virtual clock: time, sleep and the periodic timer (vector 0).

use crate::{check, sys, Result};

/// The calling vCPU's virtual time, in ns.
pub fn now() -> u64 {
    // SAFETY: no arguments.
    unsafe { sys::time() as u64 }
}

/// How a [`sleep_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The time came (at once, when it had already passed).
    OnTime,
    /// An interrupt arrived first, or was already pending; its handler has run.
    Interrupted,
}

/// Parks the vCPU until virtual time `until_ns`.
///
/// # Errors
///
/// [`crate::Error::Inval`] past the time horizon.
pub fn sleep_until(until_ns: u64) -> Result<Woke> {
    // SAFETY: no memory is passed.
    let r = check(i64::from(unsafe { sys::sleep(until_ns as i64) }))?;
    Ok(if r == sys::SLEEP_INTERRUPTED {
        Woke::Interrupted
    } else {
        Woke::OnTime
    })
}

/// Parks the vCPU for `ns` virtual ns from now.
///
/// # Errors
///
/// As [`sleep_until`].
pub fn sleep(ns: u64) -> Result<Woke> {
    sleep_until(now().saturating_add(ns))
}

/// Fires vector 0 on the calling vCPU every `period_ns` (0 disarms). Each tick costs the VHM
/// 64 fuel. The guest needs an [`irq_handler!`](crate::irq_handler).
///
/// # Errors
///
/// [`crate::Error::Inval`] past the time horizon or without an interrupt handler.
pub fn set_timer(period_ns: u64) -> Result<()> {
    // SAFETY: no memory is passed.
    check(i64::from(unsafe { sys::timer_set(period_ns as i64) })).map(drop)
}
