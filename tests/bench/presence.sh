#!/usr/bin/env bash
# Presence benchmark (issue 20, "Agents"): gateway memory per idle presence WebSocket vs
# per idle HTTP/1.1 keep-alive connection held in Pingora, and the latency of an agent's
# availability change reaching a supervisor with all the sockets open. Release builds;
# the driver starts the gateway itself (bundled LiveKit simulator). Exits non-zero only
# on a setup failure, not on a missed target.
# Usage: tests/bench/presence.sh [sockets=10000] [seconds=30] [changes_per_second=20]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers; }
# A socket is a file descriptor on both ends: the driver and the gateway it starts each
# hold one per socket (and the gateway inherits this limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec ./target/release/presence-bench \
  --gateway ./target/release/c2c-gateway \
  --policies ./policies \
  --sockets "${1:-10000}" --seconds "${2:-30}" --rate "${3:-20}"
