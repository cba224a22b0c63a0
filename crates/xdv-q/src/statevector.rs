//! The exact state-vector provider: qubit k is bit k of the basis index (the convention Qiskit
//! uses), in double (`statevector`) or single (`statevector-f32`) precision.
//!
//! A circuit is compiled once into a [`Plan`]: its gates fused into steps of up to `k` qubits
//! and grouped into cache blocks ([`crate::fusion`]), between the mid-circuit measurements,
//! resets and conditions that need the state. The steps run on [`crate::kernels`]: split
//! real/imaginary arrays, SIMD variants chosen at run time, rayon threads for large states.
//!
//! # Determinism
//!
//! For one precision the amplitudes are bit-identical across thread counts and SIMD variants:
//! the plan depends only on the circuit and the fixed options (not on the machine), and every
//! kernel variant computes each amplitude with the same fused multiply-adds in the same order.
//! Sums (measurement probabilities) are sequential, in f64, in index order, and sampling draws
//! from seeded streams.

use crate::circuit::{Circuit, Op};
use crate::fusion::{self, Fuser, Gate, Matrix, Pass, Step, StepOp};
use crate::kernels::{byte_tables, offsets, Isa, Kernel, Real};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Most qubits the double-precision provider simulates (2^28 amplitudes × 16 bytes = 4 GiB).
pub const MAX_QUBITS: usize = 28;

/// Most qubits the single-precision provider simulates (2^29 amplitudes × 8 bytes = 4 GiB).
pub const MAX_QUBITS_F32: usize = 29;

/// The fusion width used unless asked otherwise, chosen by measurement (docs/benchmarks.md).
pub const DEFAULT_FUSED: usize = 4;

/// Below this many amplitudes a plan runs on one thread (spawning costs more than it saves).
const PARALLEL_FROM: usize = 1 << 14;

/// A complex number in f64: the planner's and the density provider's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct C64 {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

