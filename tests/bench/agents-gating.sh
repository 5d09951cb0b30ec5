#!/usr/bin/env bash
# Agents gating benchmark (issue 20, "Agents"): full click2call lifecycles with
# unregistered agents (U: every worker sends agent-1, no gating, as before agents existed)
# against registered ones (G: one registered agent per worker, acme with
# agents.require_registration, so click2call and /connect go through the gate and the
# one-call-per-agent rule). Rounds alternate U G U G ... on a fresh gateway each (the VM's
# speed drifts: alternating spreads the drift over both); prints each round's lifecycles/s
# and gateway CPU per lifecycle, then the medians and gated/ungated.
# Target: gated within 5 % of ungated.
# Usage: tests/bench/agents-gating.sh [calls=3000] [concurrency=24] [agents_per_worker=1]
#   ROUNDS=3 (per variant); C2C_BENCH_NO_BUILD=1 skips the release builds.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
CALLS="${1:-3000}"
CONC="${2:-24}"
APW="${3:-1}"
ROUNDS="${ROUNDS:-3}"
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers; }
out=$(mktemp -d /tmp/c2c-gating.XXXXXX)
trap 'rm -rf "$out"' EXIT

echo "agents gating: $CALLS lifecycles x $CONC concurrent per round, $ROUNDS rounds per variant (U = unregistered, G = registered, $APW agent(s) per worker)"
printf '%-6s %-3s %14s %20s %16s %14s\n' round var lifecycles/s "gateway CPU ms/lc" "click2call p99" "busy retries"
for r in $(seq "$ROUNDS"); do
  for v in U G; do
    mode=unregistered; [ "$v" = G ] && mode=registered
    f="$out/$r$v.txt"
    ./target/release/lifecycle-bench \
      --gateway ./target/release/c2c-gateway \
      --sim ./target/release/livekit-sim \
      --policies ./policies \
      --calls "$CALLS" --concurrency "$CONC" --open-calls 0 \
      --agents "$mode" --agents-per-worker "$APW" >"$f" 2>&1 || { cat "$f"; exit 1; }
    lps=$(sed -n 's/^lifecycles\/s (until the last webhook was delivered): //p' "$f")
    cpu=$(awk '$1 == "gateway" && $3 == "ms" {print $2}' "$f")
    p99=$(awk '$1 == "click2call" && NF == 4 {print $3}' "$f")
    busy=$(sed -n 's/.*; \([0-9]*\) click2calls answered.*/\1/p' "$f")
    printf '%-6s %-3s %14s %20s %16s %14s\n' "$r" "$v" "$lps" "$cpu" "$p99 ms" "${busy:--}"
    echo "$v $lps $cpu" >>"$out/all"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
u_lps=$(awk '$1 == "U" {print $2}' "$out/all" | median)
g_lps=$(awk '$1 == "G" {print $2}' "$out/all" | median)
u_cpu=$(awk '$1 == "U" {print $3}' "$out/all" | median)
g_cpu=$(awk '$1 == "G" {print $3}' "$out/all" | median)
echo
echo "median lifecycles/s: ungated $u_lps, gated $g_lps"
echo "median gateway CPU per lifecycle: ungated $u_cpu ms, gated $g_cpu ms"
awk -v u="$u_lps" -v g="$g_lps" -v uc="$u_cpu" -v gc="$g_cpu" 'BEGIN {
  r = 100 * g / u
  printf "gated / ungated (ratio of medians): %.1f %% of ungated throughput; gateway CPU per lifecycle %+.1f %%\n", r, 100 * (gc - uc) / uc
  printf "target: gated within 5 %% of ungated: %s\n", (r >= 95) ? "met" : "NOT MET"
}'
