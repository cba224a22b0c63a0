//! The density-matrix provider: exact mixed-state simulation with thermal relaxation (T1, T2)
//! after every gate for its duration, and readout error on the measured bits — the model of
//! qiskit-aer's `thermal_relaxation_error` and `ReadoutError`.
//!
//! ρ is kept vectorised: entry (row r, column c) at index `r | c << n`, so ρ is a state of 2n
//! "qubits" and a gate U on qubit q is U on bit q and U* on bit q + n — the statevector kernels
//! do the work. Each gate and the relaxation after it are 2- and 4-entry
//! superoperators on those bits, fused like any other gates (`crate::fusion`).

use crate::circuit::{Circuit, Op};
use crate::fusion::{Fuser, Gate, Matrix};
use crate::kernels::Isa;
use crate::statevector::{compile, permutation, u_matrix, Amps, SimError, C64, DEFAULT_FUSED};
use std::collections::BTreeMap;

/// Most qubits the density provider simulates (4^12 entries × 16 bytes = 256 MiB).
pub const MAX_QUBITS: usize = 12;

/// Cache-block size of the 2n-bit vector, in bits (as the f64 statevector's).
const BLOCK_BITS: usize = 14;

/// A device calibration: gate durations, coherence times and readout errors, the same for every
/// qubit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Duration of a one-qubit gate, ns.
    pub gate_1q_ns: f64,
    /// Duration of a two-qubit gate, ns.
    pub gate_2q_ns: f64,
    /// Energy relaxation time T1, ns.
    pub t1_ns: f64,
    /// Dephasing time T2, ns (at most 2·T1).
    pub t2_ns: f64,
    /// P(read 1 | prepared 0).
    pub readout_p01: f64,
    /// P(read 0 | prepared 1).
    pub readout_p10: f64,
}

impl Calibration {
    /// The built-in `density` device: 50 ns one-qubit gates, 300 ns two-qubit gates,
    /// T1 = 50 µs, T2 = 70 µs, readout errors 2 % (0→1) and 4 % (1→0).
    pub const DEFAULT: Calibration = Calibration {
        gate_1q_ns: 50.0,
        gate_2q_ns: 300.0,
        t1_ns: 50_000.0,
        t2_ns: 70_000.0,
        readout_p01: 0.02,
        readout_p10: 0.04,
    };
}

/// The gates of one circuit operation on the vectorised ρ of `n` qubits: U on the row bits,
/// U* on the column bits, then the relaxation of each qubit it touched for its duration.
fn superoperators(op: &Op, n: usize, cal: &Calibration) -> Vec<Gate> {
    let conj = |m: &Matrix| match m {
        Matrix::Dense(v) => Matrix::Dense(v.iter().map(|z| z.conj()).collect()),
        Matrix::Diagonal(v) => Matrix::Diagonal(v.iter().map(|z| z.conj()).collect()),
    };
    let (qubits, matrix, t) = match *op {
        Op::U {
            q,
            theta,
            phi,
            lambda,
        } => (
            vec![q],
            Matrix::Dense(u_matrix(theta, phi, lambda).to_vec()),
            cal.gate_1q_ns,
        ),
        Op::Cx { c, t } => (vec![c, t], permutation(&[0, 3, 2, 1]), cal.gate_2q_ns),
        Op::CPhase { a, b, lambda } => (
            vec![a, b],
            Matrix::Diagonal(vec![C64::ONE, C64::ONE, C64::ONE, C64::polar(1.0, lambda)]),
            cal.gate_2q_ns,
        ),
        Op::Swap { a, b } => (vec![a, b], permutation(&[0, 2, 1, 3]), cal.gate_2q_ns),
        _ => return Vec::new(),
    };
    let mut out = vec![
        Gate {
            qubits: qubits.iter().map(|q| q + n).collect(),
            matrix: conj(&matrix),
        },
        Gate {
            qubits: qubits.clone(),
            matrix,
        },
    ];
    out.extend(qubits.iter().map(|&q| relaxation(q, n, t, cal)));
    out
}

/// Thermal relaxation of qubit q for `t` ns, on the bits (q, q + n) of the vectorised ρ: |1⟩
/// decays to |0⟩ with p = 1 − e^(−t/T1), coherences shrink by e^(−t/T2).
fn relaxation(q: usize, n: usize, t: f64, cal: &Calibration) -> Gate {
    let p1 = 1.0 - (-t / cal.t1_ns).exp();
    let d = (-t / cal.t2_ns).exp();
    let r = |x: f64| C64 { re: x, im: 0.0 };
    let z = C64::ZERO;
    // Basis index b_q + 2·b_{q+n}: ρ00 gains p1·ρ11, the coherences ρ10 and ρ01 shrink.
    #[rustfmt::skip]
    let m = vec![
        r(1.0), z,    z,    r(p1),
        z,      r(d), z,    z,
        z,      z,    r(d), z,
        z,      z,    z,    r(1.0 - p1),
    ];
    Gate {
        qubits: vec![q, q + n],
        matrix: Matrix::Dense(m),
    }
}

