//! `[limits]` of gateway.toml: the per-IP request rate of unauthenticated paths and the
//! LiveKit health-check period. (A tenant file's `[limits]` is in `tenant.rs`.)
//!
//! Two functions rather than one: the gateway loader validates them at different
//! points, which keeps the order of reported errors as it has always been.

use std::time::Duration;

use super::Errs;
use crate::file::GatewayLimitsSection;

/// `limits.per_ip_requests_per_second` (default 50).
pub(super) fn per_ip_rps(l: &GatewayLimitsSection, e: &mut Errs<'_>) -> u32 {
    let v = l.per_ip_requests_per_second.unwrap_or(50);
    if !(1..=1_000_000).contains(&v) {
        e.push(
            "limits.per_ip_requests_per_second",
            "must be between 1 and 1000000",
        );
    }
    v
}

/// `limits.health_check_interval_ms` (default 1000).
pub(super) fn health_check_interval(l: &GatewayLimitsSection, e: &mut Errs<'_>) -> Duration {
    let v = l.health_check_interval_ms.unwrap_or(1000);
    if !(100..=60_000).contains(&v) {
        e.push(
            "limits.health_check_interval_ms",
            "must be between 100 and 60000",
        );
    }
    Duration::from_millis(v)
}
