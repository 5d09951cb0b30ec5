#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The hand-off of a call's webhook from the node that ended the call to its own
//! deliverer (`calls/handoff.rs`), against a real PostgreSQL: the entry is enqueued
//! claimed by that node, handed out without a claim transaction, hidden from the
//! other nodes until its result is stored or its claim runs out, and never beyond the
//! node's share of the tenant's delivery slots.
//!
//! The calls end 70 s in the past so their webhooks are due at the real clock, which
//! the claims written with the entries use.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::store::contract::call;
use c2c_callstate::{
    transition, CallEvent, CallKnobs, CallRecord, CallStore, CallStoreExt, OutboxEntry, OutboxState,
};
use c2c_store_pg::{DeliveryCounts, PgCallStore, PgOptions, PgStore};
use c2c_test_support::pg::PgServer;

fn server() -> &'static PgServer {
    c2c_test_support::pg::shared()
}

const CLAIM_MS: u64 = 60_000;

fn fresh_schema(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{tag}_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A node whose polls are answered from its hand-offs for a minute after a claim
/// transaction (so no case depends on the machine's speed), `cap` deliveries of a
/// tenant across the fleet.
async fn node(schema: &str, cap: usize) -> Arc<PgCallStore> {
    rechecking_node(schema, cap, RECHECK).await
}

/// How long a [`node`]'s polls are answered from its hand-offs after a claim
/// transaction: a poll this much later (by its clock) reads the database.
const RECHECK: Duration = Duration::from_secs(60);

/// [`node`], its polls answered from its hand-offs for `recheck` after a claim
/// transaction.
async fn rechecking_node(schema: &str, cap: usize, recheck: Duration) -> Arc<PgCallStore> {
    let mut o = PgOptions::new(server().url("db"));
    o.schema = Some(schema.to_owned());
    o.pool_size = 4;
    o.delivery_claim = Duration::from_millis(CLAIM_MS);
    o.tenant_delivery_concurrency = cap;
    o.delivery_recheck = recheck;
    let pg = PgStore::open(o).await.unwrap();
    Arc::new(PgCallStore::new(pg).await.unwrap())
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

/// A call created on `s` and ended by `s`, its webhook due now.
async fn ended(s: &PgCallStore, tenant: &str) -> CallRecord {
    let t0 = now_ms() - 70_000;
    let rec = call(tenant, t0);
    s.create(&rec).await.unwrap();
    let mut last = None;
    for (ev, at) in [
        (CallEvent::Connect, 1_000),
        (CallEvent::Answered, 2_000),
        (CallEvent::AgentHangup, 62_000),
    ] {
        let applied = s
            .apply_transition(&rec.call_id, move |r| {
                transition(r, &ev, &CallKnobs::default(), t0 + at)
            })
            .await
            .unwrap();
        last = Some(applied.record);
    }
    last.unwrap()
}

/// `(claimed_by, claim_until_ms)` of the call's webhook.
fn claim_of(schema: &str, call_id: &str) -> (String, u64) {
    let row = server().psql(
        "db",
        &format!(
            "SELECT coalesce(claimed_by, '-') || ' ' || claim_until_ms FROM {schema}.c2c_outbox \
             WHERE call_id = '{call_id}'"
        ),
    );
    let (by, until) = row.trim().split_once(' ').unwrap();
    (by.to_owned(), until.parse().unwrap())
}

fn calls_of(entries: &[OutboxEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.call_id.as_str()).collect()
}

fn delivered(e: &OutboxEntry) -> OutboxEntry {
    let mut d = e.clone();
    d.attempts = 1;
    d.state = OutboxState::Delivered;
    d.delivered_ms = Some(now_ms());
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_node_that_ends_a_call_delivers_its_webhook_without_a_claim_transaction() {
    let schema = fresh_schema("handoff");
    let (a, b) = (node(&schema, 8).await, node(&schema, 8).await);
    let first = ended(&a, "acme").await;
    let (by, until) = claim_of(&schema, &first.call_id);
    assert_eq!(
        by,
        a.node_id(),
        "enqueued claimed by the node that ended it"
    );
    assert!(
        until > now_ms() + CLAIM_MS / 2,
        "claimed for the claim's length"
    );

    // Another node does not see it.
    assert!(b.outbox_due(now_ms(), 10).await.unwrap().is_empty());
    // A's first poll reads the database (its own claims).
    let got = a.outbox_due(now_ms(), 10).await.unwrap();
    assert_eq!(calls_of(&got), [first.call_id.as_str()]);
    let before = a.delivery_counts();

    // From now on A's ended calls go straight to its deliverer, lowest seq first, as
    // many as it asks for; the ones in flight are offered again, and refused by its
    // deliverer.
    let second = ended(&a, "acme").await;
    let third = ended(&a, "acme").await;
    let mut in_flight = vec![got[0].seq];
    let served = a
        .outbox_due_admitted(now_ms(), 1, &mut |seq, _| !in_flight.contains(&seq))
        .await
        .unwrap();
    assert_eq!(calls_of(&served), [second.call_id.as_str()]);
    in_flight.push(served[0].seq);
    let rest = a
        .outbox_due_admitted(now_ms(), 10, &mut |seq, _| !in_flight.contains(&seq))
        .await
        .unwrap();
    assert_eq!(calls_of(&rest), [third.call_id.as_str()]);
    assert_eq!(
        a.delivery_counts(),
        DeliveryCounts {
            handed_off: before.handed_off + 2,
            claim_transactions: before.claim_transactions,
        },
        "handed off, no claim transaction"
    );

    // Their results clear the claims, in the database and here: nothing comes back.
    for e in got.iter().chain(&served).chain(&rest) {
        a.outbox_record_attempt(&delivered(e)).await.unwrap();
        assert_eq!(claim_of(&schema, &e.call_id), ("-".to_owned(), 0));
    }
    assert!(a.outbox_due(now_ms(), 10).await.unwrap().is_empty());
    assert!(b.outbox_due(now_ms(), 10).await.unwrap().is_empty());
    let pending = a.outbox_stats().await.unwrap().0;
    assert_eq!(pending, 0);
}

/// A node at its share of a tenant's slots enqueues the tenant's next webhooks
/// unclaimed. The end of one of its own deliveries claims the first of them in the
/// transaction that stores the delivery's result, and the node's next poll gets it
/// without a claim transaction; another node's claim may take one first, and then the
/// node leaves it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beyond_its_share_a_node_claims_the_next_webhook_as_a_delivery_ends() {
    let schema = fresh_schema("handoff_share");
    // Two live nodes, a cap of 2: one slot each. B reads the database at every poll.
    let (a, b) = (
        node(&schema, 2).await,
        rechecking_node(&schema, 2, Duration::from_millis(1)).await,
    );
    let t = now_ms();
    a.renew_lease(t).await.unwrap();
    b.renew_lease(t).await.unwrap();
    let first = ended(&a, "acme").await;
    let got = a.outbox_due(now_ms(), 10).await.unwrap();
    assert_eq!(calls_of(&got), [first.call_id.as_str()]);

    let second = ended(&a, "acme").await;
    assert_eq!(claim_of(&schema, &second.call_id), ("-".to_owned(), 0));
    let before = a.delivery_counts();
    // Its one slot busy, A has nothing to deliver, and knows it without a read.
    let in_flight = got[0].seq;
    let (got, held) = a
        .outbox_due_held(now_ms(), 10, &mut |seq, _| seq != in_flight)
        .await
        .unwrap();
    assert!(got.is_empty() && held, "{:?}", calls_of(&got));
    // The delivery of the first ends: the second is A's, from the same transaction.
    a.outbox_record_attempt(&delivered(&got_first(&a, &first).await))
        .await
        .unwrap();
    assert_eq!(claim_of(&schema, &second.call_id).0, a.node_id());
    let got = a.outbox_due(now_ms(), 10).await.unwrap();
    assert_eq!(calls_of(&got), [second.call_id.as_str()]);
    let after = a.delivery_counts();
    assert_eq!(after.claim_transactions, before.claim_transactions);
    assert_eq!(after.handed_off, before.handed_off + 1);
    assert!(b.outbox_due(now_ms(), 10).await.unwrap().is_empty());

    // The third waits on A, but B (a free slot of the fleet's 2) claims it first: the
    // end of A's delivery of the second then claims nothing.
    let third = ended(&a, "acme").await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(
        calls_of(&b.outbox_due(now_ms(), 10).await.unwrap()),
        [third.call_id.as_str()]
    );
    a.outbox_record_attempt(&delivered(&got[0])).await.unwrap();
    assert_eq!(claim_of(&schema, &third.call_id).0, b.node_id());
    assert!(a.outbox_due(now_ms(), 10).await.unwrap().is_empty());
}

/// Under load most polls find nothing new: a delivery's end polls again while others
/// are in flight. Those are answered from the node's lists, offering again what is in
/// flight (the deliverer refuses it), with no claim transaction. What the node puts in
/// the database only, a tenant event or a retry, makes the poll that should find it
/// read the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poll_with_nothing_new_needs_no_claim_transaction_but_an_event_or_a_retry_does() {
    let schema = fresh_schema("handoff_quiet");
    let a = node(&schema, 8).await;
    let first = ended(&a, "acme").await;
    let got = a.outbox_due(now_ms(), 10).await.unwrap();
    assert_eq!(calls_of(&got), [first.call_id.as_str()]);
    let in_flight = got[0].seq;
    let before = a.delivery_counts();
    for _ in 0..3 {
        let again = a
            .outbox_due_admitted(now_ms(), 10, &mut |seq, _| seq != in_flight)
            .await
            .unwrap();
        assert!(again.is_empty(), "{:?}", calls_of(&again));
    }
    assert_eq!(a.delivery_counts(), before, "no claim transaction");

    // A tenant event is enqueued unclaimed: the next poll reads the database.
    let event =
        OutboxEntry::for_event("evt_quiet_acme_1", "acme", "{}".into(), now_ms(), 0).unwrap();
    let seq = a.outbox_enqueue_event(&event).await.unwrap().unwrap();
    let got = a
        .outbox_due_admitted(now_ms(), 10, &mut |seq, _| seq != in_flight)
        .await
        .unwrap();
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [seq]);
    let event_in_flight = seq;
    let after_event = a.delivery_counts();
    assert_eq!(
        after_event.claim_transactions,
        before.claim_transactions + 1
    );

    // The first delivery failed, to be retried in 300 ms: polls before then are
    // answered here, the first one at its time reads the database and gets it.
    let now = now_ms();
    let mut retry = got_first(&a, &first).await;
    retry.attempts = 1;
    retry.next_attempt_ms = now + 300;
    retry.last_error = Some("http 503".into());
    a.outbox_record_attempt(&retry).await.unwrap();
    assert!(a
        .outbox_due_admitted(now + 299, 10, &mut |seq, _| seq != event_in_flight)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(a.delivery_counts(), after_event);
    let due = a
        .outbox_due_admitted(now + 300, 10, &mut |seq, _| seq != event_in_flight)
        .await
        .unwrap();
    assert_eq!(calls_of(&due), [first.call_id.as_str()]);
    assert_eq!(
        a.delivery_counts().claim_transactions,
        after_event.claim_transactions + 1
    );
}

/// A claim transaction that finds the tenant's slots busy (the recheck of a loaded
/// node) claims nothing and leaves the waiting entry waiting on the node: the end of
/// the delivery in flight still claims it, with its result. (Emptied by the claim
/// transaction, the list left the slot free until another claim transaction, and a
/// loaded node ran one per slot.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_transaction_held_back_by_busy_slots_leaves_the_next_webhook_waiting_here() {
    let schema = fresh_schema("handoff_recheck");
    const RECHECK: Duration = Duration::from_secs(2);
    let (a, b) = (
        rechecking_node(&schema, 2, RECHECK).await,
        node(&schema, 2).await,
    );
    let t = now_ms();
    a.renew_lease(t).await.unwrap();
    b.renew_lease(t).await.unwrap();
    let first = ended(&a, "acme").await;
    let got = a.outbox_due(now_ms(), 10).await.unwrap();
    assert_eq!(calls_of(&got), [first.call_id.as_str()]);
    let in_flight = got[0].seq;
    let second = ended(&a, "acme").await;
    assert_eq!(claim_of(&schema, &second.call_id), ("-".to_owned(), 0));

    // A claim transaction once the recheck is due: A's one slot is busy (its
    // deliverer refuses the entry in flight), so it claims nothing and says entries
    // are held back.
    tokio::time::sleep(RECHECK + Duration::from_millis(100)).await;
    let before = a.delivery_counts();
    let (got, held) = a
        .outbox_due_held(now_ms(), 10, &mut |seq, _| seq != in_flight)
        .await
        .unwrap();
    assert!(got.is_empty() && held, "{:?}", calls_of(&got));
    assert_eq!(
        a.delivery_counts().claim_transactions,
        before.claim_transactions + 1,
        "the poll read the database"
    );
    assert_eq!(claim_of(&schema, &second.call_id), ("-".to_owned(), 0));

    // The delivery of the first ends: the second is A's, from the same transaction,
    // and A's next poll hands it out without another claim transaction.
    a.outbox_record_attempt(&delivered(&got_first(&a, &first).await))
        .await
        .unwrap();
    assert_eq!(claim_of(&schema, &second.call_id).0, a.node_id());
    let after = a.delivery_counts();
    let got = a.outbox_due(now_ms(), 10).await.unwrap();
    assert_eq!(calls_of(&got), [second.call_id.as_str()]);
    assert_eq!(
        a.delivery_counts().claim_transactions,
        after.claim_transactions
    );
}

