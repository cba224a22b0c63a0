//! Static job planning: what a job will cost before it runs.
//!
//! A job's circuit names logical qubits `0..n` of a container. Whatever physical qubits the
//! container occupies, it presents its logical qubits as a line (`i` next to `i + 1`), so a
//! job's cost and duration depend only on the circuit and the device's figures — never on where
//! the container was placed, which depends on the neighbours. A two-qubit gate between logical
//! qubits `d` apart is routed through the qubits between them with `d − 1` SWAPs there and back
//! (3 CX each); `cp`/`cz` count as two CX, `swap` as three. Operations are scheduled as soon as
//! their qubits (and, for a conditioned operation, the classical bits it reads) are ready; the
//! makespan is one shot's duration, and every qubit the job touches, routes included, is held,
//! and dephases, for the whole shot. All of it is integer arithmetic over the device's [`Costs`].

use crate::circuit::{Circuit, Op};
use crate::provider::{Costs, Device};
use xdv_core::refusal::QUnsupported;

/// What one job costs, statically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobPlan {
    /// Logical qubits the circuit declares.
    pub qubits: u32,
    /// Classical bits the circuit declares.
    pub clbits: u32,
    /// Qubits the job holds: those some operation acts on, and those routes pass through.
    pub touched: u32,
    /// One-qubit gates.
    pub gates_1q: u64,
    /// Two-qubit gates (CX), routing included.
    pub gates_2q: u64,
    /// Of those, CX added to route gates between non-adjacent qubits.
    pub routing_2q: u64,
    /// Measurements.
    pub measurements: u64,
    /// Resets (each costs a readout and a one-qubit gate).
    pub resets: u64,
    /// One shot's duration, ns.
    pub shot_ns: u64,
    /// One shot's log-fidelity cost, micro-units.
    pub shot_cost: u64,
}

impl JobPlan {
    /// The cost of `shots` shots, `None` on overflow.
    pub fn cost(&self, shots: u64) -> Option<u64> {
        self.shot_cost.checked_mul(shots)
    }

    /// The duration of `shots` shots, `None` on overflow.
    pub fn duration(&self, shots: u64) -> Option<u64> {
        self.shot_ns.checked_mul(shots)
    }
}

/// The logical qubits a circuit holds: those its operations act on and those its two-qubit
/// gates are routed through.
pub fn held_qubits(circuit: &Circuit) -> Vec<bool> {
    let mut held = circuit.touched_qubits();
    let mut mark = |op: &Op| {
        if let Op::Cx { c: a, t: b } | Op::CPhase { a, b, .. } | Op::Swap { a, b } = *op {
            held[a.min(b)..=a.max(b)].fill(true);
        }
    };
    for op in &circuit.ops {
        match op {
            Op::If { op, .. } => mark(op),
            other => mark(other),
        }
    }
    held
}

