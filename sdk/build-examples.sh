#!/usr/bin/env bash
# Builds every Rust and C example guest to the .wasm files examples/sdk/*.toml name
# (examples/sdk/guests/{rust,c}-NAME.wasm). No arguments; safe to rerun.
#
# Needs: the wasm32-unknown-unknown Rust target (`rustup target add wasm32-unknown-unknown`)
# and clang + lld (`apt-get install -y clang lld`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/examples/sdk/guests"
mkdir -p "$out"

# Rust: the examples are a workspace of their own (sdk/rust), built for wasm32 by its
# .cargo/config.toml, so the host workspace never needs the target.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "error: the wasm32-unknown-unknown target is missing: rustup target add wasm32-unknown-unknown" >&2
    exit 1
fi
# Its own target folder, whatever CARGO_TARGET_DIR says, so the modules are where we copy from.
export CARGO_TARGET_DIR="$root/sdk/rust/target"
(cd "$root/sdk/rust" && cargo build --release --quiet)
for dir in "$root"/sdk/rust/examples/*/; do
    name="$(basename "$dir")"
    cp "$root/sdk/rust/target/wasm32-unknown-unknown/release/${name//-/_}.wasm" "$out/rust-$name.wasm"
    echo "built examples/sdk/guests/rust-$name.wasm"
done

# C: one translation unit per guest, no libc.
"$root/sdk/c/build-c-examples.sh"
