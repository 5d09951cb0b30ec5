//! Reading tenants' DND and consent lists (`c2c_dlt::ListRegistry`) when the gateway
//! starts and with every policy reload, with the log lines and metrics an operator
//! needs to see a list that did not load.
//!
//! A list file is part of the policy directory, so changing it (size or modification
//! time: `reload::fingerprint` does not hash large files) triggers a reload like any
//! policy edit; the lists are read before the new policy is swapped in, so a call never
//! meets a policy naming a list that is not read yet.

use c2c_dlt::{DltRegistry, ListKind};
use c2c_metrics::GatewayMetrics;
use c2c_tenancy::Policy;

/// Reads what changed (blocking: big files take a second per ten million numbers; call
/// it from a blocking thread once serving).
pub fn reload(dlt: &DltRegistry, policy: &Policy, metrics: &GatewayMetrics) {
    for r in dlt
        .lists()
        .reload(policy, policy.gateway.dlt.max_list_numbers)
    {
        let list = r.kind.as_str();
        match &r.outcome {
            Ok(n) => {
                metrics
                    .dlt_list_reloads
                    .with_label_values(&[&r.tenant, list, "read"])
                    .inc();
                tracing::info!(tenant = %r.tenant, list, numbers = n, "DLT list read");
            }
            Err(why) => {
                metrics
                    .dlt_list_reloads
                    .with_label_values(&[&r.tenant, list, "failed"])
                    .inc();
                tracing::error!(tenant = %r.tenant, list, reason = %why, "DLT list could not be read; the copy read before stays in force (none: promotional calls are refused)");
            }
        }
    }
    metrics.dlt_list_numbers.reset();
    for t in policy.tenants.values() {
        for kind in [ListKind::Dnd, ListKind::Consent] {
            if let Some(set) = dlt.lists().get(&t.id, kind).and_then(|l| l.set.clone()) {
                metrics
                    .dlt_list_numbers
                    .with_label_values(&[&t.id, kind.as_str()])
                    .set(i64::try_from(set.len()).unwrap_or(i64::MAX));
            }
        }
    }
}
