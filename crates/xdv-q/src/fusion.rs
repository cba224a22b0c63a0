//! The fusion planner: a stream of gates becomes fewer, larger steps, each one pass over the
//! state, and the steps are grouped into cache blocks.
//!
//! # Fusion
//!
//! The planner keeps *open blocks*, each on a set of qubits, no qubit in two. Open blocks act on
//! disjoint qubits, so they commute and any of them may be applied (emitted) first. A gate joins
//! the blocks it touches when their union stays within the limit (`k` qubits for a dense block,
//! [`MAX_DIAGONAL`] for a block of diagonal gates only); otherwise the largest touching block it
//! still fits in keeps it and the others are emitted, or, when it fits in none, all of them are
//! emitted and it opens a block of its own. A gate never jumps ahead of a gate on a shared
//! qubit, so the product of the emitted steps is the circuit's unitary.
//!
//! An emitted block is classified by its matrix: a diagonal becomes a table lookup and one
//! complex multiply per amplitude (QFT's controlled-phase ladders fold into tables of up to
//! [`MAX_DIAGONAL`] qubits), a monomial matrix (permutations: `cx`, `swap`, `x`, with phases)
//! becomes a move, and anything else a dense `2^k × 2^k` matrix product.
//!
//! # Cache blocking
//!
//! [`schedule`] groups steps whose qubits all lie below `low` bits: such a step touches each
//! aligned block of `2^low` amplitudes on its own, so the whole group runs block by block while
//! the block sits in L2, one memory pass for the group. A later low step may move ahead of
//! earlier high steps when it shares no qubit with them (they commute).

use crate::statevector::C64;
use std::collections::BTreeMap;

/// Most qubits of a dense or permutation step.
pub const MAX_FUSED: usize = 5;

/// Most qubits of a diagonal step (a table of 2^12 phases: 64 KiB in f64, in L2).
pub const MAX_DIAGONAL: usize = 12;

/// A gate handed to the planner: a matrix on `qubits` (distinct, any order; basis index bit `j`
/// is the value of `qubits[j]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The qubits.
    pub qubits: Vec<usize>,
    /// Its matrix.
    pub matrix: Matrix,
}

/// A gate's or a step's matrix.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// Dense, row major, `2^k × 2^k`.
    Dense(Vec<C64>),
    /// The diagonal, `2^k` entries.
    Diagonal(Vec<C64>),
}

/// One pass's operation, on `qubits` (ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The qubits, ascending.
    pub qubits: Vec<usize>,
    /// What it does.
    pub op: StepOp,
}

/// What a step does to each tuple of amplitudes.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOp {
    /// A dense matrix, row major.
    Dense(Vec<C64>),
    /// A diagonal.
    Diagonal(Vec<C64>),
    /// Basis index `c` moves to `to[c]` times `phase[c]` (`None`: all phases 1).
    Permute {
        /// Destinations.
        to: Vec<usize>,
        /// Phases.
        phase: Option<Vec<C64>>,
    },
}

impl Step {
    /// Bit mask of its qubits.
    pub fn mask(&self) -> usize {
        self.qubits.iter().map(|q| 1usize << q).sum()
    }
}

/// The bits of `r` at `pos`, packed: bit `j` of the result is bit `pos[j]` of `r`.
fn gather(r: usize, pos: &[usize]) -> usize {
    pos.iter()
        .enumerate()
        .fold(0, |acc, (j, &p)| acc | (r >> p & 1) << j)
}

/// Where each of `of` sits in `within` (which contains them all).
fn positions(of: &[usize], within: &[usize]) -> Vec<usize> {
    of.iter()
        .map(|q| within.iter().position(|w| w == q).expect("a subset"))
        .collect()
}

fn sorted_union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut u: Vec<usize> = a.iter().chain(b).copied().collect();
    u.sort_unstable();
    u.dedup();
    u
}

/// An open block: the product of the gates it absorbed, on its qubits (ascending).
#[derive(Debug, Clone)]
struct Block {
    qubits: Vec<usize>,
    matrix: Matrix,
}

impl Block {
    fn identity(qubits: Vec<usize>) -> Block {
        let dim = 1 << qubits.len();
        Block {
            qubits,
            matrix: Matrix::Diagonal(vec![C64::ONE; dim]),
        }
    }

    fn is_diagonal(&self) -> bool {
        matches!(self.matrix, Matrix::Diagonal(_))
    }

