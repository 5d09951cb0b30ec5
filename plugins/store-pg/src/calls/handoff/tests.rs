//! Unit tests of the hand-off: claims, the lists, and when a poll needs the database.
#![allow(clippy::unwrap_used)]

use super::*;

fn entry(seq: u64, tenant: &str) -> OutboxEntry {
    OutboxEntry {
        seq,
        webhook_id: format!("wh-{seq}"),
        call_id: format!("call-{seq}"),
        tenant: tenant.to_owned(),
        payload_json: "{}".to_owned(),
        created_ms: 1_000,
        attempts: 0,
        next_attempt_ms: 1_000,
        state: c2c_callstate::OutboxState::Pending,
        last_error: None,
        delivered_ms: None,
        replayed_ms: None,
        retry_after: false,
    }
}

/// Entry `seq` of `tenant` enqueued claimed (this node's share `share`) and handed
/// off.
fn hand(h: &HandOff, seq: u64, tenant: &str, share: usize) {
    h.reserve(tenant, 0, 60_000, share)
        .unwrap()
        .hand_off(entry(seq, tenant));
}

const TIMES: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(5));
const SHARE: usize = 8;

fn all(_: u64, _: &str) -> bool {
    true
}

/// A poll at 1 s, share [`SHARE`], everything admitted: the seqs handed out and the
/// held flag, or `None` (the database).
fn poll(h: &HandOff, limit: usize) -> Option<(Vec<u64>, bool)> {
    h.serve(1_000, limit, TIMES, SHARE, &mut all)
        .map(|(got, held)| (got.iter().map(|e| e.seq).collect(), held))
}

/// The deliverer's in-flight set: what it admits it delivers until [`Self::done`].
#[derive(Default)]
struct Deliverer(std::collections::BTreeSet<u64>);

impl Deliverer {
    /// A poll at `now_ms` with share `share`, as [`poll`].
    fn poll_at(&mut self, h: &HandOff, now_ms: u64, share: usize) -> Option<(Vec<u64>, bool)> {
        let inflight = &mut self.0;
        let mut admit = |seq: u64, _: &str| inflight.insert(seq);
        h.serve(now_ms, 10, TIMES, share, &mut admit)
            .map(|(got, held)| (got.iter().map(|e| e.seq).collect(), held))
    }

    fn poll(&mut self, h: &HandOff) -> Option<(Vec<u64>, bool)> {
        self.poll_at(h, 1_000, SHARE)
    }

    /// The delivery of `seq` ended (its result stored or not).
    fn done(&mut self, seq: u64) {
        self.0.remove(&seq);
    }
}

/// A node after a claim transaction at 1 s, and its deliverer.
fn started() -> (HandOff, Deliverer) {
    let h = HandOff::default();
    h.db_claim_started(1_000);
    (h, Deliverer::default())
}

/// [`started`], acme's entries 1-3 handed off to the node.
fn acme_1_to_3_ready() -> (HandOff, Deliverer) {
    let (h, d) = started();
    for seq in 1..=3 {
        hand(&h, seq, "acme", 8);
    }
    (h, d)
}

#[test]
fn a_tenant_is_claimed_at_enqueue_only_up_to_this_nodes_share() {
    let h = HandOff::default();
    let a = h.reserve("acme", 0, 60_000, 2).unwrap();
    let b = h.reserve("acme", 0, 60_000, 2).unwrap();
    assert!(h.reserve("acme", 0, 60_000, 2).is_none());
    // Another tenant has its own share.
    assert!(h.reserve("globex", 0, 60_000, 2).is_some());
    // A reservation given back (the write lost, or its caller went) frees its slot.
    drop(a);
    assert!(h.reserve("acme", 0, 60_000, 2).is_some());
    b.hand_off(entry(7, "acme"));
    assert_eq!(
        h.held("acme"),
        1,
        "the handed-off claim is held until settled"
    );
    h.settled("acme", 7);
    assert_eq!(h.held("acme"), 0);
}

#[test]
fn a_claim_that_ran_out_frees_its_slot() {
    let h = HandOff::default();
    h.reserve("acme", 0, 10_000, 1)
        .unwrap()
        .hand_off(entry(1, "acme"));
    assert!(h.reserve("acme", 9_999, 20_000, 1).is_none());
    assert!(h.reserve("acme", 10_000, 20_000, 1).is_some());
}

