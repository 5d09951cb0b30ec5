//! Creation checks for inbound trunks and dispatch rules, as livekit-protocol 0.8.2
//! makes them (`livekit/sip.go` `ValidateResult`, `sip/sip.go` `ValidateTrunksIter`
//! and `DispatchRuleValidator`), with the same error texts where they help a user.

use std::collections::{HashMap, HashSet};

use livekit_protocol as proto;
use proto::sip_dispatch_rule::Rule;

/// `NormalizeNumber`: a phone number (digits, `+`, spaces, dashes, parentheses)
/// loses its formatting and gains a leading `+`; anything else is unchanged.
pub(crate) fn normalize_number(num: &str) -> String {
    if num.is_empty() {
        return String::new();
    }
    let body = num.strip_prefix('+').unwrap_or(num);
    let phone_like = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b" -()".contains(&b));
    if !phone_like {
        return num.to_owned();
    }
    let digits: String = num.chars().filter(|c| !" -()".contains(*c)).collect();
    if digits.starts_with('+') {
        digits
    } else {
        format!("+{digits}")
    }
}

/// `printID`: a trunk or rule not stored yet has no id.
fn print_id(id: &str) -> String {
    if id.is_empty() {
        "\"<new>\"".to_owned()
    } else {
        format!("{id:?}")
    }
}

/// `printNumbers` (Go's `%q` of a string slice).
fn print_numbers(numbers: &[String]) -> String {
    if numbers.is_empty() {
        return "<any>".to_owned();
    }
    let quoted: Vec<String> = numbers.iter().map(|n| format!("{n:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Header names LiveKit refuses in a trunk's `headers` (`ForbiddenSipHeaderNames`).
const FORBIDDEN_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "allow",
    "allow-events",
    "call-id",
    "contact",
    "content-encoding",
    "content-length",
    "content-type",
    "cseq",
    "event",
    "expires",
    "from",
    "max-forwards",
    "record-route",
    "refer-to",
    "reply-to",
    "k",
    "l",
    "m",
    "o",
    "r",
    "t",
    "u",
    "v",
];

/// `ValidateHeaderName`: a SIP token of at most 255 bytes (`restrict`: not one the
/// SIP stack owns).
fn header_name(name: &str, restrict: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("invalid header name: header name cannot be empty".to_owned());
    }
    if name.len() > 255 {
        return Err("invalid header name: header name too long (max 255 characters)".to_owned());
    }
    if !name.bytes().all(crate::sip::message::is_token_byte) {
        return Err(format!(
            "invalid header name: header name {name} contains invalid characters"
        ));
    }
    if restrict && FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "invalid header name: header name {name} not supported"
        ));
    }
    Ok(())
}

/// `ValidateHeaderValue`: printable, single line, at most 1024 bytes.
fn header_value(name: &str, value: &str) -> Result<(), String> {
    if value.len() > 1024 {
        return Err(format!(
            "invalid header value for {name}: header {name}: value too long (max 1024 characters)"
        ));
    }
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
        return Err(format!(
            "invalid header value for {name}: header {name}: value: char not allowed"
        ));
    }
    Ok(())
}

/// `CreateSIPInboundTrunkRequest.ValidateResult`.
pub(crate) fn trunk_request(req: &proto::CreateSipInboundTrunkRequest) -> Result<(), String> {
    let Some(t) = &req.trunk else {
        return Err("missing trunk".to_owned());
    };
    if !t.sip_trunk_id.is_empty() {
        return Err("trunk id must not be set".to_owned());
    }
    let has_auth = !t.auth_username.is_empty() || !t.auth_password.is_empty();
    if !has_auth && t.allowed_addresses.is_empty() && t.numbers.is_empty() {
        return Err("for security, one of the fields must be set: AuthUsername+AuthPassword, AllowedAddresses or Numbers".to_owned());
    }
    let status = t.ringing_timeout_status;
    if status != 0 && !(400..=699).contains(&status) {
        return Err(format!(
            "ringing timeout status must be 4xx-6xx, got {status}"
        ));
    }
    for (name, value) in &t.headers {
        header_name(name, true)?;
        header_value(name, value)?;
    }
    for name in t.attributes_to_headers.values() {
        header_name(name, false)?;
    }
    for name in t.headers_to_attributes.keys() {
        header_name(name, false)?;
    }
    Ok(())
}

