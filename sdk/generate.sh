#!/usr/bin/env bash
# Regenerates the SDKs' ABI layers from the ABI tables in crates/xdv-k (the one source of truth):
# sdk/c/xdv_abi.h and sdk/rust/xdv-guest/src/sys.rs. A test fails while they are out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -p xdv -- abi --c-header > sdk/c/xdv_abi.h
cargo run -q -p xdv -- abi --rust > sdk/rust/xdv-guest/src/sys.rs
echo "regenerated sdk/c/xdv_abi.h and sdk/rust/xdv-guest/src/sys.rs"
