#!/usr/bin/env bash
# Builds every C example guest (sdk/c-examples/NAME.c) to examples/sdk/guests/c-NAME.wasm with
# the SDK's one-line build. No arguments; safe to rerun. Needs clang and lld (wasm-ld).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/examples/sdk/guests"
for tool in clang wasm-ld; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool is missing: apt-get install -y clang lld" >&2
        exit 1
    fi
done
mkdir -p "$out"
for src in "$root"/sdk/c-examples/*.c; do
    name="$(basename "$src" .c)"
    clang --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry -Wl,-z,stack-size=16384 \
        -Wall -Wextra -Werror -I "$root/sdk/c" "$src" -o "$out/c-$name.wasm"
    echo "built examples/sdk/guests/c-$name.wasm"
done
