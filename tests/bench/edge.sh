#!/usr/bin/env bash
# LiveKit edge benchmark (issue 4): a small Twirp-shaped POST (ListRooms, JSON, Bearer
# token) to a local LiveKit simulator, side by side in one run:
#   direct to the upstream | through c2c-gateway | through bare Pingora (no plugins) |
#   through nginx (proxy_pass, keepalive)
# at 1 and 50 connections. The proxy under test (gateway with 1 Pingora worker thread, or
# nginx with 1 worker) is pinned to CPU 0; wrk and the upstream share CPU 1.
# Usage: tests/bench/edge.sh [duration_seconds]   (needs wrk and nginx from Debian)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DUR="${1:-10}"
for t in wrk nginx; do command -v $t >/dev/null || { echo "$t not installed (apt-get install -y wrk nginx)"; exit 2; }; done
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers --bin bare-pingora; }
source tests/bench/lib/livekit-edge.sh edge-bench
UP=$(port); GW=$(port); NGX=$(port); BARE=$(port)

taskset -c 1 ./target/release/livekit-sim --listen "127.0.0.1:$UP" --api-key $KEY --api-secret "$SECRET" >/dev/null 2>&1 &
pids+=($!)

start_gateway_and_bare "$UP" "$GW" "$BARE"

start_nginx "$UP" "$NGX" 4096 "keepalive 128;" ';
    location /twirp/ {
      proxy_pass http://livekit;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }'

for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW/readyz" >/dev/null && break; sleep 0.1; done
sleep 0.5
# A server-API token (roomList).
TOKEN=$(livekit_token '{"roomList": true}')
cat >"$work/twirp.lua" <<EOF2
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = "{}"
EOF2
for p in $UP $GW $BARE $NGX; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$p/twirp/livekit.RoomService/ListRooms" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" -d '{}')
  [ "$code" = 200 ] || { echo "sanity check on port $p returned $code"; cat "$work/gw.log"; exit 1; }
done

run() { # label port conns
  local out
  out=$(taskset -c 1 wrk -t1 -c"$3" -d"${DUR}s" --latency -s "$work/twirp.lua" "http://127.0.0.1:$2/twirp/livekit.RoomService/ListRooms")
  printf '%-10s %6s %12s %10s %10s %8s\n' "$1" "$3" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" "$(awk '/Non-2xx/ {print $4}' <<<"$out" | sed 's/^$/0/')"
}
echo "LiveKit edge bench: Twirp ListRooms (JSON, Bearer JWT) to a local livekit-sim, ${DUR}s per row"
echo "proxy pinned to CPU 0 (gateway: 1 Pingora thread; nginx: 1 worker); wrk and upstream on CPU 1"
printf '%-10s %6s %12s %10s %10s %8s\n' path conns req/s p50 p99 non-2xx
if [ -n "${C2C_EDGE_PERF:-}" ]; then
  (taskset -c 1 wrk -t1 -c50 -d12s -s "$work/twirp.lua" "http://127.0.0.1:$GW/twirp/livekit.RoomService/ListRooms" >/dev/null &); sleep 1
  perf record ${C2C_PERF_ARGS:-} -F 4000 -p "$(pgrep -f "listen 127.0.0.1:$GW")" -o /tmp/edge-perf.data -- sleep 8 >/dev/null 2>&1; exit 0
