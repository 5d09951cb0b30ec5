//! Prometheus series of the SIP edge. Labels are bounded: `trunk` and `tenant` come
//! from policy, `code` from a fixed list; never a call id or a number.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// Codes that get their own `code` label value; everything else is `other`.
pub const CODES: &[u16] = &[
    180, 183, 200, 400, 403, 404, 407, 408, 480, 483, 486, 487, 488, 500, 502, 503, 504, 600, 603,
];

/// The `code` label for a status code.
pub fn code_label(code: u16) -> String {
    if CODES.contains(&code) {
        code.to_string()
    } else {
        "other".to_string()
    }
}

#[derive(Clone)]
pub struct SipMetrics {
    /// `c2c_sip_responses_total{trunk,code}`: responses to call INVITEs sent back to
    /// LiveKit (relayed or generated), except 100.
    pub responses: IntCounterVec,
    /// `c2c_sip_post_dial_delay_seconds{trunk}`: INVITE -> first 18x.
    pub post_dial_delay: HistogramVec,
    /// `c2c_sip_setup_seconds{trunk}`: INVITE -> 200.
    pub setup: HistogramVec,
    /// `c2c_sip_refused_sources_total`: requests from sources not on the allow-list.
    pub refused_sources: IntCounter,
    /// `c2c_sip_flood_dropped_total`: messages over a source's rate.
    pub flood_dropped: IntCounter,
    /// `c2c_sip_scanners_dropped_total`: requests from known scanners.
    pub scanners_dropped: IntCounter,
    /// `c2c_sip_malformed_total{action}`: `rejected` (answered 4xx/505) or `dropped`.
    pub malformed: IntCounterVec,
    /// `c2c_sip_limited_total{tenant,limit}`: calls refused by `cps` or `concurrent` caps.
    pub limited: IntCounterVec,
    /// `c2c_sip_dlt_blocked_total{tenant}`: INVITEs refused because DLT outbound is off.
    pub dlt_blocked: IntCounterVec,
    /// `c2c_sip_unmatched_responses_total`: responses that match no transaction.
    pub unmatched: IntCounter,
    /// `c2c_sip_send_errors_total{transport}`.
    pub send_errors: IntCounterVec,
    /// `c2c_sip_udp_receive_drops_total`: datagrams the kernel dropped on the UDP socket
    /// (receive buffer full), copied from `/proc/net/udp` every few seconds.
    pub udp_receive_drops: IntCounter,
    /// `c2c_sip_transactions`: open proxy transactions.
    pub transactions: IntGauge,
    /// `c2c_sip_dialogs`: calls tracked (early or confirmed).
    pub dialogs: IntGauge,
}

impl SipMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        let delay_buckets = vec![
            0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0,
        ];
        let setup_buckets = vec![
            0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 45.0, 60.0, 90.0,
        ];
        let m = Self {
            responses: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_responses_total",
                    "SIP responses to call INVITEs, by trunk and code",
                ),
                &["trunk", "code"],
            )?,
            post_dial_delay: HistogramVec::new(
                HistogramOpts::new(
                    "c2c_sip_post_dial_delay_seconds",
                    "INVITE to first 18x, by trunk",
                )
                .buckets(delay_buckets),
                &["trunk"],
            )?,
            setup: HistogramVec::new(
                HistogramOpts::new("c2c_sip_setup_seconds", "INVITE to 200 OK, by trunk")
                    .buckets(setup_buckets),
                &["trunk"],
            )?,
            refused_sources: IntCounter::new(
                "c2c_sip_refused_sources_total",
                "SIP requests refused because the source is not an allowed LiveKit node",
            )?,
            flood_dropped: IntCounter::new(
                "c2c_sip_flood_dropped_total",
                "SIP messages dropped by flood limits",
            )?,
            scanners_dropped: IntCounter::new(
                "c2c_sip_scanners_dropped_total",
                "SIP requests dropped because the User-Agent is a known scanner",
            )?,
            malformed: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_malformed_total",
                    "Malformed SIP messages, rejected or dropped",
                ),
                &["action"],
            )?,
            limited: IntCounterVec::new(
                Opts::new("c2c_sip_limited_total", "Calls refused by per-tenant caps"),
                &["tenant", "limit"],
            )?,
            dlt_blocked: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_dlt_blocked_total",
                    "INVITEs refused at the SIP edge: DLT outbound disabled",
                ),
                &["tenant"],
            )?,
            unmatched: IntCounter::new(
                "c2c_sip_unmatched_responses_total",
                "SIP responses that matched no transaction and were dropped",
            )?,
            send_errors: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_send_errors_total",
                    "SIP messages that could not be sent",
                ),
                &["transport"],
            )?,
            udp_receive_drops: IntCounter::new(
                "c2c_sip_udp_receive_drops_total",
                "SIP datagrams the kernel dropped because the UDP receive buffer was full",
            )?,
            transactions: IntGauge::new("c2c_sip_transactions", "Open SIP proxy transactions")?,
            dialogs: IntGauge::new("c2c_sip_dialogs", "Calls tracked by the SIP edge")?,
        };
        r.register(Box::new(m.responses.clone()))?;
        r.register(Box::new(m.post_dial_delay.clone()))?;
        r.register(Box::new(m.setup.clone()))?;
        r.register(Box::new(m.refused_sources.clone()))?;
        r.register(Box::new(m.flood_dropped.clone()))?;
        r.register(Box::new(m.scanners_dropped.clone()))?;
        r.register(Box::new(m.malformed.clone()))?;
        r.register(Box::new(m.limited.clone()))?;
        r.register(Box::new(m.dlt_blocked.clone()))?;
        r.register(Box::new(m.unmatched.clone()))?;
        r.register(Box::new(m.send_errors.clone()))?;
        r.register(Box::new(m.udp_receive_drops.clone()))?;
        r.register(Box::new(m.transactions.clone()))?;
        r.register(Box::new(m.dialogs.clone()))?;
        Ok(m)
    }

    pub fn response(&self, trunk: &str, code: u16) {
        self.responses
            .with_label_values(&[trunk, &code_label(code)])
            .inc();
    }
}