/// `first`'s entry as stored (what A's deliverer was given for it).
async fn got_first(s: &PgCallStore, rec: &CallRecord) -> OutboxEntry {
    let seq = s.outbox_seq_for_call(&rec.call_id).await.unwrap().unwrap();
    s.outbox_get(seq).await.unwrap().unwrap()
}

/// A node that dies holding webhooks it enqueued claimed: another node delivers them
/// once the claims run out, and not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_nodes_handed_off_webhooks_go_to_another_node_when_their_claims_run_out() {
    let schema = fresh_schema("handoff_dead");
    let (a, b) = (node(&schema, 8).await, node(&schema, 8).await);
    let lost = [ended(&a, "acme").await, ended(&a, "acme").await];
    drop(a);
    assert!(b.outbox_due(now_ms(), 10).await.unwrap().is_empty());
    let later = now_ms() + CLAIM_MS + 1;
    let got = b.outbox_due(later, 10).await.unwrap();
    let mut taken = calls_of(&got);
    taken.sort();
    let mut want = vec![lost[0].call_id.as_str(), lost[1].call_id.as_str()];
    want.sort();
    assert_eq!(taken, want);
}

/// A write that enqueues nothing (the call's webhook exists, or the write lost its
/// race) gives its reservation back: the node's slots are not used up by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_write_gives_its_delivery_slot_back() {
    let schema = fresh_schema("handoff_lost");
    // One node, a cap of 1: a single slot.
    let (a, b) = (node(&schema, 1).await, node(&schema, 1).await);
    let rec = call("acme", now_ms() - 70_000);
    a.create(&rec).await.unwrap();
    // B writes to the call behind A's back, so A's hangup (made from its cache) loses
    // its first try and is made again on B's record; B drives the call from then on.
    let t0 = rec.created_ms;
    b.apply_transition(&rec.call_id, move |r| {
        transition(r, &CallEvent::Connect, &CallKnobs::default(), t0 + 1_000)
    })
    .await
    .unwrap();
    let ended_rec = a
        .apply_transition(&rec.call_id, move |r| {
            transition(
                r,
                &CallEvent::AgentHangup,
                &CallKnobs::default(),
                t0 + 62_000,
            )
        })
        .await
        .unwrap()
        .record;
    assert!(ended_rec.is_ended());
    // The lost try's reservation came back: the retry claimed the entry for A.
    assert_eq!(claim_of(&schema, &rec.call_id).0, a.node_id());
    let got = a.outbox_due(now_ms(), 10).await.unwrap();
    assert_eq!(calls_of(&got), [rec.call_id.as_str()]);
}

/// A node that stops cleanly gives back the claims of the webhooks it was handed but
/// never started: another node delivers them at once, not when the claims run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clean_stop_gives_back_the_webhooks_not_started() {
    let schema = fresh_schema("handoff_stop");
    let (a, b) = (node(&schema, 8).await, node(&schema, 8).await);
    // A's first poll (a claim transaction) before the call ends, so the webhook waits
    // in A's hand-off queue.
    assert!(a.outbox_due(now_ms(), 10).await.unwrap().is_empty());
    let rec = ended(&a, "acme").await;
    assert_eq!(claim_of(&schema, &rec.call_id).0, a.node_id());
    a.release_lease().await.unwrap();
    assert_eq!(claim_of(&schema, &rec.call_id), ("-".to_owned(), 0));
    let got = b.outbox_due(now_ms(), 10).await.unwrap();
    assert_eq!(calls_of(&got), [rec.call_id.as_str()]);
    assert!(
        a.outbox_due(now_ms(), 10).await.unwrap().is_empty(),
        "not handed out after the stop"
    );
}