    fn make_dense(&mut self) {
        if let Matrix::Diagonal(d) = &self.matrix {
            let dim = d.len();
            let mut m = vec![C64::ZERO; dim * dim];
            for (i, x) in d.iter().enumerate() {
                m[i * dim + i] = *x;
            }
            self.matrix = Matrix::Dense(m);
        }
    }

    /// The block on the union of two disjoint blocks: their tensor product.
    fn kron(mut a: Block, mut b: Block) -> Block {
        let qubits = sorted_union(&a.qubits, &b.qubits);
        assert_eq!(
            qubits.len(),
            a.qubits.len() + b.qubits.len(),
            "open blocks are disjoint"
        );
        let (pa, pb) = (positions(&a.qubits, &qubits), positions(&b.qubits, &qubits));
        let dim = 1usize << qubits.len();
        if a.is_diagonal() && b.is_diagonal() {
            let (Matrix::Diagonal(da), Matrix::Diagonal(db)) = (&a.matrix, &b.matrix) else {
                unreachable!("both diagonal")
            };
            let d = (0..dim)
                .map(|r| da[gather(r, &pa)].mul(db[gather(r, &pb)]))
                .collect();
            return Block {
                qubits,
                matrix: Matrix::Diagonal(d),
            };
        }
        a.make_dense();
        b.make_dense();
        let (Matrix::Dense(ma), Matrix::Dense(mb)) = (&a.matrix, &b.matrix) else {
            unreachable!("both dense")
        };
        let (da, db) = (1usize << a.qubits.len(), 1usize << b.qubits.len());
        let mut m = vec![C64::ZERO; dim * dim];
        for r in 0..dim {
            let (ra, rb) = (gather(r, &pa), gather(r, &pb));
            for c in 0..dim {
                let (ca, cb) = (gather(c, &pa), gather(c, &pb));
                m[r * dim + c] = ma[ra * da + ca].mul(mb[rb * db + cb]);
            }
        }
        Block {
            qubits,
            matrix: Matrix::Dense(m),
        }
    }

    /// Applies `g` (on a subset of the block's qubits, ascending) after the block's gates.
    fn absorb(&mut self, g: &Gate) {
        let pg = positions(&g.qubits, &self.qubits);
        let dim = 1usize << self.qubits.len();
        match (&mut self.matrix, &g.matrix) {
            (Matrix::Diagonal(d), Matrix::Diagonal(gd)) => {
                for (r, x) in d.iter_mut().enumerate() {
                    *x = gd[gather(r, &pg)].mul(*x);
                }
            }
            (Matrix::Dense(m), Matrix::Diagonal(gd)) => {
                for r in 0..dim {
                    let f = gd[gather(r, &pg)];
                    for x in &mut m[r * dim..(r + 1) * dim] {
                        *x = f.mul(*x);
                    }
                }
            }
            (_, Matrix::Dense(gm)) => {
                self.make_dense();
                let Matrix::Dense(m) = &mut self.matrix else {
                    unreachable!("made dense")
                };
                // G acts on each column of the block as on a state of the block's qubits.
                let gdim = 1usize << g.qubits.len();
                let offs: Vec<usize> = (0..gdim)
                    .map(|s| {
                        pg.iter()
                            .enumerate()
                            .filter(|(j, _)| s >> j & 1 == 1)
                            .map(|(_, p)| 1usize << p)
                            .sum()
                    })
                    .collect();
                let gmask: usize = offs[gdim - 1];
                let mut v = vec![C64::ZERO; gdim];
                for c in 0..dim {
                    for r0 in (0..dim).filter(|r| r & gmask == 0) {
                        for (s, x) in v.iter_mut().enumerate() {
                            *x = m[(r0 | offs[s]) * dim + c];
                        }
                        for (s, o) in offs.iter().enumerate() {
                            m[(r0 | o) * dim + c] = (0..gdim)
                                .fold(C64::ZERO, |acc, t| acc.add(gm[s * gdim + t].mul(v[t])));
                        }
                    }
                }
            }
        }
    }

    /// The block as a step, by the shape of its matrix; `None` for the identity.
    fn into_step(self) -> Option<Step> {
        let qubits = self.qubits;
        let op = match self.matrix {
            Matrix::Diagonal(d) => StepOp::Diagonal(d),
            Matrix::Dense(m) => classify(m, 1 << qubits.len()),
        };
        if let StepOp::Diagonal(d) = &op {
            if d.iter().all(|x| *x == C64::ONE) {
                return None;
            }
        }
        Some(Step { qubits, op })
    }
}

