#!/usr/bin/env python3
"""Reference distributions from qiskit-aer for xdv's statevector provider.

For every QASMBench small/ circuit that xdv reads, has only terminal measurements and at most
14 qubits, and for seeded random circuits, this script computes the exact probability of each
classical outcome with qiskit-aer's statevector method, keyed the way Qiskit keys counts
(registers in reverse declaration order, separated by spaces, most significant bit first), and
writes them to crates/xdv-q/tests/fixtures/aer_reference.json. The test
`statevector_matches_qiskit_aer` compares xdv with them within 1e-9.

Run (creates its own virtual environment):
    python3 -m venv bench/.venv && bench/.venv/bin/pip install qiskit qiskit-aer
    bench/.venv/bin/python bench/q_reference.py
"""

import json
import math
import random
import subprocess
from pathlib import Path

import qiskit
import qiskit_aer
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "qasmbench" / "small"
OUT = ROOT / "crates" / "xdv-q" / "tests" / "fixtures" / "aer_reference.json"
GATES_1Q = ["h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx"]
GATES_1Q_PARAM = ["rx", "ry", "rz", "p"]
GATES_2Q = ["cx", "cz", "swap", "ch", "cy"]


def distribution(circ: QuantumCircuit):
    """Exact outcome probabilities of a circuit whose measurements are all terminal."""
    measured = {}  # clbit index -> qubit index (the last measurement into a bit wins)
    body = circ.copy_empty_like()
    for inst in circ.data:
        if inst.operation.name == "measure":
            q = circ.find_bit(inst.qubits[0]).index
            c = circ.find_bit(inst.clbits[0]).index
            measured[c] = q
        elif inst.operation.name != "barrier":
            body.append(inst)
    body.save_statevector()
    sim = AerSimulator(method="statevector")
    sv = sim.run(transpile(body, sim, optimization_level=0)).result().get_statevector()
    probs = {}
    n_cl = circ.num_clbits
    for i, amp in enumerate(sv.data):
        p = abs(amp) ** 2
        if p < 1e-15:
            continue
        bits = [0] * n_cl
        for c, q in measured.items():
            bits[c] = (i >> q) & 1
        groups = []
        offset = 0
        regs = []
        for reg in circ.cregs:
            regs.append((offset, reg.size))
            offset += reg.size
        for off, size in reversed(regs):
            groups.append("".join(str(bits[off + k]) for k in reversed(range(size))))
        key = " ".join(groups)
        probs[key] = probs.get(key, 0.0) + p
    return {k: v for k, v in sorted(probs.items()) if v > 1e-12}


def terminal(circ: QuantumCircuit):
    done = set()
    for inst in circ.data:
        name = inst.operation.name
        qs = [circ.find_bit(q).index for q in inst.qubits]
        if name == "measure":
            done.update(qs)
        elif name in ("reset",) or inst.operation.condition is not None if hasattr(inst.operation, "condition") else False:
            return False
        elif name != "barrier" and any(q in done for q in qs):
            return False
    return True


def random_qasm(seed: int, n: int, depth: int) -> str:
    rng = random.Random(seed)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for _ in range(depth):
        kind = rng.random()
        if kind < 0.35:
            lines.append(f"{rng.choice(GATES_1Q)} q[{rng.randrange(n)}];")
        elif kind < 0.6:
            lines.append(f"{rng.choice(GATES_1Q_PARAM)}({rng.uniform(-math.pi, math.pi):.17g}) q[{rng.randrange(n)}];")
        elif kind < 0.7:
            th, ph, la = (rng.uniform(-math.pi, math.pi) for _ in range(3))
            lines.append(f"u3({th:.17g},{ph:.17g},{la:.17g}) q[{rng.randrange(n)}];")
        else:
            a, b = rng.sample(range(n), 2)
            lines.append(f"{rng.choice(GATES_2Q)} q[{a}],q[{b}];")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def main():
    xdv = ROOT / "target" / "debug" / "xdv"
    entries = []
    for path in sorted(CORPUS.glob("*/*.qasm")):
        rel = path.relative_to(CORPUS.parent).as_posix()
        if subprocess.run([str(xdv), "q", "check", str(path)], capture_output=True).returncode != 0:
            continue  # refused by xdv (the corpus's known defects)
        try:
            circ = QuantumCircuit.from_qasm_file(str(path))
        except Exception as e:  # noqa: BLE001 - report and skip what Qiskit cannot read either
            print(f"skip {rel}: qiskit cannot read it: {e}")
            continue
        if circ.num_qubits > 14 or not terminal(circ):
            continue
        entries.append({"name": rel, "probabilities": distribution(circ)})
        print(f"{rel}: {len(entries[-1]['probabilities'])} outcomes")
    for seed in range(40):
        n = 2 + seed % 7
        src = random_qasm(seed, n, 12 + 3 * n)
        entries.append({"name": f"random_{seed}", "qasm": src, "probabilities": distribution(QuantumCircuit.from_qasm_str(src))})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"qiskit": qiskit.__version__, "qiskit_aer": qiskit_aer.__version__, "circuits": entries}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(entries)} circuits)")


if __name__ == "__main__":
    main()
