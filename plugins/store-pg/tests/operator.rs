#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The operator side of [`PgCallStore`] against a real PostgreSQL: the integrity check
//! (and what it reports once data drifted), the tally rebuild behind
//! `ensure_aggregates`, the export walks, and backups left to PostgreSQL's tools.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use c2c_callstate::store::contract::call;
use c2c_callstate::{
    transition, BackupError, CallEvent, CallKnobs, CallRecord, CallStore, CallStoreExt, DayTally,
    OutboxState, ProblemKind,
};
use c2c_store_pg::{PgCallStore, PgOptions, PgStore};
use c2c_test_support::pg::PgServer;

/// One server for this test binary, database `db`; cases keep apart by schema.
fn server() -> &'static PgServer {
    c2c_test_support::pg::shared()
}

async fn store(tag: &str) -> (Arc<PgCallStore>, String) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let schema = format!("{tag}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut o = PgOptions::new(server().url("db"));
    o.schema = Some(schema.clone());
    o.pool_size = 8;
    let pg = PgStore::open(o).await.unwrap();
    (Arc::new(PgCallStore::new(pg).await.unwrap()), schema)
}

fn sql(schema: &str, statement: &str) -> String {
    server().psql("db", &format!("SET search_path = {schema}; {statement}"))
}

async fn event(s: &PgCallStore, id: &str, ev: CallEvent, now: u64) {
    s.apply_transition(id, move |r| transition(r, &ev, &CallKnobs::default(), now))
        .await
        .unwrap();
}

/// 2024-03-01T00:00:00Z.
const DAY1: u64 = 1_709_251_200_000;
const DAY_MS: u64 = 86_400_000;

async fn ended(s: &PgCallStore, tenant: &str, t0: u64) -> CallRecord {
    let rec = call(tenant, t0);
    s.create(&rec).await.unwrap();
    event(s, &rec.call_id, CallEvent::Connect, t0 + 1_000).await;
    event(s, &rec.call_id, CallEvent::Answered, t0 + 2_000).await;
    event(s, &rec.call_id, CallEvent::AgentHangup, t0 + 62_000).await;
    s.get(&rec.call_id).await.unwrap().unwrap()
}

async fn deliver(s: &PgCallStore, call_id: &str) {
    let seq = s.outbox_seq_for_call(call_id).await.unwrap().unwrap();
    let mut e = s.outbox_get(seq).await.unwrap().unwrap();
    e.state = OutboxState::Delivered;
    e.attempts = 1;
    e.delivered_ms = Some(e.created_ms + 10);
    s.outbox_update(&e).await.unwrap();
}