/// A dense `dim × dim` matrix as the cheapest step kind that is exactly it.
fn classify(m: Vec<C64>, dim: usize) -> StepOp {
    assert_eq!(dim * dim, m.len(), "a square matrix");
    // Monomial: one nonzero entry per column, in distinct rows.
    let mut to = Vec::with_capacity(dim);
    for c in 0..dim {
        let rows: Vec<usize> = (0..dim).filter(|r| m[r * dim + c] != C64::ZERO).collect();
        if rows.len() != 1 || to.contains(&rows[0]) {
            return StepOp::Dense(m);
        }
        to.push(rows[0]);
    }
    let phase: Vec<C64> = (0..dim).map(|c| m[to[c] * dim + c]).collect();
    if to.iter().enumerate().all(|(c, &r)| c == r) {
        return StepOp::Diagonal(phase);
    }
    let phase = phase.iter().any(|p| *p != C64::ONE).then_some(phase);
    StepOp::Permute { to, phase }
}

/// The gate with its qubits sorted ascending (its matrix re-indexed to match).
fn sorted(g: &Gate) -> Gate {
    let mut qubits = g.qubits.clone();
    qubits.sort_unstable();
    if qubits == g.qubits {
        return g.clone();
    }
    // Bit j of a new index is qubit qubits[j], which was bit pos[j] of the old index.
    let pos = positions(&qubits, &g.qubits);
    let dim = 1usize << qubits.len();
    let old = |new: usize| {
        pos.iter()
            .enumerate()
            .fold(0, |acc, (j, &p)| acc | (new >> j & 1) << p)
    };
    let matrix = match &g.matrix {
        Matrix::Diagonal(d) => Matrix::Diagonal((0..dim).map(|i| d[old(i)]).collect()),
        Matrix::Dense(m) => Matrix::Dense(
            (0..dim * dim)
                .map(|x| m[old(x / dim) * dim + old(x % dim)])
                .collect(),
        ),
    };
    Gate { qubits, matrix }
}

/// The fusion planner (see the module documentation).
#[derive(Debug)]
pub struct Fuser {
    k: usize,
    open: BTreeMap<u64, Block>,
    owner: Vec<Option<u64>>,
    next: u64,
    out: Vec<Step>,
}

impl Fuser {
    /// A planner for `n` qubits fusing dense blocks of up to `k` qubits (clamped to
    /// 1..=[`MAX_FUSED`]).
    pub fn new(n: usize, k: usize) -> Fuser {
        Fuser {
            k: k.clamp(1, MAX_FUSED),
            open: BTreeMap::new(),
            owner: vec![None; n],
            next: 0,
            out: Vec::new(),
        }
    }

    fn emit(&mut self, id: u64) {
        let b = self.open.remove(&id).expect("an open block");
        for q in &b.qubits {
            self.owner[*q] = None;
        }
        self.out.extend(b.into_step());
    }

    fn open_block(&mut self, b: Block) {
        let id = self.next;
        self.next += 1;
        for q in &b.qubits {
            assert!(self.owner[*q].is_none(), "a qubit in one open block");
            self.owner[*q] = Some(id);
        }
        self.open.insert(id, b);
    }

    /// Whether a block of these qubits and kind may hold the gate.
    fn fits(&self, qubits: usize, diagonal: bool) -> bool {
        qubits <= if diagonal { MAX_DIAGONAL } else { self.k }
    }

