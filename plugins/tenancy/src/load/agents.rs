//! `[agents]`: the presence channel's knobs (gateway.toml) and a tenant's click2call
//! rules for agents (tenant file).

use std::time::Duration;

use super::Errs;
use crate::file::{GatewayAgentsSection, TenantAgentsSection};
use crate::policy::{PresenceKnobs, TenantAgentsPolicy};

pub(super) fn presence(a: &GatewayAgentsSection, e: &mut Errs<'_>) -> PresenceKnobs {
    let mut secs = |key: &str, v: Option<u64>, default: u64, min: u64, max: u64| {
        let v = v.unwrap_or(default);
        if v < min || v > max {
            e.push(
                format!("agents.{key}"),
                format!("must be between {min} and {max}"),
            );
        }
        Duration::from_secs(v)
    };
    let grace = secs(
        "presence_grace_seconds",
        a.presence_grace_seconds,
        20,
        0,
        600,
    );
    let token_ttl = secs(
        "presence_token_ttl_seconds",
        a.presence_token_ttl_seconds,
        900,
        30,
        86_400,
    );
    let heartbeat = secs("heartbeat_seconds", a.heartbeat_seconds, 15, 1, 300);
    let max_sessions = a.max_presence_sessions.unwrap_or(50_000);
    if !(1..=1_000_000).contains(&max_sessions) {
        e.push(
            "agents.max_presence_sessions",
            "must be between 1 and 1000000",
        );
    }
    PresenceKnobs {
        grace,
        token_ttl,
        heartbeat,
        max_sessions,
    }
}

pub(super) fn tenant(a: &TenantAgentsSection) -> TenantAgentsPolicy {
    TenantAgentsPolicy {
        require_registration: a.require_registration.unwrap_or(false),
        allow_concurrent_calls: a.allow_concurrent_calls.unwrap_or(false),
    }
}
