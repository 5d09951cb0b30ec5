//! The hand-off of a call's webhook from the write that enqueues it to this node's
//! deliverer, without a claim transaction in between.
//!
//! Why: the usual way to delivery is a claim (`claims.rs`): a transaction of five
//! statements in three round trips (the fleet's live claims, the tenants with pending
//! entries, their due entries, the claim's `UPDATE`, `COMMIT`) that finds the entry
//! the node itself enqueued a millisecond earlier. It was 5.5 of a lifecycle's 11.8
//! statements and its `UPDATE` rewrote the entry's every index entry
//! (BENCHMARKS.md, issue 22). A node that ends a call is the natural one to deliver
//! its webhook: the write that enqueues the entry claims it for this node in the same
//! statement (`claimed_by`, `claim_until_ms`), and hands it to this module once it
//! committed; the deliverer's next poll takes it from here.
//!
//! What stays as it was:
//! - **Fleet-wide tenant concurrency.** A write claims a tenant's entry only while this
//!   node holds fewer of the tenant's claims than its share of the limit (the same
//!   `ceil(limit / live nodes)` a claim transaction gives it): [`HandOff::reserve`]
//!   counts the claims this node took, by either way, until their result is stored or
//!   they run out. An entry enqueued beyond the share is enqueued unclaimed, and waits
//!   here for one of the node's slots: the transaction that stores a delivery's result
//!   (which frees the slot) claims the tenant's first waiting entry too
//!   ([`HandOff::next_waiting`]), conditionally, since any node's claim transaction
//!   may take it first. Without that, a node at its share (a busy tenant, the common
//!   case under load) went back to a claim transaction for every delivery.
//! - **The database stays the truth.** An entry handed off is a live claim of this
//!   node in the database, so a claim transaction of this node finds it among its own
//!   claims anyway; that is how entries left here are delivered when this module
//!   forgets them (a full queue, a caller gone before the hand-off). If the node dies,
//!   its claims run out and another node takes the entries, as after any claim; a
//!   node that stops cleanly gives back the claims of those still here
//!   ([`HandOff::take_ready`]), with its lease.
//! - **Nothing else is starved.** Retries whose backoff ran out, entries of nodes that
//!   died, tenant events and entries enqueued unclaimed are only found by a claim
//!   transaction: the poll reads the database whenever nothing waits here, and at
//!   least every `delivery_recheck` (100 ms unless configured) while entries do.
//! - **One delivery at a time.** The deliverer's in-flight set refuses an entry it is
//!   delivering, whichever way it came; an entry a claim transaction returned, or
//!   whose result was stored, leaves the queue here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use c2c_callstate::OutboxEntry;

/// Entries waiting here at most, claimed and unclaimed each; beyond, an entry is left
/// to the claim transaction (the database has it).
const MAX_READY: usize = 1024;

/// This node's webhook claims and the entries waiting to be handed to its deliverer.
#[derive(Default)]
pub(super) struct HandOff {
    state: Mutex<State>,
    /// Entries handed out from here, and claim transactions started (tests and
    /// benchmarks read them).
    handed_out: AtomicU64,
    claim_transactions: AtomicU64,
}

/// What this node's deliverer polls got since the node started: entries handed off by
/// its own writes, and claim transactions (`handoff.rs`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub handed_off: u64,
    pub claim_transactions: u64,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// The claims this node holds, per tenant: taken by an enqueueing write or by a
    /// claim transaction, until their result is stored or they run out.
    holds: HashMap<String, Vec<Hold>>,
    /// Entries enqueued claimed and committed, not yet handed out; with their claim's
    /// end.
    ready: Vec<(OutboxEntry, u64)>,
    /// Entries this node's writes enqueued unclaimed (the node at its share of the
    /// tenant), committed, for a slot of the node's to free.
    waiting: Vec<OutboxEntry>,
    /// An entry was enqueued unclaimed and could not wait here (the list full) since
    /// the last claim transaction: only the database can hand it out.
    unclaimed: bool,
    /// When the last claim transaction started.
    last_db_claim: Option<Instant>,
}