// `mul` and `add` by name, not operators: the planner's arithmetic reads as the kernels'.
#[allow(clippy::should_implement_trait)]
impl C64 {
    /// 0.
    pub const ZERO: C64 = C64 { re: 0.0, im: 0.0 };
    /// 1.
    pub const ONE: C64 = C64 { re: 1.0, im: 0.0 };
    /// `r·e^{iθ}`.
    pub fn polar(r: f64, theta: f64) -> C64 {
        C64 {
            re: r * theta.cos(),
            im: r * theta.sin(),
        }
    }
    /// The product.
    pub fn mul(self, o: C64) -> C64 {
        C64 {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    /// The sum.
    pub fn add(self, o: C64) -> C64 {
        C64 {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    /// The complex conjugate.
    pub fn conj(self) -> C64 {
        C64 {
            re: self.re,
            im: -self.im,
        }
    }
}

/// The matrix of `U(θ, φ, λ)`, row major.
pub(crate) fn u_matrix(theta: f64, phi: f64, lambda: f64) -> [C64; 4] {
    let (c, s) = ((theta / 2.0).cos(), (theta / 2.0).sin());
    [
        C64::polar(c, 0.0),
        C64::polar(-s, lambda),
        C64::polar(s, phi),
        C64::polar(c, phi + lambda),
    ]
}

/// Why a circuit cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// More qubits than the provider's ceiling.
    #[error("{0} qubits: the {1} provider simulates at most {2}")]
    TooManyQubits(usize, &'static str, usize),
    /// The exact distribution needs terminal measurements.
    #[error("the exact distribution needs every measurement at the end of the circuit (no reset, no if, no gate after a measurement)")]
    NotTerminal,
}

/// The arithmetic a statevector provider computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f64 amplitudes (`statevector`).
    F64,
    /// f32 amplitudes (`statevector-f32`): half the bytes, one more qubit in the same memory.
    F32,
}

impl Precision {
    /// The provider's name.
    pub fn provider(self) -> &'static str {
        match self {
            Precision::F64 => "statevector",
            Precision::F32 => "statevector-f32",
        }
    }

    /// Most qubits it simulates.
    pub fn max_qubits(self) -> usize {
        match self {
            Precision::F64 => MAX_QUBITS,
            Precision::F32 => MAX_QUBITS_F32,
        }
    }

    /// Bytes of one amplitude.
    pub fn amplitude_bytes(self) -> usize {
        match self {
            Precision::F64 => 16,
            Precision::F32 => 8,
        }
    }

    /// The cache-block size, in qubits: blocks of 256 KiB (both halves), half of a core's
    /// 512 KiB L2 on the development machine (docs/benchmarks.md measures the rule). Fixed, not
    /// detected, so that a plan never depends on the machine running it.
    pub fn block_bits(self) -> usize {
        match self {
            Precision::F64 => 14,
            Precision::F32 => 15,
        }
    }
}

/// How a plan is built and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The precision.
    pub precision: Precision,
    /// Most qubits of a fused dense step (1..=[`fusion::MAX_FUSED`]).
    pub fused: usize,
    /// Cache-block size in qubits (0: no blocking).
    pub block_bits: usize,
    /// The kernel variant (results do not depend on it).
    pub isa: Isa,
}

impl Options {
    /// The defaults for a precision: [`DEFAULT_FUSED`], its block size, the widest variant.
    pub fn new(precision: Precision) -> Options {
        Options {
            precision,
            fused: DEFAULT_FUSED,
            block_bits: precision.block_bits(),
            isa: Isa::detect(),
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new(Precision::F64)
    }
}

/// A gate of the circuit IR as a matrix for the planner; `None` for non-unitary operations.
fn gate_of(op: &Op) -> Option<Gate> {
    let one = C64::ONE;
    let (qubits, matrix) = match *op {
        Op::U {
            q,
            theta,
            phi,
            lambda,
        } => {
            let m = u_matrix(theta, phi, lambda);
            // U(0, φ, λ) is exactly diagonal (its off-diagonal entries are ±0).
            if m[1] == C64::ZERO && m[2] == C64::ZERO {
                (vec![q], Matrix::Diagonal(vec![m[0], m[3]]))
            } else {
                (vec![q], Matrix::Dense(m.to_vec()))
            }
        }
        // Basis index b0 + 2·b1 on (c, t): flip t when c is set.
        Op::Cx { c, t } => (vec![c, t], permutation(&[0, 3, 2, 1])),
        Op::CPhase { a, b, lambda } => (
            vec![a, b],
            Matrix::Diagonal(vec![one, one, one, C64::polar(1.0, lambda)]),
        ),
        Op::Swap { a, b } => (vec![a, b], permutation(&[0, 2, 1, 3])),
        Op::Measure { .. } | Op::Reset { .. } | Op::Barrier { .. } | Op::If { .. } => return None,
    };
    Some(Gate { qubits, matrix })
}

/// The matrix sending basis index `c` to `to[c]`.
pub(crate) fn permutation(to: &[usize]) -> Matrix {
    let dim = to.len();
    let mut m = vec![C64::ZERO; dim * dim];
    for (c, r) in to.iter().enumerate() {
        m[r * dim + c] = C64::ONE;
    }
    Matrix::Dense(m)
}

/// A step in the kernels' precision.
pub(crate) fn kernel<R: Real>(step: &Step, isa: Isa) -> Kernel<R> {
    let split = |v: &[C64]| -> (Vec<R>, Vec<R>) {
        v.iter()
            .map(|z| (R::from_f64(z.re), R::from_f64(z.im)))
            .unzip()
    };
    let qubits = step.qubits.clone();
    match &step.op {
        StepOp::Dense(m) => {
            let (re, im) = split(m);
            Kernel::dense(qubits, re, im, isa)
        }
        StepOp::Diagonal(d) => {
            let (re, im) = split(d);
            Kernel::Diagonal {
                bytes: byte_tables(&qubits),
                qubits,
                re,
                im,
            }
        }
        StepOp::Permute { to, phase } => {
            let (re, im) = phase.as_deref().map(split).unwrap_or_default();
            Kernel::Permute {
                offs: offsets(&qubits),
                qubits,
                to: to.clone(),
                re,
                im,
            }
        }
    }
}

/// One memory pass in the kernels' precision.
#[derive(Debug, Clone)]
pub(crate) enum KPass<R> {
    /// Kernels run block by block over blocks of `2^bits` amplitudes.
    Blocked(Vec<Kernel<R>>, usize),
    /// One kernel over the whole state.
    Whole(Kernel<R>),
}

/// Compiles a unitary stretch of steps: scheduled into passes, in the precision `R`.
pub(crate) fn compile<R: Real>(
    steps: Vec<Step>,
    n: usize,
    block_bits: usize,
    isa: Isa,
) -> Vec<KPass<R>> {
    let bits = block_bits.min(n);
    fusion::schedule(steps, bits)
        .into_iter()
        .map(|p| match p {
            Pass::Blocked(steps) => {
                KPass::Blocked(steps.iter().map(|s| kernel(s, isa)).collect(), bits)
            }
            Pass::Whole(s) => KPass::Whole(kernel(&s, isa)),
        })
        .collect()
}

/// A state vector in split layout.
pub(crate) struct Amps<R> {
    pub(crate) re: Vec<R>,
    pub(crate) im: Vec<R>,
}

impl<R: Real> Amps<R> {
    /// |0…0⟩ on `n` qubits.
    pub(crate) fn zero_state(n: usize) -> Amps<R> {
        let mut re = crate::kernels::zeros(1 << n);
        re[0] = R::ONE;
        Amps {
            re,
            im: crate::kernels::zeros(1 << n),
        }
    }