fi
# C2C_EDGE_PROFILE=1: instead of the table, what each proxy spends per request at 50
# connections, counted by the kernel while wrk runs (perf tracepoints and software events;
# this VM has no hardware counters): CPU, context switches, syscalls by kind, and for the
# two Rust proxies heap allocations (uprobes on jemalloc's entry points; they slow the
# process, so req/s in that pass is not a speed figure). Then one request's syscalls at
# 1 connection (strace), the sequence each proxy makes.
if [ -n "${C2C_EDGE_PROFILE:-}" ]; then
  NGX_WORKER=$(pgrep -P "$(pgrep -f "nginx -c $work/nginx/nginx.conf" | head -1)" | head -1)
    SC="read write readv writev sendto recvfrom sendmsg recvmsg epoll_wait epoll_pwait epoll_ctl futex sched_yield"
  EV="task-clock,context-switches,raw_syscalls:sys_enter$(for s in $SC; do printf ',syscalls:sys_enter_%s' "$s"; done)"
  profile() { # label pid port -> per-request figures
    perf stat -x, -e "$EV" -p "$2" -o "$work/stat.$1" -- sleep $((DUR + 1)) &
    local ps=$! n
    # C2C_EDGE_PERF_DIR=dir: also a call-graph profile of each proxy, dir/<label>.data
    [ -z "${C2C_EDGE_PERF_DIR:-}" ] || perf record -q -g -F 2000 -p "$2" -o "$C2C_EDGE_PERF_DIR/$1.data" -- sleep "$DUR" >/dev/null 2>&1 &
    sleep 0.3
    n=$(taskset -c 1 wrk -t1 -c50 -d"${DUR}s" -s "$work/twirp.lua" "http://127.0.0.1:$3/twirp/livekit.RoomService/ListRooms" | awk '/requests in/ {print $1}')
    wait $ps
    python3 - "$1" "$n" "$work/stat.$1" <<'PY2'
import sys
label, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
vals = {}
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 2 and f[0] and f[0][0].isdigit():
        vals[f[2].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "syscalls")] = float(f[0])
out = [f"{label:<15} {n:>7} req", f"cpu_us={vals.get('task-clock', 0) * 1000 / n:.1f}",
       f"ctxsw={vals.get('context-switches', 0) / n:.2f}", f"syscalls={vals.get('syscalls', 0) / n:.2f}"]
out += [f"{k}={v / n:.2f}" for k, v in vals.items() if k not in ("task-clock", "context-switches", "syscalls") and v / n >= 0.01]
print("  ".join(out))
PY2
  }
  echo "per request at 50 connections, ${DUR}s each (cpu_us = task-clock; counts per request)"
  profile gateway "$GW_PID" "$GW"; profile pingora "$BARE_PID" "$BARE"; profile nginx "$NGX_WORKER" "$NGX"
  if perf probe -q -x ./target/release/c2c-gateway -a _rjem_malloc -a _rjem_mallocx -a _rjem_calloc -a _rjem_rallocx 2>/dev/null &&
     perf probe -q -x ./target/release/bare-pingora -a _rjem_malloc -a _rjem_mallocx -a _rjem_calloc -a _rjem_rallocx 2>/dev/null; then
    EV="probe_c2c:*"; profile gateway-allocs "$GW_PID" "$GW"
    EV="probe_bare:*"; profile pingora-allocs "$BARE_PID" "$BARE"
    perf probe -q -d 'probe_c2c:*' -d 'probe_bare:*' 2>/dev/null || true
  else
    echo "(uprobes unavailable here: allocation counts skipped)"
  fi
  for row in "gateway $GW_PID $GW" "pingora $BARE_PID $BARE" "nginx $NGX_WORKER $NGX"; do
    set -- $row
    curl -s -o /dev/null -X POST "http://127.0.0.1:$3/twirp/livekit.RoomService/ListRooms" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" -d '{}' # connect upstream first
    strace -qq -f -s 24 -p "$2" -e trace='!futex,clock_gettime,clock_nanosleep' -o "$work/strace.$1" & sp=$!; sleep 0.5
    curl -s -o /dev/null -X POST "http://127.0.0.1:$3/twirp/livekit.RoomService/ListRooms" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" -d '{}'
    sleep 0.3; kill $sp; wait $sp 2>/dev/null || true
    echo "--- $1: one request's syscalls (strace; a new client connection, upstream kept alive)"
    sed -E 's/^[0-9]+ +//' "$work/strace.$1" | grep -v '^+++\|^---' | cut -c1-110
  done
  exit 0
fi
for c in 1 50; do
  run direct "$UP" "$c"
  run gateway "$GW" "$c"
  run pingora "$BARE" "$c"
  run nginx "$NGX" "$c"
done
