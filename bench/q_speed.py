#!/usr/bin/env python3
"""Side-by-side speed: xdv's statevector provider against qiskit-aer (double and single
precision), Google's qsim (qsimcirq, single precision) and qulacs.

Circuits: QFT (an input layer of x/h, the textbook cp ladder, final swaps) and random circuits
(20 layers of u3 on every qubit, then CX on a random pairing). Each is written as OpenQASM 2.0
and run

- by `xdv q run --shots 1` (release build; the time includes starting the process, parsing and
  sampling one shot);
- by qiskit-aer's AerSimulator (statevector method, all threads, one shot; `run` + `result`,
  not building or transpiling the circuit), with precision "double" and "single";
- by qsim (`QSimSimulator(qsim_options={"t": threads, "f": 4})`, `run` with one repetition of
  a final measurement; building the cirq circuit is not timed);
- by qulacs (QuantumState + the circuit from its own gate API, `update_quantum_state`; building
  the circuit is not timed).

Before anything is timed, each circuit's output is checked, so that a fast wrong answer cannot
win: the exact distribution of its first min(n, 10) qubits from xdv (`q run --probabilities`
of the circuit measuring only those) is compared with the same marginal of Aer's (double and
single) and qsim's final state vector. The total variation distances are printed; the run stops
when Aer double is more than 1e-9 away or a single-precision engine more than 1e-4.

Each is timed 3 times and the best is reported. The effective bandwidth of a run is
gates × 2 × 16 B × 2^n / time: the memory traffic the circuit would need at one pass per gate.
Fusion does fewer passes, so it can exceed the machine's copy bandwidth, measured with numpy in
the same run (copy of a 1 GiB array: 2 GiB moved).

    bench/q_speed.sh 20 22 24 26      # creates target/bench-q-venv, builds xdv, runs this
"""

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cirq
import numpy as np
import qiskit_aer
import qsimcirq
import qulacs
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator

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


def u3_matrix(theta, phi, lam):
    """OpenQASM's u3, as qelib1.inc and Qiskit define it."""
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    return np.array(
        [[c, -np.exp(1j * lam) * s], [np.exp(1j * phi) * s, np.exp(1j * (phi + lam)) * c]],
        dtype=np.complex128,
    )


def to_cirq(n: int, gates, measure: bool):
    """The circuit for qsim. Qubits are ordered so that q[0] is the least significant bit of the
    state's index, as in Qiskit and xdv (qsim's own order is big-endian)."""
    q = cirq.LineQubit.range(n)
    ops = []
    for name, qs, ps in gates:
        if name == "x":
            ops.append(cirq.X(q[qs[0]]))
        elif name == "h":
            ops.append(cirq.H(q[qs[0]]))
        elif name == "cx":
            ops.append(cirq.CNOT(q[qs[0]], q[qs[1]]))
        elif name == "swap":
            ops.append(cirq.SWAP(q[qs[0]], q[qs[1]]))
        elif name == "u3":
            ops.append(cirq.MatrixGate(u3_matrix(*ps)).on(q[qs[0]]))
        elif name == "cp":
            ops.append(cirq.CZPowGate(exponent=ps[0] / math.pi).on(q[qs[0]], q[qs[1]]))
    if measure:
        ops.append(cirq.measure(*q, key="m"))
    return cirq.Circuit(ops), list(reversed(q))


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


def marginal(state, m: int):
    """The distribution of the low `m` bits of the index of a state vector."""
    p = np.abs(np.asarray(state, dtype=np.complex128)) ** 2
    return p.reshape(-1, 1 << m).sum(axis=0)


