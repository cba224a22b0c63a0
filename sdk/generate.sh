#!/usr/bin/env bash
# Regenerates the SDKs' ABI layers from the ABI tables in crates/xdv-k (the one source of truth):
# sdk/c/xdv_abi.h and sdk/rust/xdv-guest/src/sys.rs. A test fails while they are out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p xdv
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
target/debug/xdv abi --c-header > "$tmp/xdv_abi.h"
target/debug/xdv abi --rust > "$tmp/sys.rs"
mv "$tmp/xdv_abi.h" sdk/c/xdv_abi.h
mv "$tmp/sys.rs" sdk/rust/xdv-guest/src/sys.rs
echo "regenerated sdk/c/xdv_abi.h and sdk/rust/xdv-guest/src/sys.rs"
