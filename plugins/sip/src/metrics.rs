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

/// What became of an inbound INVITE: the `outcome` label of `c2c_sip_inbound_total`.
/// A call counts once when it is decided at the door (`held` or one refusal) and once
/// more when its hold ends (`cancelled`, `forwarded`, `rejected`, `expired`); a
/// forwarded call the gateway gives up on before LiveKit answered counts a third time,
/// as `abandoned` (so `held` stays the sum of the four hold outcomes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundOutcome {
    /// Accepted: 100 and 180 sent, reported to the gateway.
    Held,
    /// 404: the number called is no tenant's inbound number.
    UnknownDid,
    /// 403: the source is not one of the number's trunk sources.
    ForbiddenSource,
    /// 488: no SDP offer (delayed offer; LiveKit does not support it), or on an
    /// anchored trunk an offer the edge cannot anchor.
    NoSdp,
    /// 503 + Retry-After: the tenant's concurrency or rate cap, or the edge's tables.
    Limited,
    /// A refusal for a malformed or looping request (482, 4xx from the Request-URI).
    Invalid,
    /// Held, then the carrier cancelled: 487.
    Cancelled,
    /// Held, then forwarded to LiveKit by the gateway.
    Forwarded,
    /// Held, then rejected by the gateway with its code.
    Rejected,
    /// Held for `inbound_hold_max`: 480.
    Expired,
    /// Forwarded, then rejected by the gateway before LiveKit's final (LiveKit silent,
    /// or the gateway's connect allowance over): its code to the carrier at once,
    /// CANCEL to LiveKit.
    Abandoned,
}

impl InboundOutcome {
    pub const ALL: [InboundOutcome; 11] = [
        InboundOutcome::Held,
        InboundOutcome::UnknownDid,
        InboundOutcome::ForbiddenSource,
        InboundOutcome::NoSdp,
        InboundOutcome::Limited,
        InboundOutcome::Invalid,
        InboundOutcome::Cancelled,
        InboundOutcome::Forwarded,
        InboundOutcome::Rejected,
        InboundOutcome::Expired,
        InboundOutcome::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InboundOutcome::Held => "held",
            InboundOutcome::UnknownDid => "unknown_did",
            InboundOutcome::ForbiddenSource => "forbidden_source",
            InboundOutcome::NoSdp => "no_sdp",
            InboundOutcome::Limited => "limited",
            InboundOutcome::Invalid => "invalid",
            InboundOutcome::Cancelled => "cancelled",
            InboundOutcome::Forwarded => "forwarded",
            InboundOutcome::Rejected => "rejected",
            InboundOutcome::Expired => "expired",
            InboundOutcome::Abandoned => "abandoned",
        }
    }
}

#[derive(Clone)]
pub struct SipMetrics {
    /// `c2c_sip_responses_total{trunk,code}`: responses to call INVITEs sent back to
    /// the caller (relayed or generated), except 100: to LiveKit for outbound calls, to
    /// the carrier for inbound ones (the edge's own 180 once per call, LiveKit's final).
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
    /// `c2c_sip_inbound_total{outcome}`: inbound INVITEs by [`InboundOutcome`].
    pub inbound: IntCounterVec,
    /// `c2c_sip_transactions`: open proxy transactions.
    pub transactions: IntGauge,
    /// `c2c_sip_dialogs`: calls tracked (early or confirmed).
    pub dialogs: IntGauge,
    /// Anchored media (`c2c_sip_media_*`).
    pub media: crate::media::metrics::MediaMetrics,
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
            inbound: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_inbound_total",
                    "Inbound INVITEs from carriers, by outcome (held or refused at the door; \
                     cancelled, forwarded, rejected or expired after the hold; abandoned: \
                     forwarded, then rejected before LiveKit answered)",
                ),
                &["outcome"],
            )?,
            transactions: IntGauge::new("c2c_sip_transactions", "Open SIP proxy transactions")?,
            dialogs: IntGauge::new("c2c_sip_dialogs", "Calls tracked by the SIP edge")?,
            media: crate::media::metrics::MediaMetrics::register(r)?,
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
        r.register(Box::new(m.inbound.clone()))?;
        for o in InboundOutcome::ALL {
            m.inbound.with_label_values(&[o.as_str()]);
        }
        r.register(Box::new(m.transactions.clone()))?;
        r.register(Box::new(m.dialogs.clone()))?;
        Ok(m)
    }

    pub fn inbound(&self, outcome: InboundOutcome) {
        self.inbound.with_label_values(&[outcome.as_str()]).inc();
    }

    pub fn response(&self, trunk: &str, code: u16) {
        self.responses
            .with_label_values(&[trunk, &code_label(code)])
            .inc();
    }
}
