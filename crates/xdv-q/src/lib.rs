//! The Q domain of xdv.
//!
//! - [`circuit`]: the circuit IR every front end lowers to — `U(θ, φ, λ)` and `CX` on qubit
//!   indices, measurements into classical bits, resets, barriers and classically conditioned ops.
//! - [`qasm`]: the OpenQASM 2.0 front end (with a built-in `qelib1.inc`), its own lexer and
//!   parser, errors that name `file:line:col`.
//! - [`statevector`]: the exact state-vector simulator (f64 or f32), seeded sampling.
//! - [`fusion`]: the gate-fusion planner and cache-block scheduler both simulators run.
//! - [`kernels`]: the SIMD amplitude kernels (the only module with `unsafe`).
//! - [`density`]: the density-matrix simulator with thermal relaxation and readout error.
//! - [`device`]: coupling maps and Q-container allocation.
//! - [`provider`]: devices, the provider trait and the built-in providers.
//! - [`plan`]: a job's static duration and decoherence cost on a container.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod circuit;
pub mod density;
pub mod device;
pub mod fusion;
#[allow(unsafe_code)]
pub mod kernels;
pub mod plan;
pub mod provider;
pub mod qasm;
pub mod statevector;

pub use circuit::{Circuit, Op};
