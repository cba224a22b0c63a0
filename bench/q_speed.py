#!/usr/bin/env python3
"""Side-by-side speed: xdv's statevector provider against qiskit-aer on QFT circuits.

Each circuit is written as OpenQASM 2.0, run by `xdv q run --shots 1` (release build; the time
includes starting the process and parsing) and by qiskit-aer's AerSimulator (statevector method,
all threads, one shot; the time covers `run` + `result`, not building the circuit). Each is
timed 3 times and the best is reported.

    python3 -m venv bench/.venv && bench/.venv/bin/pip install qiskit qiskit-aer
    cargo build --release && bench/.venv/bin/python bench/q_speed.py 16 20 22 24
"""

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import qiskit_aer
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator

ROOT = Path(__file__).resolve().parent.parent
XDV = ROOT / "target" / "release" / "xdv"


def qft_qasm(n: int) -> str:
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    for i in range(n):
        lines.append(f"x q[{i}];" if i % 3 == 0 else f"h q[{i}];")
    for j in reversed(range(n)):
        lines.append(f"h q[{j}];")
        for k in reversed(range(j)):
            lines.append(f"cp({math.pi / 2 ** (j - k):.17g}) q[{j}],q[{k}];")
    for i in range(n // 2):
        lines.append(f"swap q[{i}],q[{n - 1 - i}];")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def best(f, tries=3):
    times = []
    for _ in range(tries):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [16, 20, 22, 24]
    sim = AerSimulator(method="statevector")
    print(f"qiskit-aer {qiskit_aer.__version__}; xdv {XDV}")
    print("| circuit | xdv (s) | qiskit-aer (s) | xdv / aer |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            src = qft_qasm(n)
            path = Path(d) / f"qft{n}.qasm"
            path.write_text(src)
            t_xdv = best(lambda: subprocess.run([str(XDV), "q", "run", "--shots", "1", str(path)], check=True, capture_output=True))
            circ = transpile(QuantumCircuit.from_qasm_str(src), sim, optimization_level=0)
            t_aer = best(lambda: sim.run(circ, shots=1).result())
            print(f"| QFT-{n} | {t_xdv:.3f} | {t_aer:.3f} | {t_xdv / t_aer:.2f} |")


if __name__ == "__main__":
    main()