/// `ValidateTrunksIter` over the stored trunks plus `new` (last): at most one trunk
/// per called number (or default, numbers empty) and calling number (or none).
/// `allowed_addresses` is not part of the key, as in LiveKit.
pub(crate) fn trunk_conflicts(
    stored: &[proto::SipInboundTrunkInfo],
    new: &proto::SipInboundTrunkInfo,
) -> Result<(), String> {
    let mut by_called: HashMap<String, HashMap<String, &proto::SipInboundTrunkInfo>> =
        HashMap::new();
    for t in stored.iter().chain(std::iter::once(new)) {
        let called: Vec<String> = if t.numbers.is_empty() {
            vec![String::new()]
        } else {
            unique(t.numbers.iter().map(|n| normalize_number(n)))
        };
        for key in called {
            let by_calling = by_called.entry(key).or_default();
            trunk_calling_conflicts(by_calling, t)?;
        }
    }
    Ok(())
}

fn trunk_calling_conflicts<'a>(
    by_calling: &mut HashMap<String, &'a proto::SipInboundTrunkInfo>,
    t: &'a proto::SipInboundTrunkInfo,
) -> Result<(), String> {
    if t.allowed_numbers.is_empty() {
        if let Some(t2) = by_calling.get("") {
            if t2.sip_trunk_id != t.sip_trunk_id {
                return Err(format!(
                    "Conflicting inbound SIP Trunks: {} and {}, using the same number(s) {} without AllowedNumbers set",
                    print_id(&t.sip_trunk_id),
                    print_id(&t2.sip_trunk_id),
                    print_numbers(&t.numbers)
                ));
            }
        }
        by_calling.insert(String::new(), t);
        return Ok(());
    }
    let mut seen = HashSet::new();
    for num in &t.allowed_numbers {
        let key = normalize_number(num);
        if !seen.insert(key.clone()) {
            continue;
        }
        if let Some(t2) = by_calling.get(&key) {
            if t2.sip_trunk_id != t.sip_trunk_id {
                return Err(format!(
                    "Conflicting inbound SIP Trunks: {} and {}, using the same number(s) {} and AllowedNumber {num:?}",
                    print_id(&t.sip_trunk_id),
                    print_id(&t2.sip_trunk_id),
                    print_numbers(&t.numbers)
                ));
            }
        }
        by_calling.insert(key, t);
    }
    Ok(())
}

fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

/// `GetPinAndRoom`: (room name or prefix, pin) of a rule.
pub(crate) fn pin_and_room(info: &proto::SipDispatchRuleInfo) -> Result<(&str, &str), String> {
    match info.rule.as_ref().and_then(|r| r.rule.as_ref()) {
        Some(Rule::DispatchRuleDirect(d)) => Ok((&d.room_name, &d.pin)),
        Some(Rule::DispatchRuleIndividual(i)) => Ok((&i.room_prefix, &i.pin)),
        Some(Rule::DispatchRuleCallee(c)) => Ok((&c.room_prefix, &c.pin)),
        None => Err("unsupported SIP Dispatch Rule: <nil>".to_owned()),
    }
}

/// `CreateSIPDispatchRuleRequest.Validate` + `DispatchRuleInfo` (the legacy top-level
/// fields when `dispatch_rule` is absent). Returns the rule to store (id empty).
// The top-level fields are deprecated in the protocol, but older clients still send
// them and LiveKit still reads them.
#[allow(deprecated)]
pub(crate) fn rule_request(
    req: proto::CreateSipDispatchRuleRequest,
) -> Result<proto::SipDispatchRuleInfo, String> {
    let info = match req.dispatch_rule {
        Some(info) => {
            if !info.sip_dispatch_rule_id.is_empty() {
                return Err("rule id must not be set".to_owned());
            }
            info
        }
        None => proto::SipDispatchRuleInfo {
            rule: req.rule,
            trunk_ids: req.trunk_ids,
            inbound_numbers: req.inbound_numbers,
            hide_phone_number: req.hide_phone_number,
            name: req.name,
            metadata: req.metadata,
            attributes: req.attributes,
            room_preset: req.room_preset,
            room_config: req.room_config,
            ..Default::default()
        },
    };
    if info.rule.is_none() {
        return Err("missing rule".to_owned());
    }
    Ok(info)
}

