//! `[calls]`: ring timeout, agent-drop grace, maximum duration, expiry of unconnected
//! calls, poll interval, token lifetime and retention.

use std::time::Duration;

use super::Errs;
use crate::file::CallsSection;
use crate::policy::CallsPolicy;

pub(super) fn validate(c: &CallsSection, e: &mut Errs<'_>) -> CallsPolicy {
    // Each knob: (key, value, default, min, max), checked in this order.
    let mut secs = |key: &str, v: Option<u64>, default: u64, min: u64, max: u64| {
        let v = v.unwrap_or(default);
        if v < min || v > max {
            e.push(
                format!("calls.{key}"),
                format!("must be between {min} and {max}"),
            );
        }
        v
    };
    CallsPolicy {
        ring_timeout: Duration::from_secs(secs(
            "ring_timeout_seconds",
            c.ring_timeout_seconds,
            45,
            5,
            300,
        )),
        agent_drop_grace: Duration::from_secs(secs(
            "agent_drop_grace_seconds",
            c.agent_drop_grace_seconds,
            20,
            0,
            600,
        )),
        max_duration: Duration::from_secs(secs(
            "max_duration_seconds",
            c.max_duration_seconds,
            3600,
            10,
            86_400,
        )),
        unconnected_expiry: Duration::from_secs(secs(
            "unconnected_expiry_seconds",
            c.unconnected_expiry_seconds,
            600,
            10,
            86_400,
        )),
        poll_interval: Duration::from_millis(secs(
            "poll_interval_ms",
            c.poll_interval_ms,
            1000,
            100,
            60_000,
        )),
        token_ttl: Duration::from_secs(secs(
            "token_ttl_seconds",
            c.token_ttl_seconds,
            3600,
            40,
            86_400,
        )),
        // 0 (the default) keeps calls forever; at most ten years.
        retention: match secs("retention_days", c.retention_days, 0, 0, 3650) {
            0 => None,
            days => Some(Duration::from_secs(days * 86_400)),
        },
    }
}
