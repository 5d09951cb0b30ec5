#!/usr/bin/env bash
# Fleet benchmark (issue 22): gateways on one PostgreSQL. Release builds; the `fleet-bench`
# driver starts a real PostgreSQL cluster (Debian's `postgresql`, durable defaults: fsync
# and synchronous_commit on, data under $TMPDIR like the sled runs'), the LiveKit simulator
# and the gateways as their own processes, and is the load generator and the CRM webhook
# sink itself.
#  1. throughput, side by side in alternating rounds (a b c a b c ...): full lifecycles
#     (click2call, agent joins, connect, ANSWERED, hangup, CRM webhook delivered) on
#     (a) one gateway on sled, (b) one gateway on PostgreSQL, (c) two gateways on one
#     PostgreSQL, lifecycles round robin over both (one simulator, one sink). On
#     PostgreSQL a round's database first gets a history of 20,000 ended calls and
#     their delivered webhooks, then 50 warm-up lifecycles per node and an ANALYZE: a
#     database in service has history and statistics, and query plans made for empty
#     tables stay in use as they grow (pgstat.rs). Lifecycles/s,
#     click2call p99 excl. LiveKit, CPU per lifecycle of the gateways, the database
#     (postgres processes, /proc), the simulator and the load generator; per lifecycle
#     the database's write transactions (next xid), transactions (pg_stat_database
#     xact_commit + xact_rollback, the idle nodes' rate subtracted) and WAL syncs.
#     Target: (c) >= 600 lifecycles/s on the 2 cores shared with the database (the
#     median of the rounds). The target line also counts the rounds in which the
#     hypervisor stole 5 % or more of the CPU: those ran on less than two cores.
#  2. SQL profile: one node on PostgreSQL with log_statement = all on its database: the
#     statements one lifecycle runs, by text.
#  3. failover: per round, 200 unconnected + 200 ringing calls created on a fresh node A,
#     kill -9 of A, node B takes over (lease_ms 5000): kill -> taken over (B's
#     c2c_fleet_calls_taken_over_total), kill -> the first timer fired on B (expiry
#     timers due while nobody drove the calls), ringing calls' ring-out on B (fired - due).
#     Target: kill -> taken over p99 < lease + 1 s.
# Exits non-zero only on a setup failure, not on a missed target.
# Usage: tests/bench/fleet.sh [calls=3000] [concurrency=24] [rounds=2]
#   env: SETUPS=sled,pg,fleet (add fleet-requests: every request to the next node)
#        PARTS=throughput,profile,failover  FAILOVER_CALLS=200 FAILOVER_ROUNDS=5
#        LEASE_MS=5000 POOL_SIZE=4 PROFILE_CALLS=500 PROFILE_NODES=1 (2: the profile of (c))
#        WEBHOOK_CONCURRENCY=N (webhooks.per_tenant_concurrency of every node; default the
#        policy's 4)
#        WALLET=1 (acme's calls paid from its wallet: billing.charge_calls on, topped up)
#        C2C_BENCH_NO_BUILD=1 (skip the release builds)
#        C2C_GATEWAY_BIN=path (another gateway binary, for A/B runs of two builds)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
if [ -z "${C2C_BENCH_NO_BUILD:-}" ]; then
  cargo build --release -q -p c2c-gateway --features sim
  cargo build --release -q -p livekit-sim -p c2c-bench-drivers
fi
exec ./target/release/fleet-bench \
  --gateway "${C2C_GATEWAY_BIN:-./target/release/c2c-gateway}" \
  --sim ./target/release/livekit-sim \
  --policies ./policies \
  --calls "${1:-3000}" --concurrency "${2:-24}" --rounds "${3:-2}" \
  --setups "${SETUPS:-sled,pg,fleet}" \
  --parts "${PARTS:-throughput,profile,failover}" \
  --failover-calls "${FAILOVER_CALLS:-200}" --failover-rounds "${FAILOVER_ROUNDS:-5}" \
  --lease-ms "${LEASE_MS:-5000}" --pool-size "${POOL_SIZE:-4}" \
  --profile-calls "${PROFILE_CALLS:-500}" --profile-nodes "${PROFILE_NODES:-1}" \
  ${WEBHOOK_CONCURRENCY:+--webhook-concurrency "$WEBHOOK_CONCURRENCY"} \
  ${WALLET:+--wallet}
