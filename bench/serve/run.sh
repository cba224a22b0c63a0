#!/usr/bin/env bash
# Side-by-side benchmarks of `xdv serve` (docs/benchmarks.md, "The service"):
#   1. GET /v1/vhms/{name} with wrk while 100 compute-bound VHMs run, and the same request
#      against a bare axum handler (crates/xdv-serve/examples/bare_axum.rs) in the same run;
#   2. the hypervisor's progress (virtual ns per wall second) on those VHMs with and without
#      the API load;
#   3. VHM creations through the API, committed and acknowledged, on an idle host.
# Needs wrk (Debian: apt-get install wrk) and a release build:
#   cargo build --release -p xdv && cargo build --release -p xdv-serve --example bare_axum
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
XDV=target/release/xdv
BARE=target/release/examples/bare_axum
DUR=${DUR:-10}
# The load generator is pinned to the last CPU, so it competes with the server's threads, not
# with the hypervisor thread for every CPU (PIN= to leave it unpinned).
if [ -z "${PIN+x}" ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN="taskset -c $(( $(nproc) - 1 ))"
fi
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
# The example config's tokens (examples/serve.tokens) and their hashes.
OPH=35b8b047af00be39e8f469153688a43e8b0a92cd472c64c6d5c01553eff51cc2
T=a1111ffa220be5267070a2acf35f3eaacd823848fd53ada59d42425a93992444
TH=eb0005c6af80ad1171fda3332f77941f35909da121edaac11199a942d2fbad51
cat > "$WORK/bench.toml" <<TOML
[host]
seed = 1
ns_per_fuel = 1
slice_fuel = 100_000
[serve]
epoch_ns = ${EPOCH_NS:-1000000}
operator_token_hash = "$OPH"
requests_per_s = 1000000
request_burst = 1000000
creates_per_s = 1000000
create_burst = 1000000
[[tenant]]
name = "bench"
token_hash = "$TH"
fuel = 1_000_000_000_000_000_000
memory = "64 GiB"
vcpus = 4096
max_vhms = 4096
TOML
AUTH="Authorization: Bearer $T"
start_server() { # $1 port, $2 trace
  $XDV serve "$WORK/bench.toml" --listen 127.0.0.1:$1 --trace "$2" 2>"$WORK/serve-$1.log" >/dev/null &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$1/v1/host" >/dev/null && return; sleep 0.05; done
  echo "server did not start"; cat "$WORK/serve-$1.log"; exit 1
}
vtime() { curl -s "127.0.0.1:$1/v1/host" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual_time_ns"])'; }
progress() { # $1 port, $2 seconds: virtual ns per wall second
  local a b; a=$(vtime $1); sleep $2; b=$(vtime $1); echo $(( (b - a) / $2 ))
}
wrk_row() { # $1 label, $2 url, extra args
  local out; out=$(${PIN:-} wrk -t2 -c16 -d${DUR}s --latency "${@:3}" "$2")
  local rps p99; rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  echo "| $1 | $rps | $p99 |"
}

start_server 7920 "$WORK/compute.xdv"
ID=$(curl -s -H "$AUTH" --data-binary @examples/guests/compute.wat 127.0.0.1:7920/v1/modules | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for i in $(seq 0 99); do
  curl -sf -H "$AUTH" -H 'content-type: application/json' 127.0.0.1:7920/v1/vhms \
    -d "{\"name\":\"c$i\",\"k\":{\"module\":\"$ID\",\"memory_limit\":\"64 KiB\"},\"policy\":{\"fuel_quota\":10000000000000}}" >/dev/null
done
echo "100 compute-bound VHMs running (epoch ${EPOCH_NS:-1000000} ns, ${DUR} s per measurement)"
IDLE=$(progress 7920 $DUR)
echo
echo "| target | requests/s | p99 latency |"
echo "|---|---|---|"
wrk_row "xdv serve: GET /v1/vhms/c0" "http://127.0.0.1:7920/v1/vhms/c0" -H "$AUTH" > "$WORK/xdv.row" &
WRK=$!
LOADED=$(progress 7920 $DUR)
wait $WRK
cat "$WORK/xdv.row"
$BARE 127.0.0.1:7921 &
BAREPID=$!
sleep 0.3
wrk_row "bare axum handler, same JSON" "http://127.0.0.1:7921/v1/vhms/c0"
echo
echo "| hypervisor progress on 100 compute VHMs | virtual ns per wall s |"
echo "|---|---|"
echo "| no API traffic | $IDLE |"
echo "| under the GET load above | $LOADED |"
python3 -c "print('| overhead | %.1f %% |' % (100 * (1 - $LOADED / $IDLE)))"
kill $BAREPID; kill -TERM $SERVER; wait $SERVER || true

start_server 7922 "$WORK/create.xdv"
HID=$(curl -s -H "$AUTH" --data-binary @examples/guests/hello.wat 127.0.0.1:7922/v1/modules | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
cat > "$WORK/create.lua" <<LUA
local counter = 0
local threads = {}
function setup(thread) counter = counter + 1; thread:set("tid", counter); table.insert(threads, thread) end
function init(args) n = 0; bad = 0 end
function request()
  n = n + 1
  local body = string.format('{"name":"h%d-%d","k":{"module":"$HID","memory_limit":"64 KiB","vcpus":1},"policy":{"fuel_quota":100000}}', tid, n)
  return wrk.format("POST", "/v1/vhms", {["Authorization"] = "Bearer $T", ["Content-Type"] = "application/json"}, body)
end
function response(status) if status ~= 201 then bad = bad + 1 end end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format("not 201: %d\n", b))
end
LUA
echo
out=$(wrk -t2 -c8 -d${DUR}s --latency -s "$WORK/create.lua" http://127.0.0.1:7922)
echo "| VHM creations through the API (committed, acknowledged) | $(echo "$out" | awk '/Requests\/sec/{print $2}') per s | p99 $(echo "$out" | awk '$1=="99%"{print $2}') | $(echo "$out" | grep 'not 201') |"
