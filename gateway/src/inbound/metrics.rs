//! The inbound path's own series, registered by [`super::InboundService::new`].

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Clone)]
pub struct InboundMetrics {
    /// `c2c_inbound_offers_total{tenant,outcome}`: offers to agents by how they ended
    /// (accepted, rejected, timeout, cancelled, failed).
    pub offers: IntCounterVec,
    /// `c2c_inbound_lookups_total{tenant,outcome}`: CRM lead lookups (found, none,
    /// timeout, error).
    pub lookups: IntCounterVec,
    /// `c2c_inbound_refused_total{reason}`: held calls refused before they rang an
    /// agent (no_agent, concurrent_calls, store, queue_full, no_tenant, draining, full).
    pub refused: IntCounterVec,
    /// `c2c_inbound_calls`: inbound calls this process rings or connects now.
    pub ringing: IntGauge,
    /// `c2c_inbound_incoming_delay_seconds`: from the edge holding the INVITE to the
    /// first agent's `incoming` event being queued (lead wait included).
    pub incoming_delay: Histogram,
}

impl InboundMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let offers = IntCounterVec::new(
            Opts::new(
                "c2c_inbound_offers_total",
                "Inbound call offers to agents, by outcome",
            ),
            &["tenant", "outcome"],
        )?;
        let lookups = IntCounterVec::new(
            Opts::new(
                "c2c_inbound_lookups_total",
                "CRM lead lookups of inbound calls, by outcome",
            ),
            &["tenant", "outcome"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "c2c_inbound_refused_total",
                "Inbound calls refused before any agent was offered them, by reason",
            ),
            &["reason"],
        )?;
        let ringing = IntGauge::new(
            "c2c_inbound_calls",
            "Inbound calls this process is ringing or connecting",
        )?;
        let incoming_delay = Histogram::with_opts(
            HistogramOpts::new(
                "c2c_inbound_incoming_delay_seconds",
                "From the SIP edge holding an inbound INVITE to the first incoming event",
            )
            .buckets(exponential_buckets(0.001, 2.0, 14)?),
        )?;
        registry.register(Box::new(offers.clone()))?;
        registry.register(Box::new(lookups.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(ringing.clone()))?;
        registry.register(Box::new(incoming_delay.clone()))?;
        Ok(Self {
            offers,
            lookups,
            refused,
            ringing,
            incoming_delay,
        })
    }
}