impl State {
    /// Holds the claim on entry `seq` of `tenant` until `until_ms`: a hold already on
    /// the entry (its enqueueing write's) is extended, else one is added.
    fn hold(&mut self, tenant: &str, seq: u64, until_ms: u64) {
        let holds = self.holds.entry(tenant.to_owned()).or_default();
        if let Some(h) = holds.iter_mut().find(|h| h.seq == Some(seq)) {
            h.until_ms = until_ms;
            return;
        }
        self.next_id += 1;
        holds.push(Hold {
            id: self.next_id,
            seq: Some(seq),
            until_ms,
        });
    }
}

struct Hold {
    id: u64,
    /// `None` while the enqueueing write is in flight.
    seq: Option<u64>,
    until_ms: u64,
}

/// A claim taken for a webhook about to be enqueued; given back when dropped unless
/// [`Reservation::hand_off`] turned it into a held claim.
pub(super) struct Reservation<'a> {
    handoff: &'a HandOff,
    tenant: String,
    id: u64,
    until_ms: u64,
    settled: bool,
}

impl Reservation<'_> {
    /// The claim's end, to be written with the entry.
    pub(super) fn until_ms(&self) -> u64 {
        self.until_ms
    }

    /// The entry was enqueued (claimed by this node) and committed: it waits here for
    /// the deliverer.
    pub(super) fn hand_off(mut self, entry: OutboxEntry) {
        self.settled = true;
        let mut s = self.handoff.lock();
        if let Some(h) = s
            .holds
            .get_mut(&self.tenant)
            .and_then(|hs| hs.iter_mut().find(|h| h.id == self.id))
        {
            h.seq = Some(entry.seq);
        }
        if s.ready.len() < MAX_READY {
            s.ready.push((entry, self.until_ms));
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut s = self.handoff.lock();
        if let Some(hs) = s.holds.get_mut(&self.tenant) {
            hs.retain(|h| h.id != self.id);
        }
    }
}