#[test]
fn the_first_poll_reads_the_database_and_later_ones_are_served_here() {
    let h = HandOff::default();
    let mut d = Deliverer::default();
    hand(&h, 5, "acme", 4);
    assert!(d.poll(&h).is_none(), "no claim transaction ran yet");
    // The claim transaction hands 5 out (a live claim of this node's).
    h.db_claim_started(1_000);
    h.claimed(&[entry(5, "acme")], 60_000);
    d.0.insert(5);
    hand(&h, 9, "acme", 4);
    hand(&h, 8, "acme", 4);
    assert_eq!(d.poll(&h), Some((vec![8, 9], false)));
    assert_eq!(
        d.poll(&h),
        Some((vec![], false)),
        "nothing new: answered here, no claim transaction"
    );
    assert_eq!(h.counts().claim_transactions, 1);
}

#[test]
fn a_poll_reads_the_database_again_a_recheck_after_the_last_claim_transaction() {
    let (h, mut d) = started();
    assert_eq!(d.poll_at(&h, 60_999, SHARE), Some((vec![], false)));
    // By the poll's clock (a test's, or one that jumped) as by the wall clock.
    assert!(d.poll_at(&h, 61_000, SHARE).is_none());
    assert!(d.poll_at(&h, 999, SHARE).is_none(), "a clock gone back");
    let h = HandOff::default();
    h.db_claim_started(1_000);
    let quick = (Duration::from_millis(1), Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(5));
    assert!(h.serve(1_000, 10, quick, SHARE, &mut all).is_none());
}

#[test]
fn what_this_node_put_in_the_database_only_makes_the_next_poll_read_it() {
    let (h, mut d) = started();
    h.read_database_next();
    assert!(
        d.poll(&h).is_none(),
        "a tenant event, say, enqueued unclaimed"
    );
    h.db_claim_started(1_000);
    assert_eq!(d.poll(&h), Some((vec![], false)));
}

#[test]
fn a_retry_makes_the_first_poll_at_its_time_read_the_database() {
    let (h, mut d) = started();
    h.retry_at(1_500);
    h.retry_at(3_000);
    assert_eq!(d.poll_at(&h, 1_499, SHARE), Some((vec![], false)));
    assert!(d.poll_at(&h, 1_500, SHARE).is_none());
    h.db_claim_started(1_500);
    assert_eq!(d.poll_at(&h, 2_999, SHARE), Some((vec![], false)));
    assert!(
        d.poll_at(&h, 3_000, SHARE).is_none(),
        "the later retry is kept"
    );
}

#[test]
fn refused_surplus_and_not_yet_due_entries_keep_waiting() {
    let (h, mut d) = acme_1_to_3_ready();
    hand(&h, 4, "globex", 8);
    let mut later = entry(5, "acme");
    later.next_attempt_ms = 2_000;
    h.reserve("acme", 0, 60_000, 8).unwrap().hand_off(later);
    let mut no_globex = |_: u64, t: &str| t != "globex";
    let got = h.serve(1_000, 2, TIMES, SHARE, &mut no_globex).unwrap().0;
    assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    d.0.extend([1, 2]);
    assert_eq!(d.poll(&h), Some((vec![3, 4], false)));
    assert_eq!(d.poll_at(&h, 2_000, SHARE), Some((vec![5], false)));
}

#[test]
fn an_entry_handed_out_is_offered_again_until_its_result_is_stored() {
    let (h, mut d) = started();
    hand(&h, 1, "acme", 8);
    hand(&h, 2, "acme", 8);
    assert_eq!(d.poll(&h), Some((vec![1, 2], false)));
    assert_eq!(d.poll(&h), Some((vec![], false)), "both in flight");
    // 1's result is stored; 2's delivery ended without its result stored.
    h.settled("acme", 1);
    d.done(1);
    d.done(2);
    assert_eq!(d.poll(&h), Some((vec![2], false)), "2 is delivered again");
    assert_eq!(h.held("acme"), 1);
}

