//! `[webhooks]`: how CRM webhooks are delivered (timeout, retry horizon, concurrency,
//! private targets).

use std::time::Duration;

use super::Errs;
use crate::file::WebhooksSection;
use crate::policy::WebhookPolicy;

pub(super) fn validate(w: &WebhooksSection, e: &mut Errs<'_>) -> WebhookPolicy {
    let timeout = w.timeout_seconds.unwrap_or(15);
    if !(1..=60).contains(&timeout) {
        e.push("webhooks.timeout_seconds", "must be between 1 and 60");
    }
    let max_age = w.max_age_hours.unwrap_or(72);
    if !(24..=24 * 30).contains(&max_age) {
        e.push(
            "webhooks.max_age_hours",
            "must be between 24 and 720 (retries last at least a day)",
        );
    }
    let conc = w.per_tenant_concurrency.unwrap_or(4);
    if !(1..=64).contains(&conc) {
        e.push(
            "webhooks.per_tenant_concurrency",
            "must be between 1 and 64",
        );
    }
    WebhookPolicy {
        timeout: Duration::from_secs(timeout),
        max_age: Duration::from_secs(max_age * 3600),
        per_tenant_concurrency: conc,
        allow_private_targets: w.allow_private_targets.unwrap_or(false),
    }
}
