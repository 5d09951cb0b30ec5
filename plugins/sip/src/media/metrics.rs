//! Prometheus series of anchored media. `trunk` comes from policy, `direction` and
//! `reason` from fixed lists; never a call id, an address or a number. A call's
//! packets, loss and jitter are counted when its relay stops (one observation per call
//! and direction), its events when they happen.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use c2c_media::{RelayReport, StreamReport};

#[derive(Clone)]
pub struct MediaMetrics {
    /// `c2c_sip_media_port_pairs_in_use`: pairs held by anchored calls (two per call).
    pub pairs_in_use: IntGauge,
    /// `c2c_sip_media_port_pairs`: pairs in the configured range.
    pub pairs: IntGauge,
    /// `c2c_sip_media_calls_total{trunk}`: calls anchored.
    pub calls: IntCounterVec,
    /// `c2c_sip_media_refused_total{reason}`: `ports_exhausted` (503) or `sdp` (488).
    pub refused: IntCounterVec,
    /// `c2c_sip_media_packets_total{trunk,direction}`: RTP relayed.
    pub packets: IntCounterVec,
    /// `c2c_sip_media_loss_ratio{trunk,direction}`: per call, RFC 3550 lost / expected.
    pub loss: HistogramVec,
    /// `c2c_sip_media_jitter_ms{trunk,direction}`: per call, RFC 3550 A.8 jitter.
    pub jitter: HistogramVec,
    /// `c2c_sip_media_events_total{trunk,event}`: `early_media`, `one_way_audio`,
    /// `media_timeout`, `dead_air_released` (a dialog with no BYE after dead air,
    /// forgotten with its ports: `Proxy::dead_air`), `relay_unstarted` (the media
    /// engine could not take the call: it runs with no audio through the edge).
    pub events: IntCounterVec,
    /// `c2c_sip_media_dropped_total{trunk,reason}`: `stranger` (a third party's packet
    /// on an anchored port), `not_rtp`, `not_rtcp`, `undeliverable`.
    pub dropped: IntCounterVec,
    /// `c2c_sip_media_sdp_unanchored_total`: an answer or in-dialog body that could not
    /// be rewritten, passed as it was (its media then bypasses the edge).
    pub sdp_unanchored: prometheus::IntCounter,
}

/// The `direction` label: who sent the packets.
pub const DIRECTIONS: [&str; 2] = ["from_carrier", "from_livekit"];

impl MediaMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            pairs_in_use: IntGauge::new(
                "c2c_sip_media_port_pairs_in_use",
                "Media port pairs held by anchored calls (two per call)",
            )?,
            pairs: IntGauge::new(
                "c2c_sip_media_port_pairs",
                "Media port pairs in the configured range",
            )?,
            calls: IntCounterVec::new(
                Opts::new("c2c_sip_media_calls_total", "Calls anchored, by trunk"),
                &["trunk"],
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_media_refused_total",
                    "Anchored calls refused: ports_exhausted (503) or sdp (488)",
                ),
                &["reason"],
            )?,
            packets: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_media_packets_total",
                    "RTP packets relayed for anchored calls, by trunk and sender",
                ),
                &["trunk", "direction"],
            )?,
            loss: HistogramVec::new(
                HistogramOpts::new(
                    "c2c_sip_media_loss_ratio",
                    "Per anchored call and direction: RTP lost / expected (RFC 3550)",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]),
                &["trunk", "direction"],
            )?,
            jitter: HistogramVec::new(
                HistogramOpts::new(
                    "c2c_sip_media_jitter_ms",
                    "Per anchored call and direction: interarrival jitter (RFC 3550 A.8), ms",
                )
                .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0]),
                &["trunk", "direction"],
            )?,
            events: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_media_events_total",
                    "Anchored calls with early_media, one_way_audio or media_timeout",
                ),
                &["trunk", "event"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "c2c_sip_media_dropped_total",
                    "Datagrams dropped on anchored ports: stranger, not_rtp, not_rtcp, undeliverable",
                ),
                &["trunk", "reason"],
            )?,
            sdp_unanchored: prometheus::IntCounter::new(
                "c2c_sip_media_sdp_unanchored_total",
                "SDP answers or in-dialog offers of anchored calls that could not be rewritten",
            )?,
        };
        r.register(Box::new(m.pairs_in_use.clone()))?;
        r.register(Box::new(m.pairs.clone()))?;
        r.register(Box::new(m.calls.clone()))?;
        r.register(Box::new(m.refused.clone()))?;
        for reason in ["ports_exhausted", "sdp"] {
            m.refused.with_label_values(&[reason]);
        }
        r.register(Box::new(m.packets.clone()))?;
        r.register(Box::new(m.loss.clone()))?;
        r.register(Box::new(m.jitter.clone()))?;
        r.register(Box::new(m.events.clone()))?;
        r.register(Box::new(m.dropped.clone()))?;
        r.register(Box::new(m.sdp_unanchored.clone()))?;
        Ok(m)
    }

    /// A call's final counts.
    pub fn report(&self, trunk: &str, r: &RelayReport) {
        for (dir, s) in DIRECTIONS.iter().zip([&r.from_carrier, &r.from_livekit]) {
            self.stream(trunk, dir, s);
        }
        if r.early_media_started_ms.is_some() {
            self.event(trunk, "early_media");
        }
        for (reason, n) in [
            ("stranger", r.strangers),
            (
                "not_rtp",
                r.from_carrier
                    .not_rtp
                    .saturating_add(r.from_livekit.not_rtp),
            ),
            ("not_rtcp", r.not_rtcp),
            ("undeliverable", r.undeliverable),
        ] {
            if n > 0 {
                self.dropped.with_label_values(&[trunk, reason]).inc_by(n);
            }
        }
    }

    fn stream(&self, trunk: &str, dir: &str, s: &StreamReport) {
        self.packets
            .with_label_values(&[trunk, dir])
            .inc_by(s.packets);
        // A direction that carried nothing has no loss or jitter to speak of.
        if s.packets > 0 {
            self.loss
                .with_label_values(&[trunk, dir])
                .observe(s.loss_fraction);
            self.jitter
                .with_label_values(&[trunk, dir])
                .observe(s.jitter_ms);
        }
    }

    pub fn event(&self, trunk: &str, event: &str) {
        self.events.with_label_values(&[trunk, event]).inc();
    }
}
