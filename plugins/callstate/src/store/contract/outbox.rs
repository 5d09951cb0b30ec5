//! Contract cases for the CRM-webhook outbox, retention and the health/durability calls.

use std::sync::Arc;

use super::{call, event, finished_call, webhook_of, DAY_MS};
use crate::error::StoreError;
use crate::machine::CallEvent;
use crate::store::{CallStore, OutboxEntry, OutboxState, PurgeReport};

async fn entry(s: &dyn CallStore, seq: u64) -> Result<OutboxEntry, StoreError> {
    s.outbox_get(seq)
        .await?
        .ok_or(StoreError::OutboxNotFound(seq))
}

/// Sets the call's webhook to `state` after one attempt.
async fn finish_webhook(
    s: &dyn CallStore,
    call_id: &str,
    state: OutboxState,
) -> Result<(), StoreError> {
    let mut e = entry(s, webhook_of(s, call_id).await?).await?;
    e.state = state;
    e.attempts = 1;
    e.delivered_ms = (state == OutboxState::Delivered).then_some(e.created_ms + 10);
    s.outbox_update(&e).await
}

/// Ends a call of `tenant` at `t0 + 62 s` and parks its webhook on a backoff until
/// `until` (3 failed attempts).
async fn parked(
    s: &dyn CallStore,
    tenant: &str,
    t0: u64,
    until: u64,
) -> Result<OutboxEntry, StoreError> {
    let rec = finished_call(s, tenant, t0).await?;
    let mut e = entry(s, webhook_of(s, &rec.call_id).await?).await?;
    e.attempts = 3;
    e.next_attempt_ms = until;
    e.last_error = Some("http 503".into());
    s.outbox_record_progress(&e).await?;
    Ok(e)
}

