#!/usr/bin/env bash
# SIP edge benchmark (issue 5): sipp UAC -> proxy -> sipp UAS, full calls (INVITE, 100,
# 180, 200, ACK, BYE, 200) over UDP on 127.0.0.1, side by side in one run:
#   c2c-gateway's SIP edge (release build)  |  Kamailio (Debian package, minimal config:
#   record_route, prefix 9911 onto the R-URI user unless present, stateful t_relay)
# Both proxies do the same job: the UAC dials the plain 10-digit number 9876543210
# (with X-C2C-Tenant: acme) and the proxy rewrites it to 99119876543210.
# The proxy is pinned to CPU 0, both sipp instances to CPU 1.
#  1. ceiling: fixed rates (RATES, STEP seconds each); a step passes when both sipps exit
#     0 with zero failed calls and zero retransmissions. Stepping stops at the first failure.
#     Then the same ladder with no proxy (UAC straight to UAS): the harness's own ceiling.
#  2. CPU: CPU_RATE calls/s for CPU_SECS s; utime+stime of the proxy (all Kamailio
#     processes) from /proc before/after -> CPU seconds per 1,000 calls.
# Usage: tests/bench/sip.sh   (env: RATES="100 250 500 1000 2000 3000 4000 5000" STEP=10
#        CPU_RATE=200 CPU_SECS=20 C2C_BENCH_NO_BUILD=1 KAM_CHILDREN=2 C2C_GATEWAY_BIN=path)
# Needs sipp (apt-get install -y sip-tester) and kamailio (apt-get install -y kamailio).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
RATES="${RATES:-100 250 500 1000 2000 3000 4000 5000}"
STEP="${STEP:-10}"
CPU_RATE="${CPU_RATE:-200}"
CPU_SECS="${CPU_SECS:-20}"
KAM_CHILDREN="${KAM_CHILDREN:-2}"
for t in sipp kamailio taskset python3; do
  command -v $t >/dev/null || { echo "$t not installed"; exit 2; }
