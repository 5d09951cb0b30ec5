//! Which trunk and dispatch rule an inbound INVITE gets, and what that makes of the
//! call: livekit-protocol 0.8.2 `MatchTrunkDetailed`, `MatchDispatchRuleIter`,
//! `DispatchRulePriority` and `EvaluateDispatchRule` (room name, participant
//! identity, name and attributes).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use livekit_protocol as proto;
use proto::sip_dispatch_rule::Rule;
use sha2::{Digest, Sha256};

use super::validate::{normalize_number, pin_and_room, rule_conflicts};
use crate::ids::guid;

pub(crate) const ATTR_RULE_ID: &str = "sip.ruleID";
pub(crate) const ATTR_HOSTNAME: &str = "sip.hostname";

/// What matching reads from an INVITE (`rpc.SIPCall`).
#[derive(Clone, Debug)]
pub(crate) struct CallFacts {
    pub from_user: String,
    pub from_host: String,
    /// The To header's user: the called number (or, for c2c-gateway, the room).
    pub to_user: String,
    /// The packet's source address (never a header).
    pub source_ip: IpAddr,
}

/// `matchAddrMask`: an IP, or a CIDR prefix.
fn addr_in_mask(ip: IpAddr, mask: &str) -> bool {
    let Some((net, bits)) = mask.split_once('/') else {
        return mask.parse::<IpAddr>().is_ok_and(|m| m == ip);
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let keep = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & keep == u32::from(net) & keep
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let keep = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & keep == u128::from(net) & keep
        }
        _ => false,
    }
}

/// `matchAddrMasks`: no (valid) mask allows everyone; a mask equal to the From host
/// also matches (spoofable: LiveKit does it, so the simulator does too).
fn addr_allowed(call: &CallFacts, masks: &[String]) -> bool {
    let valid = |m: &&String| {
        !m.contains(['(', ')', '+', '*', ';', ',', ' ', '\t', '\n', '\r']) && !m.contains("://")
    };
    let mut masks = masks.iter().filter(valid).peekable();
    if masks.peek().is_none() {
        return true;
    }
    masks.any(|m| *m == call.from_host || addr_in_mask(call.source_ip, m))
}

/// `matchNumbers`: empty allows everyone; else exact or normalized equality.
fn number_allowed(num: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let norm = normalize_number(num);
    allowed
        .iter()
        .any(|a| a == num || normalize_number(a) == norm)
}

/// `MatchTrunkDetailed`: the trunk whose `numbers` hold the To user, else the one
/// default trunk (no `numbers`); filtered first by `allowed_numbers` (From user) and
/// `allowed_addresses`. `Ok(None)`: no trunk. `Err`: an ambiguous configuration.
pub(crate) fn match_trunk<'a>(
    trunks: &'a [proto::SipInboundTrunkInfo],
    call: &CallFacts,
) -> Result<Option<&'a proto::SipInboundTrunkInfo>, String> {
    let called = normalize_number(&call.to_user);
    let mut selected = None;
    let mut default = None;
    let mut defaults = 0usize;
    for tr in trunks {
        if !number_allowed(&call.from_user, &tr.allowed_numbers)
            || !addr_allowed(call, &tr.allowed_addresses)
        {
            continue;
        }
        if tr.numbers.is_empty() {
            defaults += 1;
            default = Some(tr);
        } else if tr
            .numbers
            .iter()
            .any(|n| *n == call.to_user || normalize_number(n) == called)
        {
            if selected.is_some() {
                return Err(format!(
                    "Multiple SIP Trunks matched for {:?}",
                    call.to_user
                ));
            }
            selected = Some(tr);
        }
    }
    if selected.is_some() {
        return Ok(selected);
    }
    if defaults > 1 {
        return Err(format!(
            "Multiple default SIP Trunks matched for {:?}",
            call.to_user
        ));
    }
    Ok(default)
}

/// `DispatchRulePriority` (lower wins): PIN rules first, then Direct, Individual,
/// Callee; 1000 added for each of `inbound_numbers` / `numbers` left empty.
fn priority(info: &proto::SipDispatchRuleInfo) -> i32 {
    let (base, pin) = match info.rule.as_ref().and_then(|r| r.rule.as_ref()) {
        Some(Rule::DispatchRuleDirect(d)) => (0, &d.pin),
        Some(Rule::DispatchRuleIndividual(i)) => (1, &i.pin),
        Some(Rule::DispatchRuleCallee(c)) => (2, &c.pin),
        None => return i32::MAX,
    };
    let mut p = if pin.is_empty() { base + 100 } else { base };
    if info.inbound_numbers.is_empty() {
        p += 1000;
    }
    if info.numbers.is_empty() {
        p += 1000;
    }
    p
}

fn higher_priority(a: &proto::SipDispatchRuleInfo, b: &proto::SipDispatchRuleInfo) -> bool {
    let (pa, pb) = (priority(a), priority(b));
    if pa != pb {
        return pa < pb;
    }
    // Same priority: by room name/prefix, for a predictable choice.
    let room = |r| {
        pin_and_room(r)
            .map(|(room, _)| room.to_owned())
            .unwrap_or_default()
    };
    room(a) < room(b)
}

