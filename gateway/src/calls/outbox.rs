//! Adapters that let `c2c-crm-webhooks` deliver from `c2c-callstate`'s outbox with the
//! endpoints from policy. Field names match one to one, so these are plain maps.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use c2c_callstate::{CallStore, OutboxEntry, OutboxState};
use c2c_crm_webhooks::{
    Admit, Eligible, Endpoint, EndpointResolver, JobState, OutboxSource, OutboxStats, SourceError,
    WebhookJob,
};
use parking_lot::RwLock;

use crate::app::PolicyHandle;

pub struct StoreOutbox {
    pub store: Arc<dyn CallStore>,
}

pub fn job_of(e: OutboxEntry) -> WebhookJob {
    // The deliverer's retry budget counts from `created_ms`; a replayed entry gets a
    // fresh budget from the moment it was re-queued.
    let created_ms = e.replayed_ms.unwrap_or(e.created_ms);
    WebhookJob {
        seq: e.seq,
        webhook_id: e.webhook_id,
        call_id: e.call_id,
        tenant: e.tenant,
        payload_json: e.payload_json,
        created_ms,
        attempts: e.attempts,
        next_attempt_ms: e.next_attempt_ms,
        state: job_state(e.state),
        last_error: e.last_error,
        delivered_ms: e.delivered_ms,
        retry_after: e.retry_after,
    }
}

/// Copies what delivery may change onto the stored entry; identity fields (payload,
/// webhook id, tenant, timestamps) are the store's and never come back from the
/// deliverer.
fn apply_progress(e: &mut OutboxEntry, j: &WebhookJob) {
    e.attempts = j.attempts;
    e.next_attempt_ms = j.next_attempt_ms;
    e.state = outbox_state(j.state);
    e.last_error = j.last_error.clone();
    e.delivered_ms = j.delivered_ms;
    e.retry_after = j.retry_after;
}

fn job_state(s: OutboxState) -> JobState {
    match s {
        OutboxState::Pending => JobState::Pending,
        OutboxState::Delivered => JobState::Delivered,
        OutboxState::Failed => JobState::Failed,
        OutboxState::Disabled => JobState::Disabled,
    }
}

fn outbox_state(s: JobState) -> OutboxState {
    match s {
        JobState::Pending => OutboxState::Pending,
        JobState::Delivered => OutboxState::Delivered,
        JobState::Failed => OutboxState::Failed,
        JobState::Disabled => OutboxState::Disabled,
    }
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
    ) -> Result<Vec<WebhookJob>, SourceError> {
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
        Ok(due.into_iter().map(job_of).collect())
    }

    async fn update(&self, job: &WebhookJob) -> Result<(), SourceError> {
        let mut e = self
            .store
            .outbox_get(job.seq)
            .await
            .map_err(src_err)?
            .ok_or_else(|| SourceError::msg(format!("outbox entry {} vanished", job.seq)))?;
        apply_progress(&mut e, job);
        // Progress, not the webhook itself, so no fsync wait (see outbox_record_progress).
        self.store.outbox_record_progress(&e).await.map_err(src_err)
    }

    async fn stats(&self) -> Result<OutboxStats, SourceError> {
        let b = self.store.outbox_backlog().await.map_err(src_err)?;
        Ok(OutboxStats {
            pending: b.pending,
            oldest_pending_created_ms: b.oldest_created_ms,
            oldest_pending_by_tenant: b.oldest_by_tenant,
        })
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
