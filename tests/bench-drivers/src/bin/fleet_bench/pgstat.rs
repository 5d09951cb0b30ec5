//! What the database did: its processes' CPU (`/proc`), its transactions
//! (`pg_stat_database`, `pg_stat_wal`, the next transaction id) and, for the SQL profile,
//! the statements its log shows (`log_statement = all` on one database).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::env::Pg;

/// `(pid, ppid, utime + stime, cutime + cstime)` in clock ticks, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, u32, u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    // Fields 4 (ppid), 14-17 (utime, stime, cutime, cstime) of the line: 1, 11-14 here.
    Some((pid, n(1)? as u32, n(11)? + n(12)?, n(13)? + n(14)?))
}

fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// The postmaster listening on `port`: the `postgres` process whose command line has
/// `-p <port>`.
pub(crate) fn postmaster(port: u16) -> Option<u32> {
    let port = port.to_string();
    pids().find(|pid| {
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        args.first()
            .is_some_and(|a| a.ends_with(b"/postgres") || *a == b"postgres")
            && args
                .windows(2)
                .any(|w| w[0] == b"-p" && w[1] == port.as_bytes())
    })
}

/// CPU seconds of the postmaster (with the children it reaped) and its live children
/// (backends, WAL writer, checkpointer, ...). A backend that exits between two samples
/// moves from "live child" to the postmaster's reaped total: deltas stay right.
pub(crate) fn tree_cpu_secs(postmaster: u32) -> f64 {
    let Some((_, _, own, reaped)) = stat(postmaster) else {
        return 0.0;
    };
    let children: u64 = pids()
        .filter_map(stat)
        .filter(|(_, ppid, _, _)| *ppid == postmaster)
        .map(|(_, _, t, _)| t)
        .sum();
    // USER_HZ is 100 on every Linux this runs on.
    (own + reaped + children) as f64 / 100.0
}

/// The next transaction id of the cluster: how many transactions that wrote anything
/// started, read at once (no statistics delay) and without taking an id itself.
pub(crate) fn next_xid(pg: &Pg) -> u64 {
    pg.psql("postgres", "SELECT pg_snapshot_xmax(pg_current_snapshot())")
        .parse()
        .unwrap_or(0)
}

/// Calls ended, and their webhooks delivered, before a round ([`seed_history`]).
pub(crate) const HISTORY: u32 = 20_000;

/// Gives a round's database [`HISTORY`] ended calls and their delivered webhooks, an
/// hour old: a database in service holds its retention period's history, and a round's
/// would otherwise start empty. The query plans a gateway's prepared statements cache
/// are made for the tables' size when they are first run (and again after an
/// `ANALYZE`): for an empty outbox a sequential scan was cheapest, and it stayed the
/// plan while the round's backlog grew (the SQL profile showed every claim reading the
/// whole outbox); for a calls table holding only the warm-up's calls the batched call
/// write's update was a hash join over a sequential scan, and every batch of the round
/// read the whole table (auto_explain; BENCHMARKS.md, issue 22). The calls' records
/// are shaped like a gateway's (about 600 bytes of JSON), so the table's pages are too.
pub(crate) fn seed_history(pg: &Pg, db: &str) {
    pg.psql(
        db,
        &format!(
            "WITH h AS (SELECT i, (extract(epoch FROM now()) * 1000)::bigint - 3600000 + i AS t \
             FROM generate_series(1, {HISTORY}) i), \
             calls AS (INSERT INTO c2c_calls (call_id, tenant, created_ms, version, is_open, \
             driver, record) \
             SELECT 'c2c_history_' || i, 'acme', t, 5, false, 'node-history', \
             json_build_object('call_id', 'c2c_history_' || i, 'tenant', 'acme', \
             'case_id', 'case-' || i, 'customer_crm_id', 'cust-' || i, 'agent_id', 'agent-1', \
             'customer_number', '9530251797', 'phone_from', '+919999999999', \
             'trunk_label', 'airtel', 'room', 'c2c-history-' || i, 'phase', 'ENDED', \
             'call_status', 'ANSWERED', 'created_ms', t, 'connected_ms', t + 1000, \
             'ringing_ms', t + 2000, 'answered_ms', t + 3000, 'ended_ms', t + 63000, \
             'disconnect_reason', 'agent_hangup', 'sip_disconnect_code', NULL, \
             'agent_present', true, 'timers', '[]'::json, 'version', 5, \
             'dial_returned_ms', t + 500, 'hangup_requested_ms', NULL)::text FROM h) \
             INSERT INTO c2c_outbox (seq, webhook_id, call_id, tenant, payload_json, \
             created_ms, attempts, next_attempt_ms, state, delivered_ms, retry_after) \
             SELECT nextval('c2c_outbox_seq'), 'msg_history_' || i, 'c2c_history_' || i, \
             'acme', '{{}}', t, 1, t, 'delivered', t + 50, false FROM h"
        ),
    );
}

