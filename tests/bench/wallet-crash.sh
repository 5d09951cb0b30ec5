#!/usr/bin/env bash
# Wallet crash soak (issue 23): 10,000 lifecycles paid from acme's wallet, the gateway
# killed with SIGKILL after every 1,000 (the last calls' ends and charges in flight) and
# restarted on the same data, the LiveKit simulator living on. Then every call's record is
# read back: each call charged in its record has exactly one ledger entry of that amount,
# no call is charged twice, no hold is left, and the balance is the top-up minus the
# charges (zero paise of drift). Exits 1 if any of that fails.
# Usage: tests/bench/wallet-crash.sh [calls=10000] [every=1000] [concurrency=24]
#   C2C_BENCH_NO_BUILD=1 skips the release builds.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers; }
exec ./target/release/lifecycle-bench \
  --gateway ./target/release/c2c-gateway \
  --sim ./target/release/livekit-sim \
  --policies ./policies \
  --calls "${1:-10000}" --wallet-crash-every "${2:-1000}" --concurrency "${3:-24}" --open-calls 0
