#!/usr/bin/env python3
"""Side-by-side speed: xdv's statevector providers (f64 and f32) against qiskit-aer (double and
single precision), Google's qsim (qsimcirq, single precision) and qulacs; then xdv's density
provider against Aer's density-matrix method under the same thermal relaxation.

Circuits: QFT (an input layer of x/h, the textbook cp ladder, final swaps) and random circuits
(20 layers of u3 on every qubit, then CX on a random pairing). Each is written as OpenQASM 2.0
and run

- by `xdv q run --shots 1` and `xdv q run --shots 1 --provider statevector-f32` (release
  build; the time includes starting the process, parsing, fusing and sampling one shot);
- by qiskit-aer's AerSimulator (statevector method, all threads, one shot; `run` + `result`,
  not building or transpiling the circuit), with precision "double" and "single";
- by qsim (`QSimSimulator(qsim_options={"t": threads, "f": 4})`, `run` with one repetition of
  a final measurement; building the cirq circuit is not timed);
- by qulacs (QuantumState + the circuit from its own gate API, `update_quantum_state`; building
  the circuit is not timed).

Before anything is timed, each circuit's output is checked, so that a fast wrong answer cannot
win: the exact distribution of its first min(n, 10) qubits from xdv (`q run --probabilities`
of the circuit measuring only those) is compared with the same marginal of Aer's (double and
single), qsim's final state vector and xdv's own f32 provider. The total variation distances are
printed; the run stops when Aer double is more than 1e-9 away or a single-precision engine more
than 1e-4.

Each is timed 3 times and the best is reported. The effective bandwidth per pass of an xdv run
is passes × 2 × (16 or 8) B × 2^n / time, where passes is the number of memory passes of xdv's
fused plan (`q run --json` reports it): the traffic the plan moves, against the machine's copy
bandwidth, measured with numpy in the same run (copy of a 1 GiB array: 2 GiB moved).

The density table runs the random family at DENSITY sizes (default 8 10 12): `xdv q run
--provider density --shots 1` against AerSimulator(method="density_matrix") with
thermal_relaxation_error after every u3 (50 ns) and cx (300 ns), T1 = 50 µs, T2 = 70 µs, the
built-in density device's calibration; each distribution (readout error included) is checked
against Aer's within 1e-9 before it is timed.

PEERS=qsim times only xdv and qsim (the Aer and qulacs columns print nan; every engine is still
checked); DENSITY="" skips the density table.

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

# The density table uses the density fixtures' noise model and readout errors.
from q_density_reference import P01, P10, noise_model

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


def xdv_marginal(n: int, gates, m: int, d: str, provider: str = "statevector"):
    """xdv's exact distribution of q[0..m), from the circuit measuring only those qubits."""
    src = to_qasm(n, gates).replace("measure q -> c;\n", "".join(f"measure q[{i}] -> c[{i}];\n" for i in range(m)))
    src = src.replace(f"creg c[{n}];", f"creg c[{m}];")
    path = Path(d) / "marginal.qasm"
    path.write_text(src)
    out = subprocess.run([str(XDV), "q", "run", "--probabilities", "--json", "--provider", provider, str(path)], check=True, capture_output=True)
    p = np.zeros(1 << m)
    for key, v in json.loads(out.stdout)["probabilities"].items():
        p[int(key, 2)] = v
    return p


def xdv_passes(path: Path, provider: str) -> int:
    """Memory passes of xdv's fused plan of a circuit."""
    out = subprocess.run([str(XDV), "q", "run", "--shots", "1", "--json", "--provider", provider, str(path)], check=True, capture_output=True)
    return json.loads(out.stdout)["plan"]["passes"]


def aer_density_distribution(sim, circ, n: int):
    """The distribution over c (readout error included) from Aer's final density matrix."""
    rho = sim.run(circ).result().data()["density_matrix"]
    p = np.real(np.diag(np.asarray(rho.data))).copy()
    for q in range(n):
        # Readout error on bit q: P(read 1 | 0) = P01, P(read 0 | 1) = P10.

        p = p.reshape(-1, 2, 1 << q)
        zero, one = p[:, 0, :].copy(), p[:, 1, :].copy()
        p[:, 0, :] = zero * (1 - P01) + one * P10
        p[:, 1, :] = zero * P01 + one * (1 - P10)
        p = p.reshape(-1)
    return p


