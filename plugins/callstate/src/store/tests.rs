//! Store tests against a real sled database in a temp dir.

use std::sync::Arc;

use tempfile::TempDir;

use super::*;
use crate::machine::{transition, CallEvent, CallKnobs};
use crate::record::{CallStatus, Phase};

pub(super) fn knobs() -> CallKnobs {
    CallKnobs::default()
}

pub(super) use super::contract::call;

/// Opens (or reopens) the store in `dir`. A store just dropped may still hold its file
/// lock for a moment (sled's flusher thread lets go on its next tick): retry briefly.
pub(super) fn open(dir: &TempDir) -> SledCallStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match SledCallStore::open(dir.path()) {
            Ok(s) => return s,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("open store: {e}"),
        }
    }
}

pub(super) async fn event(s: &SledCallStore, id: &str, ev: CallEvent, now: u64) -> Applied {
    s.apply_transition(id, |r| transition(r, &ev, &knobs(), now))
        .await
        .expect("apply")
}

/// Creates a call and drives it to ENDED ANSWERED (connect, answer, hangup).
pub(super) async fn finished_call(s: &SledCallStore, tenant: &str, t0: u64) -> CallRecord {
    let rec = call(tenant, t0);
    s.create(&rec).await.unwrap();
    event(s, &rec.call_id, CallEvent::Connect, t0 + 1_000).await;
    event(s, &rec.call_id, CallEvent::Answered, t0 + 2_000).await;
    event(s, &rec.call_id, CallEvent::AgentHangup, t0 + 62_000)
        .await
        .record
}

#[tokio::test]
async fn create_get_and_reopen_sees_everything() {
    let dir = TempDir::new().unwrap();
    let t0 = 1_700_000_000_000;
    let (open_rec, ended, ended_seq) = {
        let s = open(&dir);
        let open_rec = call("acme", t0);
        s.create(&open_rec).await.unwrap();
        let ended = finished_call(&s, "acme", t0 + 10).await;
        let seq = s.outbox_seq_for_call(&ended.call_id).unwrap().unwrap();
        assert!(s.flush_count() >= 1);
        (open_rec, ended, seq)
    }; // dropped: flusher joined, db closed
    let s = open(&dir);
    assert_eq!(s.get(&open_rec.call_id).unwrap().as_ref(), Some(&open_rec));
    assert_eq!(s.get(&ended.call_id).unwrap().as_ref(), Some(&ended));
    let open_ids: Vec<_> = s
        .open_calls()
        .unwrap()
        .into_iter()
        .map(|r| r.call_id)
        .collect();
    assert_eq!(open_ids, vec![open_rec.call_id.clone()]);
    let e = s.outbox_get(ended_seq).unwrap().unwrap();
    assert_eq!(e.call_id, ended.call_id);
    assert_eq!(e.state, OutboxState::Pending);
    assert_eq!(e.webhook_id, format!("msg_{}", &ended.call_id[4..]));
    let page = s.list_by_tenant("acme", 0, u64::MAX, 10, None).unwrap();
    assert_eq!(page.records.len(), 2);
    // A new seq after reopen never reuses an old one.
    assert!(s.next_outbox_seq().unwrap() > ended_seq);
}

#[tokio::test]
async fn shares_a_db_with_other_trees() {
    let dir = TempDir::new().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let other = db.open_tree("dlt").unwrap();
    other.insert(b"r/x", b"not a call".to_vec()).unwrap();
    let s = SledCallStore::open_with_db(db.clone()).unwrap();
    let rec = call("acme", 1_000);
    s.create(&rec).await.unwrap();
    assert_eq!(s.get("r/x").unwrap(), None);
    assert!(db
        .open_tree("calls")
        .unwrap()
        .contains_key(format!("r/{}", rec.call_id))
        .unwrap());
    assert_eq!(s.open_calls().unwrap().len(), 1);
}

