//! The exact state-vector provider: complex128 amplitudes, qubit k is bit k of the basis index
//! (the convention Qiskit uses).
//!
//! Gates are fused before they touch the state. Consecutive one-qubit gates on a qubit become one
//! 2×2 matrix. A two-qubit gate absorbs the pending one-qubit gates of its qubits, and every gate
//! that follows on the same pair, into one 4×4 block applied in a single pass: a layer of
//! one-qubit gates and CXs costs one pass per pair instead of three. A two-qubit gate with
//! nothing to absorb, and a controlled phase (diagonal: one multiply per amplitude), uses its
//! own cheaper kernel.
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

/// A 4×4 matrix, row major, on the basis index `b0 + 2·b1` of a qubit pair `(q0, q1)`.
type M4 = [[C64; 4]; 4];

fn m4_mul(a: &M4, b: &M4) -> M4 {
    let mut out = [[C64::ZERO; 4]; 4];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = (0..4).fold(C64::ZERO, |acc, k| acc.add(a[r][k].mul(b[k][c])));
        }
    }
    out
}

/// `m` on qubit `which` (0: q0, 1: q1) of the pair, the identity on the other.
fn kron_one(m: &M2, which: usize) -> M4 {
    let mut out = [[C64::ZERO; 4]; 4];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            let (rb, cb) = ((r >> which) & 1, (c >> which) & 1);
            let (ro, co) = ((r >> (1 - which)) & 1, (c >> (1 - which)) & 1);
            if ro == co {
                *x = m[rb * 2 + cb];
            }
        }
    }
    out
}

/// A two-qubit gate as a 4×4 matrix on the pair `(q0, q1)`; `None` for other ops.
fn gate4(op: &Op, q0: usize) -> Option<M4> {
    // Basis state k = b0 + 2·b1 goes to perm(k) with phase(k).
    let (perm, phase): ([usize; 4], [C64; 4]) = match *op {
        // Flip the target's bit when the control's is set.
        Op::Cx { c, .. } if c == q0 => ([0, 3, 2, 1], [C64::ONE; 4]),
        Op::Cx { .. } => ([0, 1, 3, 2], [C64::ONE; 4]),
        Op::CPhase { lambda, .. } => (
            [0, 1, 2, 3],
            [C64::ONE, C64::ONE, C64::ONE, C64::polar(1.0, lambda)],
        ),
        Op::Swap { .. } => ([0, 2, 1, 3], [C64::ONE; 4]),
        _ => return None,
    };
    let mut m = [[C64::ZERO; 4]; 4];
    for k in 0..4 {
        m[perm[k]][k] = phase[k];
    }
    Some(m)
}

/// The qubits of a two-qubit gate.
fn pair_of(op: &Op) -> Option<(usize, usize)> {
    match *op {
        Op::Cx { c, t } => Some((c, t)),
        Op::CPhase { a, b, .. } | Op::Swap { a, b } => Some((a, b)),
        _ => None,
    }
}

