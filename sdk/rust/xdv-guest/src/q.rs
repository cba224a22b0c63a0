//! Q: submit OpenQASM programs to the VHM's Q container, wait for them and read their shots.
//!
//! ```no_run
//! use xdv_guest::cap::{Handle, QContainer};
//! let q = Handle::<QContainer>::find(0).unwrap();
//! let job = xdv_guest::q::submit(q, "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\ncreg c[1];\nh q[0];\nmeasure q -> c;\n", 100, 0).unwrap();
//! let mut shots = [0u64; 100];
//! let n = xdv_guest::q::wait_result(job, &mut shots).unwrap();
//! let mut counts = [0u32; 2];
//! xdv_guest::q::histogram(&shots[..n], &mut counts);
//! ```

use crate::cap::{Handle, QContainer, QJob};
use crate::{check, sys, Result};

/// Admits `program` (OpenQASM 2 or 3 text) as a job of `shots` shots; `vector` ≠ 0 is raised
/// on this vCPU when it completes.
///
/// # Errors
///
/// [`crate::Error::Inval`] for a program that does not parse or fit the container,
/// [`crate::Error::Quota`] over the decoherence budget or the simulation's fuel or memory,
/// [`crate::Error::Busy`], [`crate::Error::TooBig`].
pub fn submit(container: Handle<QContainer>, program: &str, shots: u64, vector: u32) -> Result<Handle<QJob>> {
    // SAFETY: the pointer and length name `program`, which lives for the call.
    check(unsafe {
        sys::q_submit(
            container.raw() as i64,
            program.as_ptr(),
            program.len() as i32,
            shots as i64,
            vector as i32,
        )
    })
    .map(|h| Handle::from_raw(h as u64))
}

/// Parks until `job` completes.
///
/// # Errors
///
/// [`crate::Error::BadHandle`] for a collected job.
pub fn wait(job: Handle<QJob>) -> Result<()> {
    // SAFETY: no memory is passed.
    check(i64::from(unsafe { sys::q_wait(job.raw() as i64) })).map(drop)
}

/// Copies a completed job's shots into `shots` (bit `c` of each is classical bit `c`), releases
/// the job and returns how many.
///
/// # Errors
///
/// [`crate::Error::Busy`] before it completes, [`crate::Error::TooBig`] when `shots` is too
/// short (the job stays).
pub fn result(job: Handle<QJob>, shots: &mut [u64]) -> Result<usize> {
    let len = core::mem::size_of_val(shots);
    // SAFETY: the pointer and length name `shots`, which is writable and lives for the call.
    check(unsafe { sys::q_result(job.raw() as i64, shots.as_mut_ptr().cast(), len as i32) }).map(|n| n as usize)
}

/// [`wait`] then [`result`].
///
/// # Errors
///
/// As both.
pub fn wait_result(job: Handle<QJob>, shots: &mut [u64]) -> Result<usize> {
    wait(job)?;
    result(job, shots)
}

/// A figure of the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Its logical qubits.
    Qubits,
    /// Decoherence budget left, µ.
    BudgetLeft,
    /// Decoherence budget spent, µ.
    BudgetSpent,
    /// Qubits not lent to children.
    QubitsFree,
}

/// Reads a figure of the container.
///
/// # Errors
///
/// [`crate::Error::Perm`] without `inspect`.
pub fn info(container: Handle<QContainer>, what: Figure) -> Result<u64> {
    let what = match what {
        Figure::Qubits => sys::Q_INFO_QUBITS,
        Figure::BudgetLeft => sys::Q_INFO_BUDGET_LEFT,
        Figure::BudgetSpent => sys::Q_INFO_BUDGET_SPENT,
        Figure::QubitsFree => sys::Q_INFO_QUBITS_FREE,
    };
    // SAFETY: no memory is passed.
    check(unsafe { sys::q_info(container.raw() as i64, what as i32) }).map(|v| v as u64)
}

/// [`wait`], then the job's shots in a new vector of `shots` entries (the `alloc` feature).
///
/// # Errors
///
/// As [`wait`] and [`result`].
#[cfg(feature = "alloc")]
pub fn wait_result_vec(job: Handle<QJob>, shots: usize) -> Result<alloc::vec::Vec<u64>> {
    let mut out = alloc::vec![0u64; shots];
    let n = wait_result(job, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Counts the shots of each outcome: `counts[v]` grows by one for every shot whose value (bit
/// `c` = classical bit `c`) is `v`. Outcomes at or past `counts.len()` are not counted; their
/// number is returned.
///
/// ```no_run
/// let shots = [0u64, 3, 3, 0, 3];
/// let mut counts = [0u32; 4];
/// assert_eq!(xdv_guest::q::histogram(&shots, &mut counts), 0);
/// assert_eq!(counts, [2, 0, 0, 3]);
/// ```
pub fn histogram(shots: &[u64], counts: &mut [u32]) -> usize {
    let mut outside = 0;
    for &s in shots {
        // `try_from`, not `as`: on wasm32 a `u64` outcome past 2^32 must not wrap onto a slot.
        match usize::try_from(s).ok().and_then(|i| counts.get_mut(i)) {
            Some(c) => *c += 1,
            None => outside += 1,
        }
    }
    outside
}
