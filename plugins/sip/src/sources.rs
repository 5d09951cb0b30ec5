//! What the edge reads from the rest of the gateway: the current policy (hot reload)
//! and the DLT gate.

use std::sync::Arc;

use c2c_dlt::{CallFacts, DltPending, DltRefusal, DltRegistry};
use c2c_tenancy::{DltRules, Policy, Tenant};

/// The policy in force; called for every new call, so it must be cheap (an `ArcSwap`
/// load or a clone of an `Arc`).
pub trait PolicySource: Send + Sync + 'static {
    fn policy(&self) -> Arc<Policy>;
}

impl<F> PolicySource for F
where
    F: Fn() -> Arc<Policy> + Send + Sync + 'static,
{
    fn policy(&self) -> Arc<Policy> {
        self()
    }
}

/// A fixed policy (tests, or a gateway without reload).
pub struct StaticPolicy(pub Arc<Policy>);

impl PolicySource for StaticPolicy {
    fn policy(&self) -> Arc<Policy> {
        self.0.clone()
    }
}

/// The DLT gate: the outbound switch, then the per-call rules (caller-ID series,
/// calling hours, DND); implemented by [`DltRegistry`], and by the gateway, which also
/// counts refusals in `c2c_dlt_refusals_total`.
pub trait OutboundGate: Send + Sync + 'static {
    /// Whether the tenant's outbound calling is on at all.
    fn check(&self, tenant: &Tenant) -> Result<(), DltPending>;
    /// Whether this call may go, under the platform's `rules` as the policy in force
    /// states them.
    fn check_call(
        &self,
        rules: &DltRules,
        tenant: &Tenant,
        call: &CallFacts<'_>,
    ) -> Result<(), DltRefusal>;
}

impl OutboundGate for DltRegistry {
    fn check(&self, tenant: &Tenant) -> Result<(), DltPending> {
        DltRegistry::check(self, tenant)
    }

    fn check_call(
        &self,
        rules: &DltRules,
        tenant: &Tenant,
        call: &CallFacts<'_>,
    ) -> Result<(), DltRefusal> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        DltRegistry::check_call(self, rules, tenant, call, now_ms).map(|_| ())
    }
}
