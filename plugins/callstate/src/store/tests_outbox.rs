//! Outbox catch-up (a recovered CRM endpoint's backlog brought forward) and the
//! per-tenant backlog read, against a real sled database.

use tempfile::TempDir;

use super::tests::{finished_call, open};
use super::*;

/// Ends `n` calls of `tenant` starting at `t0` (each call ends 62 s after it starts) and
/// puts each webhook on a backoff: 3 failed attempts, next attempt at `parked_until`.
async fn parked(
    s: &SledCallStore,
    tenant: &str,
    t0: u64,
    n: usize,
    parked_until: u64,
) -> Vec<OutboxEntry> {
    let mut out = Vec::new();
    for i in 0..n {
        let rec = finished_call(s, tenant, t0 + i as u64).await;
        let seq = s.outbox_seq_for_call(&rec.call_id).unwrap().unwrap();
        let mut e = s.outbox_get(seq).unwrap().unwrap();
        e.attempts = 3;
        e.next_attempt_ms = parked_until;
        e.last_error = Some("http 503".into());
        s.outbox_update(&e).await.unwrap();
        out.push(e);
    }
    out
}

#[tokio::test]
async fn bring_forward_moves_the_tenants_waiting_entries_oldest_first_and_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let now = 1_000_000;
    let far = now + 3_600_000;
    let (acme, beta, moved) = {
        let s = open(&dir);
        let acme = parked(&s, "acme", 1_000, 6, far).await;
        let beta = parked(&s, "beta", 2_000, 2, far).await;
        // One acme entry waits on the CRM's own Retry-After: left alone.
        let mut held = acme[1].clone();
        held.retry_after = true;
        s.outbox_update(&held).await.unwrap();
        // One is refused by the caller (e.g. it is in flight).
        let refused = acme[2].seq;
        let moved = s
            .outbox_bring_forward("acme", now, 3, &mut |seq| seq != refused)
            .await
            .unwrap();
        assert_eq!(moved, vec![acme[0].seq, acme[3].seq, acme[4].seq]);
        (acme, beta, moved)
    }; // closed: the next open sees only what was made durable
    let s = open(&dir);
    assert!(s.check().unwrap().is_clean(), "{:?}", s.check().unwrap());
    let due: Vec<u64> = s
        .outbox_due(now, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(due, moved, "brought forward and due after reopen");
    for e in &acme {
        let now_e = s.outbox_get(e.seq).unwrap().unwrap();
        // Nothing but the due time changes: same id, attempts, error, state.
        assert_eq!(now_e.webhook_id, e.webhook_id);
        assert_eq!(now_e.attempts, 3);
        assert_eq!(now_e.last_error.as_deref(), Some("http 503"));
        assert_eq!(now_e.state, OutboxState::Pending);
        let want = if moved.contains(&e.seq) { now } else { far };
        assert_eq!(now_e.next_attempt_ms, want, "seq {}", e.seq);
    }
    for e in &beta {
        assert_eq!(s.outbox_get(e.seq).unwrap().unwrap().next_attempt_ms, far);
    }
    // The rest: only the one left that is neither held nor refused comes next.
    let next = s
        .outbox_bring_forward("acme", now, 10, &mut |_| true)
        .await
        .unwrap();
    assert_eq!(next, vec![acme[2].seq, acme[5].seq]);
    assert!(s
        .outbox_bring_forward("acme", now, 10, &mut |_| true)
        .await
        .unwrap()
        .is_empty());
    assert!(s.check().unwrap().is_clean());
}

#[tokio::test]
async fn bring_forward_leaves_delivered_and_due_entries_alone() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    let now = 1_000_000;
    let entries = parked(&s, "acme", 1_000, 3, now + 60_000).await;
    let mut done = entries[0].clone();
    done.state = OutboxState::Delivered;
    done.delivered_ms = Some(now - 1);
    s.outbox_update(&done).await.unwrap();
    let mut due = entries[1].clone();
    due.next_attempt_ms = now - 5;
    s.outbox_update(&due).await.unwrap();
    let flushes = s.flush_count();
    let moved = s
        .outbox_bring_forward("acme", now, 10, &mut |_| true)
        .await
        .unwrap();
    assert_eq!(moved, vec![entries[2].seq]);
    assert_eq!(
        s.outbox_get(entries[0].seq).unwrap().unwrap().state,
        OutboxState::Delivered
    );
    assert_eq!(
        s.outbox_get(entries[1].seq)
            .unwrap()
            .unwrap()
            .next_attempt_ms,
        now - 5,
        "an entry already due keeps its time"
    );
    assert!(s.flush_count() > flushes, "durable before it returns");
    // Nothing to move: no write, no flush.
    let flushes = s.flush_count();
    assert!(s
        .outbox_bring_forward("acme", now, 10, &mut |_| true)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .outbox_bring_forward("nobody", now, 10, &mut |_| true)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.flush_count(), flushes);
}

#[tokio::test]
async fn backlog_has_the_oldest_pending_entry_per_tenant() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    assert_eq!(s.outbox_backlog().unwrap(), OutboxBacklog::default());
    // finished_call ends a call 62 s after t0.
    let a = parked(&s, "acme", 10_000, 2, 5_000_000).await;
    parked(&s, "beta", 4_000, 1, 5_000_000).await;
    let b = s.outbox_backlog().unwrap();
    assert_eq!(b.pending, 3);
    assert_eq!(b.oldest_created_ms, Some(66_000));
    assert_eq!(
        b.oldest_by_tenant.into_iter().collect::<Vec<_>>(),
        vec![("acme".to_string(), 72_000), ("beta".to_string(), 66_000)]
    );
    assert_eq!(s.outbox_stats().unwrap(), (3, Some(66_000)));
    // Delivered and given-up entries leave it; a tenant without pending ones is absent.
    for (e, state) in [
        (&a[0], OutboxState::Delivered),
        (&a[1], OutboxState::Failed),
    ] {
        let mut e = e.clone();
        e.state = state;
        s.outbox_update(&e).await.unwrap();
    }
    let b = s.outbox_backlog().unwrap();
    assert_eq!(b.pending, 1);
    assert_eq!(b.oldest_by_tenant.keys().collect::<Vec<_>>(), vec!["beta"]);
}