#[tokio::test]
async fn create_rejects_duplicates_and_bad_ids() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let rec = call("acme", 1_000);
    s.create(&rec).await.unwrap();
    assert!(matches!(
        s.create(&rec).await,
        Err(StoreError::AlreadyExists)
    ));
    let mut bad = call("ac\0me", 1_000);
    assert!(matches!(
        s.create(&bad).await,
        Err(StoreError::InvalidInput { .. })
    ));
    bad.tenant = "acme".into();
    bad.call_id = String::new();
    assert!(matches!(
        s.create(&bad).await,
        Err(StoreError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn apply_checks_the_version() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let rec = call("acme", 1_000);
    s.create(&rec).await.unwrap();
    let t = transition(&rec, &CallEvent::Connect, &knobs(), 2_000).unwrap();
    assert_eq!(s.apply(rec.version, &t.record, None).await.unwrap(), None);
    let stale = s.apply(rec.version, &t.record, None).await;
    assert!(matches!(
        stale,
        Err(StoreError::VersionConflict {
            expected: 1,
            found: 2
        })
    ));
    assert_eq!(s.get(&rec.call_id).unwrap().unwrap().phase, Phase::Dialing);
    let missing = call("acme", 1_000);
    assert!(matches!(
        s.apply(1, &missing, None).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn apply_transition_reports_errors_and_skips_noops() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let rec = call("acme", 1_000);
    s.create(&rec).await.unwrap();
    let a = event(&s, &rec.call_id, CallEvent::Connect, 2_000).await;
    assert!(a.written);
    assert!(a.effects.contains(&Effect::Dial));
    let again = s
        .apply_transition(&rec.call_id, |r| {
            transition(r, &CallEvent::Connect, &knobs(), 3_000)
        })
        .await;
    assert!(matches!(
        again,
        Err(StoreError::Transition(TransitionError::Conflict {
            code: "already_connected",
            ..
        }))
    ));
    let noop = event(&s, &rec.call_id, CallEvent::AgentJoined, 3_000).await;
    assert!(!noop.written);
    assert!(noop.effects.is_empty());
    assert_eq!(noop.record, a.record);
    let missing = s
        .apply_transition("c2c_ffffffffffffffffffffffffffffffff", |r| {
            transition(r, &CallEvent::Connect, &knobs(), 1)
        })
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

#[tokio::test]
async fn works_through_dyn_trait() {
    let dir = TempDir::new().unwrap();
    let s: Arc<dyn CallStore> = Arc::new(open(&dir));
    let rec = call("acme", 1_000);
    s.create(&rec).await.unwrap();
    let a = s
        .apply_transition(&rec.call_id, |r| {
            transition(r, &CallEvent::AgentHangup, &knobs(), 2_000)
        })
        .await
        .unwrap();
    assert_eq!(a.record.call_status, Some(CallStatus::Failed));
    assert!(a.enqueued.is_some());
    assert_eq!(s.outbox_stats().await.unwrap(), (1, Some(2_000)));
}

/// Runs `n` concurrent creates released together; returns (call ids, flushes used).
async fn concurrent_creates(s: &SledCallStore, n: usize) -> (Vec<String>, u64) {
    let before = s.flush_count();
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (s, barrier) = (s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let rec = call("acme", 1_000 + i as u64);
            barrier.wait().await;
            s.create(&rec).await.map(|_| rec.call_id)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap());
    }
    (ids, s.flush_count() - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_all_durable_with_fewer_flushes() {
    const N: usize = 200;
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let (ids, flushes) = concurrent_creates(&s, N).await;
    // Here a (debug-build) sled batch costs about as much as this VM's fsync, so grouping is
    // modest; the slow-disk test below pins the ratio down.
    assert!(
        flushes >= 1 && flushes < N as u64,
        "{flushes} flushes for {N} writes"
    );
    drop(s);
    let s = open(&dir);
    for id in &ids {
        assert!(s.get(id).unwrap().is_some(), "{id} lost after reopen");
    }
    assert_eq!(s.open_calls().unwrap().len(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_one_flush_among_many_writers() {
    const N: usize = 200;
    let dir = TempDir::new().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let slow = std::time::Duration::from_millis(20);
    let s = SledCallStore::open_with_slow_flush(db, slow);
    let (ids, flushes) = concurrent_creates(&s, N).await;
    assert!(
        flushes >= 1 && flushes * 10 <= N as u64,
        "{flushes} flushes for {N} writes: group commit is not grouping"
    );
    drop(s);
    let s = open(&dir);
    assert!(ids.iter().all(|id| s.get(id).unwrap().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_enders_produce_exactly_one_webhook() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let rec = call("acme", 1_000);
    s.create(&rec).await.unwrap();
    event(&s, &rec.call_id, CallEvent::Connect, 2_000).await;
    event(&s, &rec.call_id, CallEvent::Answered, 3_000).await;
    let evs = [
        CallEvent::AgentHangup,
        CallEvent::RoomFinished,
        CallEvent::CustomerLeft {
            sip_code: None,
            disconnect_reason: Some("CLIENT_INITIATED".into()),
        },
        CallEvent::Timer(crate::TimerKind::MaxDuration),
    ];
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let (s, id, ev) = (s.clone(), rec.call_id.clone(), evs[i as usize % 4].clone());
        tasks.push(tokio::spawn(async move {
            s.apply_transition(&id, |r| transition(r, &ev, &knobs(), 10_000 + i))
                .await
                .unwrap()
        }));
    }
    let mut enqueued = 0;
    let mut ended_writes = 0;
    for t in tasks {
        let a = t.await.unwrap();
        enqueued += usize::from(a.enqueued.is_some());
        ended_writes += usize::from(a.effects.contains(&Effect::EnqueueWebhook));
    }
    assert_eq!(enqueued, 1);
    assert_eq!(ended_writes, 1);
    assert_eq!(s.outbox_by_tenant_since("acme", 0).unwrap().len(), 1);
    assert!(s.open_calls().unwrap().is_empty());
}

#[tokio::test]
async fn one_webhook_per_call_even_via_apply() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let ended = finished_call(&s, "acme", 1_000).await;
    let first = s.outbox_seq_for_call(&ended.call_id).unwrap().unwrap();
    // A later change (late SIP code) carrying another outbox entry must not enqueue it.
    let t = transition(&ended, &CallEvent::SipCode { code: 487 }, &knobs(), 99_000).unwrap();
    let extra = OutboxEntry::for_call(&t.record, s.next_outbox_seq().unwrap()).unwrap();
    assert_eq!(
        s.apply(ended.version, &t.record, Some(extra))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.outbox_seq_for_call(&ended.call_id).unwrap(), Some(first));
    assert_eq!(s.outbox_by_tenant_since("acme", 0).unwrap().len(), 1);
    assert_eq!(
        s.get(&ended.call_id).unwrap().unwrap().sip_disconnect_code,
        Some(487)
    );
}

#[tokio::test]
async fn outbox_payload_is_the_contract() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let ended = finished_call(&s, "acme", 1_000).await;
    let e = s.outbox_due(u64::MAX, 10).unwrap().pop().unwrap();
    let v: serde_json::Value = serde_json::from_str(&e.payload_json).unwrap();
    assert_eq!(v["call_status"], "ANSWERED");
    assert_eq!(v["duration_seconds"], 60);
    assert_eq!(v["phone_to"], "9530251797");
    let fields = [
        "call_id",
        "case_id",
        "customer_crm_id",
        "phone_to",
        "phone_from",
        "call_status",
        "duration_seconds",
        "agent_id",
    ];
    let pos: Vec<usize> = fields
        .iter()
        .map(|f| e.payload_json.find(&format!("\"{f}\":")).expect(f))
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{}", e.payload_json);
    assert_eq!(v.as_object().unwrap().len(), fields.len());
    assert_eq!(e.created_ms, ended.ended_ms.unwrap());
    assert!(matches!(
        OutboxEntry::for_call(&call("acme", 1), 1),
        Err(StoreError::NotEnded)
    ));
}

#[tokio::test]
async fn open_index_shrinks_on_end() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let mut ids = Vec::new();
    for i in 0..5 {
        let rec = call("acme", 1_000 + i);
        s.create(&rec).await.unwrap();
        ids.push(rec.call_id);
    }
    assert_eq!(s.open_calls().unwrap().len(), 5);
    event(&s, &ids[1], CallEvent::AgentHangup, 5_000).await;
    event(
        &s,
        &ids[3],
        CallEvent::Timer(crate::TimerKind::UnconnectedExpiry),
        10_000_000,
    )
    .await;
    let open: Vec<_> = s
        .open_calls()
        .unwrap()
        .into_iter()
        .map(|r| r.call_id)
        .collect();
    assert_eq!(open.len(), 3);
    assert!(!open.contains(&ids[1]) && !open.contains(&ids[3]));
    assert!(open
        .iter()
        .all(|id| s.get(id).unwrap().unwrap().phase == Phase::Initiated));
}

#[tokio::test]
async fn list_by_tenant_paginates_in_time_order() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let mut acme = Vec::new();
    for i in 0..25u64 {
        let rec = call("acme", 10_000 + i * 1_000);
        s.create(&rec).await.unwrap();
        acme.push(rec.call_id);
    }
    // Same timestamp twice, and a tenant whose name is a prefix of another.
    let twin = call("acme", 10_000);
    s.create(&twin).await.unwrap();
    s.create(&call("acm", 12_000)).await.unwrap();
    s.create(&call("acmex", 12_000)).await.unwrap();

    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s
            .list_by_tenant("acme", 0, u64::MAX, 10, cursor.as_deref())
            .unwrap();
        pages += 1;
        got.extend(
            page.records
                .iter()
                .map(|r| (r.created_ms, r.call_id.clone())),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(got.len(), 26);
    assert!(got.windows(2).all(|w| w[0] <= w[1]), "not in time order");
    assert!(got.iter().any(|(_, id)| id == &twin.call_id));
    assert!(acme.iter().all(|id| got.iter().any(|(_, g)| g == id)));

    // Half-open time window [12 000, 15 000): calls at 12, 13, 14 s.
    let window = s.list_by_tenant("acme", 12_000, 15_000, 100, None).unwrap();
    let times: Vec<_> = window.records.iter().map(|r| r.created_ms).collect();
    assert_eq!(times, vec![12_000, 13_000, 14_000]);
    assert_eq!(window.next_cursor, None);
    // Exactly `limit` left: no dangling cursor.
    let exact = s.list_by_tenant("acme", 12_000, 15_000, 3, None).unwrap();
    assert_eq!(exact.next_cursor, None);
    assert_eq!(
        s.list_by_tenant("acm", 0, u64::MAX, 100, None)
            .unwrap()
            .records
            .len(),
        1
    );
    assert!(s
        .list_by_tenant("acme", 0, u64::MAX, 10, Some("garbage"))
        .is_err());
    assert!(s
        .list_by_tenant("acme", 0, u64::MAX, 0, None)
        .unwrap()
        .records
        .is_empty());
}

#[tokio::test]
async fn day_index_uses_utc_day() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    // 2024-03-01T23:59:59.999Z and 2024-03-02T00:00:00Z
    let a = call("acme", 1_709_337_599_999);
    let b = call("acme", 1_709_337_600_000);
    s.create(&a).await.unwrap();
    s.create(&b).await.unwrap();
    assert_eq!(
        s.call_ids_on_day("acme", "20240301", 10).unwrap(),
        vec![a.call_id]
    );
    assert_eq!(
        s.call_ids_on_day("acme", "20240302", 10).unwrap(),
        vec![b.call_id]
    );
    assert!(s
        .call_ids_on_day("acme", "20240303", 10)
        .unwrap()
        .is_empty());
    assert!(s
        .call_ids_on_day("other", "20240301", 10)
        .unwrap()
        .is_empty());
    for bad in ["2024031", "20241301", "2024-3-1", "x0240301"] {
        assert!(s.call_ids_on_day("acme", bad, 10).is_err(), "{bad}");
    }
}

/// The deliverer's path: progress is written without an fsync wait, keeps the pending
/// index in step, survives a clean reopen, and never creates entries.
#[tokio::test]
async fn outbox_progress_is_recorded_without_waiting_and_persists() {
    let dir = TempDir::new().unwrap();
    let seq = {
        let s = open(&dir);
        finished_call(&s, "acme", 1_000).await;
        let mut e = s.outbox_due(u64::MAX, 10).unwrap().remove(0);
        e.state = OutboxState::Delivered;
        e.delivered_ms = Some(70_000);
        e.attempts = 1;
        s.outbox_record_progress(&e).unwrap();
        assert!(s.outbox_due(u64::MAX, 10).unwrap().is_empty());
        assert_eq!(s.outbox_stats().unwrap(), (0, None));
        let mut ghost = e.clone();
        ghost.seq = 9_999_999;
        assert!(matches!(
            s.outbox_record_progress(&ghost),
            Err(StoreError::OutboxNotFound(_))
        ));
        e.seq
    }; // dropped: flusher joined, db flushed and closed
    let s = open(&dir);
    let e = s.outbox_get(seq).unwrap().unwrap();
    assert_eq!(
        (e.state, e.delivered_ms),
        (OutboxState::Delivered, Some(70_000))
    );
    assert!(s.outbox_due(u64::MAX, 10).unwrap().is_empty());
}

#[tokio::test]
async fn outbox_due_update_stats_and_requeue() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let c1 = finished_call(&s, "acme", 1_000).await; // ends at 63 000
    let c2 = finished_call(&s, "other", 5_000).await; // ends at 67 000
    assert_eq!(s.outbox_stats().unwrap(), (2, Some(63_000)));
    assert!(s.outbox_due(62_999, 10).unwrap().is_empty());
    assert_eq!(s.outbox_due(63_000, 10).unwrap().len(), 1);
    assert_eq!(s.outbox_due(u64::MAX, 1).unwrap().len(), 1);
    let mut due = s.outbox_due(u64::MAX, 10).unwrap();
    assert_eq!(due.len(), 2);

    // Retry later: not due until next_attempt_ms.
    let mut e1 = due.remove(0);
    assert_eq!(e1.call_id, c1.call_id);
    e1.attempts = 1;
    e1.next_attempt_ms = 200_000;
    e1.last_error = Some("503".into());
    s.outbox_update(&e1).await.unwrap();
    let ids: Vec<_> = s
        .outbox_due(100_000, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.call_id)
        .collect();
    assert_eq!(ids, vec![c2.call_id.clone()]);

    // Delivered: leaves the pending set and the stats.
    let mut e2 = due.remove(0);
    e2.state = OutboxState::Delivered;
    e2.delivered_ms = Some(70_000);
    e2.attempts = 1;
    s.outbox_update(&e2).await.unwrap();
    assert_eq!(s.outbox_stats().unwrap(), (1, Some(63_000)));
    assert_eq!(s.outbox_due(u64::MAX, 10).unwrap(), vec![e1.clone()]);

    // Replay of the delivered one: pending again, due now, same webhook id.
    let since = s.outbox_by_tenant_since("other", 0).unwrap();
    assert_eq!(since.len(), 1);
    assert!(s
        .outbox_by_tenant_since("other", 67_001)
        .unwrap()
        .is_empty());
    let r = s.outbox_requeue(e2.seq, 500_000).await.unwrap();
    assert_eq!(r.state, OutboxState::Pending);
    assert_eq!(r.webhook_id, e2.webhook_id);
    assert_eq!(
        (r.attempts, r.next_attempt_ms, r.delivered_ms),
        (0, 500_000, None)
    );
    assert_eq!(s.outbox_stats().unwrap().0, 2);

    // Unknown seqs are errors, never silently created.
    let mut ghost = e1.clone();
    ghost.seq = 9_999_999;
    assert!(matches!(
        s.outbox_update(&ghost).await,
        Err(StoreError::OutboxNotFound(_))
    ));
    assert!(matches!(
        s.outbox_requeue(9_999_999, 1).await,
        Err(StoreError::OutboxNotFound(_))
    ));
}

#[tokio::test]
async fn open_calls_can_be_walked_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let mut ids = Vec::new();
    for i in 0..25 {
        let r = call("acme", 1_000 + i);
        s.create(&r).await.unwrap();
        ids.push(r.call_id.clone());
    }
    // End one: it must drop out of the walk.
    let ended = finished_call(&s, "acme", 5_000).await;
    ids.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.open_calls_after(after.as_deref(), 7).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().map(|r| r.call_id.clone());
        seen.extend(page.into_iter().map(|r| r.call_id));
    }
    assert_eq!(seen, ids);
    assert!(!seen.contains(&ended.call_id));
    assert_eq!(s.open_count().unwrap(), 25);
}

/// A crash between the journal write and the key writes of a call's final transition:
/// after reopening, the call is ENDED with its webhook pending and every index and tally
/// consistent, as if the write had completed.
#[tokio::test]
async fn an_interrupted_final_write_is_completed_at_reopen() {
    let dir = TempDir::new().unwrap();
    let t0 = 1_700_000_000_000;
    let id = {
        let s = open(&dir);
        let rec = call("acme", t0);
        s.create(&rec).await.unwrap();
        event(&s, &rec.call_id, CallEvent::Connect, t0 + 1_000).await;
        event(&s, &rec.call_id, CallEvent::Answered, t0 + 2_000).await;
        s.inner
            .journal
            .crash_after_journal
            .store(true, std::sync::atomic::Ordering::Relaxed);
        event(&s, &rec.call_id, CallEvent::AgentHangup, t0 + 62_000).await;
        // "Crashed": none of the keys were written, only the journal entry.
        let now = s.get(&rec.call_id).unwrap().unwrap();
        assert!(!now.is_ended());
        assert_eq!(s.outbox_seq_for_call(&rec.call_id).unwrap(), None);
        rec.call_id
    };
    let s = open(&dir);
    let rec = s.get(&id).unwrap().unwrap();
    assert!(rec.is_ended(), "{rec:?}");
    assert!(s.open_calls().unwrap().is_empty());
    let seq = s
        .outbox_seq_for_call(&id)
        .unwrap()
        .expect("webhook enqueued");
    let due = s.outbox_due(u64::MAX, 10).unwrap();
    assert_eq!(due.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![seq]);
    let report = s.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(s.verify_aggregates().unwrap().is_empty());
}

/// A reader that saw a write before its group commit finished waits for that commit.
#[tokio::test]
async fn wait_durable_waits_for_the_flush_covering_what_was_read() {
    let dir = TempDir::new().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let s = SledCallStore::open_with_slow_flush(db, std::time::Duration::from_millis(300));
    let rec = call("acme", 1_700_000_000_000);
    let writer = {
        let (s, rec) = (s.clone(), rec.clone());
        tokio::spawn(async move { s.create(&rec).await })
    };
    // Visible in memory at once; durable only after the slow flush.
    while s.get(&rec.call_id).unwrap().is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let flushed_when_seen = s.flush_count();
    s.wait_durable().await.unwrap();
    assert!(s.flush_count() > flushed_when_seen);
    writer.await.unwrap().unwrap();
}

/// The deliverer's admission: refused entries are skipped (and do not use up `limit`),
/// accepted ones are returned; the tenant comes from the pending index, or from the
/// entry for index values written before it carried the tenant.
#[tokio::test]
async fn outbox_due_admitted_asks_before_reading() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let a1 = finished_call(&s, "acme", 1_000).await;
    let a2 = finished_call(&s, "acme", 2_000).await;
    let o1 = finished_call(&s, "other", 3_000).await;
    let seq = |c: &CallRecord| s.outbox_seq_for_call(&c.call_id).unwrap().unwrap();
    let (a1, a2, o1) = (seq(&a1), seq(&a2), seq(&o1));
    // An index value in the old 16-byte form (no tenant).
    let e = s.outbox_get(o1).unwrap().unwrap();
    s.tree()
        .insert(
            keys::outbox_pending(o1),
            &keys::pending_value(e.next_attempt_ms, e.created_ms, "")[..],
        )
        .unwrap();
    let mut asked = Vec::new();
    let due = s
        .outbox_due_admitted(u64::MAX, 1, &mut |seq, tenant| {
            asked.push((seq, tenant.to_string()));
            tenant != "acme" // acme is at its limit
        })
        .unwrap();
    assert_eq!(due.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![o1]);
    assert_eq!(
        asked,
        vec![
            (a1, "acme".to_string()),
            (a2, "acme".to_string()),
            (o1, "other".to_string())
        ]
    );
    // The store's own check accepts both index forms.
    let report = s.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
