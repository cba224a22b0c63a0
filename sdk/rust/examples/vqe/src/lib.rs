//! vqe, in Rust: a hybrid variational loop over the Q calls, with floating point.
//!
//! The ansatz is ry(θ)·CX on two qubits. Each evaluation rebuilds the circuit text with the
//! parameter θ written out in full precision, has the Q container run 1000 shots and estimates
//! the energy ⟨Z0 + Z1⟩ from them. The search moves θ on the lattice k·π/64 by a shrinking step
//! towards lower energy until the step is zero: the same search as `examples/guests/q-vqe.wat`,
//! so the two can be compared job for job. Run: `xdv run examples/sdk/rust-vqe.toml`.

#![no_std]

use core::f64::consts::PI;
use core::fmt::Write;
use xdv_guest::cap::{Handle, QContainer};
use xdv_guest::fmt::Buf;
use xdv_guest::q::{self, Figure};
use xdv_guest::{exit, log};

const SHOTS: usize = 1000;

/// The parameter at lattice point `k`: k·π/64, evaluated as the QASM `k*pi/64` would be.
fn theta(k: i64) -> f64 {
    k as f64 * PI / 64.0
}

/// ⟨Z0 + Z1⟩ at θ, estimated from `SHOTS` shots: each outcome v contributes
/// (1 − 2·b0) + (1 − 2·b1) = 2 − 2·popcount(v) per shot that read it.
fn energy(container: Handle<QContainer>, theta: f64) -> f64 {
    let mut program = Buf::<256>::new();
    let _ = write!(
        program,
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nry({}) q[0];\ncx q[0],q[1];\nmeasure q -> c;\n",
        theta
    );
    let job = q::submit(container, program.as_str(), SHOTS as u64, 0).unwrap_or_else(|_| exit(1));
    let mut shots = [0u64; SHOTS];
    let n = q::wait_result(job, &mut shots).unwrap_or_else(|_| exit(2));
    // counts[v]: the shots that read v (bit c = classical bit c).
    let mut counts = [0u32; 4];
    q::histogram(&shots[..n], &mut counts);
    let total: i64 = (0..4u32)
        .map(|v| i64::from(counts[v as usize]) * (2 - 2 * i64::from(v.count_ones())))
        .sum();
    total as f64 / n as f64
}

fn main() {
    let container = Handle::<QContainer>::find(0).unwrap_or_else(|_| exit(3));
    let (mut k, mut step) = (8i64, 16i64);
    let mut e = energy(container, theta(k));
    let _ = log!("vqe: theta = {:.6} rad, energy <Z0+Z1> = {:.3}", theta(k), e);
    while step != 0 {
        let up = energy(container, theta(k + step));
        let down = energy(container, theta(k - step));
        if up < e {
            k += step;
            e = up;
        } else if down < e {
            k -= step;
            e = down;
        } else {
            step /= 2;
        }
        let _ = log!("vqe: theta = {:.6} rad, energy <Z0+Z1> = {:.3}", theta(k), e);
    }
    let _ = log!("vqe: converged at theta = {:.6} rad ({}*pi/64), energy {:.3}", theta(k), k, e);
    let left = q::info(container, Figure::BudgetLeft).unwrap_or(0);
    let _ = log!("vqe: budget left (micro-units) {}", left);
    exit(0)
}

xdv_guest::entry!(main);
