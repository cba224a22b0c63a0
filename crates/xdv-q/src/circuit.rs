//! The circuit IR: what every front end produces and every provider executes. `U` and `CX` are
//! universal; `CPhase` and `Swap` are kept whole where the library defines them, so providers can
//! apply them in one pass.

/// One operation on qubit and classical-bit indices.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The general one-qubit gate `U(θ, φ, λ)` of OpenQASM 2.
    U {
        /// Target qubit.
        q: usize,
        /// θ.
        theta: f64,
        /// φ.
        phi: f64,
        /// λ.
        lambda: f64,
    },
    /// Controlled NOT.
    Cx {
        /// Control qubit.
        c: usize,
        /// Target qubit.
        t: usize,
    },
    /// The controlled phase `diag(1, 1, 1, e^{iλ})` on qubits `a` and `b` (symmetric); the
    /// library's `cp`, `cu1` and `cz` lower to it.
    CPhase {
        /// One qubit.
        a: usize,
        /// The other.
        b: usize,
        /// λ.
        lambda: f64,
    },
    /// Exchange of qubits `a` and `b`; the library's `swap` lowers to it.
    Swap {
        /// One qubit.
        a: usize,
        /// The other.
        b: usize,
    },
    /// Measure qubit `q` into classical bit `c`.
    Measure {
        /// Qubit.
        q: usize,
        /// Classical bit.
        c: usize,
    },
    /// Reset qubit `q` to |0⟩.
    Reset {
        /// Qubit.
        q: usize,
    },
    /// A barrier on qubits (no effect on the state; kept for scheduling and display).
    Barrier {
        /// The qubits.
        qubits: Vec<usize>,
    },
    /// `op` runs only when the classical register `[offset, offset + size)` equals `value`.
    If {
        /// First classical bit of the register.
        offset: usize,
        /// Its width.
        size: usize,
        /// The value compared with (bit i of the value is classical bit offset + i).
        value: u64,
        /// The conditioned operation.
        op: Box<Op>,
    },
}

/// A named register: `size` consecutive indices from `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Its name.
    pub name: String,
    /// First index.
    pub offset: usize,
    /// Width.
    pub size: usize,
}

/// A circuit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Circuit {
    /// Quantum registers in declaration order.
    pub qregs: Vec<Register>,
    /// Classical registers in declaration order.
    pub cregs: Vec<Register>,
    /// Operations in program order.
    pub ops: Vec<Op>,
}

impl Circuit {
    /// Host bytes the circuit holds: its operations, registers and their names. What a Q job
    /// keeps until its completion, charged to its VHM's memory budget.
    pub fn footprint_bytes(&self) -> u64 {
        use std::mem::size_of;
        fn op_heap(op: &Op) -> usize {
            match op {
                Op::Barrier { qubits } => qubits.capacity() * size_of::<usize>(),
                Op::If { op, .. } => size_of::<Op>() + op_heap(op),
                _ => 0,
            }
        }
        let registers: usize = self
            .qregs
            .iter()
            .chain(&self.cregs)
            .map(|r| size_of::<Register>() + r.name.capacity())
            .sum();
        let ops: usize =
            self.ops.capacity() * size_of::<Op>() + self.ops.iter().map(op_heap).sum::<usize>();
        (size_of::<Self>() + registers + ops) as u64
    }

    /// Total qubits.
    pub fn num_qubits(&self) -> usize {
        self.qregs.iter().map(|r| r.size).sum()
    }

    /// Total classical bits.
    pub fn num_clbits(&self) -> usize {
        self.cregs.iter().map(|r| r.size).sum()
    }

    /// Which qubits some operation acts on (barriers do not count).
    pub fn touched_qubits(&self) -> Vec<bool> {
        fn mark(op: &Op, t: &mut [bool]) {
            match op {
                Op::U { q, .. } | Op::Measure { q, .. } | Op::Reset { q } => t[*q] = true,
                Op::Cx { c: a, t: b } | Op::CPhase { a, b, .. } | Op::Swap { a, b } => {
                    t[*a] = true;
                    t[*b] = true;
                }
                Op::Barrier { .. } => {}
                Op::If { op, .. } => mark(op, t),
            }
        }
        let mut t = vec![false; self.num_qubits()];
        for op in &self.ops {
            mark(op, &mut t);
        }
        t
    }

    /// `true` when no operation follows a measurement on the same qubit and nothing is
    /// conditioned or reset: the outcome distribution is then the final state's.
    pub fn measurements_are_terminal(&self) -> bool {
        let mut measured = vec![false; self.num_qubits()];
        for op in &self.ops {
            match op {
                Op::Measure { q, .. } => measured[*q] = true,
                Op::U { q, .. } if measured[*q] => return false,
                Op::Cx { c: a, t: b } | Op::CPhase { a, b, .. } | Op::Swap { a, b }
                    if measured[*a] || measured[*b] =>
                {
                    return false
                }
                Op::Reset { .. } | Op::If { .. } => return false,
                _ => {}
            }
        }
        true
    }

    /// Formats classical bits the way Qiskit does: registers in reverse declaration order,
    /// separated by spaces, each register most significant bit first.
    pub fn format_bits(&self, bits: &[bool]) -> String {
        self.cregs
            .iter()
            .rev()
            .map(|r| {
                (0..r.size)
                    .rev()
                    .map(|i| if bits[r.offset + i] { '1' } else { '0' })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}
