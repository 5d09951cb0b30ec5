//! The fleet node's own series, and its connection pool's (`c2c_store_pool_*`).

use std::sync::Mutex;

use c2c_store_pg::PoolStats;
use prometheus::{Counter, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct FleetMetrics {
    /// `c2c_fleet_lease_renewals_total{outcome}`: ok, error. Errors in a row longer than
    /// the lease mean other nodes take this node's calls over.
    pub renewals: IntCounterVec,
    /// `c2c_fleet_lease_until_ms`: when this node's lease runs out (Unix ms).
    pub lease_until: IntGauge,
    /// `c2c_fleet_calls_taken_over_total`: open calls this node took over from nodes
    /// whose lease ran out.
    pub taken_over: IntCounter,
    /// The connection pool's series, sampled by [`PoolMetrics::sample`].
    pub pool: PoolMetrics,
}

impl FleetMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let renewals = IntCounterVec::new(
            Opts::new(
                "c2c_fleet_lease_renewals_total",
                "Renewals of this node's lease on the calls it drives, by outcome",
            ),
            &["outcome"],
        )?;
        let lease_until = IntGauge::new(
            "c2c_fleet_lease_until_ms",
            "When this node's lease on its calls runs out, Unix milliseconds",
        )?;
        let taken_over = IntCounter::new(
            "c2c_fleet_calls_taken_over_total",
            "Open calls taken over from fleet nodes whose lease ran out",
        )?;
        registry.register(Box::new(renewals.clone()))?;
        registry.register(Box::new(lease_until.clone()))?;
        registry.register(Box::new(taken_over.clone()))?;
        Ok(Self {
            renewals,
            lease_until,
            taken_over,
            pool: PoolMetrics::register(registry)?,
        })
    }
}

/// The node's PostgreSQL connections (`docs/fleet.md`, "Sizing the pool"): whether
/// `store.pool_size` is too small for the load shows as operations waiting for a
/// connection, and at worst as checkouts that found none in time (answered 503).
#[derive(Clone)]
pub struct PoolMetrics {
    /// `c2c_store_pool_connections{state}`: busy (handed out) and idle.
    connections: IntGaugeVec,
    /// `c2c_store_pool_max_connections`: `store.pool_size`.
    max: IntGauge,
    /// `c2c_store_pool_waiting`: operations waiting for a connection.
    waiting: IntGauge,
    /// `c2c_store_pool_checkouts_total`.
    checkouts: IntCounter,
    /// `c2c_store_pool_wait_seconds_total`: what the checkouts waited, summed.
    wait_seconds: Counter,
    /// `c2c_store_pool_exhausted_total`: checkouts with no connection free in time.
    exhausted: IntCounter,
    /// The store's totals at the last sample: the counters move by the difference.
    last: std::sync::Arc<Mutex<PoolStats>>,
}

impl PoolMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            connections: IntGaugeVec::new(
                Opts::new(
                    "c2c_store_pool_connections",
                    "This node's PostgreSQL connections, busy (handed out) or idle",
                ),
                &["state"],
            )?,
            max: IntGauge::new(
                "c2c_store_pool_max_connections",
                "The most PostgreSQL connections this node opens (store.pool_size)",
            )?,
            waiting: IntGauge::new(
                "c2c_store_pool_waiting",
                "Store operations waiting for a free PostgreSQL connection",
            )?,
            checkouts: IntCounter::new(
                "c2c_store_pool_checkouts_total",
                "PostgreSQL connections taken from the pool, whatever the outcome",
            )?,
            wait_seconds: Counter::new(
                "c2c_store_pool_wait_seconds_total",
                "Time store operations waited for a PostgreSQL connection, summed",
            )?,
            exhausted: IntCounter::new(
                "c2c_store_pool_exhausted_total",
                "Checkouts that found no PostgreSQL connection free within the statement timeout",
            )?,
            last: Default::default(),
        };
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.max.clone()))?;
        registry.register(Box::new(m.waiting.clone()))?;
        registry.register(Box::new(m.checkouts.clone()))?;
        registry.register(Box::new(m.wait_seconds.clone()))?;
        registry.register(Box::new(m.exhausted.clone()))?;
        Ok(m)
    }

    /// Takes in the pool's state now (`PgStore::pool_stats`).
    pub fn sample(&self, now: PoolStats) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let busy = now.open.saturating_sub(now.idle);
        self.connections
            .with_label_values(&["busy"])
            .set(gauge(busy));
        self.connections
            .with_label_values(&["idle"])
            .set(gauge(now.idle));
        self.max.set(gauge(now.max_size));
        self.waiting.set(gauge(now.waiting));
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        self.checkouts
            .inc_by(now.checkouts.saturating_sub(last.checkouts));
        self.exhausted
            .inc_by(now.exhausted.saturating_sub(last.exhausted));
        let waited_ns = now.wait_ns.saturating_sub(last.wait_ns);
        self.wait_seconds.inc_by(waited_ns as f64 / 1e9);
        *last = now;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn value(r: &Registry, name: &str, label: Option<&str>) -> f64 {
        let fam = r
            .gather()
            .into_iter()
            .find(|f| f.get_name() == name)
            .unwrap();
        let m = fam
            .get_metric()
            .iter()
            .find(|m| label.is_none_or(|l| m.get_label().iter().any(|p| p.get_value() == l)))
            .unwrap();
        if fam.get_field_type() == prometheus::proto::MetricType::COUNTER {
            m.get_counter().get_value()
        } else {
            m.get_gauge().get_value()
        }
    }

    #[test]
    fn samples_set_the_gauges_and_move_the_counters_by_the_difference() {
        let r = Registry::new();
        let m = FleetMetrics::register(&r).unwrap().pool;
        let first = PoolStats {
            max_size: 4,
            open: 3,
            idle: 1,
            waiting: 2,
            checkouts: 10,
            wait_ns: 1_500_000_000,
            exhausted: 1,
        };
        m.sample(first);
        m.sample(PoolStats {
            idle: 3,
            waiting: 0,
            checkouts: 25,
            wait_ns: 2_000_000_000,
            ..first
        });
        assert_eq!(value(&r, "c2c_store_pool_connections", Some("busy")), 0.0);
        assert_eq!(value(&r, "c2c_store_pool_connections", Some("idle")), 3.0);
        assert_eq!(value(&r, "c2c_store_pool_max_connections", None), 4.0);
        assert_eq!(value(&r, "c2c_store_pool_waiting", None), 0.0);
        assert_eq!(value(&r, "c2c_store_pool_checkouts_total", None), 25.0);
        assert_eq!(value(&r, "c2c_store_pool_exhausted_total", None), 1.0);
        let waited = value(&r, "c2c_store_pool_wait_seconds_total", None);
        assert!((waited - 2.0).abs() < 1e-9, "{waited}");
    }
}