/// Open, ended, delivered, failed-outcome and purged calls over two days and tenants.
/// Returns (an open call, an ended call with its webhook pending, a delivered one).
async fn workload(s: &PgCallStore) -> (CallRecord, CallRecord, CallRecord) {
    let old = ended(s, "acme", DAY1 - 40 * DAY_MS).await;
    deliver(s, &old.call_id).await;
    let busy = call("acme", DAY1 + 5);
    s.create(&busy).await.unwrap();
    event(s, &busy.call_id, CallEvent::Connect, DAY1 + 1_000).await;
    let left = CallEvent::CustomerLeft {
        sip_code: Some(486),
        disconnect_reason: Some("USER_REJECTED".into()),
    };
    event(s, &busy.call_id, left, DAY1 + 3_000).await;
    let open = call("acme", DAY1 + DAY_MS);
    s.create(&open).await.unwrap();
    let pending = ended(s, "beta", DAY1 + 10).await;
    let delivered = ended(s, "acme", DAY1 + 20).await;
    deliver(s, &delivered.call_id).await;
    let (r, _) = s
        .purge_ended_before(DAY1 - DAY_MS, None, 100)
        .await
        .unwrap();
    assert_eq!(r.purged, 1);
    (open, pending, delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_clean_after_a_workload_and_names_what_drifted() {
    let (s, schema) = store("check").await;
    let (open, pending, delivered) = workload(&s).await;
    let broken = ended(&s, "gamma", DAY1 + 30).await;
    let report = s.check().await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!((report.records, report.open_index), (5, 1));
    assert_eq!((report.outbox, report.pending_index), (4, 3));
    assert!(
        report.tallies >= 4 && report.purged_tallies == 1,
        "{report:?}"
    );

    sql(
        &schema,
        "INSERT INTO c2c_tallies VALUES ('acme', '20240301', 'airtel', 3, 'answered', 7) \
         ON CONFLICT (tenant, day, trunk, shard, metric) DO UPDATE SET n = c2c_tallies.n + 7",
    );
    sql(
        &schema,
        &format!(
            "UPDATE c2c_calls SET is_open = true WHERE call_id = '{}'",
            delivered.call_id
        ),
    );
    sql(
        &schema,
        &format!(
            "DELETE FROM c2c_outbox WHERE call_id = '{}'",
            pending.call_id
        ),
    );
    sql(
        &schema,
        &format!(
            "UPDATE c2c_outbox SET claimed_by = 'ghost' WHERE call_id = '{}'",
            delivered.call_id
        ),
    );
    sql(
        &schema,
        &format!(
            "UPDATE c2c_calls SET record = 'not json' WHERE call_id = '{}'",
            broken.call_id
        ),
    );
    let mut ticks = 0;
    let report = s.check_with_progress(&mut |_| ticks += 1).await.unwrap();
    assert!(ticks >= 1);
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &report.problems {
        kinds
            .entry(format!("{:?}", p.kind))
            .or_default()
            .push(p.key.clone());
    }
    let want: BTreeMap<String, Vec<String>> = [
        (
            ProblemKind::Mismatch,
            vec![
                format!("c2c_calls/{}", delivered.call_id),
                format!(
                    "c2c_outbox/{}",
                    s.outbox_seq_for_call(&delivered.call_id)
                        .await
                        .unwrap()
                        .unwrap()
                ),
            ],
        ),
        (
            ProblemKind::Undecodable,
            vec![format!("c2c_calls/{}", broken.call_id)],
        ),
        (
            ProblemKind::Webhook,
            vec![format!("c2c_calls/{}", pending.call_id)],
        ),
        (
            ProblemKind::Tally,
            vec![
                "c2c_tallies/acme/20240301/airtel".to_owned(),
                "c2c_tallies/gamma/20240301/airtel".to_owned(),
            ],
        ),
    ]
    .into_iter()
    .map(|(k, mut v)| {
        v.sort();
        (format!("{k:?}"), v)
    })
    .collect();
    for v in kinds.values_mut() {
        v.sort();
    }
    assert_eq!(kinds, want, "{:#?}", report.problems);
    assert_eq!(report.problem_count, 6);
    // The open call was not touched.
    assert!(s.get(&open.call_id).await.unwrap().is_some());
}

async fn all_tallies(s: &PgCallStore) -> Vec<BTreeMap<String, DayTally>> {
    let mut out = Vec::new();
    for tenant in ["acme", "beta"] {
        out.push(
            s.day_tallies(tenant, "20000101", "20991231", None)
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_tally_format_is_rebuilt_from_the_records() {
    let (s, schema) = store("rebuild").await;
    workload(&s).await;
    let before = all_tallies(&s).await;
    assert_eq!(before[0]["20240301"].failures_by_sip_code[&486], 1);
    assert!(s.tallies_current().unwrap());

    // Tallies wrong and the format marked stale (as after an upgrade of the rules).
    sql(&schema, "UPDATE c2c_tallies SET n = n * 3");
    s.invalidate_tallies().await.unwrap();
    assert_ne!(all_tallies(&s).await, before);
    let blocking = s.clone();
    let (current, rebuilt, reads) = tokio::task::spawn_blocking(move || {
        let current = blocking.tallies_current().unwrap();
        let mut reads = Vec::new();
        let rebuilt = blocking.ensure_aggregates(&mut |n| reads.push(n)).unwrap();
        (current, rebuilt, reads)
    })
    .await
    .unwrap();
    assert!(!current);
    assert!(rebuilt);
    assert_eq!(reads.last(), Some(&4), "the live records were read");
    assert!(s.tallies_current().unwrap());
    assert!(
        !s.ensure_aggregates(&mut |_| {}).unwrap(),
        "current: no rebuild"
    );
    // What the purged call counted survives the rebuild.
    assert_eq!(all_tallies(&s).await, before);
    assert!(s.check().await.unwrap().is_clean());

    // Outside any runtime the blocking methods answer an error, not a panic.
    let off = s.clone();
    let outside = std::thread::spawn(move || off.tallies_current())
        .join()
        .unwrap();
    assert!(matches!(
        outside,
        Err(c2c_callstate::StoreError::Backend(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exports_walk_everything_in_order_and_stop_when_asked() {
    const CALLS: u64 = 1_030; // three pages
    let (s, _) = store("scan").await;
    let mut tasks = Vec::new();
    for i in 0..CALLS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create(&call("acme", DAY1 + i)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..3 {
        ended(&s, "beta", DAY1 + i).await;
    }
    let mut ids = Vec::new();
    let seen = s
        .scan_records(&mut |r| {
            ids.push(r.call_id.clone());
            true
        })
        .await
        .unwrap();
    assert_eq!(seen, CALLS + 3);
    assert_eq!(ids.len() as u64, CALLS + 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "not in id order");
    let mut n = 0;
    assert_eq!(
        s.scan_records(&mut |_| {
            n += 1;
            n < 10
        })
        .await
        .unwrap(),
        10
    );
    let mut seqs = Vec::new();
    let entries = s
        .scan_outbox(&mut |e| {
            seqs.push(e.seq);
            true
        })
        .await
        .unwrap();
    assert_eq!(entries, 3);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    assert!(matches!(s.begin_backup(), Err(BackupError::Unsupported)));
}