fn seqs(entries: &[OutboxEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

pub async fn outbox_due_progress_update_and_requeue(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    let c1 = finished_call(&*s, "acme", 1_000).await?; // ends at 63 000
    let c2 = finished_call(&*s, "other", 5_000).await?; // ends at 67 000
    assert_eq!(s.outbox_stats().await?, (2, Some(63_000)));
    assert!(s.outbox_due(62_999, 10).await?.is_empty());
    assert_eq!(s.outbox_due(63_000, 10).await?.len(), 1);
    assert_eq!(s.outbox_due(u64::MAX, 1).await?.len(), 1);
    let mut due = s.outbox_due(u64::MAX, 10).await?;
    assert_eq!(due.len(), 2);

    // A retry later: not due until its next attempt; recorded without a flush.
    let mut e1 = due.remove(0);
    assert_eq!(e1.call_id, c1.call_id);
    e1.attempts = 1;
    e1.next_attempt_ms = 200_000;
    e1.last_error = Some("503".into());
    s.outbox_record_progress(&e1).await?;
    assert_eq!(entry(&*s, e1.seq).await?, e1);
    let due_ids: Vec<_> = s
        .outbox_due(100_000, 10)
        .await?
        .into_iter()
        .map(|e| e.call_id)
        .collect();
    assert_eq!(due_ids, vec![c2.call_id.clone()]);

    // Delivered: leaves the pending set and the stats.
    let mut e2 = due.remove(0);
    e2.state = OutboxState::Delivered;
    e2.delivered_ms = Some(70_000);
    e2.attempts = 1;
    s.outbox_update(&e2).await?;
    assert_eq!(s.outbox_stats().await?, (1, Some(63_000)));
    assert_eq!(s.outbox_due(u64::MAX, 10).await?, vec![e1.clone()]);

    // Replay: pending again, due now, counters reset, same webhook id.
    let r = s.outbox_requeue(e2.seq, 500_000).await?;
    assert_eq!(r.state, OutboxState::Pending);
    assert_eq!(r.webhook_id, e2.webhook_id);
    assert_eq!(
        (r.attempts, r.next_attempt_ms, r.delivered_ms, r.replayed_ms),
        (0, 500_000, None, Some(500_000))
    );
    assert_eq!(entry(&*s, e2.seq).await?, r);
    assert_eq!(s.outbox_stats().await?.0, 2);

    // Unknown seqs are errors, never silently created.
    let mut ghost = e1.clone();
    ghost.seq = 9_999_999;
    for r in [
        s.outbox_update(&ghost).await,
        s.outbox_record_progress(&ghost).await,
        s.outbox_requeue(ghost.seq, 1).await.map(drop),
    ] {
        assert!(
            matches!(r, Err(StoreError::OutboxNotFound(9_999_999))),
            "{r:?}"
        );
    }
    assert_eq!(s.outbox_get(ghost.seq).await?, None);
    Ok(())
}

/// A delivery attempt's outcome lands on the stored entry: its progress fields only,
/// whatever else the deliverer's copy says; a replay that came meanwhile is kept.
pub async fn outbox_record_attempt_keeps_identity(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    let rec = finished_call(&*s, "acme", 1_000).await?;
    let seq = webhook_of(&*s, &rec.call_id).await?;
    let picked = entry(&*s, seq).await?;
    // Replayed while the attempt ran: its replay time must survive the attempt's record.
    let stored = s.outbox_requeue(seq, 70_000).await?;

    let mut failed = picked.clone();
    failed.attempts = 1;
    failed.next_attempt_ms = 90_000;
    failed.last_error = Some("http 503".into());
    failed.retry_after = true;
    // Fields the attempt must not change, changed on the deliverer's copy.
    failed.payload_json = "{\"tampered\":true}".into();
    failed.webhook_id = "msg_other".into();
    failed.created_ms = 1;
    s.outbox_record_attempt(&failed).await?;
    let mut want = stored.clone();
    want.take_progress(&failed);
    let got = entry(&*s, seq).await?;
    assert_eq!(got, want);
    assert_eq!(
        (
            got.payload_json.as_str(),
            got.webhook_id.as_str(),
            got.replayed_ms
        ),
        (
            stored.payload_json.as_str(),
            stored.webhook_id.as_str(),
            Some(70_000)
        )
    );
    assert_eq!(s.outbox_due(89_999, 10).await?, vec![]);
    assert_eq!(s.outbox_due(90_000, 10).await?, vec![got.clone()]);

    let mut delivered = failed.clone();
    delivered.attempts = 2;
    delivered.state = OutboxState::Delivered;
    delivered.delivered_ms = Some(91_000);
    delivered.last_error = None;
    delivered.retry_after = false;
    s.outbox_record_attempt(&delivered).await?;
    let got = entry(&*s, seq).await?;
    assert_eq!(
        (
            got.state,
            got.attempts,
            got.delivered_ms,
            got.last_error.clone()
        ),
        (OutboxState::Delivered, 2, Some(91_000), None)
    );
    assert!(s.outbox_due(u64::MAX, 10).await?.is_empty());
    assert_eq!(s.outbox_stats().await?.0, 0);

    let mut ghost = delivered;
    ghost.seq = 9_999_999;
    let r = s.outbox_record_attempt(&ghost).await;
    assert!(
        matches!(r, Err(StoreError::OutboxNotFound(9_999_999))),
        "{r:?}"
    );
    assert_eq!(s.outbox_get(ghost.seq).await?, None);
    Ok(())
}

pub async fn outbox_due_admitted_asks_only_for_due_entries(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    let a1 = webhook_of(&*s, &finished_call(&*s, "acme", 1_000).await?.call_id).await?;
    let a2 = webhook_of(&*s, &finished_call(&*s, "acme", 2_000).await?.call_id).await?;
    let o1 = webhook_of(&*s, &finished_call(&*s, "other", 3_000).await?.call_id).await?;
    let later = parked(&*s, "other", 4_000, 1_000_000).await?;
    let mut asked = Vec::new();
    let due = s
        .outbox_due_admitted(500_000, 1, &mut |seq, tenant| {
            asked.push((seq, tenant.to_owned()));
            tenant != "acme" // acme is at its limit
        })
        .await?;
    assert_eq!(seqs(&due), vec![o1]);
    // Refused entries do not count against the limit; the not-yet-due one is not asked.
    let want = [(a1, "acme"), (a2, "acme"), (o1, "other")].map(|(q, t)| (q, t.to_owned()));
    assert_eq!(asked, want);
    asked.clear();
    let due = s
        .outbox_due_admitted(500_000, 10, &mut |seq, tenant| {
            asked.push((seq, tenant.to_owned()));
            true
        })
        .await?;
    assert_eq!(seqs(&due), vec![a1, a2, o1]);
    assert!(
        !asked.iter().any(|(q, _)| *q == later.seq),
        "asked for an entry not due"
    );
    assert!(s
        .outbox_due_admitted(u64::MAX, 0, &mut |_, _| true)
        .await?
        .is_empty());
    Ok(())
}

pub async fn outbox_seqs_grow_and_replay_scan_is_capped(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    let a = s.next_outbox_seq().await?;
    let b = s.next_outbox_seq().await?;
    assert!(b > a);
    let old = finished_call(&*s, "acme", 1_000).await?;
    let seq = webhook_of(&*s, &old.call_id).await?;
    assert!(
        seq > b,
        "an enqueued entry's seq is above every seq handed out before"
    );
    assert!(s.next_outbox_seq().await? > seq);
    finished_call(&*s, "acme", 100_000).await?;
    finished_call(&*s, "globex", 100_000).await?;
    let (kept, matched) = s.outbox_by_tenant_since_capped("acme", 0, 1).await?;
    assert_eq!((seqs(&kept), matched), (vec![seq], 2));
    let (kept, matched) = s.outbox_by_tenant_since_capped("acme", 100_000, 10).await?;
    assert_eq!((kept.len(), matched), (1, 1));
    assert_eq!(kept[0].tenant, "acme");
    assert_eq!(
        s.outbox_by_tenant_since_capped("nobody", 0, 10).await?,
        (vec![], 0)
    );
    Ok(())
}

pub async fn outbox_bring_forward_moves_only_backoffs(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    let (now, far) = (1_000_000, 5_000_000);
    let mut acme = Vec::new();
    for i in 0..6 {
        acme.push(parked(&*s, "acme", 1_000 + i, far).await?);
    }
    let beta = parked(&*s, "beta", 2_000, far).await?;
    let due_already = finished_call(&*s, "acme", 3_000).await?; // due at 65 000
                                                                // Waits on the CRM's own Retry-After: left alone.
    let mut held = acme[1].clone();
    held.retry_after = true;
    s.outbox_update(&held).await?;
    let refused = acme[2].seq;
    let moved = s
        .outbox_bring_forward("acme", now, 3, &mut |seq| seq != refused)
        .await?;
    assert_eq!(moved, vec![acme[0].seq, acme[3].seq, acme[4].seq]);
    for seq in &moved {
        let e = entry(&*s, *seq).await?;
        assert_eq!(
            (e.next_attempt_ms, e.attempts),
            (now, 3),
            "only the time changes"
        );
    }
    for untouched in [&acme[2], &acme[5], &beta] {
        assert_eq!(entry(&*s, untouched.seq).await?.next_attempt_ms, far);
    }
    assert!(entry(&*s, acme[1].seq).await?.retry_after);
    let due_seq = webhook_of(&*s, &due_already.call_id).await?;
    assert_eq!(entry(&*s, due_seq).await?.next_attempt_ms, 65_000);
    let mut due = seqs(&s.outbox_due(now, 100).await?);
    due.sort_unstable();
    let mut want = vec![acme[0].seq, acme[3].seq, acme[4].seq, due_seq];
    want.sort_unstable();
    assert_eq!(due, want);
    assert!(s
        .outbox_bring_forward("acme", now, 0, &mut |_| true)
        .await?
        .is_empty());
    Ok(())
}

pub async fn outbox_backlog_per_tenant(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    assert_eq!(s.outbox_backlog().await?.pending, 0);
    let a = finished_call(&*s, "acme", 5_000).await?; // webhook created at 67 000
    finished_call(&*s, "acme", 9_000).await?;
    let b = finished_call(&*s, "beta", 1_000).await?; // 63 000
    finish_webhook(&*s, &b.call_id, OutboxState::Delivered).await?;
    finished_call(&*s, "beta", 2_000).await?; // 64 000
    let backlog = s.outbox_backlog().await?;
    assert_eq!(
        (backlog.pending, backlog.oldest_created_ms),
        (3, Some(64_000))
    );
    let by_tenant: Vec<_> = backlog.oldest_by_tenant.into_iter().collect();
    assert_eq!(
        by_tenant,
        vec![("acme".to_owned(), 67_000), ("beta".to_owned(), 64_000)]
    );
    finish_webhook(&*s, &a.call_id, OutboxState::Failed).await?;
    assert_eq!(s.outbox_backlog().await?.oldest_by_tenant["acme"], 71_000);
    Ok(())
}

pub async fn purge_removes_old_finished_calls_and_keeps_tallies(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    let t_old = 1_700_000_000_000;
    let delivered = finished_call(&*s, "acme", t_old).await?;
    finish_webhook(&*s, &delivered.call_id, OutboxState::Delivered).await?;
    let failed = finished_call(&*s, "acme", t_old + 1).await?;
    finish_webhook(&*s, &failed.call_id, OutboxState::Failed).await?;
    let pending = finished_call(&*s, "acme", t_old + 2).await?;
    let open_call = call("acme", t_old + 3);
    s.create(&open_call).await?;
    let recent = finished_call(&*s, "acme", t_old + 40 * DAY_MS).await?;
    finish_webhook(&*s, &recent.call_id, OutboxState::Delivered).await?;
    let tallies = s.day_tallies("acme", "20000101", "20991231", None).await?;

    let cutoff = t_old + 30 * DAY_MS;
    let (r, next) = s.purge_ended_before(cutoff, None, 100).await?;
    let want = PurgeReport {
        purged: 2,
        kept_open: 1,
        kept_pending: 1,
        examined: 4,
    };
    assert_eq!((r, next), (want, None));
    for gone in [&delivered, &failed] {
        assert_eq!(s.get(&gone.call_id).await?, None);
        assert_eq!(s.outbox_seq_for_call(&gone.call_id).await?, None);
    }
    let (left, _) = s.outbox_by_tenant_since_capped("acme", 0, 10).await?;
    assert!(left
        .iter()
        .all(|e| e.call_id != delivered.call_id && e.call_id != failed.call_id));
    for kept in [&pending, &open_call, &recent] {
        assert!(s.get(&kept.call_id).await?.is_some());
    }
    // Analytics still show the old day whole.
    assert_eq!(
        s.day_tallies("acme", "20000101", "20991231", None).await?,
        tallies
    );

    // Once its webhook is finished and the open call ended (and its webhook finished).
    finish_webhook(&*s, &pending.call_id, OutboxState::Delivered).await?;
    event(&*s, &open_call.call_id, CallEvent::AgentHangup, t_old + 5).await?;
    let (r, _) = s.purge_ended_before(cutoff, None, 100).await?;
    assert_eq!((r.purged, r.kept_open, r.kept_pending), (1, 0, 1));
    finish_webhook(&*s, &open_call.call_id, OutboxState::Disabled).await?;
    let (r, _) = s.purge_ended_before(cutoff, None, 100).await?;
    assert_eq!((r.purged, r.kept_open, r.kept_pending), (1, 0, 0));
    let listed = s
        .list_by_tenant("acme", 0, u64::MAX, 10, None)
        .await?
        .records;
    assert_eq!(listed, vec![recent]);
    assert!(s.open_calls().await?.is_empty());
    Ok(())
}

pub async fn purge_resumes_at_its_cursor(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    let t_old = 1_700_000_000_000;
    let mut old = Vec::new();
    for (i, tenant) in ["acme", "acme", "acme-2", "globex", "globex"]
        .iter()
        .enumerate()
    {
        let c = finished_call(&*s, tenant, t_old + i as u64).await?;
        finish_webhook(&*s, &c.call_id, OutboxState::Delivered).await?;
        old.push(c.call_id);
    }
    // Kept: a pending webhook, and a recent call per tenant.
    finished_call(&*s, "acme", t_old + 10).await?;
    for tenant in ["acme", "acme-2", "globex"] {
        finished_call(&*s, tenant, t_old + 40 * DAY_MS).await?;
    }
    let cutoff = t_old + DAY_MS;
    let (mut total, mut batches, mut cursor) = (PurgeReport::default(), 0, None);
    loop {
        let (r, next) = s.purge_ended_before(cutoff, cursor.as_ref(), 2).await?;
        assert!(r.examined <= 2, "{r:?}");
        total.purged += r.purged;
        total.kept_pending += r.kept_pending;
        batches += 1;
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    // 6 old entries, two per batch: the last batch finds the pass complete.
    assert_eq!((total.purged, total.kept_pending, batches), (5, 1, 3));
    for id in &old {
        assert_eq!(s.get(id).await?, None);
    }
    let (r, next) = s.purge_ended_before(cutoff, None, 100).await?;
    assert_eq!(
        (r.purged, r.kept_pending, r.examined, next),
        (0, 1, 1, None)
    );
    Ok(())
}

pub async fn durability_and_health_answer(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    s.ping().await?;
    let rec = call("acme", 1_000);
    s.create(&rec).await?;
    s.wait_durable().await?;
    // A no-op transition still answers only once what it read is durable.
    let noop = event(&*s, &rec.call_id, CallEvent::Ringing, 2_000).await?;
    assert!(!noop.written);
    assert_eq!(noop.record, rec);
    s.ping().await?;
    Ok(())
}

/// A tenant event's webhook: enqueued once per id however often (and from however many
/// places) it is asked for, delivered like a call's, never mistaken for a call's.
pub async fn tenant_events_enqueue_once(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    let e = OutboxEntry::for_event(
        "evt_lowbal_acme_7",
        "acme",
        "{\"event\":\"x\"}".into(),
        9_000,
        0,
    )?;
    assert!(e.is_event() && e.webhook_id == "msg_evt_lowbal_acme_7");
    let Some(first) = s.outbox_enqueue_event(&e).await? else {
        panic!("the first enqueue of an event must enqueue it");
    };
    assert_eq!(
        s.outbox_enqueue_event(&e).await?,
        None,
        "an event id is enqueued once"
    );
    let (a, b) = (s.clone(), s.clone());
    let (e1, e2) = (e.clone(), e.clone());
    let (x, y) = tokio::join!(
        async move { a.outbox_enqueue_event(&e1).await },
        async move { b.outbox_enqueue_event(&e2).await }
    );
    assert_eq!((x?, y?), (None, None));
    let stored = entry(&*s, first).await?;
    assert_eq!((stored.tenant.as_str(), stored.created_ms), ("acme", 9_000));
    assert!(stored.is_pending() && stored.is_event());
    assert_eq!(
        s.outbox_seq_for_call("evt_lowbal_acme_7").await?,
        Some(first)
    );
    assert_eq!(seqs(&s.outbox_due(9_000, 10).await?), [first]);
    // Another event of the same tenant is its own entry; a call id is no event id.
    let other = OutboxEntry::for_event("evt_lowbal_acme_8", "acme", "{}".into(), 9_500, 0)?;
    assert!(s.outbox_enqueue_event(&other).await?.is_some());
    assert!(OutboxEntry::for_event("c2c_0123", "acme", "{}".into(), 1, 0).is_err());
    let mut forged = other.clone();
    forged.call_id = "c2c_00000000000000000000000000000000".into();
    assert!(s.outbox_enqueue_event(&forged).await.is_err());
    // Delivered like any entry.
    let mut d = stored.clone();
    d.state = OutboxState::Delivered;
    d.attempts = 1;
    d.delivered_ms = Some(9_100);
    s.outbox_update(&d).await?;
    assert_eq!(s.outbox_stats().await?.0, 1);
    Ok(())
}