    /// Runs passes.
    pub(crate) fn run(&mut self, passes: &[KPass<R>], isa: Isa) {
        let parallel = self.re.len() >= PARALLEL_FROM;
        for pass in passes {
            match pass {
                KPass::Whole(k) => k.apply(isa, &mut self.re, &mut self.im, 0, parallel),
                KPass::Blocked(ks, bits) => {
                    let size = 1usize << bits;
                    let block = |(b, (re, im)): (usize, (&mut [R], &mut [R]))| {
                        for k in ks {
                            k.apply(isa, re, im, b * size, false);
                        }
                    };
                    if parallel && self.re.len() > size {
                        self.re
                            .par_chunks_mut(size)
                            .zip(self.im.par_chunks_mut(size))
                            .enumerate()
                            .for_each(block);
                    } else {
                        let chunks = self.re.chunks_mut(size).zip(self.im.chunks_mut(size));
                        chunks.enumerate().for_each(block);
                    }
                }
            }
        }
    }

    /// The basis state of each of `shots` shots: shot `s` draws `u = unit(stream(seed, s)) ·
    /// total` and lands on the first index whose running sum of |amplitude|² (in index order,
    /// in f64) passes `u`. With fewer shots than amplitudes the draws are sorted and matched
    /// in one walk over the state, so memory is O(shots), not a table of 2^n sums.
    fn draw(&self, shots: u64, seed: u64) -> Vec<usize> {
        let len = self.re.len();
        let shots = usize::try_from(shots).expect("shots fit in memory");
        let draw = |total: f64, s: usize| unit(&mut stream(seed, s as u64)) * total;
        if shots >= len {
            let mut cumulative = Vec::with_capacity(len);
            let mut acc = 0.0;
            for i in 0..len {
                acc += self.norm2(i);
                cumulative.push(acc);
            }
            return (0..shots)
                .map(|s| {
                    let u = draw(acc, s);
                    cumulative.partition_point(|&c| c <= u).min(len - 1)
                })
                .collect();
        }
        // The same running sums, in the same order, so each total and index is the table's.
        let total = (0..len).fold(0.0, |acc, i| acc + self.norm2(i));
        let mut order: Vec<(f64, usize)> = (0..shots).map(|s| (draw(total, s), s)).collect();
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out = vec![0; shots];
        let (mut i, mut acc) = (0, self.norm2(0));
        for (u, s) in order {
            while i + 1 < len && acc <= u {
                i += 1;
                acc += self.norm2(i);
            }
            out[s] = i;
        }
        out
    }

