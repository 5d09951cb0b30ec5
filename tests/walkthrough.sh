#!/usr/bin/env bash
# Runs the README's "Zero to first call" exactly as written: the ```sh blocks between
# <!-- walkthrough:begin --> and <!-- walkthrough:end --> in README.md, from the
# repository root, against a built gateway (C2C_BIN; default: a debug build, made here if
# missing) on free ports, with a copy of the example policies and a fresh data directory.
# Then checks what the README promises: the CRM receiver got the call's webhook, with the
# expected key, a valid signature and call_status ANSWERED.
#
#   tests/walkthrough.sh            # also run by gateway/tests/walkthrough.rs (cargo test)
#
# Needs bash, curl, sed, grep, timeout. Touches only 127.0.0.1 and a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ -z "${C2C_BIN:-}" ]; then
  cargo build -q -p c2c-gateway --features sim
  C2C_BIN=$ROOT/target/debug/c2c-gateway
fi
[ -x "$C2C_BIN" ] || { echo "walkthrough: $C2C_BIN is not an executable" >&2; exit 2; }
command -v curl >/dev/null || { echo "walkthrough: curl is required" >&2; exit 2; }

# The block, as the README has it.
block=$(awk '
  /<!-- walkthrough:begin/ { inside = 1; next }
  /<!-- walkthrough:end/   { inside = 0 }
  inside && /^```sh$/      { fence = 1; next }
  inside && /^```$/        { fence = 0; next }
  inside && fence          { print }
' README.md)
if [ -z "$block" ]; then
  echo "walkthrough: no sh block between the walkthrough markers in README.md" >&2
  exit 1
fi

# A free port below the ephemeral range (an outgoing connection cannot take it between
# this check and the bind): nothing answers a connect to it.
used_ports=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    case "$used_ports" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports="$used_ports$p "
      echo "$p"
      return 0
    fi
  done
  echo "walkthrough: no free port found" >&2
  return 1
}
GW_PORT=$(free_port); SIM_PORT=$(free_port); CRM_PORT=$(free_port); SIP_PORT=$(free_port)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/c2c-walkthrough.XXXXXX")
cleanup() {
  # The block's own processes (gateway, receiver) if it failed before stopping them:
  # it runs in its own process group.
  if [ -n "${BLOCK_PID:-}" ]; then kill -TERM -- "-$BLOCK_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The example policies with this run's ports; the README's defaults stay untouched.
cp -r policies "$WORK/policies"
sed -i \
  -e "s#127.0.0.1:7880#127.0.0.1:$SIM_PORT#g" \
  -e "s#127.0.0.1:8080#127.0.0.1:$GW_PORT#g" \
  -e "s#grace_period_seconds = 10#grace_period_seconds = 1#" \
  "$WORK/policies/gateway.toml"
sed -i -e "s#127.0.0.1:8090#127.0.0.1:$CRM_PORT#" "$WORK/policies/tenants/acme.toml"
grep -q "127.0.0.1:$CRM_PORT" "$WORK/policies/tenants/acme.toml"

export C2C_BIN GW="127.0.0.1:$GW_PORT" SIM="127.0.0.1:$SIM_PORT" CRM="127.0.0.1:$CRM_PORT"
export OUT="$WORK/out"
export C2C_POLICIES="$WORK/policies" C2C_DATA="$WORK/data"
export C2C_LISTEN="$GW" C2C_SIP_LISTEN="127.0.0.1:$SIP_PORT"

echo "walkthrough: gateway $GW, simulator $SIM, CRM receiver $CRM, binary $C2C_BIN"
# Job control on: the block runs as its own process group (pgid = its pid) with
# everything it starts, so a failed or stuck run leaves nothing behind (cleanup kills
# the group).
set +e -m
bash -euo pipefail -c "$block" > "$WORK/block.out" 2>&1 &
BLOCK_PID=$!
set +m
timeout_s=${WALKTHROUGH_TIMEOUT:-180}
for _ in $(seq 1 "$timeout_s"); do
  kill -0 "$BLOCK_PID" 2>/dev/null || break
  sleep 1
done
if kill -0 "$BLOCK_PID" 2>/dev/null; then
  echo "walkthrough: the README block did not finish within ${timeout_s}s" >&2
  status=124
else
  wait "$BLOCK_PID"
  status=$?
fi
set -e

show() {
  echo "--- README block output"; cat "$WORK/block.out"
  for f in gateway.log crm-sink.log webhooks.jsonl; do
    [ -f "$OUT/$f" ] && { echo "--- $f"; tail -n 40 "$OUT/$f"; }
  done
}
if [ "$status" -ne 0 ]; then
  show >&2
  echo "walkthrough: the README block failed (exit $status)" >&2
  exit 1
fi
BLOCK_PID=

# What the README promises the reader sees.
hook=$(grep '"call_status":"ANSWERED"' "$OUT/webhooks.jsonl" || true)
fail=
for want in '"answered":200' '"key":"ok"' '"signature":"valid"' '"phone_to":"9530251797"' \
            '"case_id":"case-1"' '"webhook_id":"msg_'; do
  case "$hook" in *"$want"*) ;; *) fail="$fail $want" ;; esac
done
if [ -n "$fail" ] || [ "$(printf '%s\n' "$hook" | grep -c .)" -ne 1 ]; then
  show >&2
  echo "walkthrough: expected one ANSWERED webhook with:$fail" >&2
  exit 1
fi
echo "walkthrough: OK — $(printf '%s' "$hook" | cut -c1-160)…"
