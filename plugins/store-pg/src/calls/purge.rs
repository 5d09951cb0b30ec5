//! Retention: purging ENDED calls older than a cutoff, with their finished webhook,
//! while what they counted moves to the purged-calls tallies (the day's tally stays).
//!
//! The walk follows the tenant-time index like the sled store's: each tenant's calls
//! from the oldest while they are older than the cutoff, then a jump to the next
//! tenant (one index probe), so a batch costs what it examines plus one probe per
//! tenant, not the size of the table. Each purge is its own transaction under the
//! call's row lock and its webhook's, the locks a transition, a delivery or a replay
//! takes, so none of them can interleave with it.

use c2c_callstate::{CallRecord, OutboxState, PurgeCursor, PurgeReport, StoreError};
use deadpool_postgres::Object;

use super::outbox::state_str;
use super::tallies::{self, TallyRows};
use super::{bound, col, decode_record, query, tx_query, PgCallStore};
use crate::error::backend;

const FIRST_TENANT: &str = "SELECT tenant FROM c2c_calls ORDER BY tenant LIMIT 1";
const NEXT_TENANT: &str = "SELECT tenant FROM c2c_calls WHERE tenant > $1 ORDER BY tenant LIMIT 1";
const OLD_OF_TENANT: &str = "SELECT call_id, created_ms FROM c2c_calls
    WHERE tenant = $1 AND created_ms < $2 AND (created_ms, call_id) > ($3, $4)
    ORDER BY created_ms, call_id LIMIT $5";
const LOCK_CALL: &str = "SELECT record FROM c2c_calls WHERE call_id = $1 FOR UPDATE";
const LOCK_WEBHOOK: &str = "SELECT state FROM c2c_outbox WHERE call_id = $1 FOR UPDATE";
const PURGE: &str = "
WITH o AS (
    DELETE FROM c2c_outbox WHERE call_id = $1 RETURNING call_id
), c AS (
    DELETE FROM c2c_calls WHERE call_id = $1 RETURNING call_id
), t AS (
    INSERT INTO c2c_purged_tallies (tenant, day, trunk, shard, metric, n)
    SELECT t.tenant, t.day, t.trunk, $2::smallint, t.metric, t.n
    FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
        AS t(tenant, day, trunk, metric, n)
    ON CONFLICT (tenant, day, trunk, shard, metric)
        DO UPDATE SET n = c2c_purged_tallies.n + excluded.n
    RETURNING n
)
SELECT count(*) FROM c";

/// Why one old call stays.
enum Kept {
    Open,
    Pending,
    /// Gone already (purged meanwhile).
    Missing,
}

/// A position in the walk: the last call looked at (`created_ms` -1 and an empty id:
/// before the tenant's first call).
struct Position {
    tenant: String,
    created_ms: i64,
    call_id: String,
}

impl Position {
    fn start_of(tenant: String) -> Position {
        Position {
            tenant,
            created_ms: -1,
            call_id: String::new(),
        }
    }

    /// `<tenant>\0<created_ms i64 BE><call_id>`.
    fn cursor(&self) -> PurgeCursor {
        let mut b = Vec::with_capacity(self.tenant.len() + 9 + self.call_id.len());
        b.extend_from_slice(self.tenant.as_bytes());
        b.push(0);
        b.extend_from_slice(&self.created_ms.to_be_bytes());
        b.extend_from_slice(self.call_id.as_bytes());
        PurgeCursor::from_bytes(b)
    }

    fn of_cursor(c: &PurgeCursor) -> Result<Position, StoreError> {
        let bad = || StoreError::InvalidInput {
            what: "purge cursor",
        };
        let b = c.as_bytes();
        let nul = b.iter().position(|&x| x == 0).ok_or_else(bad)?;
        let ms: [u8; 8] = b
            .get(nul + 1..nul + 9)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(bad)?;
        let text = |s: &[u8]| String::from_utf8(s.to_vec()).map_err(|_| bad());
        Ok(Position {
            tenant: text(&b[..nul])?,
            created_ms: i64::from_be_bytes(ms),
            call_id: text(b.get(nul + 9..).ok_or_else(bad)?)?,
        })
    }
}

async fn tenant_after(c: &Object, tenant: Option<&str>) -> Result<Option<String>, StoreError> {
    let rows = match tenant {
        None => query(c, FIRST_TENANT, &[]).await?,
        Some(t) => query(c, NEXT_TENANT, &[&t]).await?,
    };
    rows.first().map(|r| col(r, 0)).transpose()
}

