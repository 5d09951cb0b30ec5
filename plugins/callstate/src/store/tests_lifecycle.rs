//! Tests of the store's operator paths: the integrity scan's progress and replay's
//! capped scan.

use tempfile::TempDir;

use super::tests::{finished_call, open};
use super::*;

#[tokio::test]
async fn check_reports_progress_and_a_final_count() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let t0 = 1_700_000_000_000;
    for i in 0..3 {
        finished_call(&s, "acme", t0 + i).await;
    }
    let mut seen = Vec::new();
    let report = s.check_with_progress(&mut |n| seen.push(n)).unwrap();
    assert!(report.is_clean(), "{report:?}");
    // Small store: no intermediate report, one final one with every entry counted
    // (3 records, 3 tenant index, 3 outbox, 3 pending, 3 webhook index).
    assert_eq!(seen, [15]);
    assert_eq!(s.check().unwrap(), report);
}

#[tokio::test]
async fn check_reports_progress_every_few_entries_on_a_bigger_store() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    for i in 0..400 {
        s.create(&super::tests::call("acme", 1_700_000_000_000 + i))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    s.check_with_progress(&mut |n| seen.push(n)).unwrap();
    // 400 records + 400 open + 400 tenant index entries: one report on the way.
    assert_eq!(seen, [PROGRESS_EVERY, 1200]);
}

#[tokio::test]
async fn replay_scan_counts_every_match_but_keeps_at_most_max() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let t0 = 1_700_000_000_000;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(finished_call(&s, "acme", t0 + i * 1000).await.call_id);
    }
    finished_call(&s, "globex", t0).await;
    let (kept, matched) = s.outbox_by_tenant_since_capped("acme", 0, 3).unwrap();
    assert_eq!(matched, 5);
    // The oldest three, in order.
    let kept: Vec<_> = kept.into_iter().map(|e| e.call_id).collect();
    assert_eq!(kept, ids[..3]);
    let (kept, matched) = s.outbox_by_tenant_since_capped("acme", 0, 10).unwrap();
    assert_eq!((kept.len(), matched), (5, 5));
    // `since` is on the entry's creation (the call's end).
    let since = s.outbox_by_tenant_since("acme", 0).unwrap()[3].created_ms;
    let (kept, matched) = s.outbox_by_tenant_since_capped("acme", since, 1).unwrap();
    assert_eq!((kept.len(), matched), (1, 2));
}

const DAY_MS: u64 = 86_400_000;

/// Marks the call's webhook as finished in `state` (delivered, failed, disabled).
async fn finish_webhook(s: &SledCallStore, call_id: &str, state: OutboxState) {
    let seq = s.outbox_seq_for_call(call_id).unwrap().unwrap();
    let mut e = s.outbox_get(seq).unwrap().unwrap();
    e.state = state;
    e.attempts = 1;
    e.delivered_ms = (state == OutboxState::Delivered).then_some(e.created_ms + 10);
    s.outbox_update(&e).await.unwrap();
}

/// Every key and value of the calls tree that mentions `call_id`.
fn traces_of(s: &SledCallStore, call_id: &str) -> Vec<String> {
    let needle = call_id.as_bytes();
    let hex = call_id.trim_start_matches("c2c_").as_bytes(); // webhook ids: msg_<hex>
    s.tree()
        .iter()
        .map(|kv| kv.unwrap())
        .filter(|(k, v)| {
            [k.as_ref(), v.as_ref()]
                .iter()
                .any(|b| b.windows(hex.len()).any(|w| w == hex || w == needle))
        })
        .map(|(k, _)| keys::printable(&k))
        .collect()
}