/// The exact distribution over the classical bits under the calibration's noise, for a circuit
/// whose measurements are all terminal (Qiskit-formatted keys).
pub fn distribution(
    circuit: &Circuit,
    cal: &Calibration,
) -> Result<BTreeMap<String, f64>, SimError> {
    Ok(bit_distribution(circuit, cal)?
        .into_iter()
        .map(|(bits, p)| (circuit.format_bits(&bits), p))
        .collect())
}

/// The distribution over the classical bits, keyed by the bits themselves (index = bit number).
fn bit_distribution(
    circuit: &Circuit,
    cal: &Calibration,
) -> Result<BTreeMap<Vec<bool>, f64>, SimError> {
    if !circuit.measurements_are_terminal() {
        return Err(SimError::NotTerminal);
    }
    let n = circuit.num_qubits();
    if n > MAX_QUBITS {
        return Err(SimError::TooManyQubits(n, "density", MAX_QUBITS));
    }
    let mut fuser = Fuser::new(2 * n, DEFAULT_FUSED);
    let mut measured: Vec<(usize, usize)> = Vec::new();
    for op in &circuit.ops {
        match op {
            Op::Measure { q, c } => {
                measured.retain(|(_, cc)| cc != c);
                measured.push((*q, *c));
            }
            Op::Reset { .. } | Op::If { .. } => return Err(SimError::NotTerminal),
            other => {
                for g in superoperators(other, n, cal) {
                    fuser.push(&g);
                }
            }
        }
    }
    let mut rho = Amps::<f64>::zero_state(2 * n);
    let isa = Isa::detect();
    rho.run(&compile(fuser.finish(), 2 * n, BLOCK_BITS, isa), isa);
    // Diagonal of ρ, then readout error bit by bit on the measured bits.
    let dim = 1usize << n;
    let mut out = BTreeMap::new();
    let mut bits = vec![false; circuit.num_clbits()];
    for i in 0..dim {
        let p = rho.re[i | (i << n)];
        if p <= 0.0 {
            continue;
        }
        // Every readout pattern of the measured bits, with its probability.
        for flips in 0..(1u64 << measured.len()) {
            let mut weight = p;
            bits.iter_mut().for_each(|b| *b = false);
            for (k, (q, c)) in measured.iter().enumerate() {
                let truth = i & (1 << q) != 0;
                let flip = flips & (1 << k) != 0;
                weight *= match (truth, flip) {
                    (false, false) => 1.0 - cal.readout_p01,
                    (false, true) => cal.readout_p01,
                    (true, false) => 1.0 - cal.readout_p10,
                    (true, true) => cal.readout_p10,
                };
                bits[*c] = truth != flip;
            }
            if weight > 0.0 {
                *out.entry(bits.clone()).or_insert(0.0) += weight;
            }
        }
    }
    Ok(out)
}

/// Samples `shots` outcomes from the noisy distribution and counts them (Qiskit-formatted keys).
pub fn run(
    circuit: &Circuit,
    cal: &Calibration,
    shots: u64,
    seed: u64,
) -> Result<BTreeMap<String, u64>, SimError> {
    let mut counts = BTreeMap::new();
    sample(circuit, cal, shots, seed, |bits| {
        *counts.entry(circuit.format_bits(bits)).or_insert(0) += 1;
    })?;
    Ok(counts)
}

/// Samples `shots` outcomes from the noisy distribution, handing each shot's classical bits to
/// `each` in shot order; shot `i` draws from the stream seeded by (seed, i), as the statevector
/// provider does.
pub fn sample(
    circuit: &Circuit,
    cal: &Calibration,
    shots: u64,
    seed: u64,
    mut each: impl FnMut(&[bool]),
) -> Result<(), SimError> {
    let dist: Vec<(Vec<bool>, f64)> = bit_distribution(circuit, cal)?.into_iter().collect();
    let total: f64 = dist.iter().map(|(_, p)| p).sum();
    for shot in 0..shots {
        let u = crate::statevector::unit(&mut crate::statevector::stream(seed, shot)) * total;
        let mut acc = 0.0;
        let mut pick = &dist[dist.len() - 1].0;
        for (k, p) in &dist {
            acc += p;
            if u < acc {
                pick = k;
                break;
            }
        }
        each(pick);
    }
    Ok(())
}
