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

/// Fewest groups worth splitting across threads.
const PARALLEL_GROUPS: usize = 1 << 11;

/// A floating-point type the kernels compute in.
pub(crate) trait Real:
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
    /// `x` rounded to this type.
    fn from_f64(x: f64) -> Self;
    /// Exactly `self` as an f64.
    fn to_f64(self) -> f64;
    /// `self · a + b` with one rounding.
    fn fma(self, a: Self, b: Self) -> Self;
    /// The AVX2 vector of this type.
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    type Avx2: Vector<R = Self>;
    /// The AVX-512 vector of this type.
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    type Avx512: Vector<R = Self>;
}

impl Real for f64 {
    #[cfg(target_arch = "x86_64")]
    type Avx2 = x86::F64x4;
    #[cfg(target_arch = "x86_64")]
    type Avx512 = x86::F64x8;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
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
    #[cfg(target_arch = "x86_64")]
    type Avx2 = x86::F32x8;
    #[cfg(target_arch = "x86_64")]
    type Avx512 = x86::F32x16;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
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
        *Isa::available()
            .last()
            .expect("the portable variant always runs")
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

    /// Amplitudes per vector of `R` (a kernel group).
    fn lanes<R: Real>(self) -> usize {
        match self {
            Isa::Portable => 1,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => R::Avx2::N,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => R::Avx512::N,
            #[cfg(not(target_arch = "x86_64"))]
            _ => 1,
        }
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
        /// The in-register form, for a vector variant whose lanes hold some of the qubits.
        lanes: Option<Lanes<R>>,
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

/// A dense step whose lowest qubits lie inside one vector of `n` lanes, in the form that
/// applies it with whole-vector loads: a group is the `2^h` vectors (one per value of the `h`
/// qubits above the lanes) of one aligned stretch, and basis index `c` reads, for every lane,
/// the amplitude of that lane's stretch whose lane bits are `c`'s low bits ([`Lanes::src`]),
/// times a coefficient that varies by lane (the lane's own row of the matrix). Every output
/// still sums its columns in ascending order with the same fused operations, so the result is
/// bit-identical to the gathered form's.
#[derive(Debug, Clone)]
pub(crate) struct Lanes<R> {
    /// Lanes of the vector this form was built for.
    n: usize,
    /// How many of the qubits lie inside a vector (the low basis bits).
    bits: usize,
    /// The qubits above the lanes, ascending.
    high: Vec<usize>,
    /// State offset of each value of the high qubits.
    offs: Vec<usize>,
    /// `src[l]`: for each lane `w`, the source lane with `w`'s lane bits of the step replaced by
    /// `l`, as the 32-bit element indices of a permute (two per lane for 8-byte values).
    src: Vec<[u32; MAX_LANES]>,
    /// Real parts of the coefficients, `[(row · dim + c) · n + w]`: the matrix entry of the
    /// lane's row (high part `row`, low part lane `w`'s bits) and column `c`.
    re: Vec<R>,
    /// Imaginary parts.
    im: Vec<R>,
}

impl<R: Real> Lanes<R> {
    /// The in-register form of the dense step on `qubits` with the row-major matrix `mr`,
    /// `mi` for vectors of `n` lanes, or `None` when no qubit lies inside a vector.
    fn new(qubits: &[usize], mr: &[R], mi: &[R], n: usize) -> Option<Lanes<R>> {
        let bits = qubits.iter().take_while(|&&q| 1usize << q < n).count();
        if bits == 0 {
            return None;
        }
        let dim = 1usize << qubits.len();
        let high = qubits[bits..].to_vec();
        // The lane bits of basis index `l` (its low `bits` bits), and their inverse per lane.
        let place = |l: usize| -> usize {
            (0..bits)
                .filter(|j| l >> j & 1 == 1)
                .map(|j| 1usize << qubits[j])
                .sum()
        };
        let mask = place((1 << bits) - 1);
        let low_of = |w: usize| -> usize {
            (0..bits)
                .filter(|&j| w >> qubits[j] & 1 == 1)
                .map(|j| 1usize << j)
                .sum()
        };
        let words = std::mem::size_of::<R>() / 4;
        let src = (0..1usize << bits)
            .map(|l| {
                let mut idx = [0u32; MAX_LANES];
                for w in 0..n {
                    let from = (w & !mask) | place(l);
                    for k in 0..words {
                        idx[w * words + k] = (from * words + k) as u32;
                    }
                }
                idx
            })
            .collect();
        let rows = dim >> bits;
        let (mut re, mut im) = (Vec::with_capacity(rows * dim * n), Vec::new());
        for row in 0..rows {
            for c in 0..dim {
                for w in 0..n {
                    let e = ((row << bits) | low_of(w)) * dim + c;
                    re.push(mr[e]);
                    im.push(mi[e]);
                }
            }
        }
        Some(Lanes {
            n,
            bits,
            offs: offsets(&high),
            high,
            src,
            re,
            im,
        })
    }
}

/// `len` zeros for a state half, backed by transparent huge pages where the kernel offers them
/// (Linux, `madvise` mode): a step on high qubits touches up to 32 pages per group, which
/// 4 KiB pages turn into TLB misses, and the first touch of each page is a fault.
pub(crate) fn zeros<R: Real>(len: usize) -> Vec<R> {
    let mut v: Vec<R> = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = len * std::mem::size_of::<R>();
        if bytes >= 2 * HUGE {
            let start = v.as_mut_ptr() as usize;
            let aligned = start.next_multiple_of(HUGE);
            let end = (start + bytes) / HUGE * HUGE;
            if end > aligned {
                // SAFETY: [aligned, end) lies inside the allocation just made (start ≤ aligned,
                // end ≤ start + bytes); MADV_HUGEPAGE only changes how the kernel backs the
                // range, never its contents. A refusal (no THP) leaves ordinary pages.
                unsafe {
                    libc::madvise(
                        aligned as *mut libc::c_void,
                        end - aligned,
                        libc::MADV_HUGEPAGE,
                    );
                }
            }
        }
    }
    if len >= PARALLEL_GROUPS << 6 {
        // The first touch of every page is a fault the kernel serves with a page clear: on
        // every thread at once, as the kernels will later touch them.
        use rayon::prelude::*;
        v.par_extend(rayon::iter::repeat_n(R::ZERO, len));
    } else {
        v.resize(len, R::ZERO);
    }
    v
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
    /// The dense step on `qubits` (ascending) with the row-major matrix `re`, `im`, with its
    /// in-register form for the variant `isa` where that applies.
    pub(crate) fn dense(qubits: Vec<usize>, re: Vec<R>, im: Vec<R>, isa: Isa) -> Kernel<R> {
        Kernel::Dense {
            lanes: Lanes::new(&qubits, &re, &im, isa.lanes::<R>()),
            offs: offsets(&qubits),
            qubits,
            re,
            im,
        }
    }

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
        let span = self.span(isa.lanes::<R>());
        if len < span {
            // Smaller than one group of this variant: lane by lane.
            for unit in 0..len / self.span(1) {
                // SAFETY: as below, on one thread.
                unsafe { single(self, pre, pim, base, unit) };
            }
            return;
        }
        // Both are powers of two: the groups tile the state.
        let groups = len / span;
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
        } else {
            run(0..groups);
        }
    }

    /// Amplitudes one group of a variant with `lanes` lanes covers: a vector of neighbours
    /// (a diagonal), the `2^h` vectors of the in-register form, or the tuples of a vector of
    /// bases.
    fn span(&self, lanes: usize) -> usize {
        match self {
            Kernel::Diagonal { .. } => lanes,
            _ => match self.in_register(lanes) {
                Some(l) => lanes << l.high.len(),
                None => lanes << self.qubits().len(),
            },
        }
    }

    /// The in-register form, when the step has one for vectors of `lanes` lanes.
    #[inline(always)]
    fn in_register(&self, lanes: usize) -> Option<&Lanes<R>> {
        match self {
            Kernel::Dense { lanes: Some(l), .. } if l.n == lanes => Some(l),
            _ => None,
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
        _ => unsafe { groups::<Scalar<R>>(k, re, im, base, range) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
/// [`groups`] on AVX-512 vectors.
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
    unsafe { groups::<R::Avx512>(k, re, im, base, range) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
/// [`groups`] on AVX2 vectors.
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
    unsafe { groups::<R::Avx2>(k, re, im, base, range) }
}

/// One unit (base or index) of `k`: the arithmetic of one lane of a group.
///
/// # Safety
///
/// As [`dispatch`].
unsafe fn single<R: Real>(k: &Kernel<R>, re: Shared<R>, im: Shared<R>, base: usize, unit: usize) {
    // SAFETY: forwarded contract.
    unsafe { groups::<Scalar<R>>(k, re, im, base, unit..unit + 1) }
}

/// Groups `range` of `k`, one vector `V` of lanes each: the one body every variant compiles.
///
/// # Safety
///
/// As [`dispatch`].
#[inline(always)]
unsafe fn groups<V: Vector>(
    k: &Kernel<V::R>,
    re: Shared<V::R>,
    im: Shared<V::R>,
    base: usize,
    range: Range<usize>,
) {
    // SAFETY (every call below): forwarded contract.
    match k {
        Kernel::Diagonal { .. } => {
            for g in range {
                unsafe { diagonal::<V>(k, re, im, base + g * V::N, g * V::N) };
            }
        }
        Kernel::Dense { offs, .. } | Kernel::Permute { offs, .. } => {
            // A fixed dimension per instance, so the loops over basis indices unroll.
            macro_rules! by_dim {
                ($($d:literal)*) => {
                    match offs.len() {
                        $($d => match k.in_register(V::N) {
                            Some(l) => {
                                for g in range {
                                    unsafe { vectors::<V, $d>(l, re, im, g) };
                                }
                            }
                            None => {
                                for g in range {
                                    unsafe { tuples::<V, $d>(k, re, im, g * V::N) };
                                }
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

/// How many groups ahead a dense or permutation step prefetches.
const PREFETCH_GROUPS: usize = 4;

/// Most lanes of a vector.
const MAX_LANES: usize = 16;

/// A diagonal on `V::N` neighbouring amplitudes from slice index `first` (state index `at`).
///
/// # Safety
///
/// As [`dispatch`]; `k` is a diagonal.
#[inline(always)]
unsafe fn diagonal<V: Vector>(
    k: &Kernel<V::R>,
    re: Shared<V::R>,
    im: Shared<V::R>,
    at: usize,
    first: usize,
) {
    let Kernel::Diagonal {
        qubits,
        re: dr,
        im: di,
        bytes,
    } = k
    else {
        unreachable!("called for diagonals")
    };
    // Lanes are neighbouring indices inside one aligned group: only the lowest byte differs.
    let hi = bytes[1][at >> 8 & 255] | bytes[2][at >> 16 & 255] | bytes[3][at >> 24 & 255];
    let (tr, ti) = if 1usize << qubits[0] >= V::N {
        // No qubit among the lane bits: one entry for every lane.
        let t = (hi | bytes[0][at & 255]) as usize;
        (V::splat(dr[t]), V::splat(di[t]))
    } else {
        let (mut tr, mut ti) = ([V::R::ZERO; MAX_LANES], [V::R::ZERO; MAX_LANES]);
        for w in 0..V::N {
            let t = (hi | bytes[0][(at + w) & 255]) as usize;
            (tr[w], ti[w]) = (dr[t], di[t]);
        }
        (V::from_lanes(&tr), V::from_lanes(&ti))
    };
    // SAFETY: first..first + N lies below len (the caller's contract).
    unsafe {
        let (pr, pi) = (re.0.add(first), im.0.add(first));
        let (r, i) = cmul(V::load(pr), V::load(pi), tr, ti);
        r.store(pr);
        i.store(pi);
    }
}

/// A dense or permutation step of dimension `D` on the tuples of the `V::N` bases from base
/// number `first`.
///
/// # Safety
///
/// As [`dispatch`]; `k` is dense or a permutation of dimension `D`.
#[inline(always)]
unsafe fn tuples<V: Vector, const D: usize>(
    k: &Kernel<V::R>,
    re: Shared<V::R>,
    im: Shared<V::R>,
    first: usize,
) {
    let (Kernel::Dense { qubits, offs, .. } | Kernel::Permute { qubits, offs, .. }) = k else {
        unreachable!("called for dense and permutation steps")
    };
    let offs: &[usize; D] = offs.as_slice().try_into().expect("dimension D");
    let (mut xr, mut xi) = ([V::zero(); D], [V::zero(); D]);
    // The lanes' bases: neighbours when the lowest qubit lies above the lanes, else gathered.
    let contiguous = 1usize << qubits[0] >= V::N;
    let mut at = [0usize; MAX_LANES];
    if contiguous {
        at[0] = deposit(first, qubits);
    } else {
        for (w, a) in at.iter_mut().enumerate().take(V::N) {
            *a = deposit(first + w, qubits);
        }
    }
    // SAFETY (every access below): a base plus an offset of its own qubits is below len,
    // and the caller owns these indices.
    let load = |p: *mut V::R, o: usize| unsafe {
        if contiguous {
            V::load(p.add(at[0] + o))
        } else {
            let mut l = [V::R::ZERO; MAX_LANES];
            for w in 0..V::N {
                l[w] = *p.add(at[w] + o);
            }
            V::from_lanes(&l)
        }
    };
    let store = |p: *mut V::R, o: usize, v: V| unsafe {
        if contiguous {
            v.store(p.add(at[0] + o));
        } else {
            let mut l = [V::R::ZERO; MAX_LANES];
            v.to_lanes(&mut l);
            for w in 0..V::N {
                *p.add(at[w] + o) = l[w];
            }
        }
    };
    if contiguous {
        // The lines a few groups ahead: a group computes long enough between its loads that
        // the next group's would otherwise wait on memory (up to 2·D streams, more than the
        // hardware prefetchers follow).
        let ahead = deposit(first + PREFETCH_GROUPS * V::N, qubits);
        for o in offs {
            V::prefetch(re.0.wrapping_add(ahead + o));
            V::prefetch(im.0.wrapping_add(ahead + o));
        }
    }
    for c in 0..D {
        xr[c] = load(re.0, offs[c]);
        xi[c] = load(im.0, offs[c]);
    }
    match k {
        Kernel::Dense { re: mr, im: mi, .. } => {
            let (mr, mi): (&[V::R], &[V::R]) = (&mr[..D * D], &mi[..D * D]);
            accumulate::<V, D>(
                &xr,
                &xi,
                D,
                |e| (V::splat(mr[e]), V::splat(mi[e])),
                |row, r, i| {
                    store(re.0, offs[row], r);
                    store(im.0, offs[row], i);
                },
            );
        }
        Kernel::Permute {
            to, re: pr, im: pi, ..
        } => {
            for c in 0..D {
                let (r, i) = if pr.is_empty() {
                    (xr[c], xi[c])
                } else {
                    cmul(xr[c], xi[c], V::splat(pr[c]), V::splat(pi[c]))
                };
                store(re.0, offs[to[c]], r);
                store(im.0, offs[to[c]], i);
            }
        }
        Kernel::Diagonal { .. } => unreachable!("matched above"),
    }
}

/// The rows of a dense step: output `row` is `Σ_c m[row · D + c] · x[c]`, columns in ascending
/// order, each term four fused operations (real then imaginary), from zero. `coef(e)` gives
/// entry `e` as vectors; `out` takes each finished row.
#[inline(always)]
fn accumulate<V: Vector, const D: usize>(
    xr: &[V; D],
    xi: &[V; D],
    rows: usize,
    coef: impl Fn(usize) -> (V, V),
    mut out: impl FnMut(usize, V, V),
) {
    // Four rows at a time: eight independent accumulation chains keep the FMA units busy (one
    // row's two chains wait on FMA latency). The batch size is a constant, so the
    // accumulators stay in registers.
    let mut r0 = 0;
    while r0 + 4 <= rows {
        batch::<V, D, 4>(xr, xi, r0, &coef, &mut out);
        r0 += 4;
    }
    match rows - r0 {
        0 => {}
        1 => batch::<V, D, 1>(xr, xi, r0, &coef, &mut out),
        2 => batch::<V, D, 2>(xr, xi, r0, &coef, &mut out),
        3 => batch::<V, D, 3>(xr, xi, r0, &coef, &mut out),
        _ => unreachable!("fewer than four rows left"),
    }
}

/// Rows `r0..r0 + J` of [`accumulate`], each output's operations in its order.
#[inline(always)]
fn batch<V: Vector, const D: usize, const J: usize>(
    xr: &[V; D],
    xi: &[V; D],
    r0: usize,
    coef: &impl Fn(usize) -> (V, V),
    out: &mut impl FnMut(usize, V, V),
) {
    let (mut ar, mut ai) = ([V::zero(); J], [V::zero(); J]);
    for c in 0..D {
        for j in 0..J {
            let (m_r, m_i) = coef((r0 + j) * D + c);
            ar[j] = V::fma(m_r, xr[c], ar[j]);
            ar[j] = V::fnma(m_i, xi[c], ar[j]);
            ai[j] = V::fma(m_r, xi[c], ai[j]);
            ai[j] = V::fma(m_i, xr[c], ai[j]);
        }
    }
    for j in 0..J {
        out(r0 + j, ar[j], ai[j]);
    }
}

/// Group `g` of a dense step of dimension `D` in its in-register form `l` (for `V`): the
/// `2^h` vectors of one aligned stretch, each column's inputs permuted into the lanes that
/// read them.
///
/// # Safety
///
/// As [`dispatch`]; `l` was built for `V::N` lanes and dimension `D`.
#[inline(always)]
unsafe fn vectors<V: Vector, const D: usize>(
    l: &Lanes<V::R>,
    re: Shared<V::R>,
    im: Shared<V::R>,
    g: usize,
) {
    let start = deposit(g * V::N, &l.high);
    let ahead = deposit((g + PREFETCH_GROUPS) * V::N, &l.high);
    for &o in &l.offs {
        V::prefetch(re.0.wrapping_add(ahead + o));
        V::prefetch(im.0.wrapping_add(ahead + o));
    }
    let (mut xr, mut xi) = ([V::zero(); D], [V::zero(); D]);
    let lows = 1usize << l.bits;
    for (h, &o) in l.offs.iter().enumerate() {
        // SAFETY: the stretch's vectors lie below len and belong to this group (the caller's
        // contract).
        let (vr, vi) = unsafe { (V::load(re.0.add(start + o)), V::load(im.0.add(start + o))) };
        for (low, src) in l.src.iter().enumerate() {
            xr[h * lows + low] = vr.permute(src);
            xi[h * lows + low] = vi.permute(src);
        }
    }
    let (cr, ci) = (&l.re[..], &l.im[..]);
    assert!(cr.len() >= (D >> l.bits) * D * V::N && ci.len() == cr.len());
    accumulate::<V, D>(
        &xr,
        &xi,
        D >> l.bits,
        // SAFETY: entry e's N lanes lie inside the tables (asserted above).
        |e| unsafe {
            (
                V::load(cr.as_ptr().add(e * V::N)),
                V::load(ci.as_ptr().add(e * V::N)),
            )
        },
        // SAFETY: as for the loads.
        |row, r, i| unsafe {
            r.store(re.0.add(start + l.offs[row]));
            i.store(im.0.add(start + l.offs[row]));
        },
    );
}

/// `(xr + i·xi)(tr + i·ti)`, in the operation order every variant uses.
#[inline(always)]
fn cmul<V: Vector>(xr: V, xi: V, tr: V, ti: V) -> (V, V) {
    (
        V::fms(xr, tr, V::mul(xi, ti)),
        V::fma(xr, ti, V::mul(xi, tr)),
    )
}

/// `N` lanes of one real type, with the operations the kernels use. Every implementation
/// rounds each operation exactly as the scalar one does (IEEE `fma`, `mul`), lane by lane.
pub(crate) trait Vector: Copy {
    /// The lane type.
    type R: Real;
    /// Lanes.
    const N: usize;
    /// Loads `N` values from `p`.
    ///
    /// # Safety
    ///
    /// `p..p + N` is readable, and the CPU has the vector's instructions.
    unsafe fn load(p: *const Self::R) -> Self;
    /// Stores to `p`.
    ///
    /// # Safety
    ///
    /// `p..p + N` is writable, and the CPU has the vector's instructions.
    unsafe fn store(self, p: *mut Self::R);
    /// The first `N` values of `x`.
    fn from_lanes(x: &[Self::R; MAX_LANES]) -> Self;
    /// Writes the lanes into the first `N` of `out`.
    fn to_lanes(self, out: &mut [Self::R; MAX_LANES]);
    /// Every lane `x`.
    fn splat(x: Self::R) -> Self;
    /// Every lane 0.
    fn zero() -> Self;
    /// `a·b + c`, one rounding.
    fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `c − a·b`, one rounding (= `fma(−a, b, c)`).
    fn fnma(a: Self, b: Self, c: Self) -> Self;
    /// `a·b − c`, one rounding (= `fma(a, b, −c)`).
    fn fms(a: Self, b: Self, c: Self) -> Self;
    /// `a·b`.
    fn mul(a: Self, b: Self) -> Self;
    /// Lane `w` of the result is lane `idx[w]` of `self`, `idx` counting 32-bit elements (an
    /// 8-byte lane `w` names its two halves at `2w` and `2w + 1`).
    fn permute(self, idx: &[u32; MAX_LANES]) -> Self;
    /// Hints that the line at `p` is read soon (no effect on any value; `p` may be anywhere).
    #[inline(always)]
    fn prefetch(_p: *const Self::R) {}
}

/// One lane: the portable variant, and the reference every vector matches.
#[derive(Clone, Copy)]
pub(crate) struct Scalar<R>(R);

impl<R: Real> Vector for Scalar<R> {
    type R = R;
    const N: usize = 1;
    #[inline(always)]
    unsafe fn load(p: *const R) -> Self {
        // SAFETY: the caller's contract.
        Scalar(unsafe { *p })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut R) {
        // SAFETY: the caller's contract.
        unsafe { *p = self.0 }
    }
    #[inline(always)]
    fn from_lanes(x: &[R; MAX_LANES]) -> Self {
        Scalar(x[0])
    }
    #[inline(always)]
    fn to_lanes(self, out: &mut [R; MAX_LANES]) {
        out[0] = self.0;
    }
    #[inline(always)]
    fn splat(x: R) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    fn zero() -> Self {
        Scalar(R::ZERO)
    }
    #[inline(always)]
    fn fma(a: Self, b: Self, c: Self) -> Self {
        Scalar(a.0.fma(b.0, c.0))
    }
    #[inline(always)]
    fn fnma(a: Self, b: Self, c: Self) -> Self {
        Scalar((-a.0).fma(b.0, c.0))
    }
    #[inline(always)]
    fn fms(a: Self, b: Self, c: Self) -> Self {
        Scalar(a.0.fma(b.0, -c.0))
    }
    #[inline(always)]
    fn mul(a: Self, b: Self) -> Self {
        Scalar(a.0 * b.0)
    }
    #[inline(always)]
    fn permute(self, _idx: &[u32; MAX_LANES]) -> Self {
        // One lane only ever reads itself.
        self
    }
}

/// The x86-64 vectors. Their methods are `#[inline(always)]` and only ever run inlined into
/// the `#[target_feature]` functions above, after the features were detected.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::{Vector, MAX_LANES};
    use std::arch::x86_64::*;

    macro_rules! vector {
        ($name:ident, $r:ty, $n:literal, $t:ty, $feat:literal, $set:ident,
         $load:ident, $store:ident, $set1:ident, $zero:ident,
         $fmadd:ident, $fnmadd:ident, $fmsub:ident, $mul:ident, $perm:ident) => {
            #[doc = concat!($n, " lanes of ", stringify!($r), " (", $feat, ").")]
            #[derive(Clone, Copy)]
            pub(crate) struct $name($t);

            impl Vector for $name {
                type R = $r;
                const N: usize = $n;
                #[inline(always)]
                unsafe fn load(p: *const $r) -> Self {
                    // SAFETY: the caller's contract (readable, features present).
                    $name(unsafe { $load(p) })
                }
                #[inline(always)]
                unsafe fn store(self, p: *mut $r) {
                    // SAFETY: the caller's contract (writable, features present).
                    unsafe { $store(p, self.0) }
                }
                #[inline(always)]
                fn from_lanes(x: &[$r; MAX_LANES]) -> Self {
                    // Built in registers (a vector load of values just stored one by one would
                    // stall on store forwarding).
                    // SAFETY: the features are present wherever this runs (the module note).
                    $name(unsafe { $set(x) })
                }
                #[inline(always)]
                fn to_lanes(self, out: &mut [$r; MAX_LANES]) {
                    // SAFETY: as above, writable.
                    unsafe { $store(out.as_mut_ptr(), self.0) }
                }
                #[inline(always)]
                fn splat(x: $r) -> Self {
                    // SAFETY: the features are present wherever this runs.
                    $name(unsafe { $set1(x) })
                }
                #[inline(always)]
                fn zero() -> Self {
                    // SAFETY: as above.
                    $name(unsafe { $zero() })
                }
                #[inline(always)]
                fn fma(a: Self, b: Self, c: Self) -> Self {
                    // SAFETY: as above.
                    $name(unsafe { $fmadd(a.0, b.0, c.0) })
                }
                #[inline(always)]
                fn fnma(a: Self, b: Self, c: Self) -> Self {
                    // SAFETY: as above.
                    $name(unsafe { $fnmadd(a.0, b.0, c.0) })
                }
                #[inline(always)]
                fn fms(a: Self, b: Self, c: Self) -> Self {
                    // SAFETY: as above.
                    $name(unsafe { $fmsub(a.0, b.0, c.0) })
                }
                #[inline(always)]
                fn mul(a: Self, b: Self) -> Self {
                    // SAFETY: as above.
                    $name(unsafe { $mul(a.0, b.0) })
                }
                #[inline(always)]
                fn permute(self, idx: &[u32; MAX_LANES]) -> Self {
                    // SAFETY: the features are present wherever this runs; `idx` is readable.
                    $name(unsafe { $perm(self.0, idx) })
                }
                #[inline(always)]
                fn prefetch(p: *const $r) {
                    // SAFETY: a prefetch never faults, whatever the address (SSE, always present
                    // on x86-64).
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
                }
            }
        };
    }

    /// The first lanes of `x` as a vector, lane 0 first.
    #[inline(always)]
    unsafe fn set_f64x4(x: &[f64; MAX_LANES]) -> __m256d {
        // SAFETY: AVX is present (the caller's contract).
        unsafe { _mm256_set_pd(x[3], x[2], x[1], x[0]) }
    }
    #[inline(always)]
    unsafe fn set_f32x8(x: &[f32; MAX_LANES]) -> __m256 {
        // SAFETY: as above.
        unsafe { _mm256_set_ps(x[7], x[6], x[5], x[4], x[3], x[2], x[1], x[0]) }
    }
    #[inline(always)]
    unsafe fn set_f64x8(x: &[f64; MAX_LANES]) -> __m512d {
        // SAFETY: AVX-512F is present (the caller's contract).
        unsafe { _mm512_set_pd(x[7], x[6], x[5], x[4], x[3], x[2], x[1], x[0]) }
    }
    #[inline(always)]
    unsafe fn set_f32x16(x: &[f32; MAX_LANES]) -> __m512 {
        // SAFETY: as above.
        unsafe {
            _mm512_set_ps(
                x[15], x[14], x[13], x[12], x[11], x[10], x[9], x[8], x[7], x[6], x[5], x[4], x[3],
                x[2], x[1], x[0],
            )
        }
    }

    /// `v` permuted by the 32-bit element indices `idx` (see [`Vector::permute`]).
    #[inline(always)]
    unsafe fn perm_f64x4(v: __m256d, idx: &[u32; MAX_LANES]) -> __m256d {
        // SAFETY: AVX2 is present (the caller's contract); 8 of `idx`'s 16 words are read.
        unsafe {
            let i = _mm256_loadu_si256(idx.as_ptr().cast());
            _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), i))
        }
    }
    #[inline(always)]
    unsafe fn perm_f32x8(v: __m256, idx: &[u32; MAX_LANES]) -> __m256 {
        // SAFETY: as above.
        unsafe { _mm256_permutevar8x32_ps(v, _mm256_loadu_si256(idx.as_ptr().cast())) }
    }
    #[inline(always)]
    unsafe fn perm_f64x8(v: __m512d, idx: &[u32; MAX_LANES]) -> __m512d {
        // SAFETY: AVX-512F is present (the caller's contract); all 16 words are read.
        unsafe {
            let i = _mm512_loadu_epi32(idx.as_ptr().cast());
            _mm512_castps_pd(_mm512_permutexvar_ps(i, _mm512_castpd_ps(v)))
        }
    }
    #[inline(always)]
    unsafe fn perm_f32x16(v: __m512, idx: &[u32; MAX_LANES]) -> __m512 {
        // SAFETY: as above.
        unsafe { _mm512_permutexvar_ps(_mm512_loadu_epi32(idx.as_ptr().cast()), v) }
    }

    vector!(
        F64x4,
        f64,
        4,
        __m256d,
        "AVX2 + FMA",
        set_f64x4,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_set1_pd,
        _mm256_setzero_pd,
        _mm256_fmadd_pd,
        _mm256_fnmadd_pd,
        _mm256_fmsub_pd,
        _mm256_mul_pd,
        perm_f64x4
    );
    vector!(
        F32x8,
        f32,
        8,
        __m256,
        "AVX2 + FMA",
        set_f32x8,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_setzero_ps,
        _mm256_fmadd_ps,
        _mm256_fnmadd_ps,
        _mm256_fmsub_ps,
        _mm256_mul_ps,
        perm_f32x8
    );
    vector!(
        F64x8,
        f64,
        8,
        __m512d,
        "AVX-512F",
        set_f64x8,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_set1_pd,
        _mm512_setzero_pd,
        _mm512_fmadd_pd,
        _mm512_fnmadd_pd,
        _mm512_fmsub_pd,
        _mm512_mul_pd,
        perm_f64x8
    );
    vector!(
        F32x16,
        f32,
        16,
        __m512,
        "AVX-512F",
        set_f32x16,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_setzero_ps,
        _mm512_fmadd_ps,
        _mm512_fnmadd_ps,
        _mm512_fmsub_ps,
        _mm512_mul_ps,
        perm_f32x16
    );
}