done
[ -n "${C2C_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p c2c-gateway --features sim
# Another build of the gateway to compare (A/B runs of one change): C2C_GATEWAY_BIN=path.
GW_BIN="${C2C_GATEWAY_BIN:-$PWD/target/release/c2c-gateway}"
SCEN="$PWD/tests/bench/sip"
work=$(mktemp -d /tmp/c2c-sip-bench.XXXXXX)
PROXY_PID=""
cleanup() {
  [ -z "$PROXY_PID" ] || { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
# A port free on both UDP and TCP.
port() {
  python3 - <<'PY'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        u.close(); t.close()
PY
}
HZ=$(getconf CLK_TCK)
UAS_PORT=$(port)

# CPU ticks (utime+stime) of a process and all its children (Kamailio forks workers).
ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    # fields after the ")" : state=1 ... utime=12 stime=13
    total=$(( total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
  done
  echo "$total"
}

# Last value of a column in a sipp -trace_stat CSV (separator ';').
stat_col() { # file column
  awk -F';' -v c="$2" 'NR==1 {for (i=1;i<=NF;i++) if ($i==c) k=i; next} {v=$k} END {print (v==""?"?":v)}' "$1"
}

# One fixed-rate run: run_calls <dir> <target port> <rate> <calls>. Prints
# "ok|FAIL uac_rc uas_rc succ failed retrans_uac retrans_uas".
run_calls() {
  local d=$1 tport=$2 rate=$3 n=$4 uac_port tmo
  mkdir -p "$d"
  uac_port=$(port)
  tmo=$(( n / rate + 30 ))
  ( cd "$d" && exec taskset -c 1 sipp -sf "$SCEN/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -t u1 \
      -m "$n" -buff_size 4194304 -nostdin -trace_stat -stf uas_stat.csv -fd 1 -trace_err \
      -timeout "$tmo" -timeout_error >uas.out 2>&1 ) &
  local uas=$!
  sleep 0.3
  set +e
  ( cd "$d" && exec taskset -c 1 sipp "127.0.0.1:$tport" -sf "$SCEN/uac.xml" -i 127.0.0.1 -p "$uac_port" -t u1 \
      -s "${DIAL:-9876543210}" -key c2c_call bench-call -key c2c_tenant acme \
      -r "$rate" -m "$n" -buff_size 4194304 -nostdin -trace_stat -stf uac_stat.csv -fd 1 -trace_err \
      -timeout "$tmo" -timeout_error >uac.out 2>&1 )
  local uac_rc=$?
  wait "$uas"; local uas_rc=$?
  set -e
  local succ failed ru rs verdict=ok
  succ=$(stat_col "$d/uac_stat.csv" 'SuccessfulCall(C)')
  failed=$(stat_col "$d/uac_stat.csv" 'FailedCall(C)')
  ru=$(stat_col "$d/uac_stat.csv" 'Retransmissions(C)')
  rs=$(stat_col "$d/uas_stat.csv" 'Retransmissions(C)')
  if [ "$uac_rc" != 0 ] || [ "$uas_rc" != 0 ] || [ "$failed" != 0 ] || [ "$ru" != 0 ] || [ "$rs" != 0 ] || [ "$succ" != "$n" ]; then
    verdict=FAIL
  fi
  echo "$verdict $uac_rc $uas_rc $succ $failed $ru $rs"
}

# bench <name> <target port>: the rate ladder, then the CPU run. Writes $work/<name>.res
bench() {
  local name=$1 tport=$2 best=0 r res
  echo "== $name (proxy pid $PROXY_PID on CPU 0, sipp on CPU 1)"
  # Warm-up (also checks the path works at all).
  res=$(run_calls "$work/$name/warmup" "$tport" 50 100)
  echo "  warm-up 50 calls/s x 100: $res"
  for r in $RATES; do
    res=$(run_calls "$work/$name/r$r" "$tport" "$r" $(( r * STEP )))
    echo "  ${r} calls/s x ${STEP}s: $res   (verdict uac_rc uas_rc successful failed retrans_uac retrans_uas)"
    [ "${res%% *}" = ok ] || break
    best=$r
    sleep 2
  done
  sleep 2
  local before after n=$(( CPU_RATE * CPU_SECS )) idle
  # Idle baseline: the proxy's own background cost (timers, the gateway's HTTP side).
  before=$(ticks "$PROXY_PID"); sleep 5; after=$(ticks "$PROXY_PID")
  idle=$(awk -v t=$(( after - before )) -v hz="$HZ" 'BEGIN {printf "%.4f", t / hz / 5}')
  before=$(ticks "$PROXY_PID")
  res=$(run_calls "$work/$name/cpu" "$tport" "$CPU_RATE" "$n")
  after=$(ticks "$PROXY_PID")
  local cpu
  cpu=$(awk -v t=$(( after - before )) -v hz="$HZ" -v n="$n" 'BEGIN {printf "%.3f", t / hz / n * 1000}')
  local net
  net=$(awk -v t=$(( after - before )) -v hz="$HZ" -v n="$n" -v i="$idle" -v s="$CPU_SECS" \
    'BEGIN {printf "%.3f", (t / hz - i * s) / n * 1000}')
  echo "  idle: ${idle} CPU s/s; CPU run ${CPU_RATE} calls/s x ${CPU_SECS}s: $res; $(( after - before )) ticks -> ${cpu} CPU s / 1000 calls (${net} minus idle)"
  echo "$best $cpu ${res%% *} $net $idle" >"$work/$name.res"
}

# ---- c2c-gateway --------------------------------------------------------------------
GW_SIP=$(port); GW_HTTP=$(port)
cp -r policies "$work/policies"
sed -i "s/^listen = \"127.0.0.1:7880\"/listen = \"127.0.0.1:0\"/; s#^sip_sources = .*#sip_sources = [\"127.0.0.1/32\"]#" "$work/policies/gateway.toml"
# Measure the SIP path, not the per-tenant caps (defaults: 10 calls/s, 100 concurrent,
# 8192 transactions, i.e. ~128 calls/s sustained as a finished call holds 2 for 32 s).
cat >>"$work/policies/gateway.toml" <<EOF
[sip]
calls_per_second = 100000
max_concurrent_calls = 1000000
max_transactions = 1000000
EOF
sed -i "s#^carrier = \"sip:127.0.0.1:5080\"#carrier = \"sip:127.0.0.1:$UAS_PORT\"#" "$work/policies/tenants/acme.toml"
sed -i 's/^\[dlt\]/[limits]\nrequests_per_second = 100000\nmax_concurrent_calls = 1000000\n\n[dlt]/' "$work/policies/tenants/acme.toml"
C2C_LOG=warn taskset -c 0 "$GW_BIN" serve --policies "$work/policies" --data "$work/data" \
  --listen "127.0.0.1:$GW_HTTP" --sip-listen "127.0.0.1:$GW_SIP" >"$work/gw.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW_HTTP/readyz" >/dev/null && break; sleep 0.1; done
sleep 0.5
kill -0 "$PROXY_PID" || { echo "gateway did not start:"; cat "$work/gw.log"; exit 1; }
bench gateway "$GW_SIP"
kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=""

# ---- Kamailio -----------------------------------------------------------------------
KAM=$(port)
MPATH=$(dirname "$(find /usr/lib -path '*kamailio/modules/tm.so' | head -1)")
mkdir -p "$work/kam"
cat >"$work/kam/kamailio.cfg" <<EOF
#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=$KAM_CHILDREN
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
listen=udp:127.0.0.1:$KAM
# Same UDP socket buffer as the gateway asks for (4 MiB; Kamailio probes up to this).
maxbuffer=4194304
mpath="$MPATH"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"

request_route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (has_totag()) {
        if (loose_route()) { t_relay(); exit; }
        if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
    t_check_trans();
    if (is_method("INVITE")) { record_route(); }
    remove_hf("X-C2C-Call-Id");
    remove_hf("X-C2C-Tenant");
    if (!(\$rU =~ "^9911")) { \$rU = "9911" + \$rU; }
    \$du = "sip:127.0.0.1:$UAS_PORT";
    if (!t_relay()) { sl_reply_error(); }
    exit;
}
EOF
taskset -c 0 kamailio -f "$work/kam/kamailio.cfg" -DD -E -m 256 -M 16 -P "$work/kam/kamailio.pid" \
  -Y "$work/kam" -w "$work/kam" >"$work/kam.log" 2>&1 &
PROXY_PID=$!
sleep 2
kill -0 "$PROXY_PID" || { echo "kamailio did not start:"; cat "$work/kam.log"; exit 1; }
bench kamailio "$KAM"
kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; PROXY_PID=""

# ---- no proxy: the load generator's own ceiling ---------------------------------------
# The UAC sends straight to the UAS, dialling the already-prefixed number (the UAS checks
# the R-URI). Same sipp instances on the same CPU: the highest rate this harness can
# produce cleanly at all, whatever the proxy.
echo "== direct (no proxy; sipp on CPU 1)"
d_best=0
for r in $RATES; do
  res=$(DIAL=99119876543210 run_calls "$work/direct/r$r" "$UAS_PORT" "$r" $(( r * STEP )))
  echo "  ${r} calls/s x ${STEP}s: $res"
  [ "${res%% *}" = ok ] || break
  d_best=$r
  sleep 2
done

# ---- table --------------------------------------------------------------------------
read -r g_best g_cpu g_ok g_net g_idle <"$work/gateway.res"
read -r k_best k_cpu k_ok k_net k_idle <"$work/kamailio.res"
echo
echo "SIP edge bench: UDP, loopback, proxy on CPU 0, sipp UAC+UAS on CPU 1; rates tried: $RATES (${STEP}s each)"
echo "Both proxies rewrite 9876543210 -> 99119876543210 (prefix added by the proxy), record-route, stateful forward."
printf '%-34s %14s %14s\n' "" "c2c-gateway" "kamailio-$(kamailio -v | awk 'NR==1 {print $3}')"
printf '%-34s %14s %14s\n' "max clean rate (calls/s)" "$g_best" "$k_best"
printf '%-34s %14s %14s\n' "  no proxy (sipp UAC -> UAS)" "$d_best" "$d_best"
printf '%-34s %14s %14s\n' "CPU s / 1000 calls @ ${CPU_RATE} cps" "$g_cpu" "$k_cpu"
printf '%-34s %14s %14s\n' "  same, idle cost subtracted" "$g_net" "$k_net"
printf '%-34s %14s %14s\n' "idle CPU s per s" "$g_idle" "$k_idle"
printf '%-34s %14s %14s\n' "CPU run clean" "$g_ok" "$k_ok"
awk -v g="$g_cpu" -v k="$k_cpu" 'BEGIN { if (k > 0) printf "gateway/kamailio CPU per call: %.2fx\n", g / k }'