/// `DispatchRuleValidator` over `rules` (in order): no two rules may share a
/// (trunk, calling number, called number, PIN) key; an empty list is the wildcard
/// key, which collides only with other wildcards.
pub(crate) fn rule_conflicts<'a>(
    rules: impl Iterator<Item = &'a proto::SipDispatchRuleInfo>,
) -> Result<(), String> {
    let mut by_key: HashMap<(String, String, String, String), &proto::SipDispatchRuleInfo> =
        HashMap::new();
    let or_wildcard = |list: &[String]| -> Vec<String> {
        if list.is_empty() {
            vec![String::new()]
        } else {
            list.to_vec()
        }
    };
    for r in rules {
        let (_, pin) = pin_and_room(r)?;
        for trunk in or_wildcard(&r.trunk_ids) {
            for calling in or_wildcard(&r.inbound_numbers) {
                for called in or_wildcard(&r.numbers) {
                    let key = (
                        pin.to_owned(),
                        trunk.clone(),
                        normalize_number(&called),
                        normalize_number(&calling),
                    );
                    if let Some(r2) = by_key.get(&key) {
                        let name = if r2.name.is_empty() {
                            "<blank name>"
                        } else {
                            &r2.name
                        };
                        return Err(format!(
                            "Dispatch rule for the same trunk, inbound number, number, and PIN combination already exists in dispatch rule {} {name:?}",
                            print_id(&r2.sip_dispatch_rule_id)
                        ));
                    }
                    by_key.insert(key, r);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(id: &str, numbers: &[&str], allowed: &[&str]) -> proto::SipInboundTrunkInfo {
        proto::SipInboundTrunkInfo {
            sip_trunk_id: id.to_owned(),
            numbers: numbers.iter().map(|s| (*s).to_owned()).collect(),
            allowed_numbers: allowed.iter().map(|s| (*s).to_owned()).collect(),
            allowed_addresses: vec!["10.0.0.0/8".to_owned()],
            ..Default::default()
        }
    }

    #[test]
    fn numbers_normalize_like_livekit() {
        assert_eq!(normalize_number("+1 (555) 010-2030"), "+15550102030");
        assert_eq!(normalize_number("15550102030"), "+15550102030");
        assert_eq!(normalize_number("c2c-abc"), "c2c-abc");
        assert_eq!(normalize_number(""), "");
    }

    #[test]
    fn one_default_trunk_without_allowed_numbers() {
        let a = trunk("ST_a", &[], &[]);
        let err = trunk_conflicts(std::slice::from_ref(&a), &trunk("", &[], &[])).unwrap_err();
        assert!(err.starts_with("Conflicting inbound SIP Trunks: \"<new>\" and \"ST_a\""));
        // Different allowed numbers, or a specific number: no conflict.
        trunk_conflicts(std::slice::from_ref(&a), &trunk("", &[], &["+1555"])).unwrap();
        trunk_conflicts(std::slice::from_ref(&a), &trunk("", &["+1555"], &[])).unwrap();
        let b = trunk("ST_b", &["+1 555"], &[]);
        assert!(trunk_conflicts(&[a, b], &trunk("", &["1555"], &[])).is_err());
    }

    #[test]
    fn trunk_needs_auth_addresses_or_numbers() {
        let mut req = proto::CreateSipInboundTrunkRequest {
            trunk: Some(proto::SipInboundTrunkInfo::default()),
        };
        assert!(trunk_request(&req).unwrap_err().contains("for security"));
        if let Some(t) = req.trunk.as_mut() {
            t.numbers.push("+1555".into());
            t.headers.insert("Contact".into(), "x".into());
        }
        assert!(trunk_request(&req).unwrap_err().contains("not supported"));
        if let Some(t) = req.trunk.as_mut() {
            t.headers.clear();
            t.headers_to_attributes.insert("X Bad".into(), "a".into());
        }
        assert!(trunk_request(&req)
            .unwrap_err()
            .contains("invalid characters"));
    }

    #[test]
    fn rule_conflict_keys() {
        let callee = |id: &str, trunks: &[&str], pin: &str| proto::SipDispatchRuleInfo {
            sip_dispatch_rule_id: id.to_owned(),
            trunk_ids: trunks.iter().map(|s| (*s).to_owned()).collect(),
            rule: Some(proto::SipDispatchRule {
                rule: Some(Rule::DispatchRuleCallee(proto::SipDispatchRuleCallee {
                    pin: pin.to_owned(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        };
        let a = callee("SDR_a", &["ST_1"], "");
        assert!(rule_conflicts([&a, &callee("", &["ST_1", "ST_2"], "")].into_iter()).is_err());
        rule_conflicts([&a, &callee("", &["ST_2"], "")].into_iter()).unwrap();
        rule_conflicts([&a, &callee("", &[], "")].into_iter()).unwrap();
        rule_conflicts([&a, &callee("", &["ST_1"], "1234")].into_iter()).unwrap();
        let empty = proto::SipDispatchRuleInfo {
            rule: Some(proto::SipDispatchRule { rule: None }),
            ..Default::default()
        };
        assert!(rule_conflicts([&empty].into_iter()).is_err());
    }
}
