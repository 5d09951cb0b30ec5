#!/usr/bin/env bash
# Memory soak (issue 18): full call lifecycles at a steady rate, the gateway's RSS sampled
# every minute; exits 1 if RSS has not levelled off over the last third of the run.
# Release builds; the LiveKit simulator and the CRM sink run outside the gateway.
# Usage: tests/bench/soak.sh [minutes=30] [calls_per_second=50] [sample_seconds=60] [store_cache_mb=64]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers; }
exec ./target/release/lifecycle-bench \
  --gateway ./target/release/c2c-gateway \
  --sim ./target/release/livekit-sim \
  --policies ./policies \
  --soak-minutes "${1:-30}" --rate "${2:-50}" --sample-seconds "${3:-60}" \
  --store-cache-mb "${4:-64}"