/// Gives the planner statistics of `db`'s tables, as autovacuum would have by now on a
/// database in service: a round's is seconds old, autovacuum (a pass a minute) never
/// analysed it, and the plans made without statistics stayed in use (the live delivery
/// claims read through the pending index, in the SQL profile). `ANALYZE` also drops
/// the plans made before it.
pub(crate) fn analyze(pg: &Pg, db: &str) {
    pg.psql(db, "ANALYZE");
}

/// Cumulative statistics of a run's database and of the WAL.
#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) at: Option<Instant>,
    /// Committed and rolled-back transactions in the database (read-only ones too).
    pub(crate) xacts: f64,
    pub(crate) rollbacks: f64,
    /// Rows read through indexes or scans, and written.
    pub(crate) fetched: f64,
    pub(crate) written: f64,
    /// WAL records, bytes and syncs (cluster-wide; the other databases are idle).
    pub(crate) wal_records: f64,
    pub(crate) wal_bytes: f64,
    pub(crate) wal_syncs: f64,
}

/// A backend publishes its counters when it goes idle, but at most once a second; what
/// it could not publish then waits up to 10 s (PostgreSQL 15's `PGSTAT_IDLE_INTERVAL`).
/// Waiting this long after the last activity makes a reading complete.
pub(crate) const SETTLE: Duration = Duration::from_millis(11_000);

pub(crate) fn stats(pg: &Pg, db: &str) -> Stats {
    let row = pg.psql(
        "postgres",
        &format!(
            "SELECT d.xact_commit + d.xact_rollback, d.xact_rollback, d.tup_fetched, \
             d.tup_inserted + d.tup_updated + d.tup_deleted, w.wal_records, w.wal_bytes, \
             w.wal_sync FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = '{db}'"
        ),
    );
    let v: Vec<f64> = row
        .split('|')
        .map(|x| x.trim().parse().unwrap_or(0.0))
        .collect();
    let g = |i: usize| v.get(i).copied().unwrap_or(0.0);
    Stats {
        at: Some(Instant::now()),
        xacts: g(0),
        rollbacks: g(1),
        fetched: g(2),
        written: g(3),
        wal_records: g(4),
        wal_bytes: g(5),
        wal_syncs: g(6),
    }
}

impl Stats {
    pub(crate) fn minus(&self, o: &Stats) -> Stats {
        Stats {
            at: None,
            xacts: self.xacts - o.xacts,
            rollbacks: self.rollbacks - o.rollbacks,
            fetched: self.fetched - o.fetched,
            written: self.written - o.written,
            wal_records: self.wal_records - o.wal_records,
            wal_bytes: self.wal_bytes - o.wal_bytes,
            wal_syncs: self.wal_syncs - o.wal_syncs,
        }
    }

    /// `self` less `idle` scaled from the idle window's length to `secs`.
    pub(crate) fn less_background(&self, idle: &Stats, idle_secs: f64, secs: f64) -> Stats {
        let k = if idle_secs > 0.0 {
            secs / idle_secs
        } else {
            0.0
        };
        Stats {
            at: None,
            xacts: self.xacts - idle.xacts * k,
            rollbacks: self.rollbacks - idle.rollbacks * k,
            fetched: self.fetched - idle.fetched * k,
            written: self.written - idle.written * k,
            wal_records: self.wal_records - idle.wal_records * k,
            wal_bytes: self.wal_bytes - idle.wal_bytes * k,
            wal_syncs: self.wal_syncs - idle.wal_syncs * k,
        }
    }
}

