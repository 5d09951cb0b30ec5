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
//! - **Nothing else is starved.** Entries of nodes that died, and entries made due by
//!   another process (an operator's replay), are only found by a claim transaction:
//!   a poll reads the database at least every `delivery_recheck` (100 ms unless
//!   configured), of the wall clock and of the poll's own. What this node itself puts
//!   in the database without a place here (a tenant event, a webhook enqueued
//!   unclaimed beyond the waiting list or from inside a transaction, a retry brought
//!   forward or requeued) makes its next poll read it ([`HandOff::read_database_next`]);
//!   a retry of its own makes the first poll at or after its time read it
//!   ([`HandOff::retry_at`]).
//! - **Offered again until settled.** An entry handed to the deliverer, from here or by
//!   a claim transaction, is offered again at every poll answered here until its result
//!   is stored, as a claim transaction offers this node's live claims again: the
//!   deliverer's in-flight set refuses the ones it is delivering, and one whose result
//!   could not be stored is delivered again. So a poll with nothing new is answered
//!   here too, without a claim transaction: under load that was most of them (a
//!   delivery's end polls again while others are in flight), 0.10 of a lifecycle's
//!   0.14 claim transactions (BENCHMARKS.md, issue 22).
//! - **One delivery at a time.** The deliverer's in-flight set refuses an entry it is
//!   delivering, whichever way it came; an entry whose result was stored leaves the
//!   lists here.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use c2c_callstate::OutboxEntry;

use super::millis;

/// Entries waiting here at most, claimed and unclaimed each, and retry times kept;
/// beyond, an entry is left to the claim transaction (the database has it), and a
/// retry to the next recheck.
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
    /// Entries enqueued claimed and committed, or claimed as a delivery ended, not yet
    /// handed out; with their claim's end.
    ready: Vec<(OutboxEntry, u64)>,
    /// Entries handed out (from here or by a claim transaction) whose result is not
    /// stored yet; with their claim's end. Offered again at every poll answered here.
    out: Vec<(OutboxEntry, u64)>,
    /// Entries this node's writes enqueued unclaimed (the node at its share of the
    /// tenant), committed, for a slot of the node's to free.
    waiting: Vec<OutboxEntry>,
    /// This node put a due entry in the database that the lists here do not hold,
    /// since the last claim transaction: only the database can hand it out.
    read_db: bool,
    /// When this node's retries come due, earliest first.
    retries: BinaryHeap<Reverse<u64>>,
    /// When the last claim transaction started: the instant, and the poll's clock.
    last_db_claim: Option<(Instant, u64)>,
}

