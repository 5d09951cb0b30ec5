#!/usr/bin/env bash
# Wallet benchmark (issue 23, "Managed wallets"): full click2call lifecycles with acme's
# calls not charged (O: billing.charge_calls off, the path a BYOT tenant's calls take:
# no wallet read, no hold, no charge) against charged (W: charge_calls on, the wallet
# topped up: click2call reads what is available, /connect places a hold, each end posts
# a charge, the balance watch runs). Rounds alternate O W O W ... on a fresh gateway each
# (the VM's speed drifts: alternating spreads the drift over both); prints each round's
# lifecycles/s, gateway CPU per lifecycle and click2call/connect p99, then the medians and
# W/O. Each W round also checks the ledger: one charge per call at most, none twice, no
# hold left, zero paise of drift.
# Target: charged within 10 % of uncharged.
# Usage: tests/bench/wallet.sh [calls=3000] [concurrency=24]
#   ROUNDS=3 (per variant); C2C_BENCH_NO_BUILD=1 skips the release builds;
#   C2C_GATEWAY_BIN=path runs another gateway binary (an A/B of two builds).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
CALLS="${1:-3000}"
CONC="${2:-24}"
ROUNDS="${ROUNDS:-3}"
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers; }
out=$(mktemp -d /tmp/c2c-wallet.XXXXXX)
trap 'rm -rf "$out"' EXIT

echo "wallet: $CALLS lifecycles x $CONC concurrent per round, $ROUNDS rounds per variant (O = not charged, W = paid from the wallet)"
printf '%-6s %-3s %14s %20s %16s %16s\n' round var lifecycles/s "gateway CPU ms/lc" "click2call p99" "connect p99"
for r in $(seq "$ROUNDS"); do
  for v in O W; do
    flag=""; [ "$v" = W ] && flag="--wallet"
    f="$out/$r$v.txt"
    ./target/release/lifecycle-bench \
      --gateway "${C2C_GATEWAY_BIN:-./target/release/c2c-gateway}" \
      --sim ./target/release/livekit-sim \
      --policies ./policies \
      --calls "$CALLS" --concurrency "$CONC" --open-calls 0 $flag >"$f" 2>&1 || { cat "$f"; exit 1; }
    lps=$(sed -n 's/^lifecycles\/s (until the last webhook was delivered): //p' "$f")
    cpu=$(awk '$1 == "gateway" && $3 == "ms" {print $2}' "$f")
    c2c=$(awk '$1 == "click2call" && NF == 4 {print $3}' "$f")
    con=$(awk '$1 == "connect" && NF == 4 {print $3}' "$f")
    printf '%-6s %-3s %14s %20s %16s %16s\n' "$r" "$v" "$lps" "$cpu" "$c2c ms" "$con ms"
    grep '^wallet: .*drift' "$f" || true
    echo "$v $lps $cpu" >>"$out/all"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
o_lps=$(awk '$1 == "O" {print $2}' "$out/all" | median)
w_lps=$(awk '$1 == "W" {print $2}' "$out/all" | median)
o_cpu=$(awk '$1 == "O" {print $3}' "$out/all" | median)
w_cpu=$(awk '$1 == "W" {print $3}' "$out/all" | median)
echo
echo "median lifecycles/s: not charged $o_lps, charged $w_lps"
echo "median gateway CPU per lifecycle: not charged $o_cpu ms, charged $w_cpu ms"
awk -v o="$o_lps" -v w="$w_lps" -v oc="$o_cpu" -v wc="$w_cpu" 'BEGIN {
  r = 100 * w / o
  printf "charged / not charged (ratio of medians): %.1f %% of the throughput; gateway CPU per lifecycle %+.1f %%\n", r, 100 * (wc - oc) / oc
  printf "target: charged within 10 %% of not charged: %s\n", (r >= 90) ? "met" : "NOT MET"
}'