    /// |amplitude i|² in f64.
    fn norm2(&self, i: usize) -> f64 {
        let (r, m) = (self.re[i].to_f64(), self.im[i].to_f64());
        r * r + m * m
    }

    /// Every basis state's probability.
    pub(crate) fn probabilities(&self) -> Vec<f64> {
        (0..self.re.len()).map(|i| self.norm2(i)).collect()
    }

    /// Measures qubit `q`, collapsing the state.
    fn measure(&mut self, q: usize, rng: &mut ChaCha20Rng) -> bool {
        let bit = 1usize << q;
        let p1: f64 = (0..self.re.len())
            .filter(|i| i & bit != 0)
            .map(|i| self.norm2(i))
            .sum();
        let one = unit(rng) < p1;
        let keep = if one { p1 } else { 1.0 - p1 };
        let scale = R::from_f64(if keep > 0.0 { 1.0 / keep.sqrt() } else { 0.0 });
        for (i, (r, m)) in self.re.iter_mut().zip(self.im.iter_mut()).enumerate() {
            if (i & bit != 0) == one {
                *r = *r * scale;
                *m = *m * scale;
            } else {
                (*r, *m) = (R::ZERO, R::ZERO);
            }
        }
        one
    }
}

/// A stretch of a compiled circuit.
#[derive(Debug, Clone)]
enum Segment<R> {
    Passes(Vec<KPass<R>>),
    Measure {
        q: usize,
        c: usize,
    },
    /// Measure, and flip back to |0⟩ when it read 1.
    Reset {
        q: usize,
        flip: Vec<KPass<R>>,
    },
    If {
        offset: usize,
        size: usize,
        value: u64,
        then: Vec<Segment<R>>,
    },
}

/// What a plan does, for the cost model and `xdv q run --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanStats {
    /// Gates the plan applies (measurements and barriers excluded; a reset's conditional flip
    /// counts as one).
    pub gates: u64,
    /// Fused steps.
    pub steps: u64,
    /// Memory passes over the state (a cache-blocked group counts once).
    pub passes: u64,
    /// Complex multiply-adds per amplitude, summed over the steps (a dense `k`-qubit step
    /// costs `2^k`, a diagonal or permutation 1).
    pub macs_per_amplitude: u64,
}

/// The planning work charged per gate on `n` qubits: `4^b` for blocks of up to
/// `b = min(n, MAX_FUSED)` qubits (a block's `2^b × 2^b` matrix, updated per gate).
fn planning_per_gate(n: u32) -> u64 {
    4u64.pow(n.min(fusion::MAX_FUSED as u32))
}

impl PlanStats {
    /// The host work of running the plan once on `n` qubits, in amplitude updates: each pass
    /// moves the state once, each multiply-add touches every amplitude, and fusing a gate into a
    /// block of up to `b` qubits costs about `4^b` (the block's matrix).
    /// Saturates at `u64::MAX`.
    pub fn work(&self, n: u32) -> u64 {
        let amps = 2u64.checked_pow(n).unwrap_or(u64::MAX);
        let per_amplitude = self.passes.saturating_add(self.macs_per_amplitude);
        amps.saturating_mul(per_amplitude)
            .saturating_add(self.gates.saturating_mul(planning_per_gate(n)))
    }