    /// Takes the next gate.
    ///
    /// # Panics
    ///
    /// When a qubit is out of range or repeated, or the matrix's size is not the qubits'.
    pub fn push(&mut self, gate: &Gate) {
        let g = sorted(gate);
        assert!(
            g.qubits.windows(2).all(|w| w[0] < w[1]),
            "a gate's qubits are distinct"
        );
        let dim = 1usize << g.qubits.len();
        match &g.matrix {
            Matrix::Dense(m) => assert_eq!(m.len(), dim * dim, "a 2^k × 2^k matrix"),
            Matrix::Diagonal(d) => assert_eq!(d.len(), dim, "a diagonal of 2^k"),
        }
        let g_diag = matches!(g.matrix, Matrix::Diagonal(_));
        let mut touching: Vec<u64> = g.qubits.iter().filter_map(|q| self.owner[*q]).collect();
        touching.sort_unstable();
        touching.dedup();
        let union: Vec<usize> = touching.iter().fold(g.qubits.clone(), |u, id| {
            sorted_union(&u, &self.open[id].qubits)
        });
        let all_diag = g_diag && touching.iter().all(|id| self.open[id].is_diagonal());
        if self.fits(union.len(), all_diag) {
            // Join everything touched into one block, widened to the gate's free qubits.
            let mut block: Option<Block> = None;
            for id in &touching {
                let b = self.open.remove(id).expect("open");
                block = Some(match block {
                    None => b,
                    Some(a) => Block::kron(a, b),
                });
            }
            let held: Vec<usize> = block.as_ref().map_or(Vec::new(), |b| b.qubits.clone());
            let free: Vec<usize> = g
                .qubits
                .iter()
                .filter(|q| !held.contains(q))
                .copied()
                .collect();
            let mut block = match block {
                None => Block::identity(free),
                Some(b) if free.is_empty() => b,
                Some(b) => Block::kron(b, Block::identity(free)),
            };
            for q in &block.qubits {
                self.owner[*q] = None;
            }
            block.absorb(&g);
            self.open_block(block);
            return;
        }
        // Keep the largest touching block the gate still fits in; emit the rest.
        let keeper = touching
            .iter()
            .filter(|id| {
                let b = &self.open[id];
                let u = sorted_union(&b.qubits, &g.qubits).len();
                self.fits(u, g_diag && b.is_diagonal())
            })
            .max_by_key(|id| (self.open[id].qubits.len(), std::cmp::Reverse(**id)))
            .copied();
        for id in touching.iter().filter(|id| Some(**id) != keeper) {
            self.emit(*id);
        }
        let mut block = match keeper {
            Some(id) => {
                let b = self.open.remove(&id).expect("open");
                for q in &b.qubits {
                    self.owner[*q] = None;
                }
                let free: Vec<usize> = g
                    .qubits
                    .iter()
                    .filter(|q| !b.qubits.contains(q))
                    .copied()
                    .collect();
                if free.is_empty() {
                    b
                } else {
                    Block::kron(b, Block::identity(free))
                }
            }
            None => Block::identity(g.qubits.clone()),
        };
        block.absorb(&g);
        self.open_block(block);
    }

    /// The steps emitted so far.
    pub fn emitted(&self) -> &[Step] {
        &self.out
    }

    /// Emits the block holding qubit `q`, if any (before a measurement of `q`).
    pub fn flush_qubit(&mut self, q: usize) {
        if let Some(id) = self.owner[q] {
            self.emit(id);
        }
    }

    /// Emits every open block and returns the steps, in application order.
    pub fn finish(mut self) -> Vec<Step> {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        for id in ids {
            self.emit(id);
        }
        self.out
    }
}

/// One memory pass of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Pass {
    /// Steps on qubits below the block bits, run block by block.
    Blocked(Vec<Step>),
    /// One step over the whole state.
    Whole(Step),
}

/// Groups `steps` into passes, cache blocks of `2^low` amplitudes (see the module
/// documentation). The passes apply the same unitary as the steps in order.
pub fn schedule(steps: Vec<Step>, low: usize) -> Vec<Pass> {
    let low_mask = (1usize << low) - 1;
    let mut out = Vec::new();
    let mut group: Vec<Step> = Vec::new();
    let mut deferred: Vec<Step> = Vec::new();
    let mut deferred_mask = 0usize;
    let close = |out: &mut Vec<Pass>, group: &mut Vec<Step>, deferred: &mut Vec<Step>| {
        if !group.is_empty() {
            out.push(Pass::Blocked(std::mem::take(group)));
        }
        out.extend(deferred.drain(..).map(Pass::Whole));
    };
    for s in steps {
        let mask = s.mask();
        if mask & !low_mask == 0 {
            if mask & deferred_mask != 0 {
                close(&mut out, &mut group, &mut deferred);
                deferred_mask = 0;
            }
            group.push(s);
        } else if group.is_empty() {
            out.push(Pass::Whole(s));
        } else {
            deferred_mask |= mask;
            deferred.push(s);
        }
    }
    close(&mut out, &mut group, &mut deferred);
    out
}
