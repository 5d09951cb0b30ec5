#!/usr/bin/env bash
# Foundation benchmark (issue 2): GET /livez vs authenticated POST /api/c2c/normalize,
# side by side in one run. Release build, Pingora with 1 worker thread, wrk with 50
# connections for 10 s each. Prints req/s and p50/p99 and the normalize/livez ratio.
#
# Usage: tests/bench/foundation.sh [duration_seconds]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DUR="${1:-10}"
CONNS=50
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install -y wrk)"; exit 2; }
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p c2c-gateway
work=$(mktemp -d /tmp/c2c-bench.XXXXXX)
trap 'kill $GW 2>/dev/null || true; wait $GW 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r policies "$work/policies"
sed -i 's/^threads = .*/threads = 1/' "$work/policies/gateway.toml"
# Measure the request path, not the limiter: lift the tenant's rate limit.
sed -i 's/^\[dlt\]/[limits]\nrequests_per_second = 100000\n\n[dlt]/' "$work/policies/tenants/acme.toml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Pin the gateway to CPU 0 and the load generator to CPU 1 so they do not steal from each
# other (the figures then compare the gateway's own cost per request).
C2C_LOG=warn taskset -c 0 ./target/release/c2c-gateway serve --policies "$work/policies" --data "$work/data" \
  --listen "127.0.0.1:$PORT" >"$work/gw.log" 2>&1 &
GW=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done

# Both runs go through a wrk Lua script so the load generator's own cost is the same.
cat >"$work/livez.lua" <<'LUA'
wrk.method = "GET"
wrk.headers["X-api-key"] = "c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0"
LUA
cat >"$work/normalize.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-api-key"] = "c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0"
wrk.body = '{"customer_number":"9530251797","did":"+918888888888"}'
LUA

run() { # name url [script]
  local out
  if [ -n "${3:-}" ]; then
    out=$(taskset -c 1 wrk -t1 -c$CONNS -d"${DUR}s" --latency -s "$3" "$2")
  else
    out=$(taskset -c 1 wrk -t1 -c$CONNS -d"${DUR}s" --latency "$2")
  fi
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  printf '%-28s %12s %10s %10s %8s\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
  echo "$rps" >"$work/$1.rps"
}

# Sanity: the authenticated path really answers 200.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/api/c2c/normalize" \
  -H 'Content-Type: application/json' -H 'X-api-key: c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0' \
  -d '{"customer_number":"9530251797"}')
[ "$code" = 200 ] || { echo "normalize returned $code"; exit 1; }

echo "c2c-gateway foundation bench: 1 Pingora worker thread (pinned to CPU 0), wrk -t1 (CPU 1), $CONNS connections, ${DUR}s each"
printf '%-28s %12s %10s %10s %8s\n' "endpoint" "req/s" "p50" "p99" "non-2xx"
run livez "http://127.0.0.1:$PORT/livez" "$work/livez.lua"
run normalize_authenticated "http://127.0.0.1:$PORT/api/c2c/normalize" "$work/normalize.lua"
python3 - "$work" <<'PY'
import sys, pathlib
w = pathlib.Path(sys.argv[1])
l = float((w / "livez.rps").read_text()); n = float((w / "normalize_authenticated.rps").read_text())
print(f"normalize/livez throughput ratio: {n / l:.2%} (target >= 80%)")
PY
