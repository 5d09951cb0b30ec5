#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fleet semantics of [`PgCallStore`] against a real PostgreSQL: several nodes (each
//! its own `PgStore`, its own node id and pool) on one schema, with a short lease.
//!
//! Lease and claim times are driven through the `now_ms` the trait takes, so the cases
//! do not depend on how fast the machine is; only the migration race is real time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::store::contract::call;
use c2c_callstate::{
    transition, Applied, CallEvent, CallKnobs, CallRecord, CallStore, CallStoreExt, Effect,
    OutboxEntry, OutboxState, Transition,
};
use c2c_store_pg::{PgCallStore, PgOptions, PgStore};
use c2c_test_support::pg::PgServer;

/// One server for this test binary, database `db`; cases keep apart by schema.
fn server() -> &'static PgServer {
    c2c_test_support::pg::shared()
}

const LEASE_MS: u64 = 300;
const CLAIM_MS: u64 = 500;
const TENANT_CAP: usize = 3;
/// How often a node's poll reads the database at least: what another node changed
/// (a retry, a slot it freed) reaches this node by then.
const RECHECK_MS: u64 = 100;

fn fresh_schema(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{tag}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn options(schema: &str) -> PgOptions {
    let mut o = PgOptions::new(server().url("db"));
    o.schema = Some(schema.to_owned());
    o.pool_size = 6;
    o.lease = Duration::from_millis(LEASE_MS);
    o.delivery_claim = Duration::from_millis(CLAIM_MS);
    o.tenant_delivery_concurrency = TENANT_CAP;
    o.delivery_recheck = Duration::from_millis(RECHECK_MS);
    o
}

async fn node(schema: &str) -> Arc<PgCallStore> {
    let pg = PgStore::open(options(schema)).await.unwrap();
    Arc::new(PgCallStore::new(pg).await.unwrap())
}

/// Two nodes on a fresh schema.
async fn fleet(tag: &str) -> (Arc<PgCallStore>, Arc<PgCallStore>, String) {
    let schema = fresh_schema(tag);
    let a = node(&schema).await;
    let b = node(&schema).await;
    assert_ne!(a.node_id(), b.node_id());
    (a, b, schema)
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

async fn event(s: &PgCallStore, id: &str, ev: CallEvent, now: u64) -> Applied {
    s.apply_transition(id, move |r| transition(r, &ev, &CallKnobs::default(), now))
        .await
        .unwrap()
}

/// A call created on `s` and ended ANSWERED (its webhook pending, due at `t0 + 62 s`).
async fn ended(s: &PgCallStore, tenant: &str, t0: u64) -> CallRecord {
    let rec = call(tenant, t0);
    s.create(&rec).await.unwrap();
    event(s, &rec.call_id, CallEvent::Connect, t0 + 1_000).await;
    event(s, &rec.call_id, CallEvent::Answered, t0 + 2_000).await;
    event(s, &rec.call_id, CallEvent::AgentHangup, t0 + 62_000)
        .await
        .record
}

fn ids(recs: &[CallRecord]) -> Vec<String> {
    recs.iter().map(|r| r.call_id.clone()).collect()
}

fn seqs(entries: &[OutboxEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_by_another_node_moves_the_driver() {
    let (a, b, _) = fleet("driver").await;
    let t = now_ms();
    let rec = call("acme", t);
    a.create(&rec).await.unwrap();
    let id = rec.call_id.clone();
    assert_eq!(ids(&a.driven_calls().await.unwrap()), vec![id.clone()]);
    assert!(b.driven_calls().await.unwrap().is_empty());

    let moved = event(&b, &id, CallEvent::Connect, t + 1_000).await;
    assert!(moved.written && moved.adopted, "{moved:?}");
    assert!(a.driven_calls().await.unwrap().is_empty());
    assert_eq!(
        ids(&b.driven_calls_after(None, 10).await.unwrap()),
        vec![id.clone()]
    );

    // The old driver's timers stop acting: its closure runs at most on what A wrote
    // last (its create), and what it makes is never written.
    let ran_on = std::sync::Mutex::new(Vec::new());
    let before = b.get(&id).await.unwrap().unwrap();
    let skipped = a
        .apply_transition_if_driver(&id, |r| {
            ran_on.lock().unwrap().push(r.version);
            transition(r, &CallEvent::Ringing, &CallKnobs::default(), t + 2_000)
        })
        .await
        .unwrap();
    assert!(skipped.is_none());
    assert!(
        ran_on.lock().unwrap().iter().all(|v| *v == rec.version),
        "only on A's own last write: {:?}",
        ran_on.lock().unwrap()
    );
    assert_eq!(
        b.get(&id).await.unwrap().unwrap(),
        before,
        "nothing written"
    );
    assert!(a.driven_calls().await.unwrap().is_empty());
    let ringing = b
        .apply_transition_if_driver(&id, |r| {
            transition(r, &CallEvent::Ringing, &CallKnobs::default(), t + 2_000)
        })
        .await
        .unwrap()
        .expect("the driver applies its own timer");
    assert!(ringing.written && !ringing.adopted);

    // A no-op writes nothing and moves nothing.
    let noop = event(&a, &id, CallEvent::AgentJoined, t + 3_000).await;
    assert!(!noop.written && !noop.adopted);
    // ... and answers the latest record, not the one A wrote last (its create).
    assert_eq!(noop.record, ringing.record);
    assert_eq!(ids(&b.driven_calls().await.unwrap()), vec![id.clone()]);
    // A write by A takes it back.
    let back = event(&a, &id, CallEvent::Answered, t + 4_000).await;
    assert!(back.written && back.adopted);
    assert_eq!(ids(&a.driven_calls().await.unwrap()), vec![id.clone()]);

    let missing = b
        .apply_transition_if_driver("c2c_ffffffffffffffffffffffffffffffff", |r| {
            transition(r, &CallEvent::Ringing, &CallKnobs::default(), t)
        })
        .await;
    assert!(matches!(missing, Err(c2c_callstate::StoreError::NotFound)));
}

/// `get_recent` answers what this node wrote last without a read (it may be older than
/// the stored record, as the trait says), and the stored record where the node
/// remembers nothing: another node's call, or after a transition took its copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_recent_answers_this_nodes_last_write() {
    let (a, b, _) = fleet("recent").await;
    let t = now_ms();
    let rec = call("acme", t);
    a.create(&rec).await.unwrap();
    let id = rec.call_id.clone();
    assert_eq!(a.get_recent(&id).await.unwrap().unwrap(), rec);
    assert_eq!(b.get_recent(&id).await.unwrap().unwrap(), rec, "read");

    let moved = event(&b, &id, CallEvent::Connect, t + 1_000).await;
    assert!(moved.written);
    // A remembers its create: same tenant, numbers, agent; an older phase and version.
    let remembered = a.get_recent(&id).await.unwrap().unwrap();
    assert_eq!(remembered, rec);
    assert_eq!(
        (remembered.tenant.as_str(), remembered.agent_id.as_str()),
        (moved.record.tenant.as_str(), moved.record.agent_id.as_str())
    );
    assert_eq!(a.get(&id).await.unwrap().unwrap(), moved.record);
    assert_eq!(b.get_recent(&id).await.unwrap().unwrap(), moved.record);
    // A's transition writes over the latest record and leaves it remembered.
    let ringing = event(&a, &id, CallEvent::Ringing, t + 2_000).await;
    assert!(ringing.written && ringing.adopted);
    assert_eq!(a.get_recent(&id).await.unwrap().unwrap(), ringing.record);
    assert!(a
        .get_recent("c2c_ffffffffffffffffffffffffffffffff")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_nodes_calls_go_to_live_nodes_each_once() {
    let (a, b, schema) = fleet("orphans").await;
    let c = node(&schema).await;
    let t0 = now_ms();
    let mut a_open = Vec::new();
    for i in 0..30u64 {
        let rec = call(if i.is_multiple_of(2) { "acme" } else { "beta" }, t0 + i);
        a.create(&rec).await.unwrap();
        a_open.push(rec.call_id);
    }
    a_open.sort();
    let a_ended = ended(&a, "acme", t0).await;
    let mut b_own = Vec::new();
    for i in 0..3 {
        let rec = call("acme", t0 + 100 + i);
        b.create(&rec).await.unwrap();
        b_own.push(rec.call_id);
    }

    // Well after every lease taken at registration, everyone renews once.
    let t1 = t0 + 60_000;
    assert_eq!(a.renew_lease(t1).await.unwrap(), t1 + LEASE_MS);
    b.renew_lease(t1).await.unwrap();
    c.renew_lease(t1).await.unwrap();
    assert!(b
        .claim_orphaned_calls(t1 + LEASE_MS - 1, 100)
        .await
        .unwrap()
        .is_empty());

    // A stops renewing; B and C claim at once, in small batches, until nothing is left.
    let at = t1 + LEASE_MS + 1;
    b.renew_lease(at).await.unwrap();
    c.renew_lease(at).await.unwrap();
    let (mut by_b, mut by_c) = (Vec::new(), Vec::new());
    loop {
        let (x, y) = tokio::join!(b.claim_orphaned_calls(at, 4), c.claim_orphaned_calls(at, 4));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(x.len() <= 4 && y.len() <= 4);
        if x.is_empty() && y.is_empty() {
            break;
        }
        by_b.extend(ids(&x));
        by_c.extend(ids(&y));
    }
    let (set_b, set_c): (BTreeSet<_>, BTreeSet<_>) = (
        by_b.iter().cloned().collect(),
        by_c.iter().cloned().collect(),
    );
    assert_eq!(set_b.len(), by_b.len(), "B got a call twice");
    assert!(set_b.is_disjoint(&set_c), "two claimers got the same call");
    let mut all: Vec<String> = set_b.union(&set_c).cloned().collect();
    all.sort();
    assert_eq!(all, a_open, "exactly A's open calls are taken over");
    assert!(!all.contains(&a_ended.call_id));
    assert!(a.driven_calls().await.unwrap().is_empty());
    let first = a_open[0].clone();
    let on_a = a
        .apply_transition_if_driver(&first, |r| {
            transition(r, &CallEvent::Ringing, &CallKnobs::default(), at)
        })
        .await
        .unwrap();
    assert!(on_a.is_none(), "the dead node no longer acts on its calls");
    let mut driven_b = ids(&b.driven_calls().await.unwrap());
    driven_b.sort();
    let mut want_b: Vec<String> = by_b.iter().chain(&b_own).cloned().collect();
    want_b.sort();
    assert_eq!(driven_b, want_b);

    // A clean shutdown: B gives its calls up and C takes them at once.
    b.release_lease().await.unwrap();
    let from_b = ids(&c.claim_orphaned_calls(at, 1_000).await.unwrap());
    assert_eq!(from_b, want_b);

    // A driver without a node row (removed by hand) is an orphan too.
    let late = call("acme", t0 + 200);
    a.create(&late).await.unwrap();
    a.renew_lease(at + 10_000).await.unwrap();
    assert!(c.claim_orphaned_calls(at, 10).await.unwrap().is_empty());
    server().psql(
        "db",
        &format!(
            "DELETE FROM {schema}.c2c_nodes WHERE node_id = '{}'",
            a.node_id()
        ),
    );
    assert_eq!(
        ids(&c.claim_orphaned_calls(at, 10).await.unwrap()),
        vec![late.call_id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_transitions_from_two_nodes_each_write_over_the_latest_record() {
    const WRITERS: u64 = 24;
    let (a, b, _) = fleet("conflicts").await;
    let t = now_ms();
    let rec = call("acme", t);
    a.create(&rec).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let s = if i.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        let (id, runs) = (rec.call_id.clone(), runs.clone());
        tasks.push(tokio::spawn(async move {
            s.apply_transition(&id, move |r| {
                runs.fetch_add(1, Ordering::SeqCst);
                let mut record = r.clone();
                record.version += 1;
                record.case_id = format!("{}|{i}", r.case_id);
                Ok(Transition {
                    from: r.phase,
                    record,
                    effects: Vec::new(),
                })
            })
            .await
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let applied = t.await.unwrap().unwrap();
        assert!(applied.written);
        versions.push(applied.record.version);
    }
    // Optimistic writes: a writer that lost a race ran again on the newer record.
    let runs = runs.load(Ordering::SeqCst);
    assert!(runs >= WRITERS as usize, "{runs}");
    versions.sort_unstable();
    assert_eq!(
        versions,
        (rec.version + 1..=rec.version + WRITERS).collect::<Vec<_>>()
    );
    // Each writer's mark is in the final record exactly once: none lost or repeated.
    let last = a.get(&rec.call_id).await.unwrap().unwrap();
    let mut marks: Vec<u64> = last
        .case_id
        .split('|')
        .skip(1)
        .map(|m| m.parse().unwrap())
        .collect();
    marks.sort_unstable();
    assert_eq!(marks, (0..WRITERS).collect::<Vec<_>>());

    // Enders on both nodes at once: one of them ends the call, one webhook.
    event(&a, &rec.call_id, CallEvent::Connect, t + 1_000).await;
    event(&b, &rec.call_id, CallEvent::Answered, t + 2_000).await;
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let s = if i.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        let id = rec.call_id.clone();
        let ev = if i.is_multiple_of(3) {
            CallEvent::RoomFinished
        } else {
            CallEvent::AgentHangup
        };
        tasks.push(tokio::spawn(async move {
            s.apply_transition(&id, move |r| {
                transition(r, &ev, &CallKnobs::default(), t + 10_000 + i)
            })
            .await
        }));
    }
    let (mut enqueued, mut enders) = (0, 0);
    for t in tasks {
        let applied = t.await.unwrap().unwrap();
        enqueued += usize::from(applied.enqueued.is_some());
        enders += usize::from(applied.effects.contains(&Effect::EnqueueWebhook));
    }
    assert_eq!((enqueued, enders), (1, 1));
    assert_eq!(
        a.outbox_by_tenant_since_capped("acme", 0, 10)
            .await
            .unwrap()
            .1,
        1
    );
    assert!(b.open_calls().await.unwrap().is_empty());
}

/// Two nodes whose sessions run SERIALIZABLE (set through the URL's `options`, as
/// CockroachDB runs every transaction): a conditional write that meets a concurrent
/// change is refused with `40001` instead of updating nothing, and the store must take
/// that as a lost race and try again, not fail the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_serializable_isolation_refused_writes_are_retried() {
    const WRITERS: u64 = 24;
    let schema = fresh_schema("serializable");
    let node = || {
        let mut o = options(&schema);
        o.url = format!(
            "{} options='-c default_transaction_isolation=serializable'",
            o.url
        );
        async move {
            let pg = PgStore::open(o).await.unwrap();
            Arc::new(PgCallStore::new(pg).await.unwrap())
        }
    };
    let (a, b) = (node().await, node().await);
    let t = now_ms();
    let rec = call("acme", t);
    a.create(&rec).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let s = if i.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        let id = rec.call_id.clone();
        tasks.push(tokio::spawn(async move {
            s.apply_transition(&id, move |r| {
                let mut record = r.clone();
                record.version += 1;
                record.case_id = format!("{}|{i}", r.case_id);
                Ok(Transition {
                    from: r.phase,
                    record,
                    effects: Vec::new(),
                })
            })
            .await
        }));
    }
    for t in tasks {
        let applied = t
            .await
            .unwrap()
            .expect("a refused write is retried, not failed");
        assert!(applied.written);
    }
    let last = a.get(&rec.call_id).await.unwrap().unwrap();
    assert_eq!(last.version, rec.version + WRITERS);
    let mut marks: Vec<u64> = last
        .case_id
        .split('|')
        .skip(1)
        .map(|m| m.parse().unwrap())
        .collect();
    marks.sort_unstable();
    assert_eq!(marks, (0..WRITERS).collect::<Vec<_>>());
}

/// A call whose every conditional write loses a race: after `OPTIMISTIC_TRIES` tries
/// the transition takes the row lock, and what it writes is made from the record it
/// locked. The races are real writes: each run of `f` commits a newer version of the
/// record from another connection (psql) before `f` returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transition_that_keeps_losing_races_takes_the_row_lock() {
    let (a, _b, schema) = fleet("hot").await;
    let t = now_ms();
    let rec = call("acme", t);
    a.create(&rec).await.unwrap();
    let bump = format!(
        "UPDATE {schema}.c2c_calls SET version = version + 1, \
         record = jsonb_set(record::jsonb, '{{version}}', to_jsonb(version + 1))::text \
         WHERE call_id = '{}'",
        rec.call_id
    );
    let runs = AtomicUsize::new(0);
    let applied = a
        .apply_transition(&rec.call_id, |r| {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            // Under the row lock (the last run) psql would wait for this very write.
            if run <= c2c_store_pg::OPTIMISTIC_TRIES {
                server().psql("db", &bump);
            }
            transition(r, &CallEvent::Connect, &CallKnobs::default(), t + 1_000)
        })
        .await
        .unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        c2c_store_pg::OPTIMISTIC_TRIES + 1
    );
    assert!(applied.written);
    let bumped = rec.version + c2c_store_pg::OPTIMISTIC_TRIES as u64;
    assert_eq!(
        applied.record.version,
        bumped + 1,
        "made from the locked record"
    );
    assert_eq!(a.get(&rec.call_id).await.unwrap(), Some(applied.record));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claimed_webhooks_stay_with_their_claimer_until_progress_or_expiry() {
    let (a, b, _) = fleet("claims").await;
    let t0 = now_ms();
    for i in 0..3 {
        ended(&a, "acme", t0 + i).await;
    }
    let now = t0 + 120_000;
    let got = a.outbox_due(now, 10).await.unwrap();
    assert_eq!(got.len(), 3);
    assert!(b.outbox_due(now, 10).await.unwrap().is_empty());
    // This node's own claims stay candidates (its deliverer filters what is in flight).
    assert_eq!(seqs(&a.outbox_due(now, 10).await.unwrap()), seqs(&got));

    // Progress clears the claim: the retry is anyone's. B's poll reads the database
    // at its next recheck at the latest.
    let mut retry = got[0].clone();
    retry.attempts = 1;
    retry.last_error = Some("http 503".into());
    a.outbox_record_progress(&retry).await.unwrap();
    let recheck = now + RECHECK_MS;
    assert_eq!(
        seqs(&b.outbox_due(recheck, 10).await.unwrap()),
        vec![retry.seq]
    );
    assert_eq!(
        seqs(&a.outbox_due(recheck, 10).await.unwrap()),
        seqs(&got[1..]),
        "B's claim hides the retry from A"
    );

    // A dies mid-delivery: once its claims (renewed by its last poll) expire, B takes
    // everything (B's renewal no longer counts A, so the whole cap is B's).
    let later = recheck + CLAIM_MS + 1;
    b.renew_lease(later).await.unwrap();
    assert_eq!(seqs(&b.outbox_due(later, 10).await.unwrap()), seqs(&got));
    assert!(a.outbox_due(later + 1, 10).await.unwrap().is_empty());

    // Delivered by B: gone for everyone.
    let mut done = got[1].clone();
    done.state = OutboxState::Delivered;
    done.delivered_ms = Some(later);
    done.attempts = 1;
    b.outbox_update(&done).await.unwrap();
    let after = later + 10 * CLAIM_MS;
    let left = seqs(&a.outbox_due(after, 10).await.unwrap());
    assert_eq!(left, vec![got[0].seq, got[2].seq]);
}

/// A claim of more entries than one claim statement names (four) claims every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_of_many_tenants_entries_claims_every_one() {
    let (a, b, schema) = fleet("wide").await;
    let t0 = now_ms();
    let tenants = ["acme", "beta", "gamma", "delta", "omega"];
    for (i, tenant) in tenants.iter().enumerate() {
        for j in 0..2 {
            ended(&a, tenant, t0 + (i * 2 + j) as u64).await;
        }
    }
    let now = t0 + 120_000;
    let got = a.outbox_due(now, 9).await.unwrap();
    assert_eq!(got.len(), 9);
    let claimed: usize = tenants.iter().map(|t| live_claims(&schema, t, now)).sum();
    assert_eq!(claimed, 9);
    // B finds only the tenth.
    let rest = b.outbox_due(now, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(!seqs(&got).contains(&rest[0].seq));
}

/// A tally write goes to the shard of the database session that runs it, so a call's
/// `+1` (created and answered on A) and its `-1` (ended on B) may sit on different
/// rows: only the sum means anything, and it is right on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_calls_counts_sum_right_across_the_sessions_that_wrote_them() {
    let (a, b, schema) = fleet("shards").await;
    let t0 = now_ms();
    for i in 0..4 {
        let rec = call("acme", t0 + i);
        a.create(&rec).await.unwrap();
        event(&a, &rec.call_id, CallEvent::Connect, t0 + 1_000).await;
        event(&a, &rec.call_id, CallEvent::Answered, t0 + 2_000).await;
        event(&b, &rec.call_id, CallEvent::AgentHangup, t0 + 62_000).await;
    }
    for node in [&a, &b] {
        let days = node
            .day_tallies("acme", "00000000", "99999999", None)
            .await
            .unwrap();
        let (total, answered, open) = days.values().fold((0, 0, 0), |s, d| {
            (s.0 + d.total, s.1 + d.answered, s.2 + d.in_progress)
        });
        assert_eq!((total, answered, open), (4, 4, 0), "{days:?}");
    }
    let shards = server().psql(
        "db",
        &format!("SELECT min(shard) >= 0 AND max(shard) < 32 FROM {schema}.c2c_tallies"),
    );
    assert_eq!(shards, "t", "shards are abs(pg_backend_pid() % 32)");
}

/// Live claims of `tenant` across the fleet at `now`.
fn live_claims(schema: &str, tenant: &str, now: u64) -> usize {
    server()
        .psql(
            "db",
            &format!(
                "SELECT count(*) FROM {schema}.c2c_outbox WHERE tenant = '{tenant}' \
                 AND state = 'pending' AND claimed_by IS NOT NULL AND claim_until_ms >= {now}"
            ),
        )
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tenant_delivery_cap_holds_across_the_fleet() {
    let (a, b, schema) = fleet("cap").await;
    let t0 = now_ms();
    let mut acme = Vec::new();
    for i in 0..8 {
        acme.push(ended(&a, "acme", t0 + i).await.call_id);
    }
    for i in 0..2 {
        ended(&b, "beta", t0 + 10 + i).await;
    }
    let now = t0 + 120_000;
    let on_a = a.outbox_due(now, 4).await.unwrap();
    let tenants: Vec<&str> = on_a.iter().map(|e| e.tenant.as_str()).collect();
    assert_eq!(tenants, vec!["acme", "acme", "acme", "beta"]);
    // B: acme is at the fleet's limit (held back, not even offered); beta has room.
    // The store says it held entries back, so B's deliverer looks again when one of
    // its own deliveries ends instead of waiting for its next poll.
    let mut offered = Vec::new();
    let (on_b, held) = b
        .outbox_due_held(now, 10, &mut |_, tenant| {
            offered.push(tenant.to_owned());
            true
        })
        .await
        .unwrap();
    assert_eq!(offered, vec!["beta"]);
    assert_eq!(on_b.len(), 1);
    assert!(held, "acme's entries were held back by the fleet's limit");
    assert_eq!(live_claims(&schema, "acme", now), TENANT_CAP);

    // One of A's deliveries ends: exactly one more acme delivery may start, anywhere
    // (B finds the free slot at its next recheck at the latest).
    let mut done = on_a[0].clone();
    done.state = OutboxState::Delivered;
    done.delivered_ms = Some(now);
    a.outbox_update(&done).await.unwrap();
    let now = now + RECHECK_MS;
    let more = b.outbox_due(now, 10).await.unwrap();
    let more_acme: Vec<&OutboxEntry> = more.iter().filter(|e| e.tenant == "acme").collect();
    assert_eq!(more_acme.len(), 1);
    // (and B's own beta claim, still a candidate)
    assert_eq!(seqs(&more).len(), 2);
    assert_eq!(live_claims(&schema, "acme", now), TENANT_CAP);
    // A's deliverer refuses its in-flight jobs; nothing else fits.
    let in_flight: BTreeSet<u64> = on_a.iter().skip(1).map(|e| e.seq).collect();
    let again = a
        .outbox_due_admitted(now, 10, &mut |seq, _| !in_flight.contains(&seq))
        .await
        .unwrap();
    assert!(again.is_empty(), "{:?}", seqs(&again));
    // Asking again for its own claims does not count them twice.
    assert_eq!(
        seqs(&a.outbox_due(now, 10).await.unwrap()),
        seqs(&on_a[1..])
    );
    assert_eq!(live_claims(&schema, "acme", now), TENANT_CAP);

    // Concurrent claimers exceed the limit by at most one batch each.
    let later = now + CLAIM_MS + 1; // every claim above has expired
    for round in 0..5 {
        let at = later + round;
        let (x, y) = tokio::join!(a.outbox_due(at, 2), b.outbox_due(at, 2));
        let claimed = x.unwrap().len() + y.unwrap().len();
        assert!(claimed <= TENANT_CAP + 2 + 2, "round {round}: {claimed}");
        assert!(live_claims(&schema, "acme", at) <= TENANT_CAP + 2);
    }
}

/// With two live nodes, each holds at most ceil(3 / 2) = 2 of a tenant's 3 slots, so
/// the node that started on a backlog cannot keep every slot to itself and the other
/// node always gets work (the flake of `gateway/tests/fleet.rs` this fixed: one node
/// re-claimed each slot as its delivery ended, the other found the tenant full).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_nodes_share_a_tenants_delivery_slots() {
    let (a, b, schema) = fleet("share").await;
    let t0 = now_ms();
    for i in 0..8 {
        ended(&a, "acme", t0 + i).await;
    }
    // Both renew: each now counts two live nodes.
    let t1 = now_ms();
    a.renew_lease(t1).await.unwrap();
    b.renew_lease(t1).await.unwrap();
    let now = t0 + 120_000;
    let (on_a, held) = a.outbox_due_held(now, 10, &mut |_, _| true).await.unwrap();
    assert_eq!(on_a.len(), 2, "A's share: {:?}", seqs(&on_a));
    assert!(held, "A was held back at its share");
    assert_eq!(live_claims(&schema, "acme", now), 2);
    // B takes what is left of the fleet's cap, not A's share of it.
    let on_b = b.outbox_due(now, 10).await.unwrap();
    assert_eq!(on_b.len(), 1, "{:?}", seqs(&on_b));
    assert_eq!(live_claims(&schema, "acme", now), TENANT_CAP);
    // A's delivery ends: A may take one more (back at its share), B nothing more.
    let mut done = on_a[0].clone();
    done.state = OutboxState::Delivered;
    done.delivered_ms = Some(now);
    a.outbox_update(&done).await.unwrap();
    let busy: BTreeSet<u64> = seqs(&on_a[1..]).into_iter().collect();
    let more = a
        .outbox_due_admitted(now, 10, &mut |seq, _| !busy.contains(&seq))
        .await
        .unwrap();
    assert_eq!(more.len(), 1, "{:?}", seqs(&more));
    assert_eq!(live_claims(&schema, "acme", now), TENANT_CAP);

    // B dies: once A's renewal no longer counts it, A alone has the whole cap.
    let later = now_ms() + LEASE_MS + 1;
    a.renew_lease(later).await.unwrap();
    let at = now + CLAIM_MS + 1; // every claim above has expired
    let alone = a.outbox_due(at, 10).await.unwrap();
    assert_eq!(alone.len(), TENANT_CAP, "{:?}", seqs(&alone));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fleet_open_counts_count_every_nodes_calls() {
    let (a, b, _) = fleet("counts").await;
    let t = now_ms();
    for tenant in ["acme", "acme", "beta"] {
        a.create(&call(tenant, t)).await.unwrap();
    }
    b.create(&call("acme", t)).await.unwrap();
    ended(&b, "acme", t).await;
    ended(&a, "gamma", t).await;
    let want: BTreeMap<String, u32> = [("acme".to_owned(), 3), ("beta".to_owned(), 1)].into();
    assert_eq!(a.fleet_open_counts().await.unwrap(), Some(want.clone()));
    assert_eq!(b.fleet_open_counts().await.unwrap(), Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_migrations_both_succeed_and_apply_once() {
    for round in 0..3 {
        let schema = fresh_schema("migrate");
        let (x, y) = tokio::join!(
            PgStore::open(options(&schema)),
            PgStore::open(options(&schema))
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        let versions = server().psql(
            "db",
            &format!("SELECT count(*), max(version) FROM {schema}.c2c_schema_version"),
        );
        assert_eq!(
            versions,
            format!(
                "{}|{}",
                c2c_store_pg::migrate::MIGRATIONS.len(),
                c2c_store_pg::migrate::latest()
            ),
            "round {round}"
        );
        // Both are usable, on the same data.
        let (x, y) = (
            PgCallStore::new(x).await.unwrap(),
            PgCallStore::new(y).await.unwrap(),
        );
        let rec = call("acme", now_ms());
        x.create(&rec).await.unwrap();
        assert_eq!(y.get(&rec.call_id).await.unwrap(), Some(rec));
    }
}

/// A database a version-1 gateway made (no wallet tables, no holds) is brought to the latest
/// version by the next start, the calls in it untouched.
#[tokio::test]
async fn a_version_1_database_is_migrated_to_the_wallet_tables() {
    let schema = fresh_schema("upgrade");
    let s = PgCallStore::new(PgStore::open(options(&schema)).await.unwrap())
        .await
        .unwrap();
    let t0 = now_ms();
    let call = ended(&s, "acme", t0).await;
    drop(s);
    server().psql(
        "db",
        &format!(
            "DELETE FROM {schema}.c2c_schema_version WHERE version > 1;
             DROP TABLE {schema}.c2c_wallets, {schema}.c2c_wallet_ledger, \
             {schema}.c2c_wallet_holds, {schema}.c2c_agent_busy"
        ),
    );
    let pg = PgStore::open(options(&schema)).await.unwrap();
    let versions = server().psql(
        "db",
        &format!("SELECT string_agg(version::text, ',' ORDER BY version) FROM {schema}.c2c_schema_version"),
    );
    assert_eq!(versions, "1,2,3,4,5");
    let wallets = c2c_store_pg::PgWalletStore::new(pg.clone());
    let topup = c2c_billing::contract::owner_entry(c2c_billing::EntryKind::TopUp, 700);
    use c2c_billing::WalletStore;
    assert_eq!(
        wallets
            .append("acme", &topup)
            .await
            .unwrap()
            .entry
            .balance_after_paise,
        700
    );
    let s = PgCallStore::new(pg).await.unwrap();
    assert_eq!(s.get(&call.call_id).await.unwrap(), Some(call));
}