/// A fused 4×4 block waiting to be applied.
#[derive(Clone, Copy)]
struct Block {
    q0: usize,
    q1: usize,
    m: M4,
}

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
    block: Option<Block>,
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
            block: None,
            clbits: vec![false; c],
        })
    }

    /// Applies everything pending on qubit `q`: its fused block, or its one-qubit matrix.
    fn flush(&mut self, q: usize) {
        if self.block.is_some_and(|b| b.q0 == q || b.q1 == q) {
            self.flush_block();
        }
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

    fn flush_block(&mut self) {
        let Some(Block { q0, q1, m }) = self.block.take() else {
            return;
        };
        quads(&mut self.amps, 1 << q0, 1 << q1, |v: [C64; 4]| {
            let mut out = [C64::ZERO; 4];
            for (r, o) in out.iter_mut().enumerate() {
                *o = m[r][0]
                    .mul(v[0])
                    .add(m[r][1].mul(v[1]))
                    .add(m[r][2].mul(v[2]))
                    .add(m[r][3].mul(v[3]));
            }
            out
        });
    }

    /// Fuses a two-qubit gate into the pending block when it acts on the block's pair, or starts
    /// a block when one-qubit gates wait on its qubits. `false`: apply it on its own.
    fn fuse_two(&mut self, op: &Op) -> bool {
        let (x, y) = pair_of(op).expect("a two-qubit gate");
        if let Some(b) = self.block.as_mut() {
            if (b.q0, b.q1) == (x, y) || (b.q0, b.q1) == (y, x) {
                b.m = m4_mul(&gate4(op, b.q0).expect("two-qubit"), &b.m);
                return true;
            }
        }
        // Diagonal gates (controlled phases) keep their one-multiply kernel: fusing one-qubit
        // gates into them costs more arithmetic than the pass it saves (measured on QFT).
        let diagonal = matches!(op, Op::CPhase { .. });
        if diagonal || self.pending[x].is_none() && self.pending[y].is_none() {
            self.flush(x);
            self.flush(y);
            return false;
        }
        self.flush_block();
        let mut m = gate4(op, x).expect("two-qubit");
        for (which, q) in [(0, x), (1, y)] {
            if let Some(p) = self.pending[q].take() {
                m = m4_mul(&m, &kron_one(&p, which));
            }
        }
        self.block = Some(Block { q0: x, q1: y, m });
        true
    }

    fn flush_all(&mut self) {
        self.flush_block();
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
                if let Some(b) = self.block.as_mut() {
                    if b.q0 == *q || b.q1 == *q {
                        let which = usize::from(b.q1 == *q);
                        b.m = m4_mul(&kron_one(&m, which), &b.m);
                        return;
                    }
                }
                self.pending[*q] = Some(match &self.pending[*q] {
                    Some(prev) => mat_mul(&m, prev),
                    None => m,
                });
            }
            Op::Cx { .. } | Op::CPhase { .. } | Op::Swap { .. } if self.fuse_two(op) => {}
            Op::Cx { c, t } => {
                let (cb, tb) = (1usize << c, 1usize << t);
                pairs(&mut self.amps, tb, |i, lo, hi| {
                    if i & cb != 0 {
                        std::mem::swap(lo, hi);
                    }
                });
            }
            Op::CPhase { a, b, lambda } => {
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

/// Replaces every quadruple `(a[i], a[i|b0], a[i|b1], a[i|b0|b1])` (for each `i` with both
/// bits clear) by `f` of it, in parallel for large vectors. Quadruples are disjoint, so the
/// result does not depend on the order of calls.
fn quads(amps: &mut [C64], b0: usize, b1: usize, f: impl Fn([C64; 4]) -> [C64; 4] + Sync) {
    let (lo, hi) = (b0.min(b1), b0.max(b1));
    let swapped = b0 > b1;
    let apply = |x00: &mut C64, xl: &mut C64, xh: &mut C64, x11: &mut C64| {
        // Index order b0 + 2·b1: when b0 is the high bit, xl is |b1=1⟩ and xh is |b0=1⟩.
        let v = if swapped {
            [*x00, *xh, *xl, *x11]
        } else {
            [*x00, *xl, *xh, *x11]
        };
        let w = f(v);
        *x00 = w[0];
        *x11 = w[3];
        if swapped {
            *xh = w[1];
            *xl = w[2];
        } else {
            *xl = w[1];
            *xh = w[2];
        }
    };
    // Outer blocks of 2·hi split into halves (hi bit clear / set); inside each half, blocks of
    // 2·lo split into halves again. Parallel at whichever level has enough pieces.
    let inner = |(a, b): (&mut [C64], &mut [C64])| {
        let (a0, a1) = a.split_at_mut(lo);
        let (c0, c1) = b.split_at_mut(lo);
        if lo >= PARALLEL_FROM {
            a0.par_iter_mut()
                .zip(a1.par_iter_mut())
                .zip(c0.par_iter_mut())
                .zip(c1.par_iter_mut())
                .for_each(|(((x00, xl), xh), x11)| apply(x00, xl, xh, x11));
        } else {
            for (((x00, xl), xh), x11) in a0.iter_mut().zip(a1).zip(c0).zip(c1) {
                apply(x00, xl, xh, x11);
            }
        }
    };
    let run_outer = |chunk: &mut [C64]| {
        let (h0, h1) = chunk.split_at_mut(hi);
        if hi >= PARALLEL_FROM && lo < PARALLEL_FROM {
            h0.par_chunks_mut(2 * lo)
                .zip(h1.par_chunks_mut(2 * lo))
                .for_each(inner);
        } else {
            h0.chunks_mut(2 * lo)
                .zip(h1.chunks_mut(2 * lo))
                .for_each(inner);
        }
    };
    if amps.len() >= PARALLEL_FROM && hi < PARALLEL_FROM {
        amps.par_chunks_mut(2 * hi).for_each(run_outer);
    } else {
        amps.chunks_mut(2 * hi).for_each(run_outer);
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