    fn add_steps(&mut self, steps: &[Step]) {
        for s in steps {
            self.steps += 1;
            self.macs_per_amplitude += match s.op {
                StepOp::Dense(_) => 1 << s.qubits.len(),
                _ => 1,
            };
        }
    }
}

/// What planning has committed to so far, against a work limit: admission stops planning a
/// circuit once the work already planned exceeds what the VHM can pay.
#[derive(Debug, Clone, Copy)]
struct Meter {
    amps: u64,
    planning: u64,
    limit: u64,
    stats: PlanStats,
}

/// The planned work passed the meter's limit.
#[derive(Debug, Clone, Copy)]
struct OverLimit;

impl Meter {
    fn unlimited(n: usize) -> Meter {
        Meter {
            amps: 1u64 << n,
            planning: planning_per_gate(n as u32),
            limit: u64::MAX,
            stats: PlanStats::default(),
        }
    }

    /// Whether the work planned so far (a lower bound of the final work: the steps emitted and
    /// the gates fused) is within the limit.
    fn check(&self) -> Result<(), OverLimit> {
        let bound = self
            .amps
            .saturating_mul(self.stats.macs_per_amplitude)
            .saturating_add(self.stats.gates.saturating_mul(self.planning));
        if bound > self.limit {
            Err(OverLimit)
        } else {
            Ok(())
        }
    }
}

/// Fuses a unitary stretch of operations, counting its gates and steps into the meter as they
/// are planned (each emitted step once).
fn fuse(ops: &[&Op], n: usize, k: usize, meter: &mut Meter) -> Result<Vec<Step>, OverLimit> {
    let mut f = Fuser::new(n, k);
    let mut counted = 0;
    for (i, op) in ops.iter().enumerate() {
        if let Some(g) = gate_of(op) {
            f.push(&g);
            meter.stats.gates += 1;
        }
        if i % 64 == 63 {
            meter.stats.add_steps(&f.emitted()[counted..]);
            counted = f.emitted().len();
            meter.check()?;
        }
    }
    let steps = f.finish();
    meter.stats.add_steps(&steps[counted..]);
    meter.check()?;
    Ok(steps)
}

/// Compiles operations into segments, fusing each unitary stretch.
fn segments<R: Real>(
    ops: &[Op],
    n: usize,
    options: &Options,
    meter: &mut Meter,
) -> Result<Vec<Segment<R>>, OverLimit> {
    let mut out = Vec::new();
    let mut stretch: Vec<&Op> = Vec::new();
    let close = |stretch: &mut Vec<&Op>,
                 out: &mut Vec<Segment<R>>,
                 meter: &mut Meter|
     -> Result<(), OverLimit> {
        if stretch.is_empty() {
            return Ok(());
        }
        let steps = fuse(stretch, n, options.fused, meter)?;
        let passes = compile::<R>(steps, n, options.block_bits, options.isa);
        meter.stats.passes += passes.len() as u64;
        out.push(Segment::Passes(passes));
        stretch.clear();
        Ok(())
    };
    for op in ops {
        match op {
            Op::U { .. } | Op::Cx { .. } | Op::CPhase { .. } | Op::Swap { .. } => {
                stretch.push(op);
            }
            Op::Barrier { .. } => {}
            Op::Measure { q, c } => {
                close(&mut stretch, &mut out, meter)?;
                out.push(Segment::Measure { q: *q, c: *c });
            }
            Op::Reset { q } => {
                close(&mut stretch, &mut out, meter)?;
                let x = Op::U {
                    q: *q,
                    theta: std::f64::consts::PI,
                    phi: 0.0,
                    lambda: std::f64::consts::PI,
                };
                let steps = fuse(&[&x], n, options.fused, meter)?;
                let flip = compile::<R>(steps, n, options.block_bits, options.isa);
                meter.stats.passes += flip.len() as u64;
                out.push(Segment::Reset { q: *q, flip });
            }
            Op::If {
                offset,
                size,
                value,
                op,
            } => {
                close(&mut stretch, &mut out, meter)?;
                out.push(Segment::If {
                    offset: *offset,
                    size: *size,
                    value: *value,
                    then: segments(std::slice::from_ref(op), n, options, meter)?,
                });
            }
        }
    }
    close(&mut stretch, &mut out, meter)?;
    Ok(out)
}

/// (qubit, classical bit) pairs a circuit measures.
pub type Measured = Vec<(usize, usize)>;

/// A circuit compiled for the provider in precision `R`.
struct Compiled<R> {
    n: usize,
    clbits: usize,
    options: Options,
    /// Terminal circuits: the measured (qubit, bit) pairs; the segments hold no measurement.
    terminal: Option<Measured>,
    segments: Vec<Segment<R>>,
    stats: PlanStats,
}

impl<R: Real> Compiled<R> {
    fn new(circuit: &Circuit, options: &Options) -> Result<Self, SimError> {
        let n = circuit.num_qubits();
        Self::within(circuit, options, &mut Meter::unlimited(n.min(63)))?
            .map_err(|OverLimit| unreachable!("an unlimited meter"))
    }