def density_table(sizes, d: str):
    noise = noise_model()
    sim = AerSimulator(method="density_matrix", noise_model=noise)
    print()
    print("| circuit | gates | xdv density (s) | aer density_matrix (s) | xdv / aer | TVD |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        gates = rand(n, depth=10)
        src = to_qasm(n, gates)
        path = Path(d) / f"density{n}.qasm"
        path.write_text(src)
        qc = QuantumCircuit.from_qasm_str(src)
        body = transpile(qc.remove_final_measurements(inplace=False), basis_gates=["u3", "cx"], optimization_level=0)
        body.save_density_matrix()
        out = subprocess.run([str(XDV), "q", "run", "--probabilities", "--json", "--provider", "density", str(path)], check=True, capture_output=True)
        want = np.zeros(1 << n)
        for key, v in json.loads(out.stdout)["probabilities"].items():
            want[int(key, 2)] = v
        tv = tvd(want, aer_density_distribution(sim, body, n))
        if tv > 1e-9:
            sys.exit(f"density-{n}: xdv and Aer disagree (TVD {tv:.2e})")
        t_xdv = best(lambda: subprocess.run([str(XDV), "q", "run", "--shots", "1", "--provider", "density", str(path)], check=True, capture_output=True))
        circ = transpile(qc, basis_gates=["u3", "cx"], optimization_level=0)
        t_aer = best(lambda: sim.run(circ, shots=1).result())
        print(f"| random-{n} (density) | {len(gates)} | {t_xdv:.3f} | {t_aer:.3f} | {t_xdv / t_aer:.2f} | {tv:.1e} |", flush=True)


def tvd(a, b) -> float:
    return 0.5 * float(np.abs(a - b).sum())


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [20, 22, 24, 26]
    threads = os.cpu_count() or 1
    # PEERS=qsim times only xdv and qsim (every engine is still checked); the others print nan.
    qsim_only = os.environ.get("PEERS", "all") == "qsim"
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
        "| circuit | gates | passes | xdv f64 (s) | xdv f32 (s) | aer f64 (s) | aer f32 (s) | qsim f32 (s) | qulacs (s) "
        "| f64 / aer f64 | f32 / qsim | f64 GB/s per pass | f32 GB/s per pass | TVD aer f64 | TVD aer f32 | TVD qsim | TVD xdv f32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
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
                tvx = tvd(want, xdv_marginal(n, gates, m, d, "statevector-f32"))
                nomeasure = qc.remove_final_measurements(inplace=False)
                nomeasure.save_statevector()
                sv_circ = transpile(nomeasure, aer, optimization_level=0)
                tv64 = tvd(want, marginal(aer.run(sv_circ).result().get_statevector(), m))
                tv32 = tvd(want, marginal(aer32.run(sv_circ).result().get_statevector(), m))
                cq, order = to_cirq(n, gates, measure=False)
                tvq = tvd(want, marginal(qsim.simulate(cq, qubit_order=order).final_state_vector, m))
                if tv64 > 1e-9 or tv32 > 1e-4 or tvq > 1e-4 or tvx > 1e-4:
                    sys.exit(f"{kind}-{n}: the engines disagree (TVD aer f64 {tv64:.2e}, aer f32 {tv32:.2e}, qsim {tvq:.2e}, xdv f32 {tvx:.2e})")
                passes = xdv_passes(path, "statevector")
                passes32 = xdv_passes(path, "statevector-f32")
                t_xdv = best(lambda: subprocess.run([str(XDV), "q", "run", "--shots", "1", str(path)], check=True, capture_output=True))
                t_xdv32 = best(lambda: subprocess.run([str(XDV), "q", "run", "--shots", "1", "--provider", "statevector-f32", str(path)], check=True, capture_output=True))
                cqm, _ = to_cirq(n, gates, measure=True)
                t_qsim = best(lambda: qsim.run(cqm, repetitions=1))
                t_aer = t_aer32 = t_qul = math.nan
                if not qsim_only:
                    t_aer = best(lambda: aer.run(circ, shots=1).result())
                    circ32 = transpile(qc, aer32, optimization_level=0)
                    t_aer32 = best(lambda: aer32.run(circ32, shots=1).result())
                    qul = to_qulacs(n, gates)

                    def run_qulacs():
                        s = qulacs.QuantumState(n)
                        qul.update_quantum_state(s)

                    t_qul = best(run_qulacs)
                bw64 = passes * 2 * 16 * 2**n / t_xdv / 1e9
                bw32 = passes32 * 2 * 8 * 2**n / t_xdv32 / 1e9
                print(
                    f"| {kind}-{n} | {len(gates)} | {passes} | {t_xdv:.3f} | {t_xdv32:.3f} | {t_aer:.3f} | {t_aer32:.3f} | {t_qsim:.3f} | {t_qul:.3f} "
                    f"| {t_xdv / t_aer:.2f} | {t_xdv32 / t_qsim:.2f} | {bw64:.1f} | {bw32:.1f} | {tv64:.1e} | {tv32:.1e} | {tvq:.1e} | {tvx:.1e} |",
                    flush=True,
                )
        density = [int(a) for a in os.environ.get("DENSITY", "8 10 12").split()]
        if density:
            density_table(density, d)


if __name__ == "__main__":
    main()
