//! The fleet node's own series.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
        })
    }
}
