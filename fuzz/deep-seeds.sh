#!/bin/sh
# Writes seed inputs that nest at, just past and far past the depth limits of the text front
# ends (MAX_EXPR_DEPTH = 64, if-chains, empty-gate expansion, TOML nesting) into
# fuzz/corpus/TARGET/, so the fuzzer starts at the limits instead of having to grow toward them.
# Run from the repository root; the largest seed is about 15 KB (see -max_len in
# docs/reliability.md#fuzzing).
set -eu
rep() { awk -v s="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", s }'; }
q=fuzz/corpus/qasm
p=fuzz/corpus/phi_transform
m=fuzz/corpus/manifest
mkdir -p "$q" "$p" "$m"
head='OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1];'
for n in 63 64 65 3000; do
  { printf '%s rz(' "$head"; rep '(' $n; printf 1; rep ')' $n; printf ') q[0];\n'; } > "$q/deep-parens-$n.qasm"
  { printf '%s rz(' "$head"; rep '-' $n; printf '1) q[0];\n'; } > "$q/deep-minus-$n.qasm"
  { printf '%s rz(1' "$head"; rep '+1' $n; printf ') q[0];\n'; } > "$q/deep-chain-$n.qasm"
  { printf '%s rz(1' "$head"; rep '^1' $n; printf ') q[0];\n'; } > "$q/deep-pow-$n.qasm"
  { printf '%s rz(' "$head"; rep 'sin(' $n; printf 1; rep ')' $n; printf ') q[0];\n'; } > "$q/deep-sin-$n.qasm"
  { printf 'frame d0 = newframe(q0, 5e9, 0);\nshift_phase(d0, '; rep '(' $n; printf 1; rep ')' $n; printf ');\n'; } > "$p/deep-parens-$n.phi"
  { printf 'frame d0 = newframe(q0, 5e9, 0);\nshift_phase(d0, '; rep '-' $n; printf '1);\n'; } > "$p/deep-minus-$n.phi"
done
{ printf '%s\n' "$head"; rep 'if (c == 0) ' 500; printf 'x q[0];\n'; } > "$q/deep-if.qasm"
{
  printf 'OPENQASM 2.0; qreg q[1]; gate g0 a { }\n'
  i=1
  while [ $i -lt 40 ]; do printf 'gate g%d a { g%d a; g%d a; }\n' $i $((i - 1)) $((i - 1)); i=$((i + 1)); done
  printf 'g39 q[0];\n'
} > "$q/empty-gates.qasm"
{ printf 'OPENQASM 2.0; qreg q[1];\ngate r a { r a; r a; }\nr q[0];\n'; } > "$q/self-call.qasm"
vhm='[[vhm]]
name = "a"
[vhm.k]
module = "g.wat"
[x]
'
{ printf '%sa = ' "$vhm"; rep '[' 3000; rep ']' 3000; printf '\n'; } > "$m/deep-array.toml"
{ printf '%sa = ' "$vhm"; rep '{b=' 2000; printf 1; rep '}' 2000; printf '\n'; } > "$m/deep-inline.toml"
{ printf '%s' "$vhm"; rep 'a.' 2000; printf 'a = 1\n'; } > "$m/deep-dotted.toml"
