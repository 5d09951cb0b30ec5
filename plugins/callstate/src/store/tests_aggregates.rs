//! Per-day tallies against a real sled database: they follow every outcome, filter by
//! trunk, survive reopen, and are rebuilt from the records when missing.

use tempfile::TempDir;

use super::tests::{call, event, finished_call, open};
use super::*;
use crate::machine::CallEvent;
use crate::record::CallStatus;

const DAY1: u64 = 1_709_251_200_000; // 2024-03-01T00:00:00Z
const DAY2: u64 = DAY1 + 86_400_000;

/// A call on `trunk` that ends NOT_ANSWERED with SIP `code`.
async fn unanswered(s: &SledCallStore, trunk: &str, t0: u64, code: u16) -> CallRecord {
    let mut rec = call("acme", t0);
    rec.trunk_label = trunk.into();
    s.create(&rec).await.unwrap();
    event(s, &rec.call_id, CallEvent::Connect, t0 + 1_000).await;
    let left = CallEvent::CustomerLeft {
        sip_code: Some(code),
        disconnect_reason: Some("USER_REJECTED".into()),
    };
    event(s, &rec.call_id, left, t0 + 5_000).await.record
}

#[tokio::test]
async fn tallies_follow_outcomes_by_day_and_trunk() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    finished_call(&s, "acme", DAY1 + 10).await; // airtel, ANSWERED
    let busy = unanswered(&s, "airtel", DAY1 + 20, 486).await;
    assert_eq!(busy.call_status, Some(CallStatus::NotAnswered));
    unanswered(&s, "jio", DAY2 + 30, 480).await;
    s.create(&call("acme", DAY2 + 40)).await.unwrap(); // airtel, still open
    s.create(&call("globex", DAY2 + 50)).await.unwrap(); // another tenant

    let all = s.day_tallies("acme", "20240301", "20240302", None).unwrap();
    assert_eq!(all.len(), 2);
    let d1 = &all["20240301"];
    assert_eq!((d1.total, d1.answered, d1.not_answered), (2, 1, 1));
    assert_eq!(d1.failures_by_sip_code, [(486, 1)].into_iter().collect());
    assert_eq!(
        d1.failures_by_cause,
        [("customer".to_string(), 1)].into_iter().collect()
    );
    let d2 = &all["20240302"];
    assert_eq!((d2.total, d2.not_answered, d2.in_progress), (2, 1, 1));

    let jio = s
        .day_tallies("acme", "20240301", "20240302", Some("jio"))
        .unwrap();
    assert_eq!(jio.len(), 1);
    assert_eq!(
        jio["20240302"].failures_by_sip_code,
        [(480, 1)].into_iter().collect()
    );
    // A range that ends before day 2 does not see it; a trunk prefix is not a trunk.
    assert_eq!(
        s.day_tallies("acme", "20240301", "20240301", None)
            .unwrap()
            .len(),
        1
    );
    assert!(s
        .day_tallies("acme", "20240301", "20240302", Some("ji"))
        .unwrap()
        .is_empty());
    assert_eq!(
        s.day_tallies("globex", "20240302", "20240302", None)
            .unwrap()["20240302"]
            .in_progress,
        1
    );
    assert!(s.verify_aggregates().unwrap().is_empty());
}

#[tokio::test]
async fn tallies_are_rebuilt_when_missing_and_checked() {
    let dir = TempDir::new().unwrap();
    let before = {
        let s = open(&dir);
        finished_call(&s, "acme", DAY1).await;
        unanswered(&s, "airtel", DAY1 + 5, 503).await;
        let before = s.day_tallies("acme", "20240301", "20240301", None).unwrap();
        // As a store written before tallies existed: no marker, no tallies.
        let tree = s.tree();
        for k in tree.scan_prefix(keys::AGGREGATE).keys() {
            tree.remove(k.unwrap()).unwrap();
        }
        tree.remove(keys::AGGREGATES_MARKER).unwrap();
        tree.flush().unwrap();
        assert!(s
            .day_tallies("acme", "20240301", "20240301", None)
            .unwrap()
            .is_empty());
        assert_eq!(s.verify_aggregates().unwrap().len(), 1);
        before
    };
    let s = open(&dir);
    assert_eq!(
        s.day_tallies("acme", "20240301", "20240301", None).unwrap(),
        before
    );
    assert!(s.verify_aggregates().unwrap().is_empty());

    // A tally that disagrees with the records is reported by its key.
    let key = keys::aggregate("acme", "20240301", "airtel");
    s.tree()
        .insert(
            &key,
            &b"{\"total\":9,\"answered\":0,\"not_answered\":0,\"failed\":0,\"in_progress\":9}"[..],
        )
        .unwrap();
    let report = s.check().unwrap();
    assert_eq!(report.tallies, 1);
    assert_eq!(report.problem_count, 1, "{report:?}");
    assert_eq!(report.problems[0].kind, ProblemKind::Tally);
    assert_eq!(
        s.verify_aggregates().unwrap(),
        vec!["a/acme\\x0020240301\\x00airtel".to_string()]
    );
}

/// An agent cancelling (a hangup before `/connect`, or while ringing) is a terminal
/// outcome but not a carrier's or LiveKit's failure: it has its own bucket.
#[tokio::test]
async fn agent_cancellations_are_counted_apart_from_carrier_failures() {
    let dir = TempDir::new().unwrap();
    let s = open(&dir);
    // Hung up before /connect: FAILED agent_cancelled.
    let early = call("acme", DAY1 + 1);
    s.create(&early).await.unwrap();
    let t = event(&s, &early.call_id, CallEvent::HangupRequested, DAY1 + 2).await;
    assert_eq!(t.record.call_status, Some(CallStatus::Failed));
    // Hung up while ringing: NOT_ANSWERED agent_cancelled.
    let ringing = call("acme", DAY1 + 3);
    s.create(&ringing).await.unwrap();
    event(&s, &ringing.call_id, CallEvent::Connect, DAY1 + 4).await;
    event(&s, &ringing.call_id, CallEvent::AgentHangup, DAY1 + 5).await;
    // A trunk failure and a LiveKit that could not place the call.
    unanswered(&s, "airtel", DAY1 + 6, 503).await;
    let lk = call("acme", DAY1 + 7);
    s.create(&lk).await.unwrap();
    event(&s, &lk.call_id, CallEvent::Connect, DAY1 + 8).await;
    let failed = crate::machine::DialResult::Failed {
        reason: "livekit_unavailable".into(),
    };
    event(&s, &lk.call_id, CallEvent::Dial(failed), DAY1 + 9).await;

    let day = &s.day_tallies("acme", "20240301", "20240301", None).unwrap()["20240301"];
    let causes: Vec<(&str, u64)> = day
        .failures_by_cause
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        causes,
        vec![("agent_cancelled", 2), ("carrier", 1), ("livekit", 1)],
        "{day:?}"
    );
    assert_eq!((day.failed, day.not_answered), (3, 1));
    assert!(s.verify_aggregates().unwrap().is_empty());
}
