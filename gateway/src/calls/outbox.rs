//! Adapters that let `c2c-crm-webhooks` deliver from `c2c-callstate`'s outbox with the
//! endpoints from policy. The deliverer works on the store's `OutboxEntry` itself, so
//! the outbox adapter only forwards to the store.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use c2c_callstate::{CallStore, OutboxBacklog, OutboxEntry};
use c2c_crm_webhooks::{Admit, Eligible, Endpoint, EndpointResolver, OutboxSource, SourceError};
use parking_lot::RwLock;

use crate::app::PolicyHandle;

pub struct StoreOutbox {
    pub store: Arc<dyn CallStore>,
}

fn src_err(e: c2c_callstate::StoreError) -> SourceError {
    SourceError::with_source("call store", e)
}

#[async_trait]
impl OutboxSource for StoreOutbox {
    async fn due(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut Admit<'_>,
    ) -> Result<Vec<OutboxEntry>, SourceError> {
        let due = self
            .store
            .outbox_due_admitted(now_ms, limit, admit)
            .await
            .map_err(src_err)?;
        if !due.is_empty() {
            // An entry is visible just before the group commit that makes it durable. Never
            // tell a CRM about a call's end that a crash could still undo.
            self.store.wait_durable().await.map_err(src_err)?;
        }
        Ok(due)
    }

    async fn update(&self, job: &OutboxEntry) -> Result<(), SourceError> {
        let mut e = self
            .store
            .outbox_get(job.seq)
            .await
            .map_err(src_err)?
            .ok_or_else(|| SourceError::msg(format!("outbox entry {} vanished", job.seq)))?;
        e.take_progress(job);
        // Progress, not the webhook itself, so no fsync wait (see outbox_record_progress).
        self.store.outbox_record_progress(&e).await.map_err(src_err)
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

/// Tenant -> CRM endpoint, from the policy in force. A 410 from a CRM parks that tenant
/// until the next policy reload (an operator must look at the endpoint).
pub struct PolicyEndpoints {
    pub policy: Arc<PolicyHandle>,
    pub gone: RwLock<HashSet<String>>,
}

impl PolicyEndpoints {
    pub fn new(policy: Arc<PolicyHandle>) -> Self {
        Self {
            policy,
            gone: RwLock::new(HashSet::new()),
        }
    }

    /// Policy changed: give parked endpoints another chance.
    pub fn reset(&self) {
        self.gone.write().clear();
    }
}

impl EndpointResolver for PolicyEndpoints {
    fn resolve(&self, tenant: &str) -> Option<Endpoint> {
        let p = self.policy.get();
        let hook = p.tenant(tenant)?.crm_webhook.as_ref()?;
        Some(Endpoint {
            url: hook.url.clone(),
            outbound_key: hook.outbound_key.expose().to_string(),
            signing_secret: hook.signing_secret.as_ref().map(|s| {
                c2c_crm_webhooks::sign::decode_secret(s.expose())
                    .unwrap_or_else(|_| s.expose().as_bytes().to_vec())
            }),
            disabled: self.gone.read().contains(tenant),
        })
    }

    fn endpoint_gone(&self, tenant: &str) {
        tracing::warn!(tenant, "CRM webhook endpoint answered 410 Gone; deliveries for this tenant are parked until the policy changes");
        self.gone.write().insert(tenant.to_string());
    }
}
