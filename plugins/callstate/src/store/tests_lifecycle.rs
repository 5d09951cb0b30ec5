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
