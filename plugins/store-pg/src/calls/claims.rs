//! Delivery claims on the outbox, for a fleet.
//!
//! Every node runs a deliverer over the one outbox. [`PgCallStore::claim_due`]
//! (`outbox_due_admitted`) claims what it returns: `claimed_by` = this node,
//! `claim_until_ms` = now + `delivery_claim`, in the transaction that picked the
//! entries (`FOR UPDATE SKIP LOCKED`, so two nodes polling at once split the due
//! entries). Another node's live claim hides an entry from this node until it expires
//! (the claimer died mid-delivery) or the claimer records progress, which clears the
//! claim. This node's own claims stay candidates: the deliverer's in-flight set
//! refuses them through `admit`. Progress from a node whose claim had expired and was
//! taken over still lands (last writer wins): the webhook may then have gone out twice,
//! with the same `webhook-id`, which is the outbox's at-least-once promise. On a busy
//! node most webhooks skip this transaction: the node that ends a call delivers its
//! webhook, claimed with the write that enqueues it (`handoff.rs`), and the claims
//! taken either way count alike here.
//!
//! **Fleet-wide tenant concurrency.** A tenant is held back (its entries are not even
//! read) once the fleet's live claims of it — every node's, this node's in-flight ones
//! included, from one grouped query — reach `tenant_delivery_concurrency`; the others
//! get at most their free slots claimed. Nodes claiming at the same moment do not see
//! each other's uncommitted claims, so the fleet can exceed the limit by at most one
//! batch per node claiming concurrently; it drops back as those deliveries end.
//!
//! **A node's share.** A node holds at most `ceil(cap / live nodes)` of a tenant's
//! slots (live nodes as counted at its last lease renewal). Without it, the node that
//! started delivering a tenant's backlog re-claimed each slot the moment its delivery
//! ended, and the other nodes, polling, always found the tenant at its cap: one node
//! did all the work (seen in `gateway/tests/fleet.rs`, 24 webhooks on node A, none on
//! B). The cost: while another node is alive but not polling (it just died, and its
//! lease has not run out), a tenant's deliveries run at this node's share.
//!
//! **Why per tenant.** One scan of every due entry in seq order read (and threw away)
//! the whole backlog of a tenant at its limit on every poll — and a deliverer polls
//! again whenever a delivery ends while entries are held back: 900-1,800 rows per
//! lifecycle in `tests/bench/fleet.sh` with one busy tenant (BENCHMARKS.md, issue 22).
//! Now a claim reads the fleet's live claims (few: at most the limit per tenant), lists
//! the tenants with pending entries (a skip scan of the `(tenant, seq)` pending index:
//! one probe per tenant), and reads, for the tenants with room only, their first
//! unclaimed due entries up to that room (one `LATERAL` statement for all).

use std::collections::{BTreeMap, VecDeque};

use c2c_callstate::{OutboxEntry, StoreError};
use deadpool_postgres::Transaction;

use super::handoff::Reservation;
use super::outbox::{cols, entry_of};
use super::{bound, col, tx_execute, tx_query, PgCallStore};
use crate::error::backend;
use crate::relaxed;

/// Every node's live claims (entries, and whose): the fleet's in-flight deliveries.
/// `claim_until_ms >= $1` is the condition of `c2c_outbox_live_claims` (migration 5),
/// the one index that answers it (`tests/plans.rs` checks the plan).
pub const LIVE_CLAIMS: &str = concat!(
    "SELECT ",
    cols!(),
    ", claimed_by FROM c2c_outbox
    WHERE state = 'pending' AND claimed_by IS NOT NULL AND claim_until_ms >= $1"
);

/// The tenants with pending entries: a skip scan of `c2c_outbox_tenant_pending`, one
/// index probe per tenant however long its backlog (`tests/plans.rs` checks the plan).
pub const PENDING_TENANTS: &str = "WITH RECURSIVE t(tenant) AS (
    (SELECT tenant FROM c2c_outbox WHERE state = 'pending' ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT o.tenant FROM c2c_outbox o
            WHERE o.state = 'pending' AND o.tenant > t.tenant ORDER BY o.tenant LIMIT 1)
    FROM t WHERE t.tenant IS NOT NULL
)
SELECT tenant FROM t WHERE tenant IS NOT NULL";

