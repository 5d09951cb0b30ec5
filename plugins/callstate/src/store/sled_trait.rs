//! `SledCallStore` as a [`CallStore`]: each method is the inherent one of the same name
//! (kept for the callers that hold the concrete type), so both paths behave the same.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::call_store::{FlushObserver, StoreBackup};
use super::{
    Applied, BackupError, CallPage, CallStore, DayTally, OutboxBacklog, OutboxEntry, PurgeCursor,
    PurgeReport, SledCallStore, TransitionFn,
};
use crate::error::StoreError;
use crate::record::CallRecord;

#[async_trait]
impl CallStore for SledCallStore {
    async fn create(&self, rec: &CallRecord) -> Result<(), StoreError> {
        SledCallStore::create(self, rec).await
    }

    async fn apply(
        &self,
        prev_version: u64,
        new_record: &CallRecord,
        enqueue_webhook: Option<OutboxEntry>,
    ) -> Result<Option<u64>, StoreError> {
        SledCallStore::apply(self, prev_version, new_record, enqueue_webhook).await
    }

    async fn apply_transition_boxed(
        &self,
        call_id: &str,
        f: TransitionFn<'_>,
    ) -> Result<Applied, StoreError> {
        SledCallStore::apply_transition(self, call_id, f).await
    }

    async fn get(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        SledCallStore::get(self, call_id)
    }

    async fn open_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        SledCallStore::open_calls(self)
    }

    async fn open_calls_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        SledCallStore::open_calls_after(self, after, limit)
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CallPage, StoreError> {
        SledCallStore::list_by_tenant(self, tenant, from_ms, to_ms, limit, cursor)
    }

    async fn day_tallies(
        &self,
        tenant: &str,
        from_day: &str,
        to_day: &str,
        trunk: Option<&str>,
    ) -> Result<BTreeMap<String, DayTally>, StoreError> {
        SledCallStore::day_tallies(self, tenant, from_day, to_day, trunk)
    }

    fn tallies_current(&self) -> Result<bool, StoreError> {
        SledCallStore::tallies_current(self)
    }

    fn ensure_aggregates(&self, progress: &mut dyn FnMut(u64)) -> Result<bool, StoreError> {
        SledCallStore::ensure_aggregates(self, progress)
    }

    async fn next_outbox_seq(&self) -> Result<u64, StoreError> {
        SledCallStore::next_outbox_seq(self)
    }

    async fn outbox_get(&self, seq: u64) -> Result<Option<OutboxEntry>, StoreError> {
        SledCallStore::outbox_get(self, seq)
    }

    async fn outbox_seq_for_call(&self, call_id: &str) -> Result<Option<u64>, StoreError> {
        SledCallStore::outbox_seq_for_call(self, call_id)
    }

    async fn outbox_due_admitted(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        SledCallStore::outbox_due_admitted(self, now_ms, limit, admit)
    }

    async fn outbox_record_progress(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        SledCallStore::outbox_record_progress(self, entry)
    }

    async fn outbox_enqueue_event(&self, entry: &OutboxEntry) -> Result<Option<u64>, StoreError> {
        SledCallStore::outbox_enqueue_event(self, entry).await
    }

    async fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        SledCallStore::outbox_update(self, entry).await
    }

    async fn outbox_requeue(&self, seq: u64, now_ms: u64) -> Result<OutboxEntry, StoreError> {
        SledCallStore::outbox_requeue(self, seq, now_ms).await
    }

    async fn outbox_bring_forward(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut (dyn FnMut(u64) -> bool + Send),
    ) -> Result<Vec<u64>, StoreError> {
        SledCallStore::outbox_bring_forward(self, tenant, now_ms, limit, eligible).await
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        SledCallStore::outbox_backlog(self)
    }

    async fn outbox_stats(&self) -> Result<(u64, Option<u64>), StoreError> {
        SledCallStore::outbox_stats(self)
    }

    async fn outbox_by_tenant_since_capped(
        &self,
        tenant: &str,
        since_ms: u64,
        max: usize,
    ) -> Result<(Vec<OutboxEntry>, u64), StoreError> {
        SledCallStore::outbox_by_tenant_since_capped(self, tenant, since_ms, max)
    }

    async fn purge_ended_before(
        &self,
        cutoff_ms: u64,
        after: Option<&PurgeCursor>,
        max: usize,
    ) -> Result<(PurgeReport, Option<PurgeCursor>), StoreError> {
        SledCallStore::purge_ended_before(self, cutoff_ms, after, max).await
    }

    async fn wait_durable(&self) -> Result<(), StoreError> {
        SledCallStore::wait_durable(self).await
    }

    fn observe_flushes(&self, f: FlushObserver) -> bool {
        self.inner.commit.observe(f)
    }

    /// Flushes the whole sled database: the DLT and webhook de-duplication trees that
    /// share it go to disk with the calls.
    fn flush_at_shutdown(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        SledCallStore::ping(self)
    }

    fn begin_backup(&self) -> Result<Box<dyn StoreBackup>, BackupError> {
        Ok(Box::new(SledCallStore::begin_backup(self)?))
    }
}
