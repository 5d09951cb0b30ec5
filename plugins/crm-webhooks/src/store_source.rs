//! The deliverer's source over a [`CallStore`]: the outbox that the call store fills
//! atomically with each call's end. The deliverer works on the store's `OutboxEntry`
//! itself, so this only forwards, adding the one rule the store cannot know: wait for
//! durability before telling a CRM anything.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_callstate::{CallStore, OutboxBacklog, OutboxEntry};

use crate::error::SourceError;
use crate::source::{Admit, Eligible, OutboxSource};

/// The call store's outbox as the deliverer's source: the gateway's, and any
/// embedding's (the catch-up benchmark's), so there is one adapter.
pub struct CallStoreOutbox {
    store: Arc<dyn CallStore>,
}

impl CallStoreOutbox {
    pub fn new(store: Arc<dyn CallStore>) -> Self {
        Self { store }
    }
}

fn src_err(e: c2c_callstate::StoreError) -> SourceError {
    SourceError::with_source("call store", e)
}

#[async_trait]
impl OutboxSource for CallStoreOutbox {
    async fn due(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut Admit<'_>,
    ) -> Result<Vec<OutboxEntry>, SourceError> {
        self.due_held(now_ms, limit, admit)
            .await
            .map(|(due, _)| due)
    }

    async fn due_held(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut Admit<'_>,
    ) -> Result<(Vec<OutboxEntry>, bool), SourceError> {
        let (due, held) = self
            .store
            .outbox_due_held(now_ms, limit, admit)
            .await
            .map_err(src_err)?;
        if !due.is_empty() {
            // An entry is visible just before the group commit that makes it durable. Never
            // tell a CRM about a call's end that a crash could still undo.
            self.store.wait_durable().await.map_err(src_err)?;
        }
        Ok((due, held))
    }

    async fn update(&self, job: &OutboxEntry) -> Result<(), SourceError> {
        // Progress, not the webhook itself, so no fsync wait (see outbox_record_progress);
        // the stored entry keeps its identity (see outbox_record_attempt).
        self.store.outbox_record_attempt(job).await.map_err(src_err)
    }

    async fn stats(&self) -> Result<OutboxBacklog, SourceError> {
        self.store.outbox_backlog().await.map_err(src_err)
    }

    async fn bring_forward(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut Eligible<'_>,
    ) -> Result<Vec<u64>, SourceError> {
        // Entry and pending index move together, durable on return (the store's contract).
        self.store
            .outbox_bring_forward(tenant, now_ms, limit, eligible)
            .await
            .map_err(src_err)
    }
}
