//! `[sip]`: the SIP edge's per-tenant call caps and transaction table size, and
//! `[sip.media]`, the relay of anchored trunks.

use std::time::Duration;

use super::Errs;
use crate::file::{SipMediaSection, SipSection};
use crate::policy::{RelayIo, SipKnobs, SipMediaKnobs};

pub(super) fn validate(s: &SipSection, e: &mut Errs<'_>) -> SipKnobs {
    let cps = s.calls_per_second.unwrap_or(10);
    if !(1..=100_000).contains(&cps) {
        e.push("sip.calls_per_second", "must be between 1 and 100000");
    }
    let conc = s.max_concurrent_calls.unwrap_or(100);
    if !(1..=1_000_000).contains(&conc) {
        e.push("sip.max_concurrent_calls", "must be between 1 and 1000000");
    }
    let txns = s.max_transactions.unwrap_or(8192);
    if !(64..=4_000_000).contains(&txns) {
        e.push("sip.max_transactions", "must be between 64 and 4000000");
    }
    SipKnobs {
        calls_per_second: cps,
        max_concurrent_calls: conc,
        max_transactions: txns,
        media: media(&s.media, e),
    }
}

/// Defaults: 20000..=29999 (5,000 pairs, two per anchored call), dead air after 30 s
/// (rtpengine's default `timeout`), one-way audio after 10 s, relays on io_uring where
/// the kernel allows it, holding a packet at most 200 µs to batch wake-ups (1 % of a
/// voice packet's 20 ms).
fn media(m: &SipMediaSection, e: &mut Errs<'_>) -> SipMediaKnobs {
    let address = m.address.as_deref().and_then(|a| match a.parse() {
        Ok(ip) if !std::net::IpAddr::is_unspecified(&ip) => Some(ip),
        _ => {
            e.push(
                "sip.media.address",
                "must be the IP address peers send RTP to, like 203.0.113.10",
            );
            None
        }
    });
    let port_min = m.port_min.unwrap_or(20_000);
    let port_max = m.port_max.unwrap_or(29_999);
    if port_min < 1024 || !port_min.is_multiple_of(2) {
        e.push(
            "sip.media.port_min",
            "must be even (RTP ports are even) and at least 1024",
        );
    } else if port_max <= port_min {
        e.push(
            "sip.media.port_max",
            "must be above port_min (each call needs two port pairs)",
        );
    }
    let media_timeout = m.media_timeout_seconds.unwrap_or(30);
    if !(1..=3600).contains(&media_timeout) {
        e.push(
            "sip.media.media_timeout_seconds",
            "must be between 1 and 3600",
        );
    }
    let one_way = m.one_way_seconds.unwrap_or(10);
    if !(1..=3600).contains(&one_way) {
        e.push("sip.media.one_way_seconds", "must be between 1 and 3600");
    }
    let io = match m.io.as_deref().unwrap_or("auto") {
        "auto" => RelayIo::Auto,
        "io_uring" => RelayIo::IoUring,
        "runtime" => RelayIo::Runtime,
        _ => {
            e.push(
                "sip.media.io",
                "must be \"auto\", \"io_uring\" or \"runtime\"",
            );
            RelayIo::Auto
        }
    };
    let batch_us = m.batch_us.unwrap_or(200);
    if batch_us > 5_000 {
        e.push(
            "sip.media.batch_us",
            "must be between 0 and 5000 (microseconds a packet may wait)",
        );
    }
    SipMediaKnobs {
        address,
        port_min,
        port_max,
        media_timeout: Duration::from_secs(media_timeout),
        one_way_after: Duration::from_secs(one_way),
        io,
        batch: Duration::from_micros(batch_us),
    }
}
