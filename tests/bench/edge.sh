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
work=$(mktemp -d /tmp/c2c-edge-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KEY=APIsimdev
SECRET=$(cat policies/secrets/livekit-sim.secret)
UP=$(port); GW=$(port); NGX=$(port); BARE=$(port)

taskset -c 1 ./target/release/livekit-sim --listen "127.0.0.1:$UP" --api-key $KEY --api-secret "$SECRET" >/dev/null 2>&1 &
pids+=($!)

cp -r policies "$work/policies"
sed -i "s/^threads = .*/threads = 1/; s#upstreams = \[\"http://127.0.0.1:7880\"\]#upstreams = [\"http://127.0.0.1:$UP\"]#; s/^listen = \"127.0.0.1:7880\"/listen = \"127.0.0.1:0\"/" "$work/policies/gateway.toml"
cat >>"$work/policies/gateway.toml" <<EOF2
[limits]
per_ip_requests_per_second = 1000000
EOF2
C2C_LOG=warn taskset -c 0 ./target/release/c2c-gateway serve --policies "$work/policies" --data "$work/data" --listen "127.0.0.1:$GW" --sip-listen 127.0.0.1:0 >"$work/gw.log" 2>&1 &
pids+=($!)

# Pingora with no plugins (fixed upstream, no auth, logs or metrics): what Pingora itself
# costs, so the table shows the gateway's own overhead separately.
taskset -c 0 ./target/release/bare-pingora --listen "127.0.0.1:$BARE" --upstream "127.0.0.1:$UP" --threads 1 >/dev/null 2>&1 &
pids+=($!)

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF2
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream livekit { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX;
    location /twirp/ {
      proxy_pass http://livekit;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF2
taskset -c 0 nginx -c "$work/nginx/nginx.conf" &
pids+=($!)

for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW/readyz" >/dev/null && break; sleep 0.1; done
sleep 0.5
# A server-API token (roomList) valid for an hour, signed like livekit-api does.
TOKEN=$(python3 - "$KEY" "$SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
now = int(time.time())
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
c = b(json.dumps({"iss": sys.argv[1], "nbf": now - 10, "exp": now + 3600, "video": {"roomList": True}}).encode())
s = b(hmac.new(sys.argv[2].encode(), f"{h}.{c}".encode(), hashlib.sha256).digest())
print(f"{h}.{c}.{s}")
PY
)
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
for c in 1 50; do
  run direct "$UP" "$c"
  run gateway "$GW" "$c"
  run pingora "$BARE" "$c"
  run nginx "$NGX" "$c"
done
