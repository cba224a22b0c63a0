//! The amplitude kernels: a fused step applied to a split real/imaginary state, vectorised by
//! the compiler under runtime-selected instruction sets. The only module of xdv-q with `unsafe`.
//!
//! # Layout
//!
//! The state is two arrays, `re` and `im` (structure of arrays), so that eight neighbouring
//! amplitudes load as whole SIMD registers with no shuffles. A kernel works on *groups*: the
//! eight amplitude tuples of eight consecutive *bases* (indices with the step's qubit bits
//! clear). When the step's lowest qubit is 3 or above, a group's eight bases are eight
//! neighbouring indices and every load and store is a vector one; otherwise the group is gathered
//! lane by lane into the same registers.
//!
//! # Determinism
//!
//! Every variant runs the same source: a body marked `#[inline(always)]` and instantiated
//! inside functions compiled with `#[target_feature]` (AVX-512, AVX2 + FMA) or without (the
//! portable fallback). Each output is a fixed sequence of fused multiply-adds (`mul_add`, one
//! rounding each) in the same order in every variant, lanes never mix, and Rust never contracts
//! or reassociates float arithmetic on its own. So the variants give bit-identical amplitudes;
//! only their speed differs (the portable variant calls the C library's `fma` where the target
//! has no FMA instruction). Threads split the groups, never a group, so the thread count does not
//! change a bit either.

use std::ops::Range;

/// Amplitudes a kernel processes side by side (one group).
pub(crate) const LANES: usize = 8;

/// Fewest groups worth splitting across threads.
const PARALLEL_GROUPS: usize = 1 << 11;

/// A floating-point type the kernels compute in.
pub trait Real:
    Copy
    + Send
    + Sync
    + PartialEq
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Neg<Output = Self>
    + std::ops::Mul<Output = Self>
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Bytes per value.
    const BYTES: usize;
    /// `x` rounded to this type.
    fn from_f64(x: f64) -> Self;
    /// Exactly `self` as an f64.
    fn to_f64(self) -> f64;
    /// `self · a + b` with one rounding.
    fn fma(self, a: Self, b: Self) -> Self;
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const BYTES: usize = 8;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const BYTES: usize = 4;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

/// An instruction-set variant of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Whatever the compilation target guarantees.
    Portable,
    /// AVX2 and FMA (x86-64).
    Avx2,
    /// AVX-512F, with AVX2 and FMA (x86-64).
    Avx512,
}

impl Isa {
    /// The widest variant this CPU runs.
    pub fn detect() -> Isa {
        *Isa::available().last().expect("the portable variant always runs")
    }

    /// Every variant this CPU runs, narrowest first.
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                out.push(Isa::Avx2);
                if is_x86_feature_detected!("avx512f") {
                    out.push(Isa::Avx512);
                }
            }
        }
        out
    }

    /// Its name, as `xdv q providers` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2+fma",
            Isa::Avx512 => "avx512f",
        }
    }
}

/// A fused step in the kernels' precision, ready to apply. Qubits are sorted ascending; basis
/// index `c` of a matrix or table has bit `j` = the value of `qubits[j]`.
#[derive(Debug, Clone)]
pub(crate) enum Kernel<R> {
    /// A dense 2^k × 2^k matrix, row major, split into real and imaginary parts.
    Dense {
        /// The qubits.
        qubits: Vec<usize>,
        /// State offset of basis index `c`.
        offs: Vec<usize>,
        /// Real parts.
        re: Vec<R>,
        /// Imaginary parts.
        im: Vec<R>,
    },
    /// A diagonal: amplitude `i` times `table[t(i)]`, `t` gathering the qubits' bits.
    Diagonal {
        /// The qubits.
        qubits: Vec<usize>,
        /// Real parts of the table.
        re: Vec<R>,
        /// Imaginary parts.
        im: Vec<R>,
        /// `bytes[b][v]`: the table-index bits that byte `b` of a state index with value `v`
        /// contributes.
        bytes: Box<[[u32; 256]; 4]>,
    },
    /// A monomial matrix: basis index `c` moves to `to[c]`, times `phase[c]` unless the step
    /// is a pure permutation (`phase` empty).
    Permute {
        /// The qubits.
        qubits: Vec<usize>,
        /// State offset of basis index `c`.
        offs: Vec<usize>,
        /// Destination of basis index `c`.
        to: Vec<usize>,
        /// Real parts of the phases (empty: all 1).
        re: Vec<R>,
        /// Imaginary parts.
        im: Vec<R>,
    },
}

