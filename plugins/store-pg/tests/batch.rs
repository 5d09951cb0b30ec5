#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The node's write queue against a real PostgreSQL: many calls' writes at once go in
//! statements of several writes, and each write does exactly what it would alone (its
//! own condition, its tally, its webhook); a write whose row changed under it is
//! refused alone; a statement the database refuses is written one write at a time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use c2c_callstate::store::contract::call;
use c2c_callstate::{
    transition, Applied, CallEvent, CallKnobs, CallRecord, CallStore, CallStoreExt, Phase,
    Transition,
};
use c2c_store_pg::{PgCallStore, PgOptions, PgStore};
use c2c_test_support::pg::PgServer;
use futures_util::future::join_all;

const CALLS: usize = 48;

fn server() -> &'static PgServer {
    c2c_test_support::pg::shared()
}

fn fresh_schema(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("batch_{tag}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn node(schema: &str) -> Arc<PgCallStore> {
    let mut o = PgOptions::new(server().url("db"));
    o.schema = Some(schema.to_owned());
    o.pool_size = 4;
    let pg = PgStore::open(o).await.unwrap();
    Arc::new(PgCallStore::new(pg).await.unwrap())
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

/// `ev` at `now` on every call of `ids` at once.
async fn all_at_once(
    s: &Arc<PgCallStore>,
    ids: &[String],
    ev: CallEvent,
    now: u64,
) -> Vec<Applied> {
    let tasks = ids.iter().map(|id| {
        let (s, id, ev) = (s.clone(), id.clone(), ev.clone());
        tokio::spawn(async move {
            s.apply_transition(&id, move |r| transition(r, &ev, &CallKnobs::default(), now))
                .await
                .unwrap()
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// `CALLS` calls created on `s` at once; their ids.
async fn created(s: &Arc<PgCallStore>, t0: u64) -> Vec<String> {
    let recs: Vec<CallRecord> = (0..CALLS as u64).map(|i| call("acme", t0 + i)).collect();
    let tasks = recs.iter().map(|rec| {
        let (s, rec) = (s.clone(), rec.clone());
        tokio::spawn(async move { s.create(&rec).await })
    });
    for r in join_all(tasks).await {
        r.unwrap().unwrap();
    }
    recs.into_iter().map(|r| r.call_id).collect()
}

/// Lifecycles of `CALLS` calls at once on `s`, each ended ANSWERED; checks every record,
/// webhook and tally.
async fn lifecycles_at_once(s: &Arc<PgCallStore>) {
    let t0 = now_ms();
    let ids = created(s, t0).await;
    // A second create of a taken id is refused, in a batch as alone.
    let again = join_all(ids.iter().take(4).map(|id| {
        let s = s.clone();
        let mut rec = call("acme", t0);
        rec.call_id = id.clone();
        async move { s.create(&rec).await }
    }))
    .await;
    assert!(again
        .iter()
        .all(|r| matches!(r, Err(c2c_callstate::StoreError::AlreadyExists))));
    for (ev, at) in [
        (CallEvent::Connect, 1_000),
        (CallEvent::Answered, 2_000),
        (CallEvent::AgentHangup, 62_000),
    ] {
        for applied in all_at_once(s, &ids, ev, t0 + at).await {
            assert!(applied.written && !applied.adopted);
        }
    }
    let mut seqs = BTreeSet::new();
    for id in &ids {
        let rec = s.get(id).await.unwrap().unwrap();
        assert_eq!(rec.phase, Phase::Ended, "{id}");
        assert_eq!(rec.version, 4, "{id}: created, then three writes");
        seqs.insert(s.outbox_seq_for_call(id).await.unwrap().unwrap());
    }
    assert_eq!(seqs.len(), CALLS, "one webhook per call, each its own seq");
    let days = s
        .day_tallies("acme", "00000000", "99999999", None)
        .await
        .unwrap();
    let (total, answered, open) = days.values().fold((0, 0, 0), |t, d| {
        (t.0 + d.total, t.1 + d.answered, t.2 + d.in_progress)
    });
    assert_eq!(
        (total, answered, open),
        (CALLS as u64, CALLS as u64, 0),
        "{days:?}"
    );
    assert!(s.open_calls().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_calls_written_at_once_share_statements_and_each_write_is_its_own() {
    let s = node(&fresh_schema("many")).await;
    lifecycles_at_once(&s).await;
    let n = s.write_batches();
    // 4 x 48 writes arrive together: the writer, one statement in flight, takes what
    // queued meanwhile.
    assert!(n.statements > 0 && n.writes >= 2 * n.statements, "{n:?}");
    assert_eq!(n.refused, 0, "{n:?}");
}

/// A node whose every statement of several writes the database refuses with `errcode`
/// (a trigger raises it for the batch's statement only).
async fn refusing_node(tag: &str, errcode: &str) -> Arc<PgCallStore> {
    let schema = fresh_schema(tag);
    let s = node(&schema).await;
    server().psql(
        "db",
        &format!(
            "CREATE FUNCTION {schema}.refuse_batches() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF current_query() LIKE '%unnest($17%' THEN \
                 RAISE EXCEPTION 'refused for the test' USING ERRCODE = '{errcode}'; \
               END IF; \
               RETURN NEW; \
             END $$; \
             CREATE TRIGGER refuse_batches BEFORE INSERT OR UPDATE ON {schema}.c2c_calls \
             FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_batches()"
        ),
    );
    s
}

/// Every batch refused as a deadlock: every write still lands, one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_batch_is_written_one_write_at_a_time() {
    let s = refusing_node("refused", "40P01").await;
    lifecycles_at_once(&s).await;
    let n = s.write_batches();
    assert!(n.statements > 0, "{n:?}");
    assert_eq!(n.refused, n.statements, "{n:?}");
}

/// An engine that does not support the batch's statement (CockroachDB without the
/// setting that allows two modifications of one table): the node stops batching after
/// the first refusal, and every write lands alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_engine_without_batched_writes_gets_each_write_alone() {
    let s = refusing_node("unsupported", "0A000").await;
    lifecycles_at_once(&s).await;
    let n = s.write_batches();
    assert_eq!(n.statements, 1, "{n:?}");
    assert_eq!(n.refused, n.statements, "{n:?}");
}

/// Another node writes to some of the calls (and so drives them) while this node's
/// writes from its cache queue together: those rows refuse this node's writes, which
/// read again and adopt the call; the rest of the statement is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_whose_row_changed_is_refused_alone() {
    let schema = fresh_schema("stale");
    let (a, b) = (node(&schema).await, node(&schema).await);
    let t0 = now_ms();
    let ids = created(&a, t0).await;
    let moved: Vec<String> = ids.iter().step_by(5).cloned().collect();
    for applied in all_at_once(&b, &moved, CallEvent::Connect, t0 + 1_000).await {
        assert!(applied.written && applied.adopted);
    }
    // A mark on every call from A, each from A's cache (version 1, driven by A).
    let tasks = ids.iter().map(|id| {
        let (a, id) = (a.clone(), id.clone());
        tokio::spawn(async move {
            a.apply_transition(&id, |r| {
                let mut record = r.clone();
                record.version += 1;
                record.case_id = format!("{}|a", r.case_id);
                Ok(Transition {
                    from: r.phase,
                    record,
                    effects: Vec::new(),
                })
            })
            .await
            .unwrap()
        })
    });
    let applied: Vec<Applied> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for (id, applied) in ids.iter().zip(&applied) {
        let was_moved = moved.contains(id);
        assert!(applied.written, "{id}");
        // A moved call's row refused the write from the cache; the write from the
        // record read again adopted the call.
        assert_eq!(applied.adopted, was_moved, "{id}");
        assert_eq!(
            applied.record.version,
            if was_moved { 3 } else { 2 },
            "{id}"
        );
        let stored = a.get(id).await.unwrap().unwrap();
        assert_eq!(stored.case_id, "case-1|a", "{id}");
        assert_eq!(
            stored.phase,
            if was_moved {
                Phase::Dialing
            } else {
                Phase::Initiated
            },
            "{id}"
        );
    }
    assert_eq!(a.driven_calls().await.unwrap().len(), CALLS);
    assert!(a.write_batches().statements > 0);
}
