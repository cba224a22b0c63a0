#!/usr/bin/env bash
# Schema fuzzing of `xdv serve` (issue #13): schemathesis, in a venv this script creates,
# against a running server's OpenAPI document, with a bounded number of examples per
# operation. Every response must conform to the document (status, content type, body schema,
# headers) and none may be a 5xx; then the server must still answer and stop cleanly, and its
# trace must replay. Usage: .ci/schemathesis.sh [XDV_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
XDV=${1:-target/debug/xdv}
VENV=target/schemathesis-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV" 2>/dev/null || {
    (apt-get update -qq && apt-get install -y -qq python3-venv) || sudo apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q 'schemathesis>=4,<5'
fi
WORK=$(mktemp -d)
"$XDV" serve examples/serve.toml --listen 127.0.0.1:0 --trace "$WORK/fuzz.xdv" 2>"$WORK/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$WORK/serve.log" && break; sleep 0.1; done
BASE=$(sed -n 's|.*listening on \(http://[^/]*\)/v1.*|\1|p' "$WORK/serve.log")
[ -n "$BASE" ] || { cat "$WORK/serve.log"; exit 1; }
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
for who in alice operator; do
  TOKEN=$(awk -v w="$who" '$1==w{print $2}' examples/serve.tokens)
  "$VENV/bin/schemathesis" run "$BASE/v1/openapi.json" --url "$BASE" \
    -H "Authorization: Bearer $TOKEN" --checks "$CHECKS" \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --generation-deterministic --no-color
done
"$XDV" ctl --server "$BASE" host >/dev/null
kill -TERM $SERVER
wait $SERVER
"$XDV" replay "$WORK/fuzz.xdv"