def xdv_marginal(n: int, gates, m: int, d: str):
    """xdv's exact distribution of q[0..m), from the circuit measuring only those qubits."""
    src = to_qasm(n, gates).replace("measure q -> c;\n", "".join(f"measure q[{i}] -> c[{i}];\n" for i in range(m)))
    src = src.replace(f"creg c[{n}];", f"creg c[{m}];")
    path = Path(d) / "marginal.qasm"
    path.write_text(src)
    out = subprocess.run([str(XDV), "q", "run", "--probabilities", "--json", str(path)], check=True, capture_output=True)
    p = np.zeros(1 << m)
    for key, v in json.loads(out.stdout)["probabilities"].items():
        p[int(key, 2)] = v
    return p


def tvd(a, b) -> float:
    return 0.5 * float(np.abs(a - b).sum())


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [20, 22, 24, 26]
    threads = os.cpu_count() or 1
    aer = AerSimulator(method="statevector")
    aer32 = AerSimulator(method="statevector", precision="single")
    qsim = qsimcirq.QSimSimulator(qsim_options={"t": threads, "f": 4})
    bw = copy_bandwidth()
    print(
        f"qiskit-aer {qiskit_aer.__version__}; qsimcirq {qsimcirq.__version__}; qulacs {getattr(qulacs, '__version__', '?')}; "
        f"{threads} threads; xdv {XDV}"
    )
    print(f"copy bandwidth (numpy, 1 GiB): {bw:.1f} GB/s")
    print(
        "| circuit | gates | xdv (s) | aer f64 (s) | aer f32 (s) | qsim f32 (s) | qulacs (s) "
        "| xdv / aer f64 | xdv / qsim | xdv GB/s | TVD aer f64 | TVD aer f32 | TVD qsim |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for kind, make in [("QFT", qft), ("random", rand)]:
            for n in sizes:
                gates = make(n)
                src = to_qasm(n, gates)
                path = Path(d) / f"{kind}{n}.qasm"
                path.write_text(src)
                qc = QuantumCircuit.from_qasm_str(src)
                circ = transpile(qc, aer, optimization_level=0)
                # The check: the same marginal from every engine, before anything is timed.
                m = min(n, 10)
                want = xdv_marginal(n, gates, m, d)
                nomeasure = qc.remove_final_measurements(inplace=False)
                nomeasure.save_statevector()
                sv_circ = transpile(nomeasure, aer, optimization_level=0)
                tv64 = tvd(want, marginal(aer.run(sv_circ).result().get_statevector(), m))
                tv32 = tvd(want, marginal(aer32.run(sv_circ).result().get_statevector(), m))
                cq, order = to_cirq(n, gates, measure=False)
                tvq = tvd(want, marginal(qsim.simulate(cq, qubit_order=order).final_state_vector, m))
                if tv64 > 1e-9 or tv32 > 1e-4 or tvq > 1e-4:
                    sys.exit(f"{kind}-{n}: the engines disagree (TVD aer f64 {tv64:.2e}, aer f32 {tv32:.2e}, qsim {tvq:.2e})")
                t_xdv = best(lambda: subprocess.run([str(XDV), "q", "run", "--shots", "1", str(path)], check=True, capture_output=True))
                t_aer = best(lambda: aer.run(circ, shots=1).result())
                circ32 = transpile(qc, aer32, optimization_level=0)
                t_aer32 = best(lambda: aer32.run(circ32, shots=1).result())
                cqm, _ = to_cirq(n, gates, measure=True)
                t_qsim = best(lambda: qsim.run(cqm, repetitions=1))
                qul = to_qulacs(n, gates)

                def run_qulacs():
                    s = qulacs.QuantumState(n)
                    qul.update_quantum_state(s)

                t_qul = best(run_qulacs)
                eff = len(gates) * 2 * 16 * 2**n / t_xdv / 1e9
                print(
                    f"| {kind}-{n} | {len(gates)} | {t_xdv:.3f} | {t_aer:.3f} | {t_aer32:.3f} | {t_qsim:.3f} | {t_qul:.3f} "
                    f"| {t_xdv / t_aer:.2f} | {t_xdv / t_qsim:.2f} | {eff:.1f} | {tv64:.1e} | {tv32:.1e} | {tvq:.1e} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
