//! The Q domain of xdv.
//!
//! - [`circuit`]: the circuit IR every front end lowers to — `U(θ, φ, λ)` and `CX` on qubit
//!   indices, measurements into classical bits, resets, barriers and classically conditioned ops.
//! - [`qasm`]: the OpenQASM 2.0 front end (with a built-in `qelib1.inc`), its own lexer and
//!   parser, errors that name `file:line:col`.
//! - [`statevector`]: the exact state-vector simulator (complex128), seeded sampling.
//! - [`density`]: the density-matrix simulator with thermal relaxation and readout error.
//! - [`device`]: coupling maps and Q-container allocation.
//! - [`provider`]: devices, the provider trait and the built-in providers.
//! - [`plan`]: a job's static duration and decoherence cost on a container.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod circuit;
pub mod density;
pub mod device;
pub mod plan;
pub mod provider;
pub mod qasm;
pub mod statevector;

pub use circuit::{Circuit, Op};