    /// The plan, unless planning it passes the meter's limit.
    fn within(
        circuit: &Circuit,
        options: &Options,
        meter: &mut Meter,
    ) -> Result<Result<Self, OverLimit>, SimError> {
        let n = circuit.num_qubits();
        let max = options.precision.max_qubits();
        if n > max {
            return Err(SimError::TooManyQubits(
                n,
                options.precision.provider(),
                max,
            ));
        }
        let (terminal, segments) = if circuit.measurements_are_terminal() {
            let mut measured: Measured = Vec::new();
            let mut unitary = Vec::new();
            for op in &circuit.ops {
                match op {
                    Op::Measure { q, c } => {
                        // The last measurement into a bit wins.
                        measured.retain(|(_, cc)| cc != c);
                        measured.push((*q, *c));
                    }
                    other => unitary.push(other.clone()),
                }
            }
            (Some(measured), segments(&unitary, n, options, meter))
        } else {
            (None, segments(&circuit.ops, n, options, meter))
        };
        let Ok(segments) = segments else {
            return Ok(Err(OverLimit));
        };
        Ok(Ok(Compiled {
            n,
            clbits: circuit.num_clbits(),
            options: *options,
            terminal,
            segments,
            stats: meter.stats,
        }))
    }

    fn run_segments(
        &self,
        segs: &[Segment<R>],
        amps: &mut Amps<R>,
        clbits: &mut [bool],
        rng: &mut ChaCha20Rng,
    ) {
        for seg in segs {
            match seg {
                Segment::Passes(p) => amps.run(p, self.options.isa),
                Segment::Measure { q, c } => clbits[*c] = amps.measure(*q, rng),
                Segment::Reset { q, flip } => {
                    if amps.measure(*q, rng) {
                        amps.run(flip, self.options.isa);
                    }
                }
                Segment::If {
                    offset,
                    size,
                    value,
                    then,
                } => {
                    let v =
                        (0..*size).fold(0u64, |acc, i| acc | (u64::from(clbits[offset + i]) << i));
                    if v == *value {
                        self.run_segments(then, amps, clbits, rng);
                    }
                }
            }
        }
    }

    /// The final state of a terminal circuit.
    fn final_state(&self) -> Amps<R> {
        let mut amps = Amps::zero_state(self.n);
        let mut clbits = vec![false; self.clbits];
        self.run_segments(&self.segments, &mut amps, &mut clbits, &mut stream(0, 0));
        amps
    }

    /// The final basis-state probabilities of a terminal circuit.
    fn final_probabilities(&self) -> Vec<f64> {
        self.final_state().probabilities()
    }

