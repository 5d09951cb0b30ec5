//! The CRM endpoints the deliverer posts to, from the policy in force. (The outbox it
//! delivers from is the call store's, through `c2c_crm_webhooks::CallStoreOutbox`.)

use std::collections::HashSet;
use std::sync::Arc;

use c2c_crm_webhooks::{Endpoint, EndpointResolver};
use parking_lot::RwLock;

use crate::app::PolicyHandle;

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
