#!/usr/bin/env bash
# What writing several calls in one statement would save PostgreSQL (issue 22): the
# database's CPU per call write when each write is its own statement and transaction
# (as the store writes a transition today) against N writes in one `UPDATE .. FROM
# unnest(..)` and one commit (a per-node write queue, not built). Same table and indexes
# as `c2c_calls`, 600-byte records, durable commits (fsync and synchronous_commit on),
# pgbench with prepared statements; each client writes its own calls, so batches never
# wait on each other's row locks. The CPU is the postgres processes' (/proc), the run
# only. Prints one line per variant; compare the lines of one run.
# Usage: tests/bench/pg-batch.sh [seconds=15] [clients=8] [sizes="1 2 4 8"]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
clients=${2:-8}
sizes=${3:-1 2 4 8}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/postgres" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
dir=$(mktemp -d /tmp/c2c-pg-batch.XXXXXX)
run_as=()
if [ "$(id -u)" = 0 ]; then
  chown -R 65534:65534 "$dir"
  run_as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${run_as[@]}" "$bin/initdb" -D "$dir/data" -U c2c --auth=trust -E UTF8 --no-sync --no-instructions >/dev/null
"${run_as[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
  >"$dir/server.log" 2>&1 &
pg=$!
trap 'kill $pg 2>/dev/null; wait $pg 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break; sleep 0.2; done
psql=("$bin/psql" -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U c2c -d postgres)
rows=$((clients * 2500))
# The table and its indexes as the store creates them (no migration changes them).
schema=$(sed -n '/^CREATE TABLE c2c_calls (/,/^CREATE INDEX c2c_calls_open_tenant/p' \
  plugins/store-pg/src/calls/mod.rs)
[ -n "$schema" ] || { echo "c2c_calls' schema not found in plugins/store-pg/src/calls/mod.rs" >&2; exit 1; }
"${psql[@]}" <<SQL
$schema
INSERT INTO c2c_calls
SELECT 'c' || i, 'acme', i, 1, true, 'node-a', repeat(md5(i::text), 19)
FROM generate_series(0, $rows - 1) AS i;
VACUUM ANALYZE c2c_calls;
SQL
# The postgres processes' CPU, in clock ticks: the postmaster's own and that of its
# children that have exited (pgbench's backends end with it), plus the live children's.
pg_ticks() {
  local t p
  t=$(awk '{print $14 + $15 + $16 + $17}' /proc/$pg/stat)
  for p in $(pgrep -P $pg); do
    t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0)))
  done
  echo $t
}
hz=$(getconf CLK_TCK)
for n in $sizes; do
  script="$dir/batch$n.sql"
  {
    echo '\set base :client_id * 2500'
    echo "\\set a random(0, $((2500 / n - 1)))"
    ids=()
    for k in $(seq 0 $((n - 1))); do
      echo "\\set id$k :base + :a + $((k * 2500 / n))"
      ids+=("'c' || :id$k::text")
    done
    if [ "$n" = 1 ]; then
      # The store's conditional write of one call (calls/write.rs, WRITE_PLAIN).
      echo "UPDATE c2c_calls SET tenant = 'acme', version = version + 1, is_open = true,"
      echo "  driver = 'node-a', record = repeat(md5(:a::text), 19)"
      echo "  WHERE call_id = ${ids[0]} AND version >= 1 AND driver = 'node-a';"
    else
      ( IFS=,; echo "UPDATE c2c_calls c SET tenant = 'acme', version = c.version + 1,"
        echo "  is_open = true, driver = 'node-a', record = repeat(md5(:a::text), 19)"
        echo "  FROM unnest(ARRAY[${ids[*]}]::text[]) AS u(id)"
        echo "  WHERE c.call_id = u.id AND c.version >= 1 AND c.driver = 'node-a';" )
    fi
  } >"$script"
  chmod 644 "$script"
  idle=$(pgrep -c -P $pg)
  before=$(pg_ticks)
  out=$("$bin/pgbench" -n -M prepared -h 127.0.0.1 -p "$port" -U c2c -c "$clients" -j 1 \
    -T "$secs" -f "$script" postgres 2>&1)
  # The backends' CPU counts once the postmaster has reaped them.
  while [ "$(pgrep -c -P $pg)" -gt "$idle" ]; do sleep 0.1; done
  after=$(pg_ticks)
  tps=$(echo "$out" | awk '/^tps = /{print $3; exit}')
  python3 - "$n" "$tps" "$((after - before))" "$hz" "$secs" <<'PY'
import sys
n, tps, ticks, hz, secs = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
writes = tps * n
cpu_s = ticks / hz
print(f"{n} call write(s) per statement: {tps:,.0f} statements/s, {writes:,.0f} writes/s, "
      f"PostgreSQL CPU {cpu_s / secs:.2f} cores, {cpu_s / (writes * secs) * 1e6:.1f} µs per write")
PY
done