    fn sample(&self, shots: u64, seed: u64, each: &mut dyn FnMut(&[bool])) {
        let mut bits = vec![false; self.clbits];
        if let Some(measured) = &self.terminal {
            // Simulate once, then sample basis states from the cumulative distribution.
            let amps = self.final_state();
            for i in amps.draw(shots, seed) {
                bits.iter_mut().for_each(|b| *b = false);
                for (q, c) in measured {
                    bits[*c] = i & (1 << q) != 0;
                }
                each(&bits);
            }
            return;
        }
        for shot in 0..shots {
            let mut amps = Amps::zero_state(self.n);
            bits.iter_mut().for_each(|b| *b = false);
            self.run_segments(
                &self.segments,
                &mut amps,
                &mut bits,
                &mut stream(seed, shot),
            );
            each(&bits);
        }
    }
}

/// Either precision's compiled circuit.
enum AnyCompiled {
    F64(Compiled<f64>),
    F32(Compiled<f32>),
}

/// A circuit compiled for the statevector provider: fused, scheduled, in one precision.
pub struct Plan(AnyCompiled);

impl Plan {
    /// Compiles `circuit`.
    ///
    /// # Errors
    ///
    /// [`SimError::TooManyQubits`] above the precision's ceiling.
    pub fn new(circuit: &Circuit, options: &Options) -> Result<Plan, SimError> {
        Ok(Plan(match options.precision {
            Precision::F64 => AnyCompiled::F64(Compiled::new(circuit, options)?),
            Precision::F32 => AnyCompiled::F32(Compiled::new(circuit, options)?),
        }))
    }

    /// The host work of one run of `circuit`'s plan ([`PlanStats::work`]), or, as soon as the
    /// part planned already costs more than `limit`, that part's cost (a lower bound above
    /// `limit`): planning a hostile circuit costs the host no more than the budget it is
    /// charged against.
    ///
    /// # Errors
    ///
    /// [`SimError::TooManyQubits`] above the precision's ceiling.
    pub fn work_within(circuit: &Circuit, options: &Options, limit: u64) -> Result<u64, SimError> {
        let n = circuit.num_qubits();
        if n > options.precision.max_qubits() {
            return Err(SimError::TooManyQubits(
                n,
                options.precision.provider(),
                options.precision.max_qubits(),
            ));
        }
        let mut meter = Meter {
            limit,
            ..Meter::unlimited(n)
        };
        // The kernels' precision does not change the plan: f64 stands for both.
        Ok(
            match Compiled::<f64>::within(circuit, options, &mut meter)? {
                Ok(c) => c.stats.work(n as u32),
                Err(OverLimit) => limit.saturating_add(1),
            },
        )
    }

    /// What the plan does.
    pub fn stats(&self) -> PlanStats {
        match &self.0 {
            AnyCompiled::F64(c) => c.stats,
            AnyCompiled::F32(c) => c.stats,
        }
    }

    /// The basis-state probabilities after the circuit's gates, for a circuit whose
    /// measurements are all terminal, with the measured (qubit, bit) pairs.
    ///
    /// # Errors
    ///
    /// [`SimError::NotTerminal`] otherwise.
    pub fn probabilities(&self) -> Result<(Vec<f64>, Measured), SimError> {
        match &self.0 {
            AnyCompiled::F64(c) => c
                .terminal
                .clone()
                .map(|m| (c.final_probabilities(), m))
                .ok_or(SimError::NotTerminal),
            AnyCompiled::F32(c) => c
                .terminal
                .clone()
                .map(|m| (c.final_probabilities(), m))
                .ok_or(SimError::NotTerminal),
        }
    }

