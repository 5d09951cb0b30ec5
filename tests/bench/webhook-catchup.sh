#!/usr/bin/env bash
# CRM outage benchmark (issue 18, item 2): the CRM answers 503 while calls end, then
# recovers; webhook delivery lag without catch-up (every job on its own backoff step)
# and with it. Real sled store, real deliverer, HTTP receiver on 127.0.0.1; the retry
# schedule is the default divided by --scale (10: the 3-minute outage and
# 10-minute window become 18 s and 60 s). Release build. About 2 minutes.
# Usage: tests/bench/webhook-catchup.sh [calls] [down_seconds] [window_seconds] [scale]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
cargo build --release -q -p c2c-webhook-catchup-bench
exec ./target/release/webhook-catchup-bench \
  --calls "${1:-50}" --down "${2:-18}" --window "${3:-60}" --scale "${4:-10}"