/// State offset of each basis index of `qubits`.
pub(crate) fn offsets(qubits: &[usize]) -> Vec<usize> {
    (0..1usize << qubits.len())
        .map(|c| {
            qubits
                .iter()
                .enumerate()
                .filter(|(j, _)| c >> j & 1 == 1)
                .map(|(_, q)| 1usize << q)
                .sum()
        })
        .collect()
}

/// The byte tables of a diagonal on `qubits` (all below 32).
pub(crate) fn byte_tables(qubits: &[usize]) -> Box<[[u32; 256]; 4]> {
    let mut t = Box::new([[0u32; 256]; 4]);
    for (b, table) in t.iter_mut().enumerate() {
        for (v, slot) in table.iter_mut().enumerate() {
            *slot = qubits
                .iter()
                .enumerate()
                .filter(|(_, &q)| q / 8 == b && v >> (q % 8) & 1 == 1)
                .map(|(j, _)| 1u32 << j)
                .sum();
        }
    }
    t
}

impl<R: Real> Kernel<R> {
    /// The step's qubits, ascending.
    pub(crate) fn qubits(&self) -> &[usize] {
        match self {
            Kernel::Dense { qubits, .. }
            | Kernel::Diagonal { qubits, .. }
            | Kernel::Permute { qubits, .. } => qubits,
        }
    }

    /// Applies the step to a state of `re.len()` amplitudes whose index 0 is state index
    /// `base` (a multiple of `re.len()`; only diagonals read it), on rayon's threads when
    /// `parallel` and the state is large.
    ///
    /// # Panics
    ///
    /// When the two halves differ in length, the length is not a power of two, or a qubit of
    /// the step lies outside the slice (a bug in the caller; checked before any unsafe access).
    pub(crate) fn apply(&self, isa: Isa, re: &mut [R], im: &mut [R], base: usize, parallel: bool) {
        let len = re.len();
        assert_eq!(len, im.len(), "re and im halves of one state");
        assert!(len.is_power_of_two(), "a state has 2^n amplitudes");
        let qubits = self.qubits();
        assert!(
            qubits.windows(2).all(|w| w[0] < w[1]),
            "qubits sorted, distinct"
        );
        assert!(
            qubits.last().is_none_or(|&q| 1usize << q < len),
            "the step's qubits lie inside the state"
        );
        let (pre, pim) = (Shared(re.as_mut_ptr()), Shared(im.as_mut_ptr()));
        // Diagonals group neighbouring indices, the others neighbouring bases.
        let units = match self {
            Kernel::Diagonal { .. } => len,
            _ => len >> qubits.len(),
        };
        let groups = units / LANES;
        let run = |range: Range<usize>| {
            // SAFETY: `pre`/`pim` point at `len` values each; every index a group touches is
            // below `len` (its qubits lie inside the state, checked above), and distinct
            // groups touch disjoint indices (distinct bases have disjoint orbits), so the
            // calls running at once never alias.
            unsafe { dispatch(isa, self, pre, pim, base, range) }
        };
        if parallel && groups >= PARALLEL_GROUPS {
            use rayon::prelude::*;
            let piece = PARALLEL_GROUPS / 4;
            (0..groups.div_ceil(piece))
                .into_par_iter()
                .for_each(|p| run(p * piece..((p + 1) * piece).min(groups)));
        } else if groups > 0 {
            run(0..groups);
        }
        // The units left over when the state is smaller than a group, lane by lane.
        for unit in groups * LANES..units {
            // SAFETY: as above; this runs alone, after every group.
            unsafe { single(self, pre, pim, base, unit) };
        }
    }
}

/// A raw pointer handed to threads that write disjoint indices through it.
#[derive(Clone, Copy)]
struct Shared<R>(*mut R);

// SAFETY: the pointer is only dereferenced by `apply`'s kernels, whose calls touch disjoint
// indices (see the SAFETY note there).
unsafe impl<R: Send> Send for Shared<R> {}
// SAFETY: as above.
unsafe impl<R: Sync> Sync for Shared<R> {}

