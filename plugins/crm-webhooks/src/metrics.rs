//! Prometheus metrics. Labels are bounded: `tenant` (from policy) and `result`;
//! never call ids or numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGauge, Opts, Registry};

/// `result` label of `c2c_webhook_deliveries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryResult {
    Delivered,
    Retry,
    Failed,
    Disabled,
}

impl DeliveryResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Retry => "retry",
            DeliveryResult::Failed => "failed",
            DeliveryResult::Disabled => "disabled",
        }
    }
}

/// Handles to the webhook metrics (cheap to clone; clones share the values).
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    deliveries: IntCounterVec,
    pending: IntGauge,
    oldest_age: Gauge,
    backlog_age: GaugeVec,
    // Tenants whose backlog gauge was set, so an emptied backlog reads 0 rather than
    // keeping its last age. Bounded by the tenants in policy.
    backlog_tenants: Arc<Mutex<BTreeSet<String>>>,
}

// The handles registered in the default registry, so a second `register()` (tests,
// a restarted subsystem) returns the live ones instead of detached copies.
static DEFAULT: Mutex<Option<WebhookMetrics>> = Mutex::new(None);

impl WebhookMetrics {
    /// Fresh collectors registered nowhere (tests, or a caller with its own registry).
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            deliveries: IntCounterVec::new(
                Opts::new(
                    "c2c_webhook_deliveries_total",
                    "CRM webhook delivery attempts by outcome",
                ),
                &["tenant", "result"],
            )?,
            pending: IntGauge::new(
                "c2c_webhook_outbox_pending",
                "CRM webhooks waiting in the outbox (pending state)",
            )?,
            oldest_age: Gauge::new(
                "c2c_webhook_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending CRM webhook",
            )?,
            backlog_age: GaugeVec::new(
                Opts::new(
                    "c2c_webhook_backlog_oldest_age_seconds",
                    "Age of the tenant's oldest undelivered CRM webhook (pending, not given \
                     up); 0 when its backlog is empty",
                ),
                &["tenant"],
            )?,
            backlog_tenants: Arc::new(Mutex::new(BTreeSet::new())),
        })
    }

    /// The metrics in `prometheus::default_registry()`. Idempotent; if another
    /// component already registered the same names, that `AlreadyReg` is tolerated
    /// (logged) rather than failing startup.
    pub fn register() -> Result<Self, prometheus::Error> {
        let mut slot = DEFAULT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let m = Self::new()?;
        m.register_in(prometheus::default_registry())?;
        *slot = Some(m.clone());
        Ok(m)
    }

    /// Register these collectors in `registry`, tolerating `AlreadyReg`.
    pub fn register_in(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let collectors: [Box<dyn prometheus::core::Collector>; 4] = [
            Box::new(self.deliveries.clone()),
            Box::new(self.pending.clone()),
            Box::new(self.oldest_age.clone()),
            Box::new(self.backlog_age.clone()),
        ];
        for c in collectors {
            match registry.register(c) {
                Ok(()) => {}
                Err(prometheus::Error::AlreadyReg) => {
                    tracing::warn!("webhook metric already registered elsewhere; keeping it");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Count one handled attempt.
    pub fn delivery(&self, tenant: &str, result: DeliveryResult) {
        self.deliveries
            .with_label_values(&[tenant, result.as_str()])
            .inc();
    }

    /// Current value of `c2c_webhook_deliveries_total{tenant,result}`.
    pub fn deliveries(&self, tenant: &str, result: DeliveryResult) -> u64 {
        self.deliveries
            .with_label_values(&[tenant, result.as_str()])
            .get()
    }

    /// Set the outbox gauges.
    pub fn set_outbox(&self, pending: u64, oldest_age_seconds: f64) {
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.oldest_age.set(oldest_age_seconds);
    }

    /// Set `c2c_webhook_backlog_oldest_age_seconds{tenant}` from each tenant's oldest
    /// pending webhook age; tenants set before and absent now (backlog drained) read 0.
    pub fn set_backlog(&self, oldest_age_seconds: &BTreeMap<String, f64>) {
        let mut known = self
            .backlog_tenants
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for tenant in known.iter() {
            if !oldest_age_seconds.contains_key(tenant) {
                self.backlog_age.with_label_values(&[tenant]).set(0.0);
            }
        }
        for (tenant, age) in oldest_age_seconds {
            self.backlog_age.with_label_values(&[tenant]).set(*age);
            if !known.contains(tenant) {
                known.insert(tenant.clone());
            }
        }
    }

    /// Current `c2c_webhook_backlog_oldest_age_seconds{tenant}` (0 if never set).
    pub fn backlog_oldest_age_seconds(&self, tenant: &str) -> f64 {
        self.backlog_age.with_label_values(&[tenant]).get()
    }

    pub fn pending(&self) -> i64 {
        self.pending.get()
    }

    pub fn oldest_pending_age_seconds(&self) -> f64 {
        self.oldest_age.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_exposes_by_tenant_and_result() {
        let m = WebhookMetrics::new().unwrap();
        let reg = Registry::new();
        m.register_in(&reg).unwrap();
        m.delivery("acme", DeliveryResult::Delivered);
        m.delivery("acme", DeliveryResult::Retry);
        m.delivery("acme", DeliveryResult::Retry);
        m.set_outbox(3, 12.5);
        m.set_backlog(&BTreeMap::from([("acme".to_string(), 12.5)]));
        assert_eq!(m.deliveries("acme", DeliveryResult::Retry), 2);
        assert_eq!(m.deliveries("beta", DeliveryResult::Retry), 0);
        let names: Vec<String> = reg
            .gather()
            .iter()
            .map(|f| f.get_name().to_string())
            .collect();
        assert!(names.contains(&"c2c_webhook_deliveries_total".to_string()));
        assert!(names.contains(&"c2c_webhook_outbox_pending".to_string()));
        assert!(names.contains(&"c2c_webhook_outbox_oldest_pending_age_seconds".to_string()));
        assert!(names.contains(&"c2c_webhook_backlog_oldest_age_seconds".to_string()));
        // Registering the same collectors again is tolerated.
        m.register_in(&reg).unwrap();
    }

    #[test]
    fn backlog_age_is_per_tenant_and_drops_to_zero_when_drained() {
        let m = WebhookMetrics::new().unwrap();
        m.set_backlog(&BTreeMap::from([
            ("acme".to_string(), 90.0),
            ("beta".to_string(), 5.0),
        ]));
        assert_eq!(m.backlog_oldest_age_seconds("acme"), 90.0);
        assert_eq!(m.backlog_oldest_age_seconds("beta"), 5.0);
        m.set_backlog(&BTreeMap::from([("beta".to_string(), 10.0)]));
        assert_eq!(m.backlog_oldest_age_seconds("acme"), 0.0);
        assert_eq!(m.backlog_oldest_age_seconds("beta"), 10.0);
        m.set_backlog(&BTreeMap::new());
        assert_eq!(m.backlog_oldest_age_seconds("beta"), 0.0);
    }

    #[test]
    fn register_default_is_idempotent_and_shared() {
        let a = WebhookMetrics::register().unwrap();
        let b = WebhookMetrics::register().unwrap();
        a.delivery("shared-tenant", DeliveryResult::Failed);
        assert_eq!(b.deliveries("shared-tenant", DeliveryResult::Failed), 1);
        // A foreign collector with the same name does not make registration fail.
        let other = WebhookMetrics::new().unwrap();
        other.register_in(prometheus::default_registry()).unwrap();
    }
}
