#!/usr/bin/env bash
# DLT rules benchmark (issue 25, "DLT depth"). Release builds.
# 1. dlt-bench: the DND list at 10 M numbers (our compact NumberSet next to a sorted
#    Vec<u64> and a HashSet<u64>: memory, build, lookup ns in random order, half hits),
#    list load times (text and compact), the whole per-call check.
# 2. Full click2call lifecycles, alternating S P S P ... on a fresh gateway each round
#    (the VM's speed drifts: alternating spreads the drift over both): S = service calls
#    (the trunk's category: the caller-ID rule only), P = promotional calls with every rule
#    running (140-series caller ID, calling hours, a lookup in a 10 M-number DND list and
#    one in a 1 M-number consent list, at /click2call and again at /connect).
#    Target: promotional within 5 % of service lifecycles/s.
# Usage: tests/bench/dlt.sh [calls=3000] [concurrency=24]
#   ROUNDS=3 (per variant); C2C_BENCH_NO_BUILD=1 skips the release builds.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
CALLS="${1:-3000}"
CONC="${2:-24}"
ROUNDS="${ROUNDS:-3}"
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers; }
out=$(mktemp -d /tmp/c2c-dlt.XXXXXX)
trap 'rm -rf "$out"' EXIT

echo "== DND list and per-call check =="
./target/release/dlt-bench --policies ./policies
echo
echo "== click2call lifecycles: $CALLS x $CONC concurrent per round, $ROUNDS rounds per variant (S = service, P = promotional, every rule) =="
printf '%-6s %-3s %14s %20s %16s\n' round var lifecycles/s "gateway CPU ms/lc" "click2call p99"
for r in $(seq "$ROUNDS"); do
  for v in S P; do
    mode=service; [ "$v" = P ] && mode=promotional
    f="$out/$r$v.txt"
    ./target/release/lifecycle-bench \
      --gateway ./target/release/c2c-gateway \
      --sim ./target/release/livekit-sim \
      --policies ./policies \
      --calls "$CALLS" --concurrency "$CONC" --open-calls 0 \
      --dlt "$mode" >"$f" 2>&1 || { cat "$f"; exit 1; }
    lps=$(sed -n 's/^lifecycles\/s (until the last webhook was delivered): //p' "$f")
    cpu=$(awk '$1 == "gateway" && $3 == "ms" {print $2}' "$f")
    p99=$(awk '$1 == "click2call" && NF == 4 {print $3}' "$f")
    printf '%-6s %-3s %14s %20s %16s\n' "$r" "$v" "$lps" "$cpu" "$p99 ms"
    echo "$v $lps $cpu" >>"$out/all"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
s_lps=$(awk '$1 == "S" {print $2}' "$out/all" | median)
p_lps=$(awk '$1 == "P" {print $2}' "$out/all" | median)
s_cpu=$(awk '$1 == "S" {print $3}' "$out/all" | median)
p_cpu=$(awk '$1 == "P" {print $3}' "$out/all" | median)
echo
echo "median lifecycles/s: service $s_lps, promotional (every rule) $p_lps"
echo "median gateway CPU per lifecycle: service $s_cpu ms, promotional $p_cpu ms"
awk -v s="$s_lps" -v p="$p_lps" -v sc="$s_cpu" -v pc="$p_cpu" 'BEGIN {
  r = 100 * p / s
  printf "promotional / service (ratio of medians): %.1f %% of service throughput; gateway CPU per lifecycle %+.1f %%\n", r, 100 * (pc - sc) / sc
  printf "target: every check within 5 %% of lifecycles/s: %s\n", (r >= 95) ? "met" : "NOT MET"
}'
