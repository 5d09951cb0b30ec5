#!/usr/bin/env bash
# Foundation benchmark, noise-free companion to foundation.sh: user-space instructions per
# request for GET /livez, /livez sent normalize's request bytes (control), and the
# authenticated POST /api/c2c/normalize, counted by valgrind's callgrind on the release
# build with 1 Pingora worker thread and wrk -c50.
#
# Why: this VM's speed drifts by tens of percent between seconds, so req/s ratios move
# by several points from run to run; instruction counts do not. They leave out the kernel
# (the same two syscalls per request for every endpoint) and cache effects, and under
# valgrind sha2 cannot use the CPU's SHA extensions, so the key check counts about 3,100
# instructions more than it runs natively. Use it to compare builds, not as the target.
#
# Usage: tests/bench/foundation-instructions.sh [seconds_per_endpoint]
#        (needs valgrind and wrk: apt-get install -y valgrind wrk)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DUR="${1:-6}"
for tool in valgrind callgrind_control wrk; do
  command -v "$tool" >/dev/null || { echo "$tool not installed (apt-get install -y valgrind wrk)"; exit 2; }
done
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p c2c-gateway --features sim
work=$(mktemp -d /tmp/c2c-instr.XXXXXX)
VG=""
trap '[ -n "$VG" ] && kill $VG 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cp -r policies "$work/policies"
sed -i 's/^threads = .*/threads = 1/' "$work/policies/gateway.toml"
sed -i 's/^\[dlt\]/[limits]\nrequests_per_second = 100000\n\n[dlt]/' "$work/policies/tenants/acme.toml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
C2C_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" \
  ./target/release/c2c-gateway serve --policies "$work/policies" --data "$work/data" \
  --listen "127.0.0.1:$PORT" --sip-listen 127.0.0.1:0 >"$work/gw.log" 2>&1 &
VG=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "gateway did not start"; cat "$work/gw.log"; exit 1; }

KEY=c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0
printf 'wrk.method = "GET"\nwrk.headers["X-api-key"] = "%s"\n' "$KEY" >"$work/livez.lua"
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["X-api-key"] = "%s"\nwrk.body = %s\n' \
  "$KEY" "'{\"customer_number\":\"9530251797\",\"did\":\"+918888888888\"}'" >"$work/normalize.lua"
sed 's/^wrk.method = "POST"/wrk.method = "GET"/' "$work/normalize.lua" >"$work/control.lua"

measure() { # name path script -> "name requests instructions"
  wrk -t1 -c50 -d2s -s "$3" "http://127.0.0.1:$PORT$2" >/dev/null # warm up
  callgrind_control -z "$VG" >/dev/null 2>&1
  local n
  n=$(wrk -t1 -c50 -d"${DUR}s" -s "$3" "http://127.0.0.1:$PORT$2" | awk '/requests in/ {print $1}')
  callgrind_control -d "$1" "$VG" >/dev/null 2>&1
  local f
  f=$(grep -l "^desc: Trigger: dump $1\$" "$work"/cg.*.* | head -1)
  echo "$1 $n $(awk '/^totals:/ {print $2}' "$f")"
}
{
  measure livez /livez "$work/livez.lua"
  measure livez_same_request /livez "$work/control.lua"
  measure normalize_authenticated /api/c2c/normalize "$work/normalize.lua"
} >"$work/counts.txt"
python3 - "$work/counts.txt" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
per = {name: int(ir) / int(n) for name, n, ir in rows}
print(f"{'endpoint':<26} {'requests':>9} {'instructions/request':>21}")
for name, n, _ in rows:
    print(f"{name:<26} {n:>9} {per[name]:>21,.0f}")
print(f"livez / normalize instructions: {per['livez'] / per['normalize_authenticated'] * 100:.1f}%")
PY
