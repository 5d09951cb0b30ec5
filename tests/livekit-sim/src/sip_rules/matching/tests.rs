use super::*;

fn call(from: &str, to: &str, ip: &str) -> CallFacts {
    CallFacts {
        from_user: from.to_owned(),
        from_host: "carrier.example".to_owned(),
        to_user: to.to_owned(),
        source_ip: ip.parse().unwrap(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn trunk(id: &str, numbers: &[&str], addresses: &[&str]) -> proto::SipInboundTrunkInfo {
    proto::SipInboundTrunkInfo {
        sip_trunk_id: id.to_owned(),
        numbers: strings(numbers),
        allowed_addresses: strings(addresses),
        ..Default::default()
    }
}

fn rule(id: &str, trunks: &[&str], r: Rule) -> proto::SipDispatchRuleInfo {
    proto::SipDispatchRuleInfo {
        sip_dispatch_rule_id: id.to_owned(),
        trunk_ids: strings(trunks),
        rule: Some(proto::SipDispatchRule { rule: Some(r) }),
        ..Default::default()
    }
}

fn callee(prefix: &str, randomize: bool) -> Rule {
    Rule::DispatchRuleCallee(proto::SipDispatchRuleCallee {
        room_prefix: prefix.to_owned(),
        randomize,
        ..Default::default()
    })
}

#[test]
fn cidr_and_exact_addresses() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(addr_in_mask(ip("127.0.0.9"), "127.0.0.0/8"));
    assert!(!addr_in_mask(ip("10.0.0.1"), "127.0.0.0/8"));
    assert!(addr_in_mask(ip("10.0.0.1"), "0.0.0.0/0"));
    assert!(addr_in_mask(ip("10.0.0.1"), "10.0.0.1"));
    assert!(addr_in_mask(ip("::1"), "::/0"));
    assert!(!addr_in_mask(ip("::1"), "127.0.0.0/8"));
    assert!(!addr_in_mask(ip("10.0.0.1"), "10.0.0.0/33"));
    // A host name equal to the From host matches (as LiveKit; spoofable).
    let c = call("100", "200", "192.0.2.1");
    assert!(addr_allowed(&c, &strings(&["carrier.example"])));
    assert!(!addr_allowed(&c, &strings(&["10.0.0.0/8"])));
    assert!(
        addr_allowed(&c, &strings(&["bad mask"])),
        "invalid masks are ignored"
    );
}

#[test]
fn specific_number_beats_default_and_filters_apply() {
    let trunks = vec![
        trunk("ST_default", &[], &["127.0.0.0/8"]),
        trunk("ST_did", &["+15550100"], &["127.0.0.0/8"]),
    ];
    let pick = |c: &CallFacts| {
        match_trunk(&trunks, c)
            .unwrap()
            .map(|t| t.sip_trunk_id.clone())
    };
    assert_eq!(
        pick(&call("1", "15550100", "127.0.0.1")).as_deref(),
        Some("ST_did")
    );
    assert_eq!(
        pick(&call("1", "c2c-room", "127.0.0.1")).as_deref(),
        Some("ST_default")
    );
    assert_eq!(
        pick(&call("1", "c2c-room", "10.1.1.1")),
        None,
        "source not allowed"
    );
    let mut limited = trunk("ST_from", &[], &[]);
    limited.allowed_numbers = strings(&["+4930123"]);
    let trunks = vec![limited];
    assert!(match_trunk(&trunks, &call("4930123", "x", "10.0.0.1"))
        .unwrap()
        .is_some());
    assert!(match_trunk(&trunks, &call("555", "x", "10.0.0.1"))
        .unwrap()
        .is_none());
    let two_defaults = vec![trunk("ST_1", &[], &[]), trunk("ST_2", &[], &[])];
    assert!(match_trunk(&two_defaults, &call("1", "x", "10.0.0.1")).is_err());
}

#[test]
fn bound_rules_beat_wildcards_and_specific_numbers_win() {
    let t = trunk("ST_t", &[], &[]);
    let rules = vec![
        rule("SDR_wild", &[], callee("", false)),
        rule("SDR_bound", &["ST_t"], callee("", false)),
        rule("SDR_other", &["ST_other"], callee("x", false)),
    ];
    let c = call("1", "room-1", "127.0.0.1");
    let got = match_rule(Some(&t), &rules, &c).unwrap().unwrap();
    assert_eq!(got.sip_dispatch_rule_id, "SDR_bound");
    // No trunk: only wildcard rules are candidates.
    let got = match_rule(None, &rules, &c).unwrap().unwrap();
    assert_eq!(got.sip_dispatch_rule_id, "SDR_wild");
    assert!(match_rule(None, &rules[1..], &c).unwrap().is_none());
    // A rule limited to other called numbers does not match.
    let mut only = rule("SDR_only", &[], callee("", false));
    only.numbers = strings(&["other-room"]);
    assert!(match_rule(None, &[only], &c).unwrap().is_none());
    // Two wildcards need different keys; a rule for the called number is more
    // specific (1000 less) than any kind of rule for all numbers.
    let direct = rule(
        "SDR_direct",
        &[],
        Rule::DispatchRuleDirect(proto::SipDispatchRuleDirect {
            room_name: "lobby".into(),
            ..Default::default()
        }),
    );
    let mut for_room = rule("SDR_for_room", &[], callee("", false));
    for_room.numbers = strings(&["room-1"]);
    let rules = vec![direct.clone(), for_room];
    let got = match_rule(None, &rules, &c).unwrap().unwrap();
    assert_eq!(got.sip_dispatch_rule_id, "SDR_for_room");
    // Conflicting rules (same key) make matching fail, as in LiveKit.
    assert!(match_rule(None, &[direct, rules_wild()], &c).is_err());
}

fn rules_wild() -> proto::SipDispatchRuleInfo {
    rule("SDR_wild2", &[], callee("", false))
}

#[test]
fn callee_room_identity_and_attributes() {
    let mut t = trunk("ST_t", &[], &[]);
    t.headers_to_attributes
        .insert("X-C2C-Call-Id".into(), "c2c.callId".into());
    let mut r = rule("SDR_r", &["ST_t"], callee("", false));
    r.attributes
        .insert("c2c.direction".into(), "inbound".into());
    let c = call("+4930123456", "c2c-abc", "127.0.0.1");
    let d = evaluate(Some(&t), &r, &c, "SCL_x");
    assert_eq!(d.room, "c2c-abc");
    assert_eq!(d.identity, "sip_+4930123456");
    assert_eq!(d.name, "Phone +4930123456");
    assert_eq!(d.attributes["sip.callID"], "SCL_x");
    assert_eq!(d.attributes["sip.trunkID"], "ST_t");
    assert_eq!(d.attributes["sip.ruleID"], "SDR_r");
    assert_eq!(d.attributes["sip.phoneNumber"], "+4930123456");
    assert_eq!(d.attributes["sip.trunkPhoneNumber"], "c2c-abc");
    assert_eq!(d.attributes["sip.hostname"], "carrier.example");
    assert_eq!(d.attributes["c2c.direction"], "inbound");
    assert_eq!(d.headers_to_attributes["X-C2C-Call-Id"], "c2c.callId");

    r.hide_phone_number = true;
    r.rule = Some(proto::SipDispatchRule {
        rule: Some(callee("in", true)),
    });
    let d = evaluate(Some(&t), &r, &c, "SCL_x");
    assert!(d.room.starts_with("in_c2c-abc_"), "{}", d.room);
    assert_eq!(d.room.len(), "in_c2c-abc_".len() + 12);
    // sha256("+4930123456")[..8] as hex.
    assert_eq!(d.identity.len(), 4 + 16);
    assert!(d.identity.starts_with("sip_"));
    assert_eq!(d.name, "Phone 3456");
    for hidden in ["sip.phoneNumber", "sip.trunkPhoneNumber", "sip.hostname"] {
        assert!(!d.attributes.contains_key(hidden), "{hidden}");
    }
}

#[test]
fn individual_and_direct_rooms() {
    let c = call("5551234", "100", "127.0.0.1");
    let ind = |prefix: &str, no_randomness: bool| {
        rule(
            "SDR_i",
            &[],
            Rule::DispatchRuleIndividual(proto::SipDispatchRuleIndividual {
                room_prefix: prefix.into(),
                no_randomness,
                ..Default::default()
            }),
        )
    };
    assert_eq!(
        evaluate(None, &ind("call", true), &c, "SCL_1").room,
        "call_5551234"
    );
    assert_eq!(evaluate(None, &ind("", true), &c, "SCL_1").room, "5551234");
    assert!(evaluate(None, &ind("call", false), &c, "SCL_1")
        .room
        .starts_with("call_5551234_"));
    let mut hidden = ind("call", true);
    hidden.hide_phone_number = true;
    assert_eq!(evaluate(None, &hidden, &c, "SCL_1").room, "call_1234");
    let direct = rule(
        "SDR_d",
        &[],
        Rule::DispatchRuleDirect(proto::SipDispatchRuleDirect {
            room_name: "lobby".into(),
            pin: "12".into(),
        }),
    );
    let d = evaluate(None, &direct, &c, "SCL_1");
    assert_eq!(d.room, "lobby");
    assert!(d.pin_required);
    assert_eq!(d.attributes["sip.trunkID"], "");
}
