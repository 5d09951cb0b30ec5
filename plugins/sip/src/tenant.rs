//! Which tenant and trunk an INVITE from LiveKit belongs to, and the dial string.
//!
//! LiveKit does not tell the trunk's carrier anything about tenants, so the edge
//! decides from what it does get:
//! 1. `X-C2C-Tenant` (tenant id) and optionally `X-C2C-Trunk` (label), when the gateway
//!    put them in CreateSIPParticipant's `headers`: authoritative. The Request-URI user
//!    must then be that trunk's `prefix + number` or the plain 10-digit number.
//! 2. Otherwise the Request-URI user is matched against every enabled trunk's
//!    `prefix + 10 digits` (longest prefix wins). A plain number without headers cannot
//!    name a tenant (404); two tenants sharing a prefix make it ambiguous (485).
//!
//! The number part must pass the dial plan's 10-digit validation.

use std::sync::Arc;

use c2c_tenancy::{Policy, Tenant, Trunk};

use crate::hdr::name_addr;
use crate::parse::uri;

/// A call's tenant, trunk and dial string.
#[derive(Debug, Clone)]
pub struct CallRoute {
    pub tenant: Arc<Tenant>,
    pub trunk: Trunk,
    /// The 10-digit number.
    pub number: String,
    /// `prefix + number`: what the carrier gets.
    pub dialed: String,
}

/// Why no trunk could be chosen; each maps to a SIP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no tenant trunk matches the dialled number")]
    NoMatch,
    #[error("more than one tenant trunk matches the dialled number")]
    Ambiguous,
    #[error("unknown tenant in X-C2C-Tenant")]
    UnknownTenant,
    #[error("unknown trunk in X-C2C-Trunk")]
    UnknownTrunk,
    #[error("trunk is disabled")]
    TrunkDisabled,
    #[error("dialled number is not prefix + 10 digits")]
    BadNumber,
}

impl RouteError {
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            RouteError::NoMatch | RouteError::UnknownTenant | RouteError::UnknownTrunk => {
                (404, "Not Found")
            }
            RouteError::Ambiguous => (485, "Ambiguous"),
            RouteError::TrunkDisabled => (403, "Trunk Disabled"),
            RouteError::BadNumber => (484, "Address Incomplete"),
        }
    }
}

/// Chooses tenant and trunk for Request-URI user `user`.
pub fn identify(
    policy: &Policy,
    user: &str,
    tenant: Option<&str>,
    trunk: Option<&str>,
) -> Result<CallRoute, RouteError> {
    if let Some(tid) = tenant {
        let t = policy.tenant(tid).ok_or(RouteError::UnknownTenant)?;
        let tr = match trunk {
            Some(label) => t.trunk(label).ok_or(RouteError::UnknownTrunk)?,
            None => t
                .trunks
                .iter()
                .filter(|tr| {
                    tr.enabled && !tr.prefix.is_empty() && number_after(user, &tr.prefix).is_some()
                })
                .max_by_key(|tr| tr.prefix.len())
                .or_else(|| t.default_trunk())
                .ok_or(RouteError::NoMatch)?,
        };
        if !tr.enabled {
            return Err(RouteError::TrunkDisabled);
        }
        let number = number_after(user, &tr.prefix)
            .or_else(|| valid_number(user))
            .ok_or(RouteError::BadNumber)?;
        return Ok(route(t, tr, number));
    }
    let mut best: Option<(&Arc<Tenant>, &Trunk, String)> = None;
    let mut ambiguous = false;
    for t in policy.tenants.values() {
        for tr in t
            .trunks
            .iter()
            .filter(|tr| tr.enabled && !tr.prefix.is_empty())
        {
            let Some(n) = number_after(user, &tr.prefix) else {
                continue;
            };
            match &best {
                Some((_, b, _)) if b.prefix.len() > tr.prefix.len() => {}
                Some((_, b, _)) if b.prefix.len() == tr.prefix.len() => ambiguous = true,
                _ => {
                    ambiguous = false;
                    best = Some((t, tr, n));
                }
            }
        }
    }
    match best {
        Some(_) if ambiguous => Err(RouteError::Ambiguous),
        Some((t, tr, n)) => Ok(route(t, tr, n)),
        None => Err(RouteError::NoMatch),
    }
}

fn route(t: &Arc<Tenant>, tr: &Trunk, number: String) -> CallRoute {
    CallRoute {
        tenant: t.clone(),
        trunk: tr.clone(),
        dialed: format!("{}{number}", tr.prefix),
        number,
    }
}

fn number_after(user: &str, prefix: &str) -> Option<String> {
    valid_number(user.strip_prefix(prefix)?)
}

fn valid_number(s: &str) -> Option<String> {
    c2c_dialplan::validate_number(s).ok().filter(|n| n == s)
}

/// Replaces the URI user of a From/To/name-addr value when it equals `from_user`.
/// Returns `None` when the value has a different user (nothing to change).
pub fn swap_user(value: &str, from_user: &str, to_user: &str) -> Option<String> {
    let na = name_addr(value).ok()?;
    let u = uri(na.uri).ok()?;
    let range = u.user_range?;
    if &na.uri[range.clone()] != from_user || from_user == to_user {
        return None;
    }
    let start = na.uri_range.start + range.start;
    let end = na.uri_range.start + range.end;
    Some(format!("{}{to_user}{}", &value[..start], &value[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_only_matching_users() {
        assert_eq!(
            swap_user(
                "\"X\" <sip:9876543210@gw:5060>;tag=1",
                "9876543210",
                "99119876543210"
            )
            .as_deref(),
            Some("\"X\" <sip:99119876543210@gw:5060>;tag=1")
        );
        assert_eq!(
            swap_user("sip:9876543210@gw;tag=1", "9876543210", "1").as_deref(),
            Some("sip:1@gw;tag=1")
        );
        assert_eq!(swap_user("<sip:other@gw>", "9876543210", "1"), None);
    }
}
