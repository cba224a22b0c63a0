//! The exact state-vector provider: complex128 amplitudes, qubit k is bit k of the basis index
//! (the convention Qiskit uses), consecutive one-qubit gates on a qubit fused into one matrix.
//!
//! Gate kernels run on rayon's threads for large states. Each amplitude's new value is computed
//! from the same inputs in the same order whatever the thread count, so results are bit-identical
//! across machines; sums (measurement probabilities) stay sequential for the same reason.

use crate::circuit::{Circuit, Op};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Below this many amplitudes a kernel runs on one thread (spawning costs more than it saves).
const PARALLEL_FROM: usize = 1 << 14;

/// Most qubits the provider simulates (2^28 amplitudes × 16 bytes = 4 GiB).
pub const MAX_QUBITS: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct C64 {
    pub(crate) re: f64,
    pub(crate) im: f64,
}

impl C64 {
    pub(crate) const ZERO: C64 = C64 { re: 0.0, im: 0.0 };
    pub(crate) const ONE: C64 = C64 { re: 1.0, im: 0.0 };
    pub(crate) fn polar(r: f64, theta: f64) -> C64 {
        C64 {
            re: r * theta.cos(),
            im: r * theta.sin(),
        }
    }
    pub(crate) fn mul(self, o: C64) -> C64 {
        C64 {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    pub(crate) fn add(self, o: C64) -> C64 {
        C64 {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    pub(crate) fn norm2(self) -> f64 {
        self.re * self.re + self.im * self.im
    }
}

/// A 2×2 matrix, row major.
pub(crate) type M2 = [C64; 4];

pub(crate) fn u_matrix(theta: f64, phi: f64, lambda: f64) -> M2 {
    let (c, s) = ((theta / 2.0).cos(), (theta / 2.0).sin());
    [
        C64::polar(c, 0.0),
        C64::polar(-s, lambda),
        C64::polar(s, phi),
        C64::polar(c, phi + lambda),
    ]
}

/// `a · b` (b applied first).
fn mat_mul(a: &M2, b: &M2) -> M2 {
    [
        a[0].mul(b[0]).add(a[1].mul(b[2])),
        a[0].mul(b[1]).add(a[1].mul(b[3])),
        a[2].mul(b[0]).add(a[3].mul(b[2])),
        a[2].mul(b[1]).add(a[3].mul(b[3])),
    ]
}

/// Why a circuit cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// More qubits than [`MAX_QUBITS`].
    #[error("{0} qubits: the statevector provider simulates at most {MAX_QUBITS}")]
    TooManyQubits(usize),
    /// The exact distribution needs terminal measurements.
    #[error("the exact distribution needs every measurement at the end of the circuit (no reset, no if, no gate after a measurement)")]
    NotTerminal,
}

/// A state vector with its classical bits.
pub struct State {
    amps: Vec<C64>,
    pending: Vec<Option<M2>>,
    clbits: Vec<bool>,
}

impl State {
    /// |0…0⟩ on `n` qubits with `c` classical bits.
    pub fn new(n: usize, c: usize) -> Result<Self, SimError> {
        if n > MAX_QUBITS {
            return Err(SimError::TooManyQubits(n));
        }
        let mut amps = vec![C64::ZERO; 1 << n];
        amps[0] = C64::ONE;
        Ok(Self {
            amps,
            pending: vec![None; n],
            clbits: vec![false; c],
        })
    }

    fn flush(&mut self, q: usize) {
        if let Some(m) = self.pending[q].take() {
            let bit = 1usize << q;
            let apply = |lo: &mut C64, hi: &mut C64| {
                let (a0, a1) = (*lo, *hi);
                *lo = m[0].mul(a0).add(m[1].mul(a1));
                *hi = m[2].mul(a0).add(m[3].mul(a1));
            };
            pairs(&mut self.amps, bit, |_, lo, hi| apply(lo, hi));
        }
    }

    fn flush_all(&mut self) {
        for q in 0..self.pending.len() {
            self.flush(q);
        }
    }

    /// Applies one operation; `rng` draws measurement outcomes.
    pub fn apply(&mut self, op: &Op, rng: &mut ChaCha20Rng) {
        match op {
            Op::U {
                q,
                theta,
                phi,
                lambda,
            } => {
                let m = u_matrix(*theta, *phi, *lambda);
                self.pending[*q] = Some(match &self.pending[*q] {
                    Some(prev) => mat_mul(&m, prev),
                    None => m,
                });
            }
            Op::Cx { c, t } => {
                self.flush(*c);
                self.flush(*t);
                let (cb, tb) = (1usize << c, 1usize << t);
                pairs(&mut self.amps, tb, |i, lo, hi| {
                    if i & cb != 0 {
                        std::mem::swap(lo, hi);
                    }
                });
            }
            Op::CPhase { a, b, lambda } => {
                self.flush(*a);
                self.flush(*b);
                let mask = (1usize << a) | (1usize << b);
                let phase = C64::polar(1.0, *lambda);
                let kernel = |(i, x): (usize, &mut C64)| {
                    if i & mask == mask {
                        *x = x.mul(phase);
                    }
                };
                if self.amps.len() >= PARALLEL_FROM {
                    self.amps.par_iter_mut().enumerate().for_each(kernel);
                } else {
                    self.amps.iter_mut().enumerate().for_each(kernel);
                }
            }
            Op::Swap { a, b } => {
                self.flush(*a);
                self.flush(*b);
                let (ab, bb) = (1usize << a, 1usize << b);
                // Exchange the amplitudes of |…1_a…0_b…⟩ and |…0_a…1_b…⟩.
                for i in 0..self.amps.len() {
                    if i & ab != 0 && i & bb == 0 {
                        self.amps.swap(i, (i ^ ab) | bb);
                    }
                }
            }
            Op::Measure { q, c } => {
                let one = self.measure(*q, rng);
                self.clbits[*c] = one;
            }
            Op::Reset { q } => {
                if self.measure(*q, rng) {
                    self.apply(
                        &Op::U {
                            q: *q,
                            theta: std::f64::consts::PI,
                            phi: 0.0,
                            lambda: std::f64::consts::PI,
                        },
                        rng,
                    );
                    self.flush(*q);
                }
            }
            Op::Barrier { .. } => {}
            Op::If {
                offset,
                size,
                value,
                op,
            } => {
                let v = (0..*size).fold(0u64, |acc, i| {
                    acc | (u64::from(self.clbits[offset + i]) << i)
                });
                if v == *value {
                    self.apply(op, rng);
                }
            }
        }
    }

    /// Measures qubit `q`, collapsing the state.
    fn measure(&mut self, q: usize, rng: &mut ChaCha20Rng) -> bool {
        self.flush(q);
        let bit = 1usize << q;
        let p1: f64 = self
            .amps
            .iter()
            .enumerate()
            .filter(|(i, _)| i & bit != 0)
            .map(|(_, a)| a.norm2())
            .sum();
        let one = unit(rng) < p1;
        let keep = if one { p1 } else { 1.0 - p1 };
        let scale = if keep > 0.0 { 1.0 / keep.sqrt() } else { 0.0 };
        for (i, a) in self.amps.iter_mut().enumerate() {
            if (i & bit != 0) == one {
                a.re *= scale;
                a.im *= scale;
            } else {
                *a = C64::ZERO;
            }
        }
        one
    }

    /// The probability of every basis state (after flushing pending gates).
    pub fn probabilities(&mut self) -> Vec<f64> {
        self.flush_all();
        self.amps.iter().map(|a| a.norm2()).collect()
    }
}

/// Calls `f(i, a[i], a[i | bit])` for every index `i` with `bit` clear, in parallel for large
/// vectors. Each call touches only its own pair, so the order of calls does not matter.
pub(crate) fn pairs(amps: &mut [C64], bit: usize, f: impl Fn(usize, &mut C64, &mut C64) + Sync) {
    let block = 2 * bit;
    let run_block = |base: usize, chunk: &mut [C64]| {
        let (lo, hi) = chunk.split_at_mut(bit);
        if bit >= PARALLEL_FROM {
            lo.par_iter_mut()
                .zip(hi.par_iter_mut())
                .enumerate()
                .for_each(|(k, (a, b))| f(base + k, a, b));
        } else {
            for (k, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                f(base + k, a, b);
            }
        }
    };
    if amps.len() >= PARALLEL_FROM && bit < PARALLEL_FROM {
        amps.par_chunks_mut(block)
            .enumerate()
            .for_each(|(j, chunk)| run_block(j * block, chunk));
    } else {
        for (j, chunk) in amps.chunks_mut(block).enumerate() {
            run_block(j * block, chunk);
        }
    }
}

/// A uniform draw in [0, 1) with 53 random bits.
pub(crate) fn unit(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The random stream for a (seed, shot) pair.
pub(crate) fn stream(seed: u64, shot: u64) -> ChaCha20Rng {
    let mut m = b"xdv-statevector".to_vec();
    m.extend_from_slice(&seed.to_le_bytes());
    m.extend_from_slice(&shot.to_le_bytes());
    ChaCha20Rng::from_seed(*blake3::hash(&m).as_bytes())
}

/// The exact distribution over the classical bits (Qiskit-formatted keys) of a circuit whose
/// measurements are all terminal.
pub fn distribution(circuit: &Circuit) -> Result<BTreeMap<String, f64>, SimError> {
    if !circuit.measurements_are_terminal() {
        return Err(SimError::NotTerminal);
    }
    let (probs, measured) = final_probabilities(circuit)?;
    let mut out = BTreeMap::new();
    let mut bits = vec![false; circuit.num_clbits()];
    for (i, p) in probs.into_iter().enumerate() {
        if p == 0.0 {
            continue;
        }
        bits.iter_mut().for_each(|b| *b = false);
        for (q, c) in &measured {
            bits[*c] = i & (1 << q) != 0;
        }
        *out.entry(circuit.format_bits(&bits)).or_insert(0.0) += p;
    }
    Ok(out)
}

/// (qubit, classical bit) pairs a circuit measures.
type Measured = Vec<(usize, usize)>;

/// Simulates a circuit with terminal measurements up to its measurements: the basis-state
/// probabilities and the (qubit, classical bit) pairs measured (the last measurement into a bit wins).
fn final_probabilities(circuit: &Circuit) -> Result<(Vec<f64>, Measured), SimError> {
    let mut state = State::new(circuit.num_qubits(), circuit.num_clbits())?;
    let mut rng = stream(0, 0);
    let mut measured: Vec<(usize, usize)> = Vec::new();
    for op in &circuit.ops {
        match op {
            Op::Measure { q, c } => {
                measured.retain(|(_, cc)| cc != c);
                measured.push((*q, *c));
            }
            other => state.apply(other, &mut rng),
        }
    }
    Ok((state.probabilities(), measured))
}

/// Runs `shots` shots and counts the classical outcomes (Qiskit-formatted keys). Each shot draws
/// from its own stream seeded by (seed, shot); see [`sample`].
pub fn run(circuit: &Circuit, shots: u64, seed: u64) -> Result<BTreeMap<String, u64>, SimError> {
    let mut counts = BTreeMap::new();
    sample(circuit, shots, seed, |bits| {
        *counts.entry(circuit.format_bits(bits)).or_insert(0) += 1;
    })?;
    Ok(counts)
}

/// Runs `shots` shots and hands each shot's classical bits to `each`, in shot order. Circuits
/// whose measurements are terminal are simulated once and sampled; others run shot by shot. Shot
/// `i` draws from its own stream seeded by (seed, i), so a shot's outcome never depends on how
/// many shots were asked for.
pub fn sample(
    circuit: &Circuit,
    shots: u64,
    seed: u64,
    mut each: impl FnMut(&[bool]),
) -> Result<(), SimError> {
    if circuit.measurements_are_terminal() {
        // Simulate once, then sample basis states from the cumulative distribution.
        let (probs, measured) = final_probabilities(circuit)?;
        let mut cumulative = Vec::with_capacity(probs.len());
        let mut acc = 0.0;
        for p in probs {
            acc += p;
            cumulative.push(acc);
        }
        let mut bits = vec![false; circuit.num_clbits()];
        for shot in 0..shots {
            let u = unit(&mut stream(seed, shot)) * acc;
            let i = cumulative
                .partition_point(|&c| c <= u)
                .min(cumulative.len() - 1);
            bits.iter_mut().for_each(|b| *b = false);
            for (q, c) in &measured {
                bits[*c] = i & (1 << q) != 0;
            }
            each(&bits);
        }
        return Ok(());
    }
    for shot in 0..shots {
        let mut state = State::new(circuit.num_qubits(), circuit.num_clbits())?;
        let mut rng = stream(seed, shot);
        for op in &circuit.ops {
            state.apply(op, &mut rng);
        }
        each(&state.clbits);
    }
    Ok(())
}