/// Runs groups `range` of `k` with the variant `isa`.
///
/// # Safety
///
/// As [`Kernel::apply`] states for its `run` closure: every index reached is in bounds and no
/// other running call touches it.
unsafe fn dispatch<R: Real>(
    isa: Isa,
    k: &Kernel<R>,
    re: Shared<R>,
    im: Shared<R>,
    base: usize,
    range: Range<usize>,
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx512` is only produced by `Isa::available` after detecting AVX-512F,
        // AVX2 and FMA; the caller upholds the memory contract.
        Isa::Avx512 => unsafe { groups_avx512(k, re, im, base, range) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only produced after detecting AVX2 and FMA.
        Isa::Avx2 => unsafe { groups_avx2(k, re, im, base, range) },
        // SAFETY: the caller upholds the memory contract.
        _ => unsafe { groups::<R, LANES>(k, re, im, base, range) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
/// [`groups`] compiled for AVX-512F.
///
/// # Safety
///
/// The CPU has AVX-512F, AVX2 and FMA, and [`dispatch`]'s contract holds.
unsafe fn groups_avx512<R: Real>(
    k: &Kernel<R>,
    re: Shared<R>,
    im: Shared<R>,
    base: usize,
    range: Range<usize>,
) {
    // SAFETY: forwarded contract.
    unsafe { groups::<R, LANES>(k, re, im, base, range) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
/// [`groups`] compiled for AVX2 and FMA.
///
/// # Safety
///
/// The CPU has AVX2 and FMA, and [`dispatch`]'s contract holds.
unsafe fn groups_avx2<R: Real>(
    k: &Kernel<R>,
    re: Shared<R>,
    im: Shared<R>,
    base: usize,
    range: Range<usize>,
) {
    // SAFETY: forwarded contract.
    unsafe { groups::<R, LANES>(k, re, im, base, range) }
}

/// One unit (base or index) of `k`: the arithmetic of one lane of a group.
///
/// # Safety
///
/// As [`dispatch`].
unsafe fn single<R: Real>(k: &Kernel<R>, re: Shared<R>, im: Shared<R>, base: usize, unit: usize) {
    // SAFETY: forwarded contract.
    unsafe { groups::<R, 1>(k, re, im, base, unit..unit + 1) }
}

/// Groups `range` of `k`, `L` lanes each: the one body every variant compiles.
///
/// # Safety
///
/// As [`dispatch`].
#[inline(always)]
unsafe fn groups<R: Real, const L: usize>(
    k: &Kernel<R>,
    re: Shared<R>,
    im: Shared<R>,
    base: usize,
    range: Range<usize>,
) {
    // SAFETY (every call below): forwarded contract.
    match k {
        Kernel::Diagonal { .. } => {
            for g in range {
                unsafe { diagonal::<R, L>(k, re, im, base + g * L, g * L) };
            }
        }
        Kernel::Dense { offs, .. } | Kernel::Permute { offs, .. } => {
            // A fixed dimension per instance, so the loops over basis indices unroll.
            macro_rules! by_dim {
                ($($d:literal)*) => {
                    match offs.len() {
                        $($d => {
                            for g in range {
                                unsafe { tuples::<R, L, $d>(k, re, im, g * L) };
                            }
                        })*
                        d => unreachable!("a step of dimension {d} (at most {MAX_DIM})"),
                    }
                };
            }
            by_dim!(2 4 8 16 32);
        }
    }
}

/// Inserts a zero bit at each of `qubits` (ascending) into `j`: the `j`-th base.
#[inline(always)]
fn deposit(mut j: usize, qubits: &[usize]) -> usize {
    for &q in qubits {
        j = (j >> q << (q + 1)) | (j & ((1 << q) - 1));
    }
    j
}

/// Largest basis count of a dense or permutation step ([`crate::fusion::MAX_FUSED`] qubits).
const MAX_DIM: usize = 1 << crate::fusion::MAX_FUSED;

/// A diagonal on `L` neighbouring amplitudes from slice index `first` (state index `at`).
///
/// # Safety
///
/// As [`dispatch`]; `k` is a diagonal.
#[inline(always)]
unsafe fn diagonal<R: Real, const L: usize>(
    k: &Kernel<R>,
    re: Shared<R>,
    im: Shared<R>,
    at: usize,
    first: usize,
) {
    let Kernel::Diagonal {
        re: dr,
        im: di,
        bytes,
        ..
    } = k
    else {
        unreachable!("called for diagonals")
    };
    let (re, im) = (re.0, im.0);
    // Lanes are neighbouring indices inside one aligned group: only the lowest byte differs.
    let hi = bytes[1][at >> 8 & 255] | bytes[2][at >> 16 & 255] | bytes[3][at >> 24 & 255];
    let (mut xr, mut xi) = ([R::ZERO; L], [R::ZERO; L]);
    let (mut tr, mut ti) = ([R::ZERO; L], [R::ZERO; L]);
    for w in 0..L {
        let t = (hi | bytes[0][(at + w) & 255]) as usize;
        (tr[w], ti[w]) = (dr[t], di[t]);
        // SAFETY: first + w < len (the caller's contract).
        unsafe { (xr[w], xi[w]) = (*re.add(first + w), *im.add(first + w)) };
    }
    for w in 0..L {
        let (r, i) = mul(xr[w], xi[w], tr[w], ti[w]);
        // SAFETY: as above.
        unsafe { (*re.add(first + w), *im.add(first + w)) = (r, i) };
    }
}

/// A dense or permutation step of dimension `D` on the `L` tuples of bases `first..first + L`.
///
/// # Safety
///
/// As [`dispatch`]; `k` is dense or a permutation of dimension `D`.
#[inline(always)]
unsafe fn tuples<R: Real, const L: usize, const D: usize>(
    k: &Kernel<R>,
    re: Shared<R>,
    im: Shared<R>,
    first: usize,
) {
    let (Kernel::Dense { qubits, offs, .. } | Kernel::Permute { qubits, offs, .. }) = k else {
        unreachable!("called for dense and permutation steps")
    };
    let (re, im) = (re.0, im.0);
    let offs: &[usize; D] = offs.as_slice().try_into().expect("dimension D");
    let at = lanes::<L>(first, qubits);
    let mut xr = [[R::ZERO; L]; D];
    let mut xi = [[R::ZERO; L]; D];
    for c in 0..D {
        for w in 0..L {
            // SAFETY: a base plus an offset of its own qubits is below len.
            unsafe {
                xr[c][w] = *re.add(at[w] + offs[c]);
                xi[c][w] = *im.add(at[w] + offs[c]);
            }
        }
    }
    match k {
        Kernel::Dense { re: mr, im: mi, .. } => {
            let (mr, mi): (&[R], &[R]) = (&mr[..D * D], &mi[..D * D]);
            for r in 0..D {
                let (mut ar, mut ai) = ([R::ZERO; L], [R::ZERO; L]);
                for c in 0..D {
                    let (m_r, m_i) = (mr[r * D + c], mi[r * D + c]);
                    for w in 0..L {
                        ar[w] = m_r.fma(xr[c][w], ar[w]);
                        ar[w] = (-m_i).fma(xi[c][w], ar[w]);
                        ai[w] = m_r.fma(xi[c][w], ai[w]);
                        ai[w] = m_i.fma(xr[c][w], ai[w]);
                    }
                }
                for w in 0..L {
                    // SAFETY: as above.
                    unsafe {
                        *re.add(at[w] + offs[r]) = ar[w];
                        *im.add(at[w] + offs[r]) = ai[w];
                    }
                }
            }
        }
        Kernel::Permute {
            to, re: pr, im: pi, ..
        } => {
            for c in 0..D {
                let o = offs[to[c]];
                for w in 0..L {
                    let (r, i) = if pr.is_empty() {
                        (xr[c][w], xi[c][w])
                    } else {
                        mul(xr[c][w], xi[c][w], pr[c], pi[c])
                    };
                    // SAFETY: as above.
                    unsafe {
                        *re.add(at[w] + o) = r;
                        *im.add(at[w] + o) = i;
                    }
                }
            }
        }
        Kernel::Diagonal { .. } => unreachable!("matched above"),
    }
}

/// The state index of each lane's base, for `L` bases from base number `first`.
#[inline(always)]
fn lanes<const L: usize>(first: usize, qubits: &[usize]) -> [usize; L] {
    let mut at = [0usize; L];
    if qubits.first().is_some_and(|&q| 1 << q >= L) {
        // The lowest qubit is above the lanes: the bases are neighbours.
        let b = deposit(first, qubits);
        for (w, a) in at.iter_mut().enumerate() {
            *a = b + w;
        }
    } else {
        for (w, a) in at.iter_mut().enumerate() {
            *a = deposit(first + w, qubits);
        }
    }
    at
}

/// `(xr + i·xi)(tr + i·ti)`, in the operation order every variant uses.
#[inline(always)]
fn mul<R: Real>(xr: R, xi: R, tr: R, ti: R) -> (R, R) {
    (xr.fma(tr, -(xi * ti)), xr.fma(ti, xi * tr))
}