/// `MatchDispatchRuleIter`: rules bound to the matched trunk beat wildcard rules
/// (no `trunk_ids`); `inbound_numbers` filter on the From user and `numbers` on the To
/// user (exact). `Ok(None)`: nothing matched (LiveKit's DROP). `Err`: conflicting rules.
pub(crate) fn match_rule<'a>(
    trunk: Option<&proto::SipInboundTrunkInfo>,
    rules: &'a [proto::SipDispatchRuleInfo],
    call: &CallFacts,
) -> Result<Option<&'a proto::SipDispatchRuleInfo>, String> {
    rule_conflicts(rules.iter())?;
    let mut specific: Option<&proto::SipDispatchRuleInfo> = None;
    let mut wildcard: Option<&proto::SipDispatchRuleInfo> = None;
    for info in rules {
        if !info.inbound_numbers.is_empty() && !info.inbound_numbers.contains(&call.from_user) {
            continue;
        }
        if !info.numbers.is_empty() && !info.numbers.contains(&call.to_user) {
            continue;
        }
        if pin_and_room(info).is_err() {
            continue;
        }
        let slot = if info.trunk_ids.is_empty() {
            &mut wildcard
        } else if trunk.is_some_and(|t| info.trunk_ids.contains(&t.sip_trunk_id)) {
            &mut specific
        } else {
            continue;
        };
        if slot.is_none_or(|best| higher_priority(info, best)) {
            *slot = Some(info);
        }
    }
    Ok(specific.or(wildcard))
}

/// What `EvaluateDispatchRule` decides, plus the trunk settings the call uses.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dispatch {
    pub room: String,
    pub identity: String,
    pub name: String,
    pub metadata: String,
    pub attributes: HashMap<String, String>,
    pub trunk_id: String,
    pub rule_id: String,
    /// The rule asks for a PIN (DTMF): the simulator does not model the prompt.
    pub pin_required: bool,
    pub room_config: Option<proto::RoomConfiguration>,
    /// Trunk `headers` (sent on the 200 OK).
    pub headers: HashMap<String, String>,
    pub headers_to_attributes: HashMap<String, String>,
    pub attributes_to_headers: HashMap<String, String>,
    /// Trunk `include_headers` (`SIPHeaderOptions`).
    pub include_headers: i32,
    pub ringing_timeout: Option<Duration>,
    pub max_call_duration: Option<Duration>,
}

fn duration(d: Option<(i64, i32)>) -> Option<Duration> {
    let (s, n) = d?;
    let d = Duration::new(u64::try_from(s).ok()?, u32::try_from(n).ok()?);
    (!d.is_zero()).then_some(d)
}

/// `EvaluateDispatchRule`. `lk_call_id` is the `SCL_` id of the call.
pub(crate) fn evaluate(
    trunk: Option<&proto::SipInboundTrunkInfo>,
    rule: &proto::SipDispatchRuleInfo,
    call: &CallFacts,
    lk_call_id: &str,
) -> Dispatch {
    let trunk_id = trunk.map(|t| t.sip_trunk_id.clone()).unwrap_or_default();
    let mut attrs = rule.attributes.clone();
    attrs.insert(
        crate::sip_dialer::ATTR_CALL_ID.to_owned(),
        lk_call_id.to_owned(),
    );
    attrs.insert(
        crate::sip_dialer::ATTR_TRUNK_ID.to_owned(),
        trunk_id.clone(),
    );
    let mut from = call.from_user.clone();
    let identity;
    if rule.hide_phone_number {
        let hash = Sha256::digest(call.from_user.as_bytes());
        identity = format!(
            "sip_{}",
            hash[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        // LiveKit keeps the last 4 characters (1 when the user part is that short).
        let keep = if from.len() <= 4 {
            from.len().min(1)
        } else {
            4
        };
        from = tail(&from, keep).to_owned();
    } else {
        identity = format!("sip_{from}");
        attrs.insert(
            crate::sip_dialer::ATTR_PHONE_NUMBER.to_owned(),
            call.from_user.clone(),
        );
        attrs.insert(ATTR_HOSTNAME.to_owned(), call.from_host.clone());
        attrs.insert(
            crate::sip_dialer::ATTR_TRUNK_PHONE_NUMBER.to_owned(),
            call.to_user.clone(),
        );
    }
    let (configured_room, pin) = pin_and_room(rule).unwrap_or(("", ""));
    let mut room = configured_room.to_owned();
    match rule.rule.as_ref().and_then(|r| r.rule.as_ref()) {
        Some(Rule::DispatchRuleIndividual(r)) => {
            room = prefixed(&r.room_prefix, &from);
            if !r.no_randomness {
                room = format!("{room}_{}", guid(""));
            }
        }
        Some(Rule::DispatchRuleCallee(r)) => {
            room = prefixed(&r.room_prefix, &call.to_user);
            if r.randomize {
                room = format!("{room}_{}", guid(""));
            }
        }
        Some(Rule::DispatchRuleDirect(_)) | None => {}
    }
    attrs.insert(ATTR_RULE_ID.to_owned(), rule.sip_dispatch_rule_id.clone());
    let mut d = Dispatch {
        room,
        identity,
        name: format!("Phone {from}"),
        metadata: rule.metadata.clone(),
        attributes: attrs,
        trunk_id,
        rule_id: rule.sip_dispatch_rule_id.clone(),
        pin_required: !pin.is_empty(),
        room_config: rule.room_config.clone(),
        ..Default::default()
    };
    if let Some(t) = trunk {
        d.headers = t.headers.clone();
        d.headers_to_attributes = t.headers_to_attributes.clone();
        d.attributes_to_headers = t.attributes_to_headers.clone();
        d.include_headers = t.include_headers;
        d.ringing_timeout = duration(t.ringing_timeout.as_ref().map(|x| (x.seconds, x.nanos)));
        d.max_call_duration = duration(t.max_call_duration.as_ref().map(|x| (x.seconds, x.nanos)));
    }
    d
}

/// `prefix + "_" + value`, or `value` without a prefix (LiveKit inserts the `_`).
fn prefixed(prefix: &str, value: &str) -> String {
    if prefix.is_empty() {
        value.to_owned()
    } else {
        format!("{prefix}_{value}")
    }
}

/// The last `n` bytes of `s` (on a char boundary).
fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start -= 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests;
