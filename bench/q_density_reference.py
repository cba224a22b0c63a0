#!/usr/bin/env python3
"""Reference distributions from qiskit-aer's noisy density-matrix simulation for xdv's `density`
provider: seeded random circuits of u3 and cx on 2–5 qubits, thermal relaxation after every gate
(T1 = 50 µs, T2 = 70 µs; 50 ns for u3, 300 ns for cx on each of its qubits), then readout error
(2 % 0→1, 4 % 1→0) on every measured bit. Writes crates/xdv-q/tests/fixtures/aer_density.json;
the test `density_matches_qiskit_aer_noisy` compares within 1e-6.

    python3 -m venv bench/.venv && bench/.venv/bin/pip install qiskit qiskit-aer
    bench/.venv/bin/python bench/q_density_reference.py
"""

import json
import math
import random
from pathlib import Path

import qiskit
import qiskit_aer
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, thermal_relaxation_error

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates" / "xdv-q" / "tests" / "fixtures" / "aer_density.json"
T1, T2, G1, G2, P01, P10 = 50_000.0, 70_000.0, 50.0, 300.0, 0.02, 0.04


def noise_model():
    nm = NoiseModel()
    e1 = thermal_relaxation_error(T1, T2, G1)
    e2 = thermal_relaxation_error(T1, T2, G2).expand(thermal_relaxation_error(T1, T2, G2))
    nm.add_all_qubit_quantum_error(e1, ["u3"])
    nm.add_all_qubit_quantum_error(e2, ["cx"])
    nm.add_basis_gates(["u3", "cx"])
    return nm


def random_qasm(seed: int, n: int, depth: int) -> str:
    rng = random.Random(1000 + seed)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for _ in range(depth):
        if rng.random() < 0.6:
            th, ph, la = (rng.uniform(-math.pi, math.pi) for _ in range(3))
            lines.append(f"u3({th:.17g},{ph:.17g},{la:.17g}) q[{rng.randrange(n)}];")
        else:
            a, b = rng.sample(range(n), 2)
            lines.append(f"cx q[{a}],q[{b}];")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def distribution(src: str):
    circ = QuantumCircuit.from_qasm_str(src)
    n = circ.num_qubits
    body = circ.remove_final_measurements(inplace=False)
    body.save_density_matrix()
    sim = AerSimulator(method="density_matrix", noise_model=noise_model())
    rho = sim.run(body).result().data()["density_matrix"]
    diag = [float(rho.data[i, i].real) for i in range(2**n)]
    probs = {}
    for i, p in enumerate(diag):
        for flips in range(2**n):
            w = p
            bits = []
            for q in range(n):
                truth = (i >> q) & 1
                flip = (flips >> q) & 1
                w *= [[1 - P01, P01], [1 - P10, P10]][truth][flip]
                bits.append(truth ^ flip)
            key = "".join(str(b) for b in reversed(bits))  # c[q] = q, one register
            probs[key] = probs.get(key, 0.0) + w
    return {k: v for k, v in sorted(probs.items()) if v > 1e-12}


def main():
    entries = []
    for seed in range(24):
        n = 2 + seed % 4
        src = random_qasm(seed, n, 8 + 4 * n)
        entries.append({"name": f"noisy_random_{seed}", "qasm": src, "probabilities": distribution(src)})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"qiskit": qiskit.__version__, "qiskit_aer": qiskit_aer.__version__, "calibration": {"t1_ns": T1, "t2_ns": T2, "gate_1q_ns": G1, "gate_2q_ns": G2, "readout_p01": P01, "readout_p10": P10}, "circuits": entries}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(entries)} circuits)")


if __name__ == "__main__":
    main()
