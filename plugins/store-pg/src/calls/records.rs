//! Call records: create (through the write queue, `batch.rs`), the conditional write
//! of an update on a given connection (`write.rs`), reads, open calls and tenant pages.

use c2c_callstate::{CallPage, CallRecord, OutboxEntry, StoreError, MAX_PAGE};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::write::{CallWrite, Written};
use super::{bound, check_id, col, decode_record, query, to_i64, PgCallStore};
use crate::error::backend;

/// The record and its driver as committed.
pub(super) const READ: &str = "SELECT record, driver FROM c2c_calls WHERE call_id = $1";

const GET: &str = "SELECT record FROM c2c_calls WHERE call_id = $1";

/// Open calls (optionally of one driver) after an id, in id order; `''` sorts before
/// every id.
const OPEN: &str = "SELECT call_id, record FROM c2c_calls
    WHERE is_open AND call_id > $1 ORDER BY call_id LIMIT $2";
const DRIVEN: &str = "SELECT call_id, record FROM c2c_calls
    WHERE is_open AND driver = $3 AND call_id > $1 ORDER BY call_id LIMIT $2";

const PAGE: &str = "SELECT call_id, record FROM c2c_calls
    WHERE tenant = $1 AND created_ms >= $2 AND created_ms < $3
      AND (created_ms, call_id) > ($4, $5)
    ORDER BY created_ms, call_id LIMIT $6";

/// `list_by_tenant`'s cursor: 16 hex digits of `created_ms`, then the call id (the
/// sled store's format, so a cursor means the same on every backend).
fn encode_cursor(created_ms: u64, call_id: &str) -> String {
    format!("{created_ms:016x}{call_id}")
}

fn decode_cursor(c: &str) -> Result<(u64, &str), StoreError> {
    let bad = || StoreError::InvalidInput { what: "cursor" };
    let (ms, id) = (c.get(..16).ok_or_else(bad)?, c.get(16..).ok_or_else(bad)?);
    let ms = u64::from_str_radix(ms, 16).map_err(|_| bad())?;
    check_id("cursor", id)?;
    Ok((ms, id))
}

fn records_of(rows: &[Row]) -> Result<Vec<CallRecord>, StoreError> {
    rows.iter()
        .map(|r| decode_record(&col::<String>(r, 0)?, &col::<String>(r, 1)?))
        .collect()
}

impl PgCallStore {
    pub(super) async fn create_record(&self, rec: &CallRecord) -> Result<(), StoreError> {
        check_id("call_id", &rec.call_id)?;
        check_id("tenant", &rec.tenant)?;
        let write = CallWrite::create(rec)?;
        if self.write_queued(write).await?.is_none() {
            return Err(StoreError::AlreadyExists);
        }
        self.cache.put(rec);
        Ok(())
    }

    pub(super) async fn apply_record(
        &self,
        prev_version: u64,
        rec: &CallRecord,
        webhook: Option<&OutboxEntry>,
    ) -> Result<Option<u64>, StoreError> {
        check_id("call_id", &rec.call_id)?;
        if webhook.is_some_and(|e| e.call_id != rec.call_id) {
            return Err(StoreError::InvalidInput {
                what: "outbox entry call_id",
            });
        }
        let seq = webhook.map(|e| to_i64(e.seq, "outbox seq")).transpose()?;
        // Any cached copy is older than what this writes (or the write fails).
        self.cache.forget(&rec.call_id);
        let c = self.client().await?;
        // Written over whatever driver holds the call, as long as the version matches.
        let Some((cur, driver)) = read(&c, &rec.call_id).await? else {
            return Err(StoreError::NotFound);
        };
        if cur.version != prev_version {
            return Err(StoreError::VersionConflict {
                expected: prev_version,
                found: cur.version,
            });
        }
        match self
            .write(&c, &cur, &driver, rec, webhook.map(|e| (e, seq)))
            .await?
        {
            Some(enqueued) => {
                if enqueued.is_some() {
                    // Enqueued unclaimed: only a claim transaction hands it out.
                    self.handoff.read_database_next();
                }
                Ok(enqueued)
            }
            // Another write came between the read and this one.
            None => {
                let found = read(&c, &rec.call_id).await?.map(|(r, _)| r.version);
                Err(
                    found.map_or(StoreError::NotFound, |found| StoreError::VersionConflict {
                        expected: prev_version,
                        found,
                    }),
                )
            }
        }
    }