/// A tenant's first `$3` due entries that no node holds a live claim on, locked. One
/// statement per tenant, pipelined (issued together on the connection): a plain
/// statement gets a cached generic plan, where one `LATERAL` over arrays of tenants was
/// planned again on every execution (211 µs of its 409 per lifecycle).
const DUE_OF_TENANT: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM c2c_outbox
    WHERE state = 'pending' AND tenant = $1
      AND next_attempt_ms <= $2 AND (claimed_by IS NULL OR claim_until_ms < $2)
    ORDER BY seq LIMIT $3
    FOR UPDATE SKIP LOCKED"
);

/// Claims up to [`CLAIM_WIDTH`] entries: `$3..` are their seqs, the last repeated
/// when there are fewer. A fixed width keeps the statement's generic plan: with
/// `seq = ANY($3)` the planner cannot see the array's length when it makes the generic
/// plan (it assumes ten), costs a custom plan for the array it is given below it, and
/// so planned the statement afresh at every execution (53 µs of planning for 92 of
/// execution per lifecycle, BENCHMARKS.md, issue 22).
const CLAIM: &str = "UPDATE c2c_outbox SET claimed_by = $1, claim_until_ms = $2
    WHERE seq IN ($3, $4, $5, $6)";

/// Seqs one [`CLAIM`] takes: a tenant's slots on one node are few
/// (`tenant_delivery_concurrency` over the live nodes), so one statement is the rule.
const CLAIM_WIDTH: usize = 4;

/// Rows read of a tenant beyond its free slots, for `admit` to refuse some (an entry
/// still in the deliverer's in-flight set: its progress is stored, so its claim is
/// gone, a moment before the job ends). Not more: every row read is locked (`FOR
/// UPDATE`), and a deliverer that refuses a tenant's entry for want of a slot refuses
/// every other one of it too. What is left is read at the next claim, which a finished
/// delivery triggers.
const SLACK: usize = 2;

/// Due entries in seq order: one tenant's unclaimed ones, or this node's live claims.
struct Stream {
    /// `None`: this node's live claims (counted in the fleet's claims already, never
    /// read further).
    tenant: Option<String>,
    buf: VecDeque<OutboxEntry>,
}

impl PgCallStore {
    /// How long a delivery claim lasts.
    pub(super) fn claim_ms(&self) -> u64 {
        super::millis(self.pg.options().delivery_claim)
    }

    /// This node's share of a tenant's fleet-wide delivery slots: `ceil(limit / live
    /// nodes)` (see the module docs).
    fn delivery_share(&self) -> usize {
        let cap = self.pg.options().tenant_delivery_concurrency.max(1);
        cap.div_ceil(self.live_nodes())
    }

