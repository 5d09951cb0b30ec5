//! The integrity scan against real sled stores: clean after real writes, and each
//! planted inconsistency found with the right kind.

use tempfile::TempDir;

use super::super::keys;
use super::*;
use crate::machine::{transition, CallEvent, CallKnobs};

use crate::store::contract::call;

/// One open call and one ENDED call (with its webhook) in a fresh store.
async fn store_with_calls(dir: &TempDir) -> (SledCallStore, CallRecord, CallRecord) {
    let s = SledCallStore::open(dir.path()).unwrap();
    let t0 = 1_700_000_000_000;
    let open = call("acme", t0);
    s.create(&open).await.unwrap();
    let ended = call("acme", t0 + 5);
    s.create(&ended).await.unwrap();
    for (ev, at) in [
        (CallEvent::Connect, 1_000),
        (CallEvent::Answered, 2_000),
        (CallEvent::AgentHangup, 9_000),
    ] {
        s.apply_transition(&ended.call_id, |r| {
            transition(r, &ev, &CallKnobs::default(), t0 + at)
        })
        .await
        .unwrap();
    }
    let ended = s.get(&ended.call_id).unwrap().unwrap();
    (s, open, ended)
}

fn kinds(r: &CheckReport) -> Vec<ProblemKind> {
    r.problems.iter().map(|p| p.kind).collect()
}

#[tokio::test]
async fn a_store_written_by_the_store_is_clean() {
    let dir = TempDir::new().unwrap();
    let (s, _, _) = store_with_calls(&dir).await;
    let r = s.check().unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        (r.records, r.open_index, r.tenant_index, r.day_index),
        (2, 1, 2, 0)
    );
    assert_eq!((r.outbox, r.pending_index, r.webhook_index), (1, 1, 1));
}

/// A store written before `d/` was dropped: its day-index entries still verify, and a wrong
/// or dangling one is reported.
#[tokio::test]
async fn legacy_day_index_entries_are_checked_but_not_required() {
    let dir = TempDir::new().unwrap();
    let (s, open, ended) = store_with_calls(&dir).await;
    let day = keys::utc_day(open.created_ms).unwrap();
    s.tree()
        .insert(keys::day(&open.tenant, &day, &open.call_id), &[][..])
        .unwrap();
    let r = s.check().unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.day_index, 1);
    s.tree()
        .insert(keys::day("other", &day, &ended.call_id), &[][..])
        .unwrap();
    s.tree()
        .insert(keys::day(&open.tenant, &day, "c2c_gone"), &[][..])
        .unwrap();
    let r = s.check().unwrap();
    assert_eq!(
        kinds(&r),
        vec![ProblemKind::Dangling, ProblemKind::Mismatch],
        "{r:?}"
    );
}

#[tokio::test]
async fn missing_and_dangling_index_entries_are_found() {
    let dir = TempDir::new().unwrap();
    let (s, open, ended) = store_with_calls(&dir).await;
    s.tree()
        .remove(keys::tenant(
            &ended.tenant,
            ended.created_ms,
            &ended.call_id,
        ))
        .unwrap();
    s.tree().remove(keys::open(&open.call_id)).unwrap();
    s.tree().insert(keys::open("c2c_gone"), &[][..]).unwrap();
    let r = s.check().unwrap();
    assert_eq!(r.problem_count, 3, "{r:?}");
    assert_eq!(
        kinds(&r),
        vec![
            ProblemKind::MissingIndex,
            ProblemKind::MissingIndex,
            ProblemKind::Dangling
        ]
    );
    // Record order is call-id order (random); find the tenant-index problem by key.
    assert!(r
        .problems
        .iter()
        .any(|p| p.key.starts_with("t/acme\\x00") && p.key.ends_with(&ended.call_id)));
}

#[tokio::test]
async fn an_ended_call_without_its_webhook_and_a_duplicate_webhook_are_found() {
    let dir = TempDir::new().unwrap();
    let (s, _, ended) = store_with_calls(&dir).await;
    let seq = s.outbox_seq_for_call(&ended.call_id).unwrap().unwrap();
    // A second outbox entry for the same call (index still names the first).
    let mut dup = s.outbox_get(seq).unwrap().unwrap();
    dup.seq = seq + 1000;
    s.tree()
        .insert(keys::outbox(dup.seq), serde_json::to_vec(&dup).unwrap())
        .unwrap();
    let r = s.check().unwrap();
    assert!(kinds(&r).contains(&ProblemKind::Webhook), "{r:?}");
    assert!(r
        .problems
        .iter()
        .any(|p| p.detail.contains("second outbox entry")));
    // Lose the webhook index: the ENDED call no longer has its one webhook.
    s.tree()
        .remove(keys::webhook_index(&ended.call_id))
        .unwrap();
    let r = s.check().unwrap();
    assert!(r
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::Webhook && p.detail.contains("no outbox entry")));
}

#[tokio::test]
async fn undecodable_records_are_reported_not_fatal() {
    let dir = TempDir::new().unwrap();
    let (s, open, _) = store_with_calls(&dir).await;
    s.tree()
        .insert(keys::record(&open.call_id), &b"{not json"[..])
        .unwrap();
    let r = s.check().unwrap();
    assert!(kinds(&r).contains(&ProblemKind::Undecodable), "{r:?}");
    // Its index entries now point at nothing readable.
    assert!(kinds(&r).contains(&ProblemKind::Dangling), "{r:?}");
}