/// Plans `circuit` on a container of `container` logical qubits of `device`, whose cost table
/// is `costs` ([`Device::costs`], computed once per device). Refuses, with the reason, a circuit
/// that declares more qubits than the container holds.
pub fn plan(
    circuit: &Circuit,
    device: &Device,
    costs: &Costs,
    container: usize,
) -> Result<JobPlan, QUnsupported> {
    let n = circuit.num_qubits();
    if n > container {
        return Err(QUnsupported::ContainerQubits {
            declared: u32::try_from(n).unwrap_or(u32::MAX),
            held: u32::try_from(container).unwrap_or(u32::MAX),
        });
    }
    let t = device.timing;
    let mut p = JobPlan {
        qubits: n as u32,
        clbits: circuit.num_clbits() as u32,
        ..JobPlan::default()
    };
    let mut qclock = vec![0u64; n];
    let mut cclock = vec![0u64; circuit.num_clbits()];
    // (op, earliest start): conditioned ops start after the bits they read are written.
    let mut ops: Vec<(&Op, u64)> = circuit.ops.iter().map(|op| (op, 0)).collect();
    let mut i = 0;
    while i < ops.len() {
        let (op, ready) = ops[i];
        i += 1;
        let mut two_qubit = |a: usize, b: usize, cx: u64| -> (Vec<usize>, u64) {
            let d = a.abs_diff(b) as u64;
            let routing = 6 * d.saturating_sub(1);
            p.gates_2q += cx + routing;
            p.routing_2q += routing;
            (
                (a.min(b)..=a.max(b)).collect(),
                (cx + routing) * t.gate_2q_ns,
            )
        };
        let (qs, dur): (Vec<usize>, u64) = match op {
            Op::U { q, .. } => {
                p.gates_1q += 1;
                (vec![*q], t.gate_1q_ns)
            }
            Op::Cx { c, t: tq } => two_qubit(*c, *tq, 1),
            Op::CPhase { a, b, .. } => two_qubit(*a, *b, 2),
            Op::Swap { a, b } => two_qubit(*a, *b, 3),
            Op::Measure { q, .. } => {
                p.measurements += 1;
                (vec![*q], t.measure_ns)
            }
            Op::Reset { q } => {
                p.resets += 1;
                (vec![*q], t.reset_ns)
            }
            Op::Barrier { qubits } => {
                let end = qubits.iter().map(|&q| qclock[q]).max().unwrap_or(0);
                for &q in qubits {
                    qclock[q] = end;
                }
                continue;
            }
            Op::If {
                offset, size, op, ..
            } => {
                let ready = cclock[*offset..offset + size]
                    .iter()
                    .copied()
                    .max()
                    .unwrap_or(0);
                // Plan the conditioned op as if it always runs: the static worst case.
                ops.insert(i, (&**op, ready));
                continue;
            }
        };
        let start = qs.iter().map(|&q| qclock[q]).max().unwrap_or(0).max(ready);
        let end = start + dur;
        for &q in &qs {
            qclock[q] = end;
        }
        if let Op::Measure { c, .. } = op {
            cclock[*c] = end;
        }
    }
    p.shot_ns = qclock.iter().copied().max().unwrap_or(0);
    p.touched = held_qubits(circuit).iter().filter(|&&x| x).count() as u32;
    let dephasing =
        u128::from(p.shot_ns) * 1_000_000 / u128::from(costs.t2_ns) * u128::from(p.touched);
    let total = u128::from(p.gates_1q) * u128::from(costs.gate_1q)
        + u128::from(p.gates_2q) * u128::from(costs.gate_2q)
        + u128::from(p.measurements) * u128::from(costs.readout)
        + u128::from(p.resets) * u128::from(costs.readout + costs.gate_1q)
        + dephasing;
    p.shot_cost = u64::try_from(total).map_err(|_| QUnsupported::CostOverflow)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::find_device;
    use crate::qasm;

    fn circuit(src: &str) -> Circuit {
        qasm::parse(src, "t.qasm").unwrap()
    }

    #[test]
    fn bell_pair_costs_what_the_formula_says() {
        let d = find_device("ideal-grid").unwrap();
        let c = circuit(
            "OPENQASM 2.0; include \"qelib1.inc\"; qreg q[2]; creg c[2];
             h q[0]; cx q[0],q[1]; measure q -> c;",
        );
        // Grid 6×6: qubits 0 and 1 are adjacent.
        let p = plan(&c, &d, &d.costs(), 2).unwrap();
        assert_eq!((p.gates_1q, p.gates_2q, p.measurements), (1, 1, 2));
        assert_eq!(p.shot_ns, 35 + 300 + 1_000);
        let k = d.costs();
        let dephase = 1_335 * 1_000_000 / 120_000 * 2;
        assert_eq!(p.shot_cost, k.gate_1q + k.gate_2q + 2 * k.readout + dephase);
        assert_eq!(p.cost(10), Some(10 * p.shot_cost));
    }

    #[test]
    fn distant_qubits_are_routed() {
        let d = find_device("noisy-line").unwrap();
        let c = circuit("OPENQASM 2.0; qreg q[3]; CX q[0],q[2];");
        let p = plan(&c, &d, &d.costs(), 3).unwrap();
        assert_eq!((p.gates_2q, p.routing_2q), (7, 6));
        assert_eq!(p.shot_ns, 7 * 300);
        // The route holds the qubit in between.
        assert_eq!(p.touched, 3);
    }

    #[test]
    fn conditioned_ops_wait_for_their_bits() {
        let d = find_device("noisy-line").unwrap();
        let c = circuit(
            "OPENQASM 2.0; include \"qelib1.inc\"; qreg q[2]; creg c[1];
             measure q[0] -> c[0]; if (c == 1) x q[1];",
        );
        let p = plan(&c, &d, &d.costs(), 2).unwrap();
        assert_eq!(p.shot_ns, 1_000 + 50);
        assert_eq!(p.touched, 2);
    }

    #[test]
    fn a_circuit_larger_than_its_container_is_refused() {
        let d = find_device("noisy-line").unwrap();
        let c = circuit("OPENQASM 2.0; qreg q[3];");
        let e = plan(&c, &d, &d.costs(), 2).unwrap_err();
        assert_eq!(
            e,
            QUnsupported::ContainerQubits {
                declared: 3,
                held: 2
            }
        );
    }
}