impl HandOff {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections never panic half-way; a poisoned lock still holds
        // consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A claim for a webhook of `tenant` about to be enqueued, until `until_ms`, if this
    /// node holds fewer than `share` of the tenant's claims; `None` otherwise (the entry
    /// is enqueued unclaimed: [`Self::enqueued_unclaimed`]).
    pub(super) fn reserve(
        &self,
        tenant: &str,
        now_ms: u64,
        until_ms: u64,
        share: usize,
    ) -> Option<Reservation<'_>> {
        let mut s = self.lock();
        let s = &mut *s;
        let holds = s.holds.entry(tenant.to_owned()).or_default();
        holds.retain(|h| h.until_ms > now_ms);
        if holds.len() >= share {
            return None;
        }
        s.next_id += 1;
        let id = s.next_id;
        holds.push(Hold {
            id,
            seq: None,
            until_ms,
        });
        Some(Reservation {
            handoff: self,
            tenant: tenant.to_owned(),
            id,
            until_ms,
            settled: false,
        })
    }

    /// An entry a write of this node enqueued unclaimed (the node at its share of the
    /// tenant), committed: it waits for one of the node's slots to free.
    pub(super) fn enqueued_unclaimed(&self, entry: OutboxEntry) {
        let mut s = self.lock();
        if s.waiting.len() < MAX_READY {
            s.waiting.push(entry);
        } else {
            s.unclaimed = true;
        }
    }

    /// The result of this node's delivery of `seq` is about to be stored, which frees
    /// its slot: the tenant's first waiting entry, to be claimed in the same
    /// transaction, if `seq` is a claim of this node's. The entry leaves the list
    /// either way (if the claim fails, the database has it): see [`Self::took_next`].
    pub(super) fn next_waiting(&self, tenant: &str, seq: u64) -> Option<OutboxEntry> {
        let mut s = self.lock();
        let held = s
            .holds
            .get(tenant)
            .is_some_and(|hs| hs.iter().any(|h| h.seq == Some(seq)));
        if !held {
            return None;
        }
        let i = s
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, e)| e.tenant == tenant)
            .min_by_key(|(_, e)| e.seq)
            .map(|(i, _)| i)?;
        Some(s.waiting.swap_remove(i))
    }

    /// The entry from [`Self::next_waiting`] was claimed for this node until
    /// `until_ms`: held, and handed to the deliverer's next poll.
    pub(super) fn took_next(&self, entry: OutboxEntry, until_ms: u64) {
        let mut s = self.lock();
        s.hold(&entry.tenant, entry.seq, until_ms);
        if s.ready.len() < MAX_READY {
            s.ready.push((entry, until_ms));
        }
    }

    /// A poll answered from here: up to `limit` waiting entries due at `now_ms` that
    /// `admit` accepts, lowest seq first (the others keep waiting), and whether
    /// entries wait for a slot of this node's (the deliverer then polls again when one
    /// of its deliveries ends). `None` when the poll must read the database: nothing
    /// is ready and an entry waits whose tenant has a free slot (of `share`), nothing
    /// waits at all, the last claim transaction is `recheck` old, or an entry was
    /// enqueued unclaimed and could not wait here. Entries whose claim has less than
    /// `margin` left are left to the database.
    pub(super) fn serve(
        &self,
        now_ms: u64,
        limit: usize,
        (recheck, margin): (Duration, Duration),
        share: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Option<(Vec<OutboxEntry>, bool)> {
        let mut s = self.lock();
        let keep_until =
            now_ms.saturating_add(u64::try_from(margin.as_millis()).unwrap_or(u64::MAX));
        s.ready.retain(|(_, until)| *until > keep_until);
        let fresh = s.last_db_claim.is_some_and(|t| t.elapsed() < recheck);
        if !fresh || s.unclaimed {
            return None;
        }
        if s.ready.is_empty() {
            // Entries wait for slots in use: the end of a delivery claims them.
            let all_busy = s.waiting.iter().all(|e| {
                s.holds
                    .get(&e.tenant)
                    .is_some_and(|hs| hs.iter().filter(|h| h.until_ms > now_ms).count() >= share)
            });
            return (!s.waiting.is_empty() && all_busy).then(|| (Vec::new(), true));
        }
        s.ready.sort_unstable_by_key(|(e, _)| e.seq);
        let mut out = Vec::new();
        let mut left = Vec::with_capacity(s.ready.len());
        for (e, until) in std::mem::take(&mut s.ready) {
            if out.len() < limit && e.is_due(now_ms) && admit(e.seq, &e.tenant) {
                out.push(e);
            } else {
                left.push((e, until));
            }
        }
        s.ready = left;
        self.handed_out
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        Some((out, !s.waiting.is_empty()))
    }

    /// A claim transaction starts: it reads this node's live claims and the unclaimed
    /// entries, so the entries ready here (live claims of this node's) are left to it,
    /// and the flag of unclaimed entries that could not wait here is cleared. The
    /// waiting entries stay: the transaction claims only as many as the tenant's free
    /// slots allow, and what it claims leaves the list ([`Self::claimed`]); the rest
    /// are still claimed here as this node's deliveries end. Emptied, the list cost a
    /// claim transaction per delivery: a transaction held back by the tenant's busy
    /// slots (the usual case under load) claimed nothing, the end of a delivery then
    /// found no waiting entry to claim, its slot stayed free until the next poll, and
    /// that poll's claim transaction emptied the list again (BENCHMARKS.md, issue 22).
    /// Keeping them is safe: a waiting entry is only claimed conditionally
    /// ([`super::outbox::CLAIM_WAITING`]: not if another node's claim took it).
    pub(super) fn db_claim_started(&self) {
        let mut s = self.lock();
        s.ready.clear();
        s.unclaimed = false;
        s.last_db_claim = Some(Instant::now());
        self.claim_transactions.fetch_add(1, Ordering::Relaxed);
    }

    /// The node stops: the entries not handed out yet, which are no longer handed out
    /// (their claims are given back; the deliverer's in-flight ones are not here).
    pub(super) fn take_ready(&self) -> Vec<u64> {
        let mut s = self.lock();
        let s = &mut *s;
        let seqs: Vec<u64> = s.ready.drain(..).map(|(e, _)| e.seq).collect();
        for hs in s.holds.values_mut() {
            hs.retain(|h| h.seq.is_none_or(|seq| !seqs.contains(&seq)));
        }
        s.waiting.clear();
        seqs
    }

    pub(super) fn counts(&self) -> DeliveryCounts {
        DeliveryCounts {
            handed_off: self.handed_out.load(Ordering::Relaxed),
            claim_transactions: self.claim_transactions.load(Ordering::Relaxed),
        }
    }

    /// A claim transaction claimed `entries` for this node until `until_ms`: held, and
    /// no longer waiting here (one that committed into the queue meanwhile).
    pub(super) fn claimed(&self, entries: &[OutboxEntry], until_ms: u64) {
        if entries.is_empty() {
            return;
        }
        let mut s = self.lock();
        s.ready
            .retain(|(w, _)| !entries.iter().any(|e| e.seq == w.seq));
        s.waiting
            .retain(|w| !entries.iter().any(|e| e.seq == w.seq));
        for e in entries {
            s.hold(&e.tenant, e.seq, until_ms);
        }
    }

    /// The entry's result was stored (its claim cleared): no longer held, no longer
    /// to be handed out.
    pub(super) fn settled(&self, tenant: &str, seq: u64) {
        let mut s = self.lock();
        s.ready.retain(|(e, _)| e.seq != seq);
        s.waiting.retain(|e| e.seq != seq);
        if let Some(hs) = s.holds.get_mut(tenant) {
            hs.retain(|h| h.seq != Some(seq));
        }
    }

    #[cfg(test)]
    fn held(&self, tenant: &str) -> usize {
        self.lock().holds.get(tenant).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
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

    /// A poll at 1 s, share [`SHARE`]: the seqs handed out and the held flag, or `None`
    /// (the database).
    fn poll(h: &HandOff, limit: usize) -> Option<(Vec<u64>, bool)> {
        h.serve(1_000, limit, TIMES, SHARE, &mut all)
            .map(|(got, held)| (got.iter().map(|e| e.seq).collect(), held))
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
        hand(&h, 5, "acme", 4);
        assert!(poll(&h, 10).is_none(), "no claim transaction ran yet");
        h.db_claim_started();
        assert!(poll(&h, 10).is_none(), "the claim transaction took it");
        hand(&h, 9, "acme", 4);
        hand(&h, 8, "acme", 4);
        assert_eq!(poll(&h, 10), Some((vec![8, 9], false)));
        assert!(poll(&h, 10).is_none(), "nothing waits");
    }

    #[test]
    fn refused_surplus_and_not_yet_due_entries_keep_waiting() {
        let h = HandOff::default();
        h.db_claim_started();
        for seq in 1..=3 {
            hand(&h, seq, "acme", 8);
        }
        hand(&h, 4, "globex", 8);
        let mut later = entry(5, "acme");
        later.next_attempt_ms = 2_000;
        h.reserve("acme", 0, 60_000, 8).unwrap().hand_off(later);
        let mut no_globex = |_: u64, t: &str| t != "globex";
        let got = h.serve(1_000, 2, TIMES, SHARE, &mut no_globex).unwrap().0;
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(poll(&h, 10), Some((vec![3, 4], false)));
        let got = h.serve(2_000, 10, TIMES, SHARE, &mut all).unwrap().0;
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn a_waiting_entry_is_claimed_when_a_slot_of_its_tenant_frees() {
        let h = HandOff::default();
        h.db_claim_started();
        hand(&h, 1, "acme", 1);
        assert!(h.reserve("acme", 0, 60_000, 1).is_none());
        h.enqueued_unclaimed(entry(3, "acme"));
        h.enqueued_unclaimed(entry(2, "acme"));
        h.enqueued_unclaimed(entry(4, "globex"));
        // Handed out, and the poll says entries wait for a slot.
        assert_eq!(poll(&h, 10), Some((vec![1], true)));
        // Every slot busy: nothing to hand out, no need to read the database.
        let busy = h
            .serve(1_000, 10, TIMES, 1, &mut all)
            .map(|(got, held)| (got.len(), held));
        assert!(
            busy.is_none(),
            "globex's slot is free: the database is read"
        );
        // Not for an entry this node does not hold, nor for another tenant.
        assert!(h.next_waiting("acme", 99).is_none());
        assert!(h.next_waiting("globex", 1).is_none());
        // The delivery of 1 ends: acme's first waiting entry is claimed with its result.
        let next = h.next_waiting("acme", 1).unwrap();
        assert_eq!(next.seq, 2);
        h.settled("acme", 1);
        h.took_next(next, 60_000);
        assert_eq!(h.held("acme"), 1);
        assert_eq!(poll(&h, 10), Some((vec![2], true)));
        // A claim that failed (another node took it) leaves the entry to the database.
        let next = h.next_waiting("acme", 2).unwrap();
        assert_eq!(next.seq, 3);
        h.settled("acme", 2);
        assert_eq!(h.held("acme"), 0);
        assert!(h.next_waiting("acme", 2).is_none());
    }

    #[test]
    fn waiting_entries_whose_slots_are_all_busy_need_no_database_read() {
        let h = HandOff::default();
        h.db_claim_started();
        hand(&h, 1, "acme", 1);
        h.enqueued_unclaimed(entry(2, "acme"));
        assert_eq!(
            h.serve(1_000, 10, TIMES, 1, &mut all)
                .map(|(got, held)| (got.len(), held)),
            Some((1, true))
        );
        assert_eq!(
            h.serve(1_000, 10, TIMES, 1, &mut all)
                .map(|(got, held)| (got.len(), held)),
            Some((0, true)),
            "acme's one slot is in use: its delivery's end claims the next"
        );
        // A claim transaction held back by the busy slot claims nothing: the entry
        // still waits here for the slot, with no further database read.
        h.db_claim_started();
        assert_eq!(
            h.serve(1_000, 10, TIMES, 1, &mut all)
                .map(|(got, held)| (got.len(), held)),
            Some((0, true))
        );
        let next = h.next_waiting("acme", 1).unwrap();
        assert_eq!(next.seq, 2, "the delivery's end claims it");
    }

    #[test]
    fn a_claim_transaction_leaves_the_waiting_entries_it_did_not_claim_waiting() {
        let h = HandOff::default();
        h.db_claim_started();
        hand(&h, 1, "acme", 1);
        for seq in 2..=4 {
            h.enqueued_unclaimed(entry(seq, "acme"));
        }
        h.db_claim_started();
        // It claimed 2 (a slot of another node's freed, say), not 3 and 4.
        h.claimed(&[entry(2, "acme")], 70_000);
        assert_eq!(h.next_waiting("acme", 1).map(|e| e.seq), Some(3));
        assert_eq!(h.next_waiting("acme", 2).map(|e| e.seq), Some(4));
        assert!(h.next_waiting("acme", 2).is_none());
    }

    #[test]
    fn an_entry_near_its_claims_end_is_left_to_the_database() {
        let h = HandOff::default();
        h.db_claim_started();
        h.reserve("acme", 0, 10_000, 4)
            .unwrap()
            .hand_off(entry(1, "acme"));
        assert!(h.serve(5_000, 10, TIMES, SHARE, &mut all).is_none());
    }

    #[test]
    fn an_entry_the_database_claimed_or_settled_is_never_handed_out_again() {
        let h = HandOff::default();
        h.db_claim_started();
        for seq in 1..=3 {
            hand(&h, seq, "acme", 8);
        }
        h.enqueued_unclaimed(entry(4, "acme"));
        // Committed into the lists while a claim transaction read them.
        h.claimed(&[entry(1, "acme"), entry(4, "acme")], 70_000);
        h.settled("acme", 2);
        assert_eq!(poll(&h, 10), Some((vec![3], false)));
        assert_eq!(h.held("acme"), 3, "1 and 4 (claimed), and 3");
    }
}
