//! The per-call DLT rules at the API (docs/dlt.md): `/click2call` checks a new call,
//! `/connect` checks it again at the moment it dials (the window may have closed, the
//! DND list may have changed, the trunk's category may have been edited since).

use c2c_dlt::{CallFacts, DltRefusal};
use c2c_plugin_api::ApiError;
use c2c_tenancy::{CallCategory, Policy, Tenant};
use http::StatusCode;

use crate::api::errors;
use crate::app::App;
use crate::clock::now_ms;

/// The optional `call_category` of a click2call request; legacy CRMs send none.
pub(crate) fn requested_category(field: Option<&str>) -> Result<Option<CallCategory>, ApiError> {
    let Some(c) = field.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    CallCategory::parse(c).map(Some).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_call_category",
            format!(
                "call_category {c:?} is not one of promotional, service, transactional; \
                 leave it out to use the trunk's"
            ),
        )
    })
}

/// The call's category if every rule lets it through; a refusal is counted by tenant
/// and rule and mapped to its HTTP error.
pub(crate) fn check(
    app: &App,
    policy: &Policy,
    tenant: &Tenant,
    trunk_label: &str,
    category: Option<CallCategory>,
    caller_id: &str,
    number: &str,
) -> Result<CallCategory, ApiError> {
    let Some(trunk) = tenant.trunk(trunk_label) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_trunk",
            format!("the call's trunk '{trunk_label}' is no longer in the tenant's policy"),
        ));
    };
    let facts = CallFacts {
        trunk,
        category,
        caller_id,
        number,
    };
    app.dlt()
        .check_call(&policy.gateway.dlt, tenant, &facts, now_ms())
        .map_err(|r| {
            record(app, tenant, &facts, &r, "api");
            errors::dlt_refused(&r, now_ms())
        })
}

/// Counts a refusal by tenant and rule and records it for the console and the audit
/// export; `at` is `api` or `sip`.
pub(crate) fn record(app: &App, tenant: &Tenant, call: &CallFacts<'_>, r: &DltRefusal, at: &str) {
    app.metrics()
        .dlt_refusals
        .with_label_values(&[&tenant.id, r.rule.as_str()])
        .inc();
    tracing::info!(tenant = %tenant.id, trunk = %call.trunk.label, rule = r.rule.as_str(), at, "call refused by a DLT rule");
    app.refusals().record(crate::dlt_audit::Refusal {
        at_ms: now_ms(),
        tenant: tenant.id.clone(),
        rule: r.rule.as_str().to_string(),
        category: call
            .category
            .unwrap_or(call.trunk.category)
            .as_str()
            .to_string(),
        trunk: call.trunk.label.clone(),
        caller_id: call.caller_id.to_string(),
        number: call.number.to_string(),
        at: at.to_string(),
        message: r.message.clone(),
    });
}
