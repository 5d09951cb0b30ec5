#!/usr/bin/env bash
# Call lifecycle benchmark (issue 3). Release builds; the LiveKit simulator runs as its
# own process so its memory and CPU are not counted as the gateway's.
# Usage: tests/bench/lifecycle.sh [calls] [concurrency] [open_calls]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
{ cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers; }
exec ./target/release/lifecycle-bench \
  --gateway ./target/release/c2c-gateway \
  --sim ./target/release/livekit-sim \
  --policies ./policies \
  --calls "${1:-3000}" --concurrency "${2:-24}" --open-calls "${3:-10000}"
