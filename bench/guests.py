#!/usr/bin/env python3
"""SDK guests against the hand-written WAT guest doing the same work: module bytes, the fuel the
guest itself used (total fuel less the host work charged for its Q jobs), and the wall time of
`xdv run` (best of 5). Needs the release binary and the built SDK examples:

    cargo build --release -p xdv && sdk/build-examples.sh && python3 bench/guests.py
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XDV = os.path.join(ROOT, "target", "release", "xdv")
CASES = [
    ("VQE loop", "WAT (hand-written)", "examples/q-vqe.toml", "examples/guests/q-vqe.wat"),
    ("VQE loop", "Rust SDK", "examples/sdk/rust-vqe.toml", "examples/sdk/guests/rust-vqe.wasm"),
    ("VQE loop", "C SDK", "examples/sdk/c-vqe.toml", "examples/sdk/guests/c-vqe.wasm"),
    ("client/server", "WAT (hand-written)", "examples/client-server.toml", "examples/guests/client.wat examples/guests/server.wat"),
    ("client/server", "Rust SDK", "examples/sdk/rust-client-server.toml", "examples/sdk/guests/rust-client.wasm examples/sdk/guests/rust-server.wasm"),
    ("client/server", "C SDK", "examples/sdk/c-client-server.toml", "examples/sdk/guests/c-client.wasm examples/sdk/guests/c-server.wasm"),
]


def wat2wasm():
    """`wasmtime.wat2wasm` from a venv this script creates (target/bench-guests-venv)."""
    venv = os.path.join(ROOT, "target", "bench-guests-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "wasmtime"], check=True)
    return py


def module_bytes(paths):
    """Bytes of the binary module(s); WAT is assembled first, as xdv does."""
    total = 0
    for p in paths.split():
        full = os.path.join(ROOT, p)
        if p.endswith(".wat"):
            code = "import sys, wasmtime; print(len(wasmtime.wat2wasm(open(sys.argv[1]).read())))"
            out = subprocess.run([wat2wasm(), "-c", code, full], capture_output=True, text=True, check=True)
            total += int(out.stdout)
        else:
            total += os.path.getsize(full)
    return total


def run(manifest):
    with tempfile.TemporaryDirectory() as d:
        trace = os.path.join(d, "t.xdv")
        best = None
        for _ in range(5):
            if os.path.exists(trace):
                os.remove(trace)
            t0 = time.perf_counter()
            out = subprocess.run([XDV, "run", manifest, "--trace", trace, "--json"], cwd=ROOT, capture_output=True, check=True)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        summary = json.loads(out.stdout)
        fuel = sum(r["used"] or 0 for r in summary["resource_table"] if r["resource"] == "fuel")
        shown = subprocess.run([XDV, "trace", "show", trace, "--json"], capture_output=True, check=True, text=True)
        host = 0
        jobs = 0
        for line in shown.stdout.splitlines():
            e = json.loads(line)
            if e["kind"] == "host_work":
                host += e["event"]["HostWork"]["fuel"]
            if e["kind"] == "q_job_done":
                jobs += 1
        return fuel - host, jobs, best


def main():
    rows = []
    base = {}
    for work, label, manifest, modules in CASES:
        if not all(os.path.exists(os.path.join(ROOT, m)) for m in modules.split()):
            print(f"skipping {label} {work}: not built (sdk/build-examples.sh)", file=sys.stderr)
            continue
        fuel, jobs, wall = run(manifest)
        if label.startswith("WAT"):
            base[work] = fuel
        ratio = fuel / base[work] if work in base else float("nan")
        rows.append((work, label, module_bytes(modules), fuel, ratio, jobs, wall))
    print("| work | guest | module bytes | guest fuel | fuel / WAT | Q jobs | `xdv run` wall (best of 5) |")
    print("|---|---|---|---|---|---|---|")
    for work, label, size, fuel, ratio, jobs, wall in rows:
        print(f"| {work} | {label} | {size} | {fuel} | {ratio:.2f} | {jobs} | {wall * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
