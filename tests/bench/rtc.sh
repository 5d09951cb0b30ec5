#!/usr/bin/env bash
# WebSocket signalling at scale (issue 26): N concurrent LiveKit signalling sockets
# (`GET /rtc?access_token=...`, upgraded) through the gateway and through nginx to the
# same upstream (a WebSocket echo server, `rtc-bench upstream`), and through bare Pingora
# (no plugins, as in edge.sh), one proxy after the other in one run: the proxy's memory per open socket (RSS, idle and after the message
# phase) and the round trip of a message through it at a steady rate.
# The proxy under test is pinned to CPU 0 (gateway: 1 Pingora thread; nginx: 1 worker);
# the driver and the upstream share CPU 1.
# Usage: tests/bench/rtc.sh [sockets=10000] [messages_per_second=1000] [seconds=20]
#        (needs nginx from Debian)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
N="${1:-10000}" RATE="${2:-1000}" SECS="${3:-20}"
command -v nginx >/dev/null || { echo "nginx not installed (apt-get install -y nginx)"; exit 2; }
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p c2c-bench-drivers --bin rtc-bench --bin bare-pingora; }
# Every socket is a descriptor in the driver, two in the proxy and one in the upstream.
# A proxy holds two per socket, so N sockets need an open-file limit above 2N (the
# gateway's own files, sled's and the listeners', take a few hundred more).
ulimit -n "$(ulimit -Hn)"
# nginx needs the margin too: with 2N + 1,000 connections of 20,000 it started reusing
# (closing) connections mid-setup ("worker_connections are not enough").
if [ "$(ulimit -n)" -lt $((2 * N + 2000)) ]; then
  capped=$((($(ulimit -n) - 2000) / 2))
  echo "open-file limit $(ulimit -n) (hard) allows $capped sockets through a proxy, not $N: running $capped"
  N=$capped
fi
source tests/bench/lib/livekit-edge.sh rtc-bench
UP=$(port); GW=$(port); NGX=$(port); BARE=$(port)

taskset -c 1 ./target/release/rtc-bench upstream --listen "127.0.0.1:$UP" &
pids+=($!)
UP_PID=$!

start_gateway_and_bare "$UP" "$GW" "$BARE"

# Signalling sockets held for the whole run: no read or send timeout cuts them.
start_nginx "$UP" "$NGX" "$(ulimit -n)" "" 'backlog=4096;
    location /rtc {
      proxy_pass http://livekit;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }'

for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW/readyz" >/dev/null && break; sleep 0.1; done
# A signalling token (roomJoin).
TOKEN=$(livekit_token '{"roomJoin": true, "room": "bench"}')
NGX_WORKER=""
for _ in $(seq 50); do
  NGX_WORKER=$(pgrep -P "$(pgrep -f "nginx -c $work/nginx/nginx.conf" | head -1)" | head -1 || true)
  [ -n "$NGX_WORKER" ] && break; sleep 0.1
done
# The gateway marks the upstream healthy after its first health check.
for _ in $(seq 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' --max-time 1 "http://127.0.0.1:$GW/rtc?access_token=$TOKEN" || true)
  [ "$code" = 101 ] && break; sleep 0.2
done
[ "$code" = 101 ] || { echo "the gateway did not upgrade /rtc (status $code)"; tail -20 "$work/gw.log"; exit 1; }

echo "WebSocket signalling bench: $N sockets through each proxy to one echo upstream, then $RATE messages/s for ${SECS}s"
echo "proxy pinned to CPU 0 (gateway: 1 Pingora thread; nginx: 1 worker); driver and upstream on CPU 1"
taskset -c 1 ./target/release/rtc-bench relay --label gateway --pid "$GW_PID" --url "ws://127.0.0.1:$GW/rtc?access_token=$TOKEN" \
  --sockets "$N" --rate "$RATE" --seconds "$SECS"
# The upstream holds one descriptor per socket too: let each run's sockets close first.
drained() { for _ in $(seq 300); do [ "$(ls /proc/$UP_PID/fd | wc -l)" -lt 200 ] && break; sleep 0.1; done; echo "(upstream descriptors open: $(ls /proc/$UP_PID/fd | wc -l); nginx worker: $(ls /proc/$NGX_WORKER/fd | wc -l))" >&2; }
drained
taskset -c 1 ./target/release/rtc-bench relay --label pingora --pid "$BARE_PID" --url "ws://127.0.0.1:$BARE/rtc?access_token=$TOKEN" \
  --sockets "$N" --rate "$RATE" --seconds "$SECS"
drained
taskset -c 1 ./target/release/rtc-bench relay --label nginx --pid "$NGX_WORKER" --url "ws://127.0.0.1:$NGX/rtc?access_token=$TOKEN" \
  --sockets "$N" --rate "$RATE" --seconds "$SECS" || { tail -5 "$work/nginx/error.log"; exit 1; }
