//! Adapters that let `c2c-crm-webhooks` deliver from `c2c-callstate`'s outbox with the
//! endpoints from policy. Field names match one to one, so these are plain maps.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use c2c_callstate::{OutboxEntry, OutboxState, SledCallStore};
use c2c_crm_webhooks::{Endpoint, EndpointResolver, JobState, OutboxSource, OutboxStats, SourceError, WebhookJob};
use parking_lot::RwLock;

use crate::app::PolicyHandle;

pub struct StoreOutbox {
    pub store: SledCallStore,
}

fn to_job(e: OutboxEntry) -> WebhookJob {
    WebhookJob {
        seq: e.seq,
        webhook_id: e.webhook_id,
        call_id: e.call_id,
        tenant: e.tenant,
        payload_json: e.payload_json,
        created_ms: e.created_ms,
        attempts: e.attempts,
        next_attempt_ms: e.next_attempt_ms,
        state: match e.state {
            OutboxState::Pending => JobState::Pending,
            OutboxState::Delivered => JobState::Delivered,
            OutboxState::Failed => JobState::Failed,
            OutboxState::Disabled => JobState::Disabled,
        },
        last_error: e.last_error,
        delivered_ms: e.delivered_ms,
    }
}

fn to_entry(j: &WebhookJob) -> OutboxEntry {
    OutboxEntry {
        seq: j.seq,
        webhook_id: j.webhook_id.clone(),
        call_id: j.call_id.clone(),
        tenant: j.tenant.clone(),
        payload_json: j.payload_json.clone(),
        created_ms: j.created_ms,
        attempts: j.attempts,
        next_attempt_ms: j.next_attempt_ms,
        state: match j.state {
            JobState::Pending => OutboxState::Pending,
            JobState::Delivered => OutboxState::Delivered,
            JobState::Failed => OutboxState::Failed,
            JobState::Disabled => OutboxState::Disabled,
        },
        last_error: j.last_error.clone(),
        delivered_ms: j.delivered_ms,
    }
}

fn src_err(e: c2c_callstate::StoreError) -> SourceError {
    SourceError::with_source("call store", e)
}

#[async_trait]
impl OutboxSource for StoreOutbox {
    async fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<WebhookJob>, SourceError> {
        Ok(self.store.outbox_due(now_ms, limit).map_err(src_err)?.into_iter().map(to_job).collect())
    }

    async fn update(&self, job: &WebhookJob) -> Result<(), SourceError> {
        self.store.outbox_update(&to_entry(job)).await.map_err(src_err)
    }

    async fn stats(&self) -> Result<OutboxStats, SourceError> {
        let (pending, oldest) = self.store.outbox_stats().map_err(src_err)?;
        Ok(OutboxStats {
            pending,
            oldest_pending_created_ms: oldest,
        })
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
            signing_secret: hook
                .signing_secret
                .as_ref()
                .map(|s| c2c_crm_webhooks::sign::decode_secret(s.expose()).unwrap_or_else(|_| s.expose().as_bytes().to_vec())),
            disabled: self.gone.read().contains(tenant),
        })
    }

    fn endpoint_gone(&self, tenant: &str) {
        tracing::warn!(tenant, "CRM webhook endpoint answered 410 Gone; deliveries for this tenant are parked until the policy changes");
        self.gone.write().insert(tenant.to_string());
    }
}
