//! Which node drives an open call: node rows and their leases, the `driver` column,
//! take-over of a dead node's calls, and the fleet's open-call counts.
//!
//! A node's row in `c2c_nodes` holds its lease (`lease_until_ms`), renewed by the
//! gateway every fraction of the lease. Every write to a call sets its driver to the
//! writing node (see `write.rs`). An open call whose driver's lease ran out, or
//! whose driver has no row at all, is an orphan: the first node to run
//! [`PgCallStore::claim_orphans`] takes it (`FOR UPDATE SKIP LOCKED`: nodes claiming at
//! once split the orphans, none is taken twice) and re-arms its timers.

use std::collections::BTreeMap;

use c2c_callstate::{CallRecord, StoreError};

use super::{bound, col, decode_record, now_ms, query, PgCallStore};

const REGISTER: &str = "INSERT INTO c2c_nodes (node_id, node_name, lease_until_ms, started_ms)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (node_id) DO UPDATE SET lease_until_ms = excluded.lease_until_ms
    RETURNING lease_until_ms";

/// Rows of nodes long gone that drive nothing (every start makes a new node id).
const FORGET_OLD: &str = "DELETE FROM c2c_nodes n
    WHERE n.lease_until_ms < $1 AND n.node_id <> $2
      AND NOT EXISTS (SELECT 1 FROM c2c_calls c WHERE c.is_open AND c.driver = n.node_id)";

/// Nodes whose lease runs at `$1` (this one among them, just renewed).
const LIVE_NODES: &str = "SELECT count(*) FROM c2c_nodes WHERE lease_until_ms >= $1";

const RELEASE: &str = "UPDATE c2c_nodes SET lease_until_ms = 0 WHERE node_id = $1";
/// Gives back this node's (`$1`) claims of the webhooks `$2` its deliverer never
/// started (`handoff.rs`), so other nodes deliver them at once.
const RELEASE_DELIVERIES: &str = "UPDATE c2c_outbox SET claimed_by = NULL, claim_until_ms = 0
    WHERE seq = ANY($2) AND claimed_by = $1 AND state = 'pending'";

/// The live nodes are read once per statement (an init plan), so the condition on a
/// call is on its own columns only. That matters: when another claimer took a call
/// between this statement's snapshot and its row lock, PostgreSQL re-checks the
/// condition on the call's new version (new driver: a live node, so it is skipped),
/// whereas a correlated `NOT EXISTS` on the nodes would be re-checked against the
/// rows joined before and let both claimers have it.
const CLAIM: &str = "
WITH orphans AS (
    SELECT c.call_id FROM c2c_calls c
    WHERE c.is_open AND c.driver <> $1
      AND c.driver <> ALL (ARRAY(
          SELECT n.node_id FROM c2c_nodes n WHERE n.lease_until_ms >= $2))
    ORDER BY c.call_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE c2c_calls SET driver = $1
FROM orphans WHERE c2c_calls.call_id = orphans.call_id
RETURNING c2c_calls.call_id, c2c_calls.record";

const OPEN_COUNTS: &str = "SELECT tenant, count(*) FROM c2c_calls WHERE is_open GROUP BY tenant";

/// A node row is forgotten this long after its lease ended (if it drives nothing).
const FORGET_AFTER_MS: u64 = 24 * 3_600_000;

impl PgCallStore {
    /// This node's row, its lease starting now; and old rows of nodes that drive
    /// nothing go.
    pub(super) async fn register(&self) -> Result<(), StoreError> {
        let now = now_ms();
        self.renew(now).await?;
        let c = self.client().await?;
        query(
            &c,
            FORGET_OLD,
            &[&bound(now.saturating_sub(FORGET_AFTER_MS)), &self.node_id()],
        )
        .await?;
        Ok(())
    }

    /// `renew_lease`: this node holds its calls until `now_ms + lease`.
    pub(super) async fn renew(&self, now_ms: u64) -> Result<u64, StoreError> {
        let until = now_ms.saturating_add(self.pg.lease_ms());
        let c = self.client().await?;
        let rows = query(
            &c,
            REGISTER,
            &[
                &self.node_id(),
                &self.pg.options().node_name,
                &bound(until),
                &bound(now_ms),
            ],
        )
        .await?;
        let held: Option<i64> = rows.first().map(|r| col(r, 0)).transpose()?;
        // Counted here, once a renewal (lease / 3), not per delivery claim: a node that
        // joins or dies changes every node's share of a tenant's slots within a lease.
        let live = query(&c, LIVE_NODES, &[&bound(now_ms)]).await?;
        let live: i64 = live.first().map(|r| col(r, 0)).transpose()?.unwrap_or(1);
        self.live_nodes.store(
            usize::try_from(live).unwrap_or(1).max(1),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(held.map_or(until, super::to_u64))
    }

    /// Live nodes (this one included) at the last renewal.
    pub(super) fn live_nodes(&self) -> usize {
        self.live_nodes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `release_lease`: the lease ends now, so other nodes take the calls over at once,
    /// and the webhooks handed off to this node's deliverer but not started with them.
    pub(super) async fn release(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        query(&c, RELEASE, &[&self.node_id()]).await?;
        let unstarted: Vec<i64> = self.handoff.take_ready().into_iter().map(bound).collect();
        if !unstarted.is_empty() {
            query(&c, RELEASE_DELIVERIES, &[&self.node_id(), &unstarted]).await?;
        }
        Ok(())
    }

    /// `claim_orphaned_calls`: up to `limit` open calls of nodes whose lease ran out
    /// before `now_ms` (or that have no node row) now driven by this node, in id order.
    pub(super) async fn claim_orphans(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        let rows = query(
            &c,
            CLAIM,
            &[&self.node_id(), &bound(now_ms), &bound(limit as u64)],
        )
        .await?;
        let mut out = rows
            .iter()
            .map(|r| decode_record(&col::<String>(r, 0)?, &col::<String>(r, 1)?))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        if !out.is_empty() {
            tracing::info!(
                calls = out.len(),
                "took over calls of nodes whose lease ran out"
            );
        }
        Ok(out)
    }

    /// `fleet_open_counts`: open calls per tenant on every node (one grouped read of the
    /// open-calls partial index).
    pub(super) async fn open_counts(&self) -> Result<BTreeMap<String, u32>, StoreError> {
        let c = self.client().await?;
        let mut out = BTreeMap::new();
        for r in query(&c, OPEN_COUNTS, &[]).await? {
            let n: i64 = col(&r, 1)?;
            out.insert(col(&r, 0)?, u32::try_from(n).unwrap_or(u32::MAX));
        }
        Ok(out)
    }
}
