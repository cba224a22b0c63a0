//! The density-matrix provider: exact mixed-state simulation with thermal relaxation (T1, T2)
//! after every gate for its duration, and readout error on the measured bits — the model of
//! qiskit-aer's `thermal_relaxation_error` and `ReadoutError`.
//!
//! ρ is kept vectorised: entry (row r, column c) at index `r | c << n`, so ρ is a state of 2n
//! "qubits" and a gate U on qubit q is U on bit q and U* on bit q + n — the statevector kernels
//! do the work. No gates are fused: noise acts after each one.

use crate::circuit::{Circuit, Op};
use crate::statevector::{pairs, u_matrix, SimError, C64};
use std::collections::BTreeMap;

/// Most qubits the density provider simulates (4^12 entries × 16 bytes = 256 MiB).
pub const MAX_QUBITS: usize = 12;

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

struct Rho {
    n: usize,
    v: Vec<C64>,
}

fn conj(m: &[C64; 4]) -> [C64; 4] {
    m.map(|z| C64 {
        re: z.re,
        im: -z.im,
    })
}

impl Rho {
    fn apply_1q(&mut self, q: usize, m: &[C64; 4]) {
        let apply = |m: [C64; 4]| {
            move |_: usize, lo: &mut C64, hi: &mut C64| {
                let (a0, a1) = (*lo, *hi);
                *lo = m[0].mul(a0).add(m[1].mul(a1));
                *hi = m[2].mul(a0).add(m[3].mul(a1));
            }
        };
        pairs(&mut self.v, 1 << q, apply(*m));
        pairs(&mut self.v, 1 << (q + self.n), apply(conj(m)));
    }

    fn cx(&mut self, c: usize, t: usize) {
        for (cb, tb) in [
            (1usize << c, 1usize << t),
            (1usize << (c + self.n), 1usize << (t + self.n)),
        ] {
            pairs(&mut self.v, tb, |i, lo, hi| {
                if i & cb != 0 {
                    std::mem::swap(lo, hi);
                }
            });
        }
    }

    fn phase(&mut self, a: usize, b: usize, lambda: f64) {
        let n = self.n;
        let (row, col) = (
            (1usize << a) | (1 << b),
            (1usize << (a + n)) | (1 << (b + n)),
        );
        let (p, pc) = (C64::polar(1.0, lambda), C64::polar(1.0, -lambda));
        for (i, x) in self.v.iter_mut().enumerate() {
            if i & row == row {
                *x = x.mul(p);
            }
            if i & col == col {
                *x = x.mul(pc);
            }
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        for (ab, bb) in [
            (1usize << a, 1usize << b),
            (1usize << (a + self.n), 1usize << (b + self.n)),
        ] {
            for i in 0..self.v.len() {
                if i & ab != 0 && i & bb == 0 {
                    self.v.swap(i, (i ^ ab) | bb);
                }
            }
        }
    }

    /// Thermal relaxation of qubit q for `t` ns: |1⟩ decays to |0⟩ with p = 1 − e^(−t/T1),
    /// coherences shrink by e^(−t/T2).
    fn relax(&mut self, q: usize, t: f64, cal: &Calibration) {
        let p1 = 1.0 - (-t / cal.t1_ns).exp();
        let d = (-t / cal.t2_ns).exp();
        let (rb, cb) = (1usize << q, 1usize << (q + self.n));
        for i in 0..self.v.len() {
            match (i & rb != 0, i & cb != 0) {
                (false, false) => {
                    let j = i | rb | cb;
                    let moved = self.v[j];
                    self.v[i] = self.v[i].add(C64 {
                        re: moved.re * p1,
                        im: moved.im * p1,
                    });
                }
                (true, true) => {
                    let x = &mut self.v[i];
                    x.re *= 1.0 - p1;
                    x.im *= 1.0 - p1;
                }
                _ => {
                    let x = &mut self.v[i];
                    x.re *= d;
                    x.im *= d;
                }
            }
        }
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
        return Err(SimError::TooManyQubits(n));
    }
    let mut rho = Rho {
        n,
        v: vec![C64::ZERO; 1 << (2 * n)],
    };
    rho.v[0] = C64::ONE;
    let mut measured: Vec<(usize, usize)> = Vec::new();
    for op in &circuit.ops {
        match op {
            Op::U {
                q,
                theta,
                phi,
                lambda,
            } => {
                rho.apply_1q(*q, &u_matrix(*theta, *phi, *lambda));
                rho.relax(*q, cal.gate_1q_ns, cal);
            }
            Op::Cx { c: a, t: b } | Op::CPhase { a, b, .. } | Op::Swap { a, b } => {
                match op {
                    Op::Cx { .. } => rho.cx(*a, *b),
                    Op::CPhase { lambda, .. } => rho.phase(*a, *b, *lambda),
                    _ => rho.swap(*a, *b),
                }
                rho.relax(*a, cal.gate_2q_ns, cal);
                rho.relax(*b, cal.gate_2q_ns, cal);
            }
            Op::Measure { q, c } => {
                measured.retain(|(_, cc)| cc != c);
                measured.push((*q, *c));
            }
            Op::Barrier { .. } => {}
            Op::Reset { .. } | Op::If { .. } => return Err(SimError::NotTerminal),
        }
    }
    // Diagonal of ρ, then readout error bit by bit on the measured bits.
    let dim = 1usize << n;
    let mut out = BTreeMap::new();
    let mut bits = vec![false; circuit.num_clbits()];
    for i in 0..dim {
        let p = rho.v[i | (i << n)].re;
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
