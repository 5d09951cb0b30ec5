# Sourced by tests/bench/edge.sh and tests/bench/rtc.sh (not run on its own): what both
# LiveKit-edge benchmarks set up the same way. `source tests/bench/lib/livekit-edge.sh NAME`
# from the repository root gives:
#   $work (a temporary directory, removed on exit), pids (killed on exit), port (a free
#   TCP port), KEY/SECRET (the bundled simulator's project),
#   start_gateway_and_bare UP GW BARE: the gateway (1 Pingora thread, LiveKit at
#     127.0.0.1:UP, listening on GW, $GW_PID) and bare Pingora (no plugins, fixed upstream
#     UP, listening on BARE, $BARE_PID), both pinned to CPU 0;
#   start_nginx UP NGX CONNECTIONS UPSTREAM_EXTRA SERVER: nginx (one worker, pinned to
#     CPU 0) proxying to 127.0.0.1:UP, listening on NGX, with CONNECTIONS per worker,
#     UPSTREAM_EXTRA inside the upstream block and SERVER (listen options, locations)
#     inside the server block;
#   livekit_token VIDEO_GRANT_JSON: an HS256 token of the simulator's project, valid for
#     an hour, signed as livekit-api signs them.
work=$(mktemp -d "/tmp/c2c-$1.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KEY=APIsimdev
SECRET=$(cat policies/secrets/livekit-sim.secret)

start_gateway_and_bare() { # UP GW BARE
  cp -r policies "$work/policies"
  sed -i "s/^threads = .*/threads = 1/; s#upstreams = \[\"http://127.0.0.1:7880\"\]#upstreams = [\"http://127.0.0.1:$1\"]#; s/^listen = \"127.0.0.1:7880\"/listen = \"127.0.0.1:0\"/" "$work/policies/gateway.toml"
  cat >>"$work/policies/gateway.toml" <<EOF2
[limits]
per_ip_requests_per_second = 1000000
EOF2
  C2C_LOG=warn taskset -c 0 ./target/release/c2c-gateway serve --policies "$work/policies" --data "$work/data" --listen "127.0.0.1:$2" --sip-listen 127.0.0.1:0 >"$work/gw.log" 2>&1 &
  GW_PID=$!
  pids+=($!)
  # Pingora with no plugins (fixed upstream, no auth, logs or metrics): what Pingora itself
  # costs, so the figures show the gateway's own overhead separately.
  taskset -c 0 ./target/release/bare-pingora --listen "127.0.0.1:$3" --upstream "127.0.0.1:$1" --threads 1 >/dev/null 2>&1 &
  BARE_PID=$!
  pids+=($!)
}

start_nginx() { # UP NGX CONNECTIONS UPSTREAM_EXTRA SERVER
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<EOF2
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections $3; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream livekit { server 127.0.0.1:$1; $4 }
  server {
    listen 127.0.0.1:$2 $5
  }
}
EOF2
  taskset -c 0 nginx -c "$work/nginx/nginx.conf" &
  pids+=($!)
}

livekit_token() { # VIDEO_GRANT_JSON
  python3 - "$KEY" "$SECRET" "$1" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
now = int(time.time())
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
c = b(json.dumps({"iss": sys.argv[1], "sub": "bench", "nbf": now - 10, "exp": now + 3600,
                  "video": json.loads(sys.argv[3])}).encode())
s = b(hmac.new(sys.argv[2].encode(), f"{h}.{c}".encode(), hashlib.sha256).digest())
print(f"{h}.{c}.{s}")
PY
}
