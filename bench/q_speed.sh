#!/usr/bin/env bash
# The side-by-side Q speed benchmark (docs/benchmarks.md): creates its own virtual environment
# with the peers (qiskit, qiskit-aer, qsimcirq, qulacs), builds xdv in release, and runs
# bench/q_speed.py on the sizes given (default 20 22 24 26). The test suite never needs them.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-q-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q qiskit qiskit-aer qsimcirq qulacs numpy
cargo build --release -p xdv
exec "$venv/bin/python" bench/q_speed.py "$@"