    /// Runs `shots` shots, handing each shot's classical bits to `each` in shot order (see
    /// [`sample`]).
    pub fn sample(&self, shots: u64, seed: u64, each: &mut dyn FnMut(&[bool])) {
        match &self.0 {
            AnyCompiled::F64(c) => c.sample(shots, seed, each),
            AnyCompiled::F32(c) => c.sample(shots, seed, each),
        }
    }
}

/// The exact distribution over the classical bits (Qiskit-formatted keys) of a circuit whose
/// measurements are all terminal, in double precision.
///
/// # Errors
///
/// As [`distribution_with`].
pub fn distribution(circuit: &Circuit) -> Result<BTreeMap<String, f64>, SimError> {
    distribution_with(circuit, &Options::default())
}

/// [`distribution`] with the given options.
///
/// # Errors
///
/// [`SimError::NotTerminal`] when a measurement is not terminal, [`SimError::TooManyQubits`]
/// above the precision's ceiling.
pub fn distribution_with(
    circuit: &Circuit,
    options: &Options,
) -> Result<BTreeMap<String, f64>, SimError> {
    if !circuit.measurements_are_terminal() {
        return Err(SimError::NotTerminal);
    }
    let (probs, measured) = Plan::new(circuit, options)?.probabilities()?;
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

/// Runs `shots` shots in double precision and counts the classical outcomes
/// (Qiskit-formatted keys). Each shot draws from its own stream seeded by (seed, shot); see
/// [`sample`].
///
/// # Errors
///
/// As [`sample_with`].
pub fn run(circuit: &Circuit, shots: u64, seed: u64) -> Result<BTreeMap<String, u64>, SimError> {
    run_with(circuit, shots, seed, &Options::default())
}

/// [`run`] with the given options.
///
/// # Errors
///
/// As [`sample_with`].
pub fn run_with(
    circuit: &Circuit,
    shots: u64,
    seed: u64,
    options: &Options,
) -> Result<BTreeMap<String, u64>, SimError> {
    let mut counts = BTreeMap::new();
    sample_with(circuit, shots, seed, options, |bits| {
        *counts.entry(circuit.format_bits(bits)).or_insert(0) += 1;
    })?;
    Ok(counts)
}

/// Runs `shots` shots in double precision and hands each shot's classical bits to `each`, in
/// shot order. Circuits whose measurements are terminal are simulated once and sampled; others
/// run shot by shot. Shot `i` draws from its own stream seeded by (seed, i), so a shot's
/// outcome never depends on how many shots were asked for.
///
/// # Errors
///
/// As [`sample_with`].
pub fn sample(
    circuit: &Circuit,
    shots: u64,
    seed: u64,
    each: impl FnMut(&[bool]),
) -> Result<(), SimError> {
    sample_with(circuit, shots, seed, &Options::default(), each)
}

/// [`sample`] with the given options.
///
/// # Errors
///
/// [`SimError::TooManyQubits`] above the precision's ceiling.
pub fn sample_with(
    circuit: &Circuit,
    shots: u64,
    seed: u64,
    options: &Options,
    mut each: impl FnMut(&[bool]),
) -> Result<(), SimError> {
    Plan::new(circuit, options)?.sample(shots, seed, &mut each);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The draws by the table of running sums, the plain way.
    fn by_table(amps: &Amps<f64>, shots: u64, seed: u64) -> Vec<usize> {
        let mut cumulative = Vec::new();
        let mut acc = 0.0;
        for (r, i) in amps.re.iter().zip(&amps.im) {
            acc += r * r + i * i;
            cumulative.push(acc);
        }
        (0..shots)
            .map(|s| {
                let u = unit(&mut stream(seed, s)) * acc;
                cumulative
                    .partition_point(|&c| c <= u)
                    .min(cumulative.len() - 1)
            })
            .collect()
    }

    proptest! {
        /// The sorted walk lands every shot where the table does, zeros and spikes included.
        #[test]
        fn the_walk_draws_what_the_table_draws(
            amps in prop::collection::vec(
                prop_oneof![Just(0.0), Just(1.0), -1.0..1.0f64], 2..=64),
            shots in 0u64..200,
            seed in any::<u64>(),
        ) {
            let len = amps.len().next_power_of_two();
            let mut re = amps.clone();
            re.resize(len, 0.0);
            let im = re.iter().rev().map(|x| x / 2.0).collect();
            let state = Amps { re, im };
            prop_assert_eq!(state.draw(shots, seed), by_table(&state, shots, seed));
        }
    }
}