impl State {
    /// Whether a poll at `now_ms` may be answered from here: a claim transaction ran
    /// less than `recheck` ago (of the wall clock and of the poll's), and nothing this
    /// node knows of waits in the database only.
    fn fresh(&self, now_ms: u64, recheck: Duration) -> bool {
        let Some((at, at_ms)) = self.last_db_claim else {
            return false;
        };
        !self.read_db
            && at.elapsed() < recheck
            && now_ms
                .checked_sub(at_ms)
                .is_some_and(|d| d < millis(recheck))
            && self.retries.peek().is_none_or(|Reverse(t)| *t > now_ms)
    }

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
        } else {
            // A live claim of this node's: a claim transaction hands it out.
            s.read_db = true;
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
            s.read_db = true;
        }
    }

    /// This node put a due entry in the database that it does not list here (a tenant
    /// event, a webhook enqueued unclaimed from inside a transaction, a retry requeued
    /// or brought forward): the next poll reads the database.
    pub(super) fn read_database_next(&self) {
        self.lock().read_db = true;
    }

    /// A delivery of this node's failed and the entry is due again at `at_ms`: the
    /// first poll at or after it reads the database. Beyond [`MAX_READY`] kept, the
    /// next recheck finds it.
    pub(super) fn retry_at(&self, at_ms: u64) {
        let mut s = self.lock();
        if s.retries.len() < MAX_READY {
            s.retries.push(Reverse(at_ms));
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
        } else {
            s.read_db = true;
        }
    }

    /// A poll answered from here: up to `limit` entries due at `now_ms` that `admit`
    /// accepts, lowest seq first: the ready ones (the others keep waiting), and those
    /// handed out before whose result is not stored (the deliverer refuses those it is
    /// delivering). With them, whether entries wait for a slot of this node's (the
    /// deliverer then polls again when one of its deliveries ends). `None` when the
    /// poll must read the database: the last claim transaction is `recheck` old (or
    /// none ran), something of this node's waits in the database only
    /// ([`State::fresh`]), or nothing is ready and an entry waits whose tenant has a
    /// free slot (of `share`): a claim transaction claims it. Entries whose claim has
    /// less than `margin` left are left to the database.
    pub(super) fn serve(
        &self,
        now_ms: u64,
        limit: usize,
        (recheck, margin): (Duration, Duration),
        share: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Option<(Vec<OutboxEntry>, bool)> {
        let mut s = self.lock();
        let s = &mut *s;
        let keep_until = now_ms.saturating_add(millis(margin));
        let listed = s.ready.len() + s.out.len();
        s.ready.retain(|(_, until)| *until > keep_until);
        s.out.retain(|(_, until)| *until > keep_until);
        if s.ready.len() + s.out.len() < listed {
            // Live claims of this node's still: a claim transaction offers them, and
            // claims them anew.
            s.read_db = true;
        }
        if !s.fresh(now_ms, recheck) {
            return None;
        }
        if s.ready.is_empty() {
            let slot_free = s.waiting.iter().any(|e| {
                s.holds
                    .get(&e.tenant)
                    .is_none_or(|hs| hs.iter().filter(|h| h.until_ms > now_ms).count() < share)
            });
            if slot_free {
                return None;
            }
        }
        let mut ready = std::mem::take(&mut s.ready);
        ready.sort_unstable_by_key(|(e, _)| e.seq);
        s.out.sort_unstable_by_key(|(e, _)| e.seq);
        let mut got = Vec::new();
        let mut left = Vec::with_capacity(ready.len());
        let mut newly_out = Vec::new();
        let mut ready = ready.into_iter().peekable();
        let mut again = s.out.iter().peekable();
        loop {
            // A merge of the two lists by seq.
            let from_ready = match (ready.peek(), again.peek()) {
                (Some((r, _)), Some((o, _))) => r.seq < o.seq,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if from_ready {
                let Some((e, until)) = ready.next() else {
                    break;
                };
                if got.len() < limit && e.is_due(now_ms) && admit(e.seq, &e.tenant) {
                    got.push(e.clone());
                    newly_out.push((e, until));
                } else {
                    left.push((e, until));
                }
            } else if let Some((e, _)) = again.next() {
                if got.len() < limit && e.is_due(now_ms) && admit(e.seq, &e.tenant) {
                    got.push(e.clone());
                }
            }
        }
        s.ready = left;
        s.out.extend(newly_out);
        self.handed_out
            .fetch_add(got.len() as u64, Ordering::Relaxed);
        Some((got, !s.waiting.is_empty()))
    }

    /// A claim transaction starts, for a poll at `now_ms`: it reads this node's live
    /// claims (the entries ready and handed out here among them) and every unclaimed
    /// due entry, so what this node put in the database only is found, and its retries
    /// due by now are. The lists stay: what the transaction hands out leaves the ready
    /// and waiting lists ([`Self::claimed`]); the rest is still handed out here, and the
    /// waiting entries still claimed as this node's deliveries end. Emptied, the waiting
    /// list cost a claim transaction per delivery: a transaction held back by the
    /// tenant's busy slots (the usual case under load) claimed nothing, the end of a
    /// delivery then found no waiting entry to claim, its slot stayed free until the
    /// next poll, and that poll's claim transaction emptied the list again
    /// (BENCHMARKS.md, issue 22). Keeping them is safe: a waiting entry is only claimed
    /// conditionally ([`super::outbox::ATTEMPT_CLAIMING`]: not if another node's claim took
    /// it), and one ready here is a live claim of this node's.
    pub(super) fn db_claim_started(&self, now_ms: u64) {
        let mut s = self.lock();
        s.read_db = false;
        while s.retries.peek().is_some_and(|Reverse(t)| *t <= now_ms) {
            s.retries.pop();
        }
        s.last_db_claim = Some((Instant::now(), now_ms));
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

    /// A claim transaction handed `entries` out, claimed for this node until
    /// `until_ms`: held, handed out, and no longer ready or waiting here.
    pub(super) fn claimed(&self, entries: &[OutboxEntry], until_ms: u64) {
        if entries.is_empty() {
            return;
        }
        let mut s = self.lock();
        let is_one = |seq: u64| entries.iter().any(|e| e.seq == seq);
        s.ready.retain(|(w, _)| !is_one(w.seq));
        s.waiting.retain(|w| !is_one(w.seq));
        s.out.retain(|(w, _)| !is_one(w.seq));
        for e in entries {
            s.hold(&e.tenant, e.seq, until_ms);
            s.out.push((e.clone(), until_ms));
        }
    }

    /// The entry's result was stored (its claim cleared): no longer held, no longer
    /// to be handed out.
    pub(super) fn settled(&self, tenant: &str, seq: u64) {
        let mut s = self.lock();
        s.ready.retain(|(e, _)| e.seq != seq);
        s.out.retain(|(e, _)| e.seq != seq);
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
mod tests;
