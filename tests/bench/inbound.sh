#!/usr/bin/env bash
# Inbound call benchmark (issue 21). Release builds; the `inbound-bench` driver is the
# carrier (a UDP SIP UAC dialling the tenant's DID at the gateway's SIP edge at a fixed
# rate), the agents (presence WebSocket clients, available) and the CRM (lead lookup
# answering at once, webhook receiver); the gateway and the LiveKit simulator (LiveKit
# SIP: inbound trunk + Callee dispatch rule, answers once the agent publishes audio) run
# as their own processes, a fresh pair per run.
#  (a) offer path: INVITE sent -> `incoming` read at the agent's socket, OFFER_RATE
#      calls/s for OFFER_SECONDS; the carrier CANCELs each call once its agent has the
#      offer (so no agent stays busy). Target: p99 < 20 ms at 100 calls/s. Also the
#      gateway's c2c_inbound_incoming_delay_seconds quantiles over the same calls.
#  (b) whole inbound calls at RATE calls/s for SECONDS (agent accepts, joins the room,
#      LiveKit answers, carrier ACKs, holds HOLD_MS, BYE) against outbound click2call
#      lifecycles (`lifecycle-bench`): paced at the same RATE (O) and back to back at 24
#      concurrent (F, the issue-3 benchmark), in alternating rounds I O F I O F ...;
#      completed calls/s, failures, gateway CPU per call and the inbound/outbound ratio.
# Exits non-zero only on a setup failure, not on a missed target.
# The gateway's data directory is under $TMPDIR (default /tmp, on disk): the store's
# group-commit fsyncs are part of the path measured (TMPDIR=/dev/shm is a control run
# without them).
# Usage: tests/bench/inbound.sh [offer_rate=100] [rate=200] [seconds=20]
#   env: OFFER_SECONDS=30 ROUNDS=3 AGENTS=200 HOLD_MS=100 PARTS="a b" (which parts to run)
#        C2C_BENCH_NO_BUILD=1 (skip the release builds)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
OFFER_RATE="${1:-100}"
RATE="${2:-200}"
SECONDS_B="${3:-20}"
OFFER_SECONDS="${OFFER_SECONDS:-30}"
ROUNDS="${ROUNDS:-3}"
AGENTS="${AGENTS:-200}"
HOLD_MS="${HOLD_MS:-100}"
PARTS="${PARTS:-a b}"
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || { cargo build --release -q -p c2c-gateway --features sim && cargo build --release -q -p livekit-sim -p c2c-bench-drivers; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
out=$(mktemp -d /tmp/c2c-inbound.XXXXXX)
trap 'rm -rf "$out"' EXIT
R=./target/release
common=(--gateway "$R/c2c-gateway" --sim "$R/livekit-sim" --policies ./policies)

if [[ " $PARTS " == *" a "* ]]; then
  echo "== (a) offer path: $OFFER_RATE inbound calls/s for ${OFFER_SECONDS} s, $AGENTS agents, carrier cancels once offered (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  "$R/inbound-bench" "${common[@]}" --mode offer --rate "$OFFER_RATE" --seconds "$OFFER_SECONDS" \
    --agents "$AGENTS" >"$out/offer.txt" 2>&1 || { cat "$out/offer.txt"; exit 1; }
  cat "$out/offer.txt"
fi
[[ " $PARTS " == *" b "* ]] || exit 0

# field <file> <key>: a value of the driver's `summary:` line.
field() { sed -n "s/^summary: .*\b$2=\([^ ]*\).*/\1/p" "$1"; }
calls=$(awk -v r="$RATE" -v s="$SECONDS_B" 'BEGIN {printf "%d", r * s}')
echo
echo "== (b) inbound calls at $RATE/s for ${SECONDS_B} s (hold ${HOLD_MS} ms) vs outbound lifecycles, $ROUNDS rounds of I O F (load: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-6s %-3s %10s %7s %8s %20s %16s %19s\n' round var completed failed calls/s "gateway CPU ms/call" "(minus idle)" "incoming p99 ms"
for r in $(seq "$ROUNDS"); do
  f="$out/$r-I.txt"
  "$R/inbound-bench" "${common[@]}" --mode answer --rate "$RATE" --seconds "$SECONDS_B" \
    --agents "$AGENTS" --hold-ms "$HOLD_MS" >"$f" 2>&1 || { cat "$f"; exit 1; }
  printf '%-6s %-3s %10s %7s %8s %20s %16s %19s\n' "$r" I "$(field "$f" completed)" "$(field "$f" failed)" \
    "$(field "$f" cps)" "$(field "$f" gw_cpu_ms)" "$(field "$f" gw_cpu_net_ms)" "$(field "$f" incoming_p99_ms)"
  echo "I $(field "$f" cps) $(field "$f" gw_cpu_ms) $(field "$f" failed)" >>"$out/all"
  for v in O F; do
    f="$out/$r-$v.txt"
    if [ "$v" = O ]; then
      extra=(--calls "$calls" --paced "$RATE")
    else
      extra=(--calls 3000)
    fi
    "$R/lifecycle-bench" "${common[@]}" "${extra[@]}" --concurrency 24 --open-calls 0 >"$f" 2>&1 \
      || { cat "$f"; exit 1; }
    lps=$(sed -n 's/^lifecycles\/s (until the last webhook was delivered): //p' "$f")
    cpu=$(awk '$1 == "gateway" && $3 == "ms" {print $2}' "$f")
    n=$(sed -n 's/^phase 1: \([0-9]*\) full lifecycles.*/\1/p' "$f")
    printf '%-6s %-3s %10s %7s %8s %20s %16s %19s\n' "$r" "$v" "$n" 0 "$lps" "$cpu" "" ""
    echo "$v $lps $cpu 0" >>"$out/all"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
col() { awk -v v="$1" -v c="$2" '$1 == v {print $c}' "$out/all" | median; }
i_cps=$(col I 2); i_cpu=$(col I 3); o_cps=$(col O 2); o_cpu=$(col O 3); f_cps=$(col F 2); f_cpu=$(col F 3)
i_failed=$(awk '$1 == "I" {s += $4} END {print s + 0}' "$out/all")
echo
echo "Round I in full (last round):"
sed -n '/^calls:/,$p' "$out/$ROUNDS-I.txt"
echo
echo "medians: inbound $i_cps calls/s completed, gateway $i_cpu ms CPU per call ($i_failed failed in all rounds)"
echo "         outbound paced at $RATE/s: $o_cps lifecycles/s, gateway $o_cpu ms per lifecycle"
echo "         outbound back to back (24 concurrent): $f_cps lifecycles/s, gateway $f_cpu ms per lifecycle"
awk -v i="$i_cpu" -v o="$o_cpu" -v f="$f_cpu" -v r="$RATE" 'BEGIN {
  printf "gateway CPU per inbound call / per outbound lifecycle: %.2fx at %s/s (same rate), %.2fx vs back to back\n", i / o, r, i / f
}'
awk -v c="$i_cps" -v r="$RATE" -v x="$i_failed" 'BEGIN {
  printf "target: %s inbound calls/s clean: %s\n", r, (c >= 0.97 * r && x == 0) ? "met" : "NOT MET"
}'
