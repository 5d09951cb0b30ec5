//! What the edge reads from the rest of the gateway: the current policy (hot reload)
//! and the DLT gate.

use std::sync::Arc;

use c2c_dlt::{DltPending, DltRegistry};
use c2c_tenancy::{Policy, Tenant};

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

/// The DLT outbound gate; implemented by [`DltRegistry`].
pub trait OutboundGate: Send + Sync + 'static {
    fn check(&self, tenant: &Tenant) -> Result<(), DltPending>;
}

impl OutboundGate for DltRegistry {
    fn check(&self, tenant: &Tenant) -> Result<(), DltPending> {
        DltRegistry::check(self, tenant)
    }
}