#[tokio::test]
async fn purge_removes_old_finished_calls_and_keeps_the_day_tallies() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let t_old = 1_700_000_000_000;
    let day_old = keys::utc_day(t_old).unwrap();
    let delivered = finished_call(&s, "acme", t_old).await;
    finish_webhook(&s, &delivered.call_id, OutboxState::Delivered).await;
    let failed = finished_call(&s, "acme", t_old + 1).await;
    finish_webhook(&s, &failed.call_id, OutboxState::Failed).await;
    let pending = finished_call(&s, "acme", t_old + 2).await;
    let open_call = super::tests::call("acme", t_old + 3);
    s.create(&open_call).await.unwrap();
    let recent = finished_call(&s, "acme", t_old + 40 * DAY_MS).await;
    finish_webhook(&s, &recent.call_id, OutboxState::Delivered).await;
    // A store written before the day index was dropped still has its entry.
    s.tree()
        .insert(keys::day("acme", &day_old, &delivered.call_id), &b""[..])
        .unwrap();
    let tallies = s.day_tallies("acme", "20000101", "20991231", None).unwrap();
    assert_eq!(tallies[&day_old].total, 4);
    assert!(s.check().unwrap().is_clean());

    let cutoff = t_old + 30 * DAY_MS;
    let (r, next) = s.purge_ended_before(cutoff, None, 100).await.unwrap();
    assert_eq!(
        r,
        PurgeReport {
            purged: 2,
            kept_open: 1,
            kept_pending: 1,
            examined: 4,
        }
    );
    assert_eq!(next, None);
    for gone in [&delivered, &failed] {
        assert_eq!(s.get(&gone.call_id).unwrap(), None);
        assert_eq!(s.outbox_seq_for_call(&gone.call_id).unwrap(), None);
        // Not a key or value anywhere names it any more: record, indexes, webhook.
        assert_eq!(traces_of(&s, &gone.call_id), Vec::<String>::new());
    }
    for kept in [&pending, &open_call, &recent] {
        assert!(s.get(&kept.call_id).unwrap().is_some());
    }
    assert!(s.outbox_seq_for_call(&pending.call_id).unwrap().is_some());
    // Analytics still show the old day whole.
    assert_eq!(
        s.day_tallies("acme", "20000101", "20991231", None).unwrap(),
        tallies
    );
    let report = s.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.records, report.purged_tallies), (3, 1));

    // Once its webhook is delivered and the open call ended, they go too.
    finish_webhook(&s, &pending.call_id, OutboxState::Delivered).await;
    super::tests::event(
        &s,
        &open_call.call_id,
        crate::machine::CallEvent::AgentHangup,
        t_old + 5,
    )
    .await;
    // Its end enqueued a webhook: pending, so the call stays until it is delivered.
    let (r, _) = s.purge_ended_before(cutoff, None, 100).await.unwrap();
    assert_eq!((r.purged, r.kept_open, r.kept_pending), (1, 0, 1));
    finish_webhook(&s, &open_call.call_id, OutboxState::Disabled).await;
    let (r, _) = s.purge_ended_before(cutoff, None, 100).await.unwrap();
    assert_eq!((r.purged, r.kept_open, r.kept_pending), (1, 0, 0));
    assert_eq!(
        s.list_by_tenant("acme", 0, u64::MAX, 10, None)
            .unwrap()
            .records,
        std::slice::from_ref(&recent)
    );
    assert!(s.check().unwrap().is_clean());
    // The open call's ending was counted before it was purged: the day says so.
    let after = s.day_tallies("acme", "20000101", "20991231", None).unwrap();
    assert_eq!(after[&day_old].total, 4);
    assert_eq!(after[&day_old].in_progress, 0);

    // A rebuild of the tallies (format upgrade) counts the purged calls in.
    s.tree().remove(keys::AGGREGATES_MARKER).unwrap();
    s.tree().flush().unwrap();
    drop(s);
    let s = open(&dir);
    assert_eq!(
        s.day_tallies("acme", "20000101", "20991231", None).unwrap(),
        after
    );
    assert!(s.check().unwrap().is_clean());
}

#[tokio::test]
async fn purge_works_in_bounded_batches_and_resumes_at_its_cursor() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let t_old = 1_700_000_000_000;
    let mut old = Vec::new();
    for (i, tenant) in ["acme", "acme", "acme-2", "globex", "globex"]
        .iter()
        .enumerate()
    {
        let c = finished_call(&s, tenant, t_old + i as u64).await;
        finish_webhook(&s, &c.call_id, OutboxState::Delivered).await;
        old.push(c.call_id);
    }
    // Kept ones in between: a pending webhook and a recent call per tenant.
    finished_call(&s, "acme", t_old + 10).await;
    for tenant in ["acme", "acme-2", "globex"] {
        finished_call(&s, tenant, t_old + 40 * DAY_MS).await;
    }
    let cutoff = t_old + DAY_MS;
    let (mut total, mut batches, mut cursor) = (PurgeReport::default(), 0, None);
    loop {
        let (r, next) = s
            .purge_ended_before(cutoff, cursor.as_ref(), 2)
            .await
            .unwrap();
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
        assert_eq!(s.get(id).unwrap(), None);
    }
    assert_eq!(s.check().unwrap().records, 4);
    assert!(s.check().unwrap().is_clean());
    // A new pass has nothing left to purge and passes over the kept one once.
    let (r, next) = s.purge_ended_before(cutoff, None, 100).await.unwrap();
    assert_eq!(
        (r.purged, r.kept_pending, r.examined, next),
        (0, 1, 1, None)
    );
}
