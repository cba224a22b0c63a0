#!/usr/bin/env python3
"""Side-by-side speed: xdv's statevector provider against qiskit-aer and qulacs.

Circuits: QFT (an input layer of x/h, the textbook cp ladder, final swaps) and random circuits
(20 layers of u3 on every qubit, then CX on a random pairing). Each is written as OpenQASM 2.0
and run

- by `xdv q run --shots 1` (release build; the time includes starting the process, parsing and
  sampling one shot);
- by qiskit-aer's AerSimulator (statevector method, all threads, one shot; `run` + `result`,
  not building or transpiling the circuit);
- by qulacs (QuantumState + the circuit from its own gate API, `update_quantum_state`; building
  the circuit is not timed), when qulacs is installed.

Each is timed 3 times and the best is reported. The effective bandwidth of a run is
gates × 2 × 16 B × 2^n / time: the memory traffic the circuit would need at one pass per gate.
Fusion does fewer passes, so it can exceed the machine's copy bandwidth, measured with numpy
(copy of a 1 GiB array: 2 GiB moved).

    python3 -m venv bench/.venv && bench/.venv/bin/pip install qiskit qiskit-aer qulacs
    cargo build --release && bench/.venv/bin/python bench/q_speed.py 16 20 22 24 26
"""

import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import qiskit_aer
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator

try:
    import qulacs
except ImportError:  # qulacs is optional: its column is left out
    qulacs = None

ROOT = Path(__file__).resolve().parent.parent
XDV = ROOT / "target" / "release" / "xdv"


def qft(n: int):
    """The QFT circuit as (qasm, gate list); gates are (name, qubits, params)."""
    gates = []
    for i in range(n):
        gates.append(("x", [i], []) if i % 3 == 0 else ("h", [i], []))
    for j in reversed(range(n)):
        gates.append(("h", [j], []))
        for k in reversed(range(j)):
            gates.append(("cp", [j, k], [math.pi / 2 ** (j - k)]))
    for i in range(n // 2):
        gates.append(("swap", [i, n - 1 - i], []))
    return gates


def rand(n: int, depth: int = 20, seed: int = 1):
    r = random.Random(seed)
    gates = []
    for _ in range(depth):
        for q in range(n):
            gates.append(("u3", [q], [r.uniform(0, 2 * math.pi) for _ in range(3)]))
        perm = list(range(n))
        r.shuffle(perm)
        for i in range(0, n - 1, 2):
            gates.append(("cx", [perm[i], perm[i + 1]], []))
    return gates


def to_qasm(n: int, gates) -> str:
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for name, qs, ps in gates:
        args = ",".join(f"q[{q}]" for q in qs)
        params = f"({','.join(f'{p:.17g}' for p in ps)})" if ps else ""
        lines.append(f"{name}{params} {args};")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def to_qulacs(n: int, gates):
    c = qulacs.QuantumCircuit(n)
    for name, qs, ps in gates:
        if name == "x":
            c.add_X_gate(qs[0])
        elif name == "h":
            c.add_H_gate(qs[0])
        elif name == "cx":
            c.add_CNOT_gate(qs[0], qs[1])
        elif name == "swap":
            c.add_SWAP_gate(qs[0], qs[1])
        elif name == "u3":
            c.add_U3_gate(qs[0], *ps)
        elif name == "cp":
            # diag(1, 1, 1, e^{iλ}) on the pair.
            m = np.diag([1, 1, 1, np.exp(1j * ps[0])])
            c.add_dense_matrix_gate(qs, m)
    return c


def best(f, tries=3):
    times = []
    for _ in range(tries):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def copy_bandwidth() -> float:
    a = np.ones(1 << 27, dtype=np.float64)  # 1 GiB
    b = np.empty_like(a)
    t = best(lambda: np.copyto(b, a))
    return 2 * a.nbytes / t / 1e9


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [16, 20, 22, 24, 26]
    sim = AerSimulator(method="statevector")
    bw = copy_bandwidth()
    print(f"qiskit-aer {qiskit_aer.__version__}; qulacs {getattr(qulacs, '__version__', 'not installed')}; xdv {XDV}")
    print(f"copy bandwidth (numpy, 1 GiB): {bw:.1f} GB/s")
    head = "| circuit | gates | xdv (s) | qiskit-aer (s) | xdv / aer |"
    sep = "|---|---|---|---|---|"
    if qulacs is not None:
        head += " qulacs (s) | xdv / qulacs |"
        sep += "---|---|"
    head += " xdv effective GB/s |"
    sep += "---|"
    print(head)
    print(sep)
    with tempfile.TemporaryDirectory() as d:
        for kind, make in [("QFT", qft), ("random", rand)]:
            for n in sizes:
                gates = make(n)
                src = to_qasm(n, gates)
                path = Path(d) / f"{kind}{n}.qasm"
                path.write_text(src)
                t_xdv = best(lambda: subprocess.run([str(XDV), "q", "run", "--shots", "1", str(path)], check=True, capture_output=True))
                circ = transpile(QuantumCircuit.from_qasm_str(src), sim, optimization_level=0)
                t_aer = best(lambda: sim.run(circ, shots=1).result())
                row = f"| {kind}-{n} | {len(gates)} | {t_xdv:.3f} | {t_aer:.3f} | {t_xdv / t_aer:.2f} |"
                if qulacs is not None:
                    qc = to_qulacs(n, gates)

                    def run_qulacs():
                        s = qulacs.QuantumState(n)
                        qc.update_quantum_state(s)

                    t_q = best(run_qulacs)
                    row += f" {t_q:.3f} | {t_xdv / t_q:.2f} |"
                eff = len(gates) * 2 * 16 * 2**n / t_xdv / 1e9
                row += f" {eff:.1f} |"
                print(row, flush=True)


if __name__ == "__main__":
    main()