    /// The one write of an update: record (driver: this node), tally deltas from `prev`
    /// to `rec`, and the webhook unless the call has one, all only if the row still
    /// holds `prev`'s version and `prev_driver`. Answers `None` when it did not (another
    /// write got there first; nothing was written), else the seq it enqueued. On `c` as
    /// one statement, or in a transaction that holds the row lock.
    pub(super) async fn write<C: GenericClient>(
        &self,
        c: &C,
        prev: &CallRecord,
        prev_driver: &str,
        rec: &CallRecord,
        webhook: Option<(&OutboxEntry, Option<i64>)>,
    ) -> Result<Written, StoreError> {
        CallWrite::update(prev, prev_driver, rec, webhook)?
            .run(c, self.node_id())
            .await
    }

    pub(super) async fn get_record(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        check_id("call_id", call_id)?;
        let c = self.client().await?;
        let rows = query(&c, GET, &[&call_id]).await?;
        rows.first()
            .map(|r| decode_record(call_id, &col::<String>(r, 0)?))
            .transpose()
    }

    /// Open calls after `after` in id order, at most `limit` (at least one; `None`: all),
    /// of every driver or only of `driver`.
    pub(super) async fn open_records(
        &self,
        driver: Option<&str>,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let after = after.unwrap_or("");
        let limit = limit.map_or(i64::MAX, |l| bound(l.max(1) as u64));
        let c = self.client().await?;
        let rows = match driver {
            None => query(&c, OPEN, &[&after, &limit]).await?,
            Some(d) => query(&c, DRIVEN, &[&after, &limit, &d]).await?,
        };
        records_of(&rows)
    }

    pub(super) async fn tenant_page(
        &self,
        tenant: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CallPage, StoreError> {
        check_id("tenant", tenant)?;
        let (after_ms, after_id) = match cursor {
            Some(c) => {
                let (ms, id) = decode_cursor(c)?;
                (bound(ms), id)
            }
            // Before every call: ids are never empty.
            None => (-1, ""),
        };
        let limit = limit.min(MAX_PAGE);
        let mut page = CallPage {
            records: Vec::new(),
            next_cursor: None,
        };
        if limit == 0 || from_ms >= to_ms {
            return Ok(page);
        }
        let fetch = limit as i64 + 1;
        let c = self.client().await?;
        let rows = query(
            &c,
            PAGE,
            &[
                &tenant,
                &bound(from_ms),
                &bound(to_ms),
                &after_ms,
                &after_id,
                &fetch,
            ],
        )
        .await?;
        page.records = records_of(&rows)?;
        if page.records.len() > limit {
            page.records.truncate(limit);
            page.next_cursor = page
                .records
                .last()
                .map(|r| encode_cursor(r.created_ms, &r.call_id));
        }
        Ok(page)
    }
}

/// The call's record and driver as committed (no lock).
pub(super) async fn read<C: GenericClient>(
    c: &C,
    call_id: &str,
) -> Result<Option<(CallRecord, String)>, StoreError> {
    let st = c.prepare_cached(READ).await.map_err(backend)?;
    let rows = c.query(&st, &[&call_id]).await.map_err(backend)?;
    match rows.first() {
        None => Ok(None),
        Some(r) => Ok(Some((
            decode_record(call_id, &col::<String>(r, 0)?)?,
            col(r, 1)?,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_cursor, encode_cursor};

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = encode_cursor(42, "c2c_x");
        assert_eq!(decode_cursor(&c).unwrap(), (42, "c2c_x"));
        for bad in ["", "garbage", "zzzzzzzzzzzzzzzzc2c_x", "000000000000002a"] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
