//! The Φ domain of xdv (DESIGN §7).
//!
//! - [`units`]: exact phases (`u64` fractions of a turn), integer frequencies with an exact
//!   per-nanosecond phase increment, amplitudes in ppm.
//! - [`window`]: ports and coherence windows; allocation and release in O(log n), exclusive
//!   unless both windows hold a share grant and their bands are disjoint; nesting.
//! - [`envelope`]: constant, gaussian, gaussian_square, drag and sine envelopes, sampled.
//! - [`program`]: the transform text form (an OpenPulse-like subset) and its parser.
//! - [`exec`]: execution under the contract — pre-check, execution, post-check — with captures
//!   and stochastic dephasing from the caller's seeded stream.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod envelope;
pub mod exec;
pub mod program;
pub mod units;
pub mod window;

pub use envelope::Envelope;
pub use exec::{
    execute, Builtin, Context, Execution, Executor, Frame, Rule, Violation, WindowState,
};
pub use program::{ParseError, Program};
pub use units::{Freq, Phase};
pub use window::{Port, PortId, WindowError, WindowId, WindowSpec, WindowTable};