    /// A delivery claim for a webhook of `tenant` that a write of this node is about to
    /// enqueue, if this node holds less than its share of the tenant's (`handoff.rs`).
    pub(super) fn reserve_delivery(&self, tenant: &str) -> Option<Reservation<'_>> {
        let now = super::now_ms();
        self.handoff.reserve(
            tenant,
            now,
            now.saturating_add(self.claim_ms()),
            self.delivery_share(),
        )
    }

    /// `outbox_due_admitted` / `outbox_due_held`: entries handed off by this node's
    /// writes (`handoff.rs`), or a claim transaction (see the module docs). Entries are
    /// offered to `admit` lowest seq first across tenants (a merge of the streams).
    pub(super) async fn claim_due(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Result<(Vec<OutboxEntry>, bool), StoreError> {
        let mut out = Vec::new();
        let mut held = false;
        if limit == 0 {
            return Ok((out, held));
        }
        let claim_ms = self.claim_ms();
        // An entry handed out must be delivered well before its claim runs out: the
        // claim lasts at least two request timeouts (`delivery_claim`).
        let margin = self.pg.options().delivery_claim / 2;
        let recheck = self.pg.options().delivery_recheck;
        let share = self.delivery_share();
        if let Some(served) = self
            .handoff
            .serve(now_ms, limit, (recheck, margin), share, admit)
        {
            return Ok(served);
        }
        self.handoff.db_claim_started(now_ms);
        let cap = self.pg.options().tenant_delivery_concurrency.max(1);
        let until_ms = now_ms.saturating_add(claim_ms);
        let (now, until) = (bound(now_ms), bound(until_ms));
        let me = self.node_id();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        // The fleet's deliveries in flight per tenant; this node's own claims stay
        // candidates (its deliverer's `admit` refuses those it is working on).
        let mut live: BTreeMap<String, usize> = BTreeMap::new();
        // This node's live claims per tenant, against its share.
        let mut own: BTreeMap<String, usize> = BTreeMap::new();
        let mut mine = Stream {
            tenant: None,
            buf: VecDeque::new(),
        };
        // Three statements, one round trip. The claim need not wait for the WAL flush
        // (`relaxed.rs`): one a crash forgets leaves its entry to be claimed again.
        let relax = async {
            if self.pg.relaxed_commits() {
                tx.batch_execute(relaxed::RELAX).await.map_err(backend)
            } else {
                Ok(())
            }
        };
        let live_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&now];
        let ((), claims, tenants) = tokio::try_join!(
            relax,
            tx_query(&tx, LIVE_CLAIMS, &live_params),
            tx_query(&tx, PENDING_TENANTS, &[]),
        )?;
        for r in claims {
            let e = entry_of(&r)?;
            *live.entry(e.tenant.clone()).or_default() += 1;
            if col::<String>(&r, 13)? == me {
                *own.entry(e.tenant.clone()).or_default() += 1;
                // A webhook this node enqueued claimed is its own claim from the start,
                // due or not yet (`handoff.rs`).
                if e.is_due(now_ms) {
                    mine.buf.push_back(e);
                }
            }
        }
        mine.buf.make_contiguous().sort_unstable_by_key(|e| e.seq);
        let mut wants = Vec::new();
        for r in tenants {
            let tenant: String = col(&r, 0)?;
            let in_flight = live.get(&tenant).copied().unwrap_or(0);
            let mine_now = own.get(&tenant).copied().unwrap_or(0);
            let room = cap
                .saturating_sub(in_flight)
                .min(share.saturating_sub(mine_now));
            if room == 0 {
                // The deliverer must hear of it, or it waits for its next poll.
                held = true;
                continue;
            }
            wants.push((tenant, bound((room.min(limit) + SLACK) as u64)));
        }
        let mut streams = read_due(&tx, now, wants).await?;
        streams.push(mine);
        while out.len() < limit {
            // The stream whose head has the lowest seq.
            let Some(i) = (0..streams.len())
                .filter(|&i| !streams[i].buf.is_empty())
                .min_by_key(|&i| streams[i].buf.front().map(|e| e.seq))
            else {
                break;
            };
            let Some(e) = streams[i].buf.pop_front() else {
                break;
            };
            let own_claim = streams[i].tenant.is_none();
            let in_flight = live.entry(e.tenant.clone()).or_default();
            let mine_now = own.entry(e.tenant.clone()).or_default();
            if !own_claim && (*in_flight >= cap || *mine_now >= share) {
                // Full now (the fleet's cap or this node's share): the rest of this
                // tenant waits.
                held = true;
                streams[i].buf.clear();
                continue;
            }
            if admit(e.seq, &e.tenant) {
                if !own_claim {
                    *in_flight += 1;
                    *mine_now += 1;
                }
                out.push(e);
            }
        }
        for chunk in out.chunks(CLAIM_WIDTH) {
            let mut seqs = [0i64; CLAIM_WIDTH];
            for (i, slot) in seqs.iter_mut().enumerate() {
                // `chunks` never yields an empty chunk.
                *slot = bound(chunk[i.min(chunk.len() - 1)].seq);
            }
            let [a, b, c, d] = &seqs;
            tx_execute(&tx, CLAIM, &[&me, &until, a, b, c, d]).await?;
        }
        tx.commit().await.map_err(backend)?;
        self.handoff.claimed(&out, until_ms);
        Ok((out, held))
    }
}

/// Per `(tenant, rows)`: the tenant's first `rows` unclaimed due entries, locked; one
/// stream each, in order. The statements go out together.
async fn read_due(
    tx: &Transaction<'_>,
    now: i64,
    wants: Vec<(String, i64)>,
) -> Result<Vec<Stream>, StoreError> {
    if wants.is_empty() {
        return Ok(Vec::new());
    }
    let st = tx.prepare_cached(DUE_OF_TENANT).await.map_err(backend)?;
    let reads = wants.iter().map(|(tenant, rows)| {
        let st = &st;
        async move { tx.query(st, &[tenant, &now, rows]).await.map_err(backend) }
    });
    let found = futures_util::future::try_join_all(reads).await?;
    wants
        .into_iter()
        .zip(found)
        .map(|((tenant, _), rows)| {
            Ok(Stream {
                tenant: Some(tenant),
                buf: rows.iter().map(entry_of).collect::<Result<_, _>>()?,
            })
        })
        .collect()
}
