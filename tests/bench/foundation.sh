#!/usr/bin/env bash
# Foundation benchmark (issue 2): GET /livez vs authenticated POST /api/c2c/normalize,
# side by side in one run. Release build, Pingora with 1 worker thread, wrk with 50
# connections for 10 s each. Prints req/s and p50/p99 and the normalize/livez ratio, plus a
# control row: /livez sent normalize's exact request (headers and body).
#
# Usage: tests/bench/foundation.sh [duration_seconds]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DUR="${1:-10}"
CONNS=50
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install -y wrk)"; exit 2; }
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p c2c-gateway --features sim
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
  --listen "127.0.0.1:$PORT" --sip-listen 127.0.0.1:0 >"$work/gw.log" 2>&1 &
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
# Control: /livez sent the normalize request's exact headers and body (read and ignored).
# If this runs as fast as plain /livez, the gap to normalize is the gateway's own work
# (key check, limits, JSON, dial plan), not request size or body reading in Pingora.
sed 's/^wrk.method = "POST"/wrk.method = "GET"/' "$work/normalize.lua" >"$work/livez_same_request.lua"

run() { # name url script -> appends "rps p50 p99 non2xx" to $work/<name>.txt
  local out
  out=$(taskset -c 1 wrk -t1 -c$CONNS -d"${ROUND}s" --latency -s "$3" "$2")
  local non2xx
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out") ${non2xx:-0}" >>"$work/$1.txt"
}

# Sanity: the authenticated path really answers 200.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/api/c2c/normalize" \
  -H 'Content-Type: application/json' -H 'X-api-key: c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0' \
  -d '{"customer_number":"9530251797"}')
[ "$code" = 200 ] || { echo "normalize returned $code"; exit 1; }

# This machine's speed drifts by tens of percent between seconds: run the two
# endpoints in alternating short rounds and compare medians, so drift hits both alike.
ROUNDS=$(( DUR / 2 )); [ "$ROUNDS" -ge 3 ] || ROUNDS=3
ROUND=2
echo "c2c-gateway foundation bench: 1 Pingora worker thread (pinned to CPU 0), wrk -t1 (CPU 1), $CONNS connections,"
echo "$ROUNDS alternating rounds of ${ROUND}s per endpoint; medians"
for _ in $(seq "$ROUNDS"); do
  run livez "http://127.0.0.1:$PORT/livez" "$work/livez.lua"
  run livez_same_request "http://127.0.0.1:$PORT/livez" "$work/livez_same_request.lua"
  run normalize_authenticated "http://127.0.0.1:$PORT/api/c2c/normalize" "$work/normalize.lua"
done
python3 - "$work" <<'PY'
import pathlib, statistics, sys
w = pathlib.Path(sys.argv[1])
def ms(v):
    return float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
rows = {}
print(f"{'endpoint':<26} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  (per-round req/s)")
for name in ["livez", "livez_same_request", "normalize_authenticated"]:
    runs = [l.split() for l in (w / f"{name}.txt").read_text().splitlines()]
    rps = [float(r[0]) for r in runs]
    rows[name] = statistics.median(rps)
    print(f"{name:<26} {rows[name]:>10.0f} {statistics.median(ms(r[1]) for r in runs):>8.2f} "
          f"{statistics.median(ms(r[2]) for r in runs):>8.2f} {sum(int(r[3]) for r in runs):>8}  "
          + " ".join(f"{x:.0f}" for x in rps))
print(f"normalize/livez throughput ratio (medians): {rows['normalize_authenticated'] / rows['livez']:.1%} (target >= 80%)")
# Each normalize round ran right after a livez round: the median of those paired ratios
# is the figure least moved by the VM's drift between rounds.
pairs = [float(n.split()[0]) / float(l.split()[0]) for l, n in zip(
    (w / "livez.txt").read_text().splitlines(), (w / "normalize_authenticated.txt").read_text().splitlines())]
print(f"normalize/livez throughput ratio (median of {len(pairs)} adjacent pairs): {statistics.median(pairs):.1%} (target >= 80%)")
ctl = [float(n.split()[0]) / float(l.split()[0]) for l, n in zip(
    (w / "livez.txt").read_text().splitlines(), (w / "livez_same_request.txt").read_text().splitlines())]
print(f"control: livez with normalize's request bytes / livez (median of pairs): {statistics.median(ctl):.1%}")
PY
