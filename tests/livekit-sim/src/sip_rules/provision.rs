//! [`crate::SimConfig::inbound_auto_provision`]: the trunk and rule an operator
//! creates once for c2c-gateway (`docs/inbound-design.md` §5), created at start
//! through the same validation as the Twirp calls.

use livekit_protocol as proto;
use serde_json::json;

use super::SipRules;
use crate::config::InboundProvision;
use crate::SimError;

/// Creates the wildcard trunk and the Callee rule bound to it; returns their ids.
pub(crate) fn provision(
    rules: &mut SipRules,
    p: &InboundProvision,
) -> Result<(String, String), SimError> {
    // Built as the JSON an operator would give `lk sip inbound create` (pbjson reads
    // the protobuf Durations from "30s"), so the request is the documented one.
    let secs = |d: std::time::Duration| format!("{}.{:09}s", d.as_secs(), d.subsec_nanos());
    let trunk: proto::CreateSipInboundTrunkRequest = serde_json::from_value(json!({
        "trunk": {
            "name": "c2c-gateway inbound (livekit-sim auto-provision)",
            "numbers": [],
            "allowedAddresses": p.allowed_addresses,
            "headersToAttributes": p.headers_to_attributes,
            "attributesToHeaders": p.attributes_to_headers,
            "ringingTimeout": secs(p.ringing_timeout),
            "maxCallDuration": secs(p.max_call_duration),
        }
    }))
    .map_err(|e| SimError::Config(format!("inbound_auto_provision trunk: {e}")))?;
    let trunk = rules
        .create_trunk(trunk)
        .map_err(|e| SimError::Config(format!("inbound_auto_provision trunk: {}", e.msg)))?;
    let rule = proto::CreateSipDispatchRuleRequest {
        dispatch_rule: Some(proto::SipDispatchRuleInfo {
            name: "c2c-gateway room by To user (livekit-sim auto-provision)".to_owned(),
            trunk_ids: vec![trunk.sip_trunk_id.clone()],
            rule: Some(proto::SipDispatchRule {
                rule: Some(proto::sip_dispatch_rule::Rule::DispatchRuleCallee(
                    proto::SipDispatchRuleCallee {
                        room_prefix: String::new(),
                        pin: String::new(),
                        randomize: false,
                    },
                )),
            }),
            hide_phone_number: p.hide_phone_number,
            attributes: p
                .rule_attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let rule = rules
        .create_rule(rule)
        .map_err(|e| SimError::Config(format!("inbound_auto_provision rule: {}", e.msg)))?;
    Ok((trunk.sip_trunk_id, rule.sip_dispatch_rule_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_provisioning_is_the_design_note_setup() {
        let mut rules = SipRules::new(4, 4);
        let (trunk_id, rule_id) = provision(&mut rules, &InboundProvision::default()).unwrap();
        let t = &rules.trunks()[0];
        assert_eq!(t.sip_trunk_id, trunk_id);
        assert!(t.numbers.is_empty());
        assert_eq!(t.allowed_addresses, vec!["127.0.0.0/8"]);
        assert_eq!(t.headers_to_attributes["X-C2C-Call-Id"], "c2c.callId");
        assert_eq!(t.attributes_to_headers["c2c.callId"], "X-C2C-Call-Id");
        assert_eq!(t.ringing_timeout.as_ref().map(|d| d.seconds), Some(30));
        let r = &rules.rules()[0];
        assert_eq!(r.sip_dispatch_rule_id, rule_id);
        assert_eq!(r.trunk_ids, vec![trunk_id]);
        assert!(r.hide_phone_number);
        // A second run conflicts: one default trunk per project.
        assert!(provision(&mut rules, &InboundProvision::default()).is_err());
        let odd = InboundProvision {
            ringing_timeout: Duration::from_millis(1500),
            ..Default::default()
        };
        let mut fresh = SipRules::new(4, 4);
        provision(&mut fresh, &odd).unwrap();
        let d = fresh.trunks()[0].ringing_timeout.unwrap();
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
    }
}