#[test]
fn a_waiting_entry_is_claimed_when_a_slot_of_its_tenant_frees() {
    let (h, mut d) = started();
    hand(&h, 1, "acme", 1);
    assert!(h.reserve("acme", 0, 60_000, 1).is_none());
    h.enqueued_unclaimed(entry(3, "acme"));
    h.enqueued_unclaimed(entry(2, "acme"));
    h.enqueued_unclaimed(entry(4, "globex"));
    // Handed out, and the poll says entries wait for a slot.
    assert_eq!(d.poll(&h), Some((vec![1], true)));
    // globex's slot is free: a claim transaction claims its entry.
    assert!(
        d.poll_at(&h, 1_000, 1).is_none(),
        "globex's slot is free: the database is read"
    );
    // Not for an entry this node does not hold, nor for another tenant.
    assert!(h.next_waiting("acme", 99).is_none());
    assert!(h.next_waiting("globex", 1).is_none());
    // The delivery of 1 ends: acme's first waiting entry is claimed with its result.
    let next = h.next_waiting("acme", 1).unwrap();
    assert_eq!(next.seq, 2);
    h.settled("acme", 1);
    d.done(1);
    h.took_next(next, 60_000);
    assert_eq!(h.held("acme"), 1);
    assert_eq!(d.poll(&h), Some((vec![2], true)));
    // A claim that failed (another node took it) leaves the entry to the database.
    let next = h.next_waiting("acme", 2).unwrap();
    assert_eq!(next.seq, 3);
    h.settled("acme", 2);
    assert_eq!(h.held("acme"), 0);
    assert!(h.next_waiting("acme", 2).is_none());
}

#[test]
fn waiting_entries_whose_slots_are_all_busy_need_no_database_read() {
    let (h, mut d) = started();
    hand(&h, 1, "acme", 1);
    h.enqueued_unclaimed(entry(2, "acme"));
    assert_eq!(d.poll_at(&h, 1_000, 1), Some((vec![1], true)));
    assert_eq!(
        d.poll_at(&h, 1_000, 1),
        Some((vec![], true)),
        "acme's one slot is in use: its delivery's end claims the next"
    );
    // A claim transaction held back by the busy slot claims nothing: the entry
    // still waits here for the slot, with no further database read.
    h.db_claim_started(1_000);
    assert_eq!(d.poll_at(&h, 1_000, 1), Some((vec![], true)));
    let next = h.next_waiting("acme", 1).unwrap();
    assert_eq!(next.seq, 2, "the delivery's end claims it");
}

#[test]
fn a_claim_transaction_leaves_the_waiting_entries_it_did_not_claim_waiting() {
    let h = HandOff::default();
    h.db_claim_started(1_000);
    hand(&h, 1, "acme", 1);
    for seq in 2..=4 {
        h.enqueued_unclaimed(entry(seq, "acme"));
    }
    h.db_claim_started(1_000);
    // It claimed 2 (a slot of another node's freed, say), not 3 and 4.
    h.claimed(&[entry(2, "acme")], 70_000);
    assert_eq!(h.next_waiting("acme", 1).map(|e| e.seq), Some(3));
    assert_eq!(h.next_waiting("acme", 2).map(|e| e.seq), Some(4));
    assert!(h.next_waiting("acme", 2).is_none());
}

#[test]
fn an_entry_near_its_claims_end_is_left_to_the_database() {
    let h = HandOff::default();
    h.db_claim_started(1_000);
    h.reserve("acme", 0, 10_000, 4)
        .unwrap()
        .hand_off(entry(1, "acme"));
    assert!(h.serve(5_000, 10, TIMES, SHARE, &mut all).is_none());
    assert!(
        h.serve(5_000, 10, TIMES, SHARE, &mut all).is_none(),
        "until a claim transaction ran"
    );
    h.db_claim_started(5_000);
    assert_eq!(
        h.serve(5_000, 10, TIMES, SHARE, &mut all)
            .map(|(got, _)| got.len()),
        Some(0)
    );
}

#[test]
fn the_database_s_hand_outs_are_offered_again_only_through_admit_and_settled_never() {
    let (h, mut d) = acme_1_to_3_ready();
    h.enqueued_unclaimed(entry(4, "acme"));
    // Committed into the lists while a claim transaction read them: it handed out 1
    // and 4, which the deliverer is delivering.
    h.claimed(&[entry(1, "acme"), entry(4, "acme")], 70_000);
    d.0.extend([1, 4]);
    h.settled("acme", 2);
    assert_eq!(d.poll(&h), Some((vec![3], false)));
    d.done(4);
    assert_eq!(
        d.poll(&h),
        Some((vec![4], false)),
        "4's result was not stored"
    );
    h.settled("acme", 1);
    h.settled("acme", 4);
    d.0.clear();
    assert_eq!(poll(&h, 10), Some((vec![3], false)));
}