impl PgCallStore {
    pub(super) async fn purge(
        &self,
        cutoff_ms: u64,
        after: Option<&PurgeCursor>,
        max: usize,
    ) -> Result<(PurgeReport, Option<PurgeCursor>), StoreError> {
        let mut r = PurgeReport::default();
        let cutoff = bound(cutoff_ms);
        let mut c = self.client().await?;
        let mut pos = match after {
            Some(cur) => Position::of_cursor(cur)?,
            None => match tenant_after(&c, None).await? {
                Some(t) => Position::start_of(t),
                None => return Ok((r, None)),
            },
        };
        loop {
            let examined = usize::try_from(r.examined).unwrap_or(usize::MAX);
            // One more than may be examined: finding it says the batch stops early.
            let want = max.saturating_sub(examined).saturating_add(1);
            let rows = query(
                &c,
                OLD_OF_TENANT,
                &[
                    &pos.tenant,
                    &cutoff,
                    &pos.created_ms,
                    &pos.call_id,
                    &bound(want as u64),
                ],
            )
            .await?;
            for row in &rows {
                if r.examined >= max as u64 {
                    return Ok((r, Some(pos.cursor())));
                }
                r.examined += 1;
                let call_id: String = col(row, 0)?;
                match purge_one(&mut c, &call_id, cutoff_ms).await? {
                    Ok(()) => r.purged += 1,
                    Err(Kept::Open) => r.kept_open += 1,
                    Err(Kept::Pending) => r.kept_pending += 1,
                    Err(Kept::Missing) => {}
                }
                pos.created_ms = col(row, 1)?;
                pos.call_id = call_id;
            }
            if rows.len() >= want {
                continue;
            }
            match tenant_after(&c, Some(&pos.tenant)).await? {
                Some(t) => pos = Position::start_of(t),
                None => return Ok((r, None)),
            }
        }
    }
}

/// Purges one call if it may go, in one transaction.
async fn purge_one(
    c: &mut Object,
    call_id: &str,
    cutoff_ms: u64,
) -> Result<Result<(), Kept>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let rows = tx_query(&tx, LOCK_CALL, &[&call_id]).await?;
    let kept = match rows.first() {
        None => Some(Kept::Missing),
        Some(row) => {
            let rec: CallRecord = decode_record(call_id, &col::<String>(row, 0)?)?;
            if !rec.is_ended() || rec.ended_ms.unwrap_or(rec.created_ms) >= cutoff_ms {
                Some(Kept::Open)
            } else {
                let webhook = tx_query(&tx, LOCK_WEBHOOK, &[&call_id]).await?;
                match webhook.first() {
                    Some(w) if col::<String>(w, 0)? == state_str(OutboxState::Pending) => {
                        Some(Kept::Pending)
                    }
                    _ => return purge_locked(tx, call_id, &rec).await.map(Ok),
                }
            }
        }
    };
    tx.rollback().await.map_err(backend)?;
    Ok(kept.map_or(Ok(()), Err))
}

/// Deletes the locked call and its finished webhook, moving its counts to the purged
/// tallies, and commits.
async fn purge_locked(
    tx: deadpool_postgres::Transaction<'_>,
    call_id: &str,
    rec: &CallRecord,
) -> Result<(), StoreError> {
    let moved: TallyRows = tallies::delta(None, Some(rec))?;
    tx_query(
        &tx,
        PURGE,
        &[
            &call_id,
            &tallies::shard(call_id),
            &moved.tenants,
            &moved.days,
            &moved.trunks,
            &moved.metrics,
            &moved.deltas,
        ],
    )
    .await?;
    tx.commit().await.map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn cursors_round_trip() {
        let p = Position {
            tenant: "acme".into(),
            created_ms: -1,
            call_id: "c2c_1".into(),
        };
        let back = Position::of_cursor(&p.cursor()).unwrap();
        assert_eq!(
            (back.tenant.as_str(), back.created_ms, back.call_id.as_str()),
            ("acme", -1, "c2c_1")
        );
        let bad = c2c_callstate::PurgeCursor::from_bytes(b"acme".to_vec());
        assert!(Position::of_cursor(&bad).is_err());
    }
}