/// The statements of the server log from byte `from` on that ran in `db`, by text (the
/// first 110 characters, whitespace collapsed; BEGIN/COMMIT are simple queries, the rest
/// prepared statements, `execute <name>: ...`). Needs `log_statement = all` on `db` and
/// a `log_line_prefix` with the database (set by [`profile_on`]).
pub(crate) fn statements(pg: &Pg, from: usize, db: &str) -> BTreeMap<String, u64> {
    let log = pg.server.log();
    let log = log.get(from..).unwrap_or("");
    let mut out = BTreeMap::new();
    let mut entry = String::new();
    let mut flush = |entry: &mut String| {
        let tag = format!("db={db} ");
        if let Some(rest) = entry.split_once(&tag).map(|(_, r)| r) {
            let text = rest
                .split_once("LOG:  statement: ")
                .map(|(_, t)| t)
                .or_else(|| {
                    rest.split_once("LOG:  execute ")
                        .and_then(|(_, t)| t.split_once(": ").map(|(_, t)| t))
                });
            if let Some(t) = text {
                let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
                let t: String = t.chars().take(110).collect();
                *out.entry(t).or_insert(0) += 1;
            }
        }
        entry.clear();
    };
    for line in log.lines() {
        // An entry starts with the prefix's timestamp; other lines continue it.
        let starts = line.len() > 4 && line.as_bytes()[..4].iter().all(u8::is_ascii_digit);
        if starts {
            flush(&mut entry);
        }
        entry.push_str(line);
        entry.push(' ');
    }
    flush(&mut entry);
    out
}

/// Logs every statement run in `db` from its next connection on, each line tagged with
/// the database.
pub(crate) fn profile_on(pg: &Pg, db: &str) {
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {db} SET log_statement = 'all'"),
    );
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET log_line_prefix = '%m [%p] db=%d '",
    );
    pg.psql("postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));
}

/// Index entries and table rows read so far in `db`, per relation: each index's
/// `idx_tup_read`, each table's `seq_tup_read` (as "`table` (seq scan)"). Lags like
/// [`stats`]: read after [`SETTLE`].
pub(crate) fn relation_reads(pg: &Pg, db: &str) -> BTreeMap<String, f64> {
    let out = pg.psql(
        db,
        "SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes \
         UNION ALL SELECT relname || ' (seq scan)', seq_tup_read FROM pg_stat_user_tables",
    );
    out.lines()
        .filter_map(|l| {
            let (name, n) = l.split_once('|')?;
            Some((name.trim().to_owned(), n.trim().parse().ok()?))
        })
        .collect()
}

/// Row writes so far in `db`, per table: inserts, updates, of which HOT (no index
/// entry written: the new version fit in the same page and no indexed column changed),
/// and deletes. Lags like [`stats`]: read after [`SETTLE`].
pub(crate) fn table_writes(pg: &Pg, db: &str) -> BTreeMap<String, [f64; 4]> {
    let out = pg.psql(
        db,
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables",
    );
    out.lines()
        .filter_map(|l| {
            let mut f = l.split('|').map(str::trim);
            let name = f.next()?.to_owned();
            let mut n = [0.0; 4];
            for x in &mut n {
                *x = f.next()?.parse().ok()?;
            }
            Some((name, n))
        })
        .collect()
}

/// Starts counting statements in `db` from zero (`pg_stat_statements`, in shared memory:
/// no statistics delay).
pub(crate) fn statements_reset(pg: &Pg, db: &str) {
    pg.psql(db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    pg.psql(db, "SELECT pg_stat_statements_reset()");
}

/// One statement's totals in `pg_stat_statements`.
pub(crate) struct StatementTime {
    pub(crate) calls: f64,
    pub(crate) plans: f64,
    pub(crate) plan_ms: f64,
    pub(crate) exec_ms: f64,
    pub(crate) rows: f64,
    /// Shared buffers the statement touched (hit or read): what it scanned, whatever
    /// the planner chose.
    pub(crate) buffers: f64,
    /// The first 90 characters, whitespace folded.
    pub(crate) text: String,
}

/// Per statement of `db` since [`statements_reset`], most time first.
pub(crate) fn statement_times(pg: &Pg, db: &str) -> Vec<StatementTime> {
    let out = pg.psql(
        db,
        &format!(
            "SELECT calls, plans, total_plan_time, total_exec_time, rows, \
             shared_blks_hit + shared_blks_read, \
             left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{db}') \
             ORDER BY total_plan_time + total_exec_time DESC LIMIT 16"
        ),
    );
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(7, '|').collect();
            let n = |i: usize| f.get(i).and_then(|v| v.trim().parse::<f64>().ok());
            Some(StatementTime {
                calls: n(0)?,
                plans: n(1)?,
                plan_ms: n(2)?,
                exec_ms: n(3)?,
                rows: n(4)?,
                buffers: n(5)?,
                text: f.get(6)?.trim().to_owned(),
            })
        })
        .collect()
}
