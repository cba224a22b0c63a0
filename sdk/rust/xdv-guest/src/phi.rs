//! Φ: ask for coherence windows, run pulse transforms on them and read frames and captures.
//!
//! ```no_run
//! use xdv_guest::cap::{Handle, PhiWindow};
//! let w = Handle::<PhiWindow>::find(0).unwrap();
//! let mut captures = [xdv_guest::phi::Capture::default(); 4];
//! let n = xdv_guest::phi::exec(w, "frame d0 = newframe(q0, 5.0e9, 0);\nplay(d0, gaussian(0.4, 400, 80));\ncapture(d0, 400);\n", &mut captures).unwrap();
//! let frame = xdv_guest::phi::frame(w, "d0").unwrap();
//! ```

use crate::cap::{Handle, PhiWindow};
use crate::{check, sys, Result};

/// One capture: I and Q in micro-units of full scale.
pub type Capture = sys::Capture;

/// A frame's state: frequency (Hz), phase (2⁻⁶⁴ turns), clock (ns), and whether the phase is
/// defined (1) or lost to a coherence failure (0).
pub type Frame = sys::FrameInfo;

/// A window to ask for: a builder over the 48-byte `phi_window` spec.
#[derive(Debug, Clone, Copy)]
pub struct Window(sys::WindowSpec);

impl Window {
    /// A window on port `port` (its index in `[[host.phi.port]]`) over `[t0, t1)` ns, with a
    /// zero band and amplitude cap until set.
    pub fn new(port: u32, t0: u64, t1: u64) -> Self {
        Window(sys::WindowSpec {
            port,
            t0,
            t1,
            ..Default::default()
        })
    }

    /// The band its frames may use, `[lo, hi]` Hz.
    pub fn band(mut self, lo: i64, hi: i64) -> Self {
        self.0.band_lo = lo;
        self.0.band_hi = hi;
        self
    }

    /// The amplitude cap, ppm of full scale (1 000 000 = 1.0).
    pub fn max_amp_ppm(mut self, ppm: u32) -> Self {
        self.0.max_amp = ppm;
        self
    }

    /// Asks for a share grant (windows that overlap in time need disjoint bands).
    pub fn shared(mut self) -> Self {
        self.0.flags |= sys::WINDOW_SHARE as u32;
        self
    }

    /// Asks for the window.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Inval`] for a rule of the port, [`crate::Error::Perm`] without
    /// port-time, [`crate::Error::Busy`] for a conflict, [`crate::Error::Quota`].
    pub fn request(self) -> Result<Handle<PhiWindow>> {
        // SAFETY: the spec lives for the call and is the 48 bytes the call reads.
        check(unsafe {
            sys::phi_window(
                (&self.0 as *const sys::WindowSpec).cast(),
                core::mem::size_of::<sys::WindowSpec>() as i32,
            )
        })
        .map(|h| Handle::from_raw(h as u64))
    }
}

/// Runs the transform `text` on `window` under its contract, parks until it ends and writes
/// each capture into `captures`; the number of captures.
///
/// # Errors
///
/// [`crate::Error::Inval`] for a parse error or a contract violation,
/// [`crate::Error::TooBig`] when `captures` is too short.
pub fn exec(window: Handle<PhiWindow>, text: &str, captures: &mut [Capture]) -> Result<usize> {
    let out_len = core::mem::size_of_val(captures);
    // SAFETY: `text` and `captures` live for the call; `captures` is writable for `out_len`.
    check(unsafe {
        sys::phi_exec(
            window.raw() as i64,
            text.as_ptr(),
            text.len() as i32,
            captures.as_mut_ptr().cast(),
            out_len as i32,
        )
    })
    .map(|n| n as usize)
}

/// The state of the frame `name` of `window`.
///
/// # Errors
///
/// [`crate::Error::NoEnt`] when the window has no such frame.
pub fn frame(window: Handle<PhiWindow>, name: &str) -> Result<Frame> {
    let mut out = Frame::default();
    // SAFETY: `name` lives for the call; `out` is a writable `FrameInfo`, the 32 bytes written.
    check(i64::from(unsafe {
        sys::phi_frame(
            window.raw() as i64,
            name.as_ptr(),
            name.len() as i32,
            (&mut out as *mut Frame).cast(),
        )
    }))?;
    Ok(out)
}

/// Gives `window` (and the windows nested in it) back.
///
/// # Errors
///
/// [`crate::Error::Perm`] without `submit`.
pub fn release(window: Handle<PhiWindow>) -> Result<()> {
    // SAFETY: no memory is passed.
    check(i64::from(unsafe { sys::phi_release(window.raw() as i64) })).map(drop)
}
