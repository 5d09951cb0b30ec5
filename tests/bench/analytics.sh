#!/usr/bin/env bash
# Analytics benchmark (issue 6): 1,000,000 calls written through the store API over 30
# days, then the 30-day analytics query by trunk through a release gateway (p50/p99), and
# side by side the same answer by reading every record. Release builds.
# Usage: tests/bench/analytics.sh [calls] [days] [queries]
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
command -v cmake >/dev/null || { echo "cmake is needed to build (apt-get install cmake)" >&2; exit 2; }
{ cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p c2c-bench-drivers; }
exec ./target/release/analytics-bench \
  --gateway ./target/release/c2c-gateway \
  --policies ./policies \
  --calls "${1:-1000000}" --days "${2:-30}" --queries "${3:-500}"
