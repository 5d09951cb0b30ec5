//! Inbound trunks and dispatch rules through the real `livekit-api` 0.10 `SIPClient`
//! (protobuf Twirp) and raw JSON: create / list / delete, and LiveKit's creation
//! validation (auth-or-addresses-or-numbers, one default trunk, rule conflict keys).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{start, KEY, SECRET};
use livekit_api::access_token::{AccessToken, SIPGrants, VideoGrants};
use livekit_api::services::sip::{
    CreateSIPDispatchRuleOptions, CreateSIPInboundTrunkOptions, ListSIPDispatchRuleFilter,
    ListSIPInboundTrunkFilter, SIPClient,
};
use livekit_api::services::{ServerError, ServiceError};
use livekit_protocol as proto;
use proto::sip_dispatch_rule::Rule;
use serde_json::{json, Value};

/// (Twirp code, message) of a failed call.
fn twirp(err: ServiceError) -> (String, String) {
    match err {
        ServiceError::Twirp(ServerError::Twirp(e)) => (e.code, e.msg),
        other => panic!("not a twirp error: {other:?}"),
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn callee() -> Rule {
    Rule::DispatchRuleCallee(proto::SipDispatchRuleCallee {
        room_prefix: String::new(),
        pin: String::new(),
        randomize: false,
    })
}

fn addresses(list: &[&str]) -> CreateSIPInboundTrunkOptions {
    CreateSIPInboundTrunkOptions {
        allowed_addresses: Some(list.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    }
}

#[tokio::test]
async fn trunks_and_rules_round_trip_with_sdk() {
    let sim = start().await;
    let sip = SIPClient::with_api_key(&sim.url(), KEY, SECRET);
    let trunk = sip
        .create_sip_inbound_trunk(
            "c2c-gateway inbound".into(),
            vec![],
            CreateSIPInboundTrunkOptions {
                allowed_addresses: Some(vec!["198.51.100.7/32".into()]),
                headers_to_attributes: Some(map(&[("X-C2C-Call-Id", "c2c.callId")])),
                attributes_to_headers: Some(map(&[("c2c.callId", "X-C2C-Call-Id")])),
                ringing_timeout: Some(Duration::from_secs(30)),
                max_call_duration: Some(Duration::from_secs(14_400)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        trunk.sip_trunk_id.starts_with("ST_"),
        "{}",
        trunk.sip_trunk_id
    );
    assert_eq!(trunk.name, "c2c-gateway inbound");
    assert_eq!(trunk.headers_to_attributes["X-C2C-Call-Id"], "c2c.callId");
    assert_eq!(trunk.ringing_timeout.map(|d| d.seconds), Some(30));
    let listed = sip
        .list_sip_inbound_trunk(ListSIPInboundTrunkFilter::All)
        .await
        .unwrap();
    assert_eq!(listed, vec![trunk.clone()]);

    let rule = sip
        .create_sip_dispatch_rule(
            callee(),
            CreateSIPDispatchRuleOptions {
                name: "c2c-gateway room by To user".into(),
                trunk_ids: vec![trunk.sip_trunk_id.clone()],
                hide_phone_number: true,
                attributes: map(&[("c2c.direction", "inbound")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(rule.sip_dispatch_rule_id.starts_with("SDR_"));
    assert_eq!(rule.trunk_ids, vec![trunk.sip_trunk_id.clone()]);
    assert!(rule.hide_phone_number);
    let rules = sip
        .list_sip_dispatch_rule(ListSIPDispatchRuleFilter::All)
        .await
        .unwrap();
    assert_eq!(rules, vec![rule.clone()]);
    assert_eq!(sim.sip_dispatch_rules(), rules);

    let deleted = sip
        .delete_sip_dispatch_rule(&rule.sip_dispatch_rule_id)
        .await
        .unwrap();
    assert_eq!(deleted, rule);
    let (code, _) = twirp(
        sip.delete_sip_dispatch_rule(&rule.sip_dispatch_rule_id)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "not_found");

    // LiveKit answers DeleteSIPTrunk with the legacy SIPTrunkInfo carrying only the id.
    let gone = sip.delete_sip_trunk(&trunk.sip_trunk_id).await.unwrap();
    assert_eq!(gone.sip_trunk_id, trunk.sip_trunk_id);
    assert!(sim.sip_inbound_trunks().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn creation_is_validated_like_livekit() {
    let sim = start().await;
    let sip = SIPClient::with_api_key(&sim.url(), KEY, SECRET);

    // For security a trunk needs auth, allowed addresses or numbers.
    let err = sip
        .create_sip_inbound_trunk("open".into(), vec![], Default::default())
        .await
        .unwrap_err();
    let (code, msg) = twirp(err);
    assert_eq!(code, "invalid_argument");
    assert!(
        msg.contains("AuthUsername+AuthPassword, AllowedAddresses or Numbers"),
        "{msg}"
    );

    // One default trunk (no numbers) without allowed_numbers per project;
    // allowed_addresses is not part of the conflict key.
    let first = sip
        .create_sip_inbound_trunk("a".into(), vec![], addresses(&["127.0.0.0/8"]))
        .await
        .unwrap();
    let (code, msg) = twirp(
        sip.create_sip_inbound_trunk("b".into(), vec![], addresses(&["10.0.0.0/8"]))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "invalid_argument");
    assert!(
        msg.starts_with(&format!(
            "Conflicting inbound SIP Trunks: \"<new>\" and \"{}\"",
            first.sip_trunk_id
        )),
        "{msg}"
    );
    // A default trunk limited to some callers, or a trunk for a number, is fine.
    sip.create_sip_inbound_trunk(
        "c".into(),
        vec![],
        CreateSIPInboundTrunkOptions {
            allowed_numbers: Some(vec!["+4930123".into()]),
            ..addresses(&["10.0.0.0/8"])
        },
    )
    .await
    .unwrap();
    sip.create_sip_inbound_trunk("did".into(), vec!["+1 555 0100".into()], Default::default())
        .await
        .unwrap();
    let (code, _) = twirp(
        sip.create_sip_inbound_trunk("did2".into(), vec!["15550100".into()], Default::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "invalid_argument", "same number once normalized");
    // Header mappings must be SIP header names.
    let (code, msg) = twirp(
        sip.create_sip_inbound_trunk(
            "bad".into(),
            vec!["+1999".into()],
            CreateSIPInboundTrunkOptions {
                headers_to_attributes: Some(map(&[("X Bad", "a")])),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, "invalid_argument");
    assert!(msg.contains("invalid header name"), "{msg}");

    // Dispatch rules: same trunk set + same numbers + same PIN conflict.
    let bound = |trunks: Vec<String>| CreateSIPDispatchRuleOptions {
        trunk_ids: trunks,
        ..Default::default()
    };
    let t = first.sip_trunk_id.clone();
    let rule = sip
        .create_sip_dispatch_rule(callee(), bound(vec![t.clone()]))
        .await
        .unwrap();
    let (code, msg) = twirp(
        sip.create_sip_dispatch_rule(callee(), bound(vec![t.clone(), "ST_other".into()]))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "invalid_argument");
    assert!(
        msg.contains(&format!(
            "already exists in dispatch rule \"{}\"",
            rule.sip_dispatch_rule_id
        )),
        "{msg}"
    );
    // A wildcard rule, or one with a PIN, has another key.
    sip.create_sip_dispatch_rule(callee(), bound(vec![]))
        .await
        .unwrap();
    let pin = Rule::DispatchRuleDirect(proto::SipDispatchRuleDirect {
        room_name: "lobby".into(),
        pin: "1234".into(),
    });
    sip.create_sip_dispatch_rule(pin, bound(vec![t]))
        .await
        .unwrap();
    assert_eq!(sim.sip_dispatch_rules().len(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn sip_admin_grant_and_go_json_shape() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/twirp/livekit.SIP/CreateSIPInboundTrunk", sim.url());
    let body = json!({"trunk": {
        "name": "raw", "allowedAddresses": ["127.0.0.1"],
        "headersToAttributes": {"X-C2C-Call-Id": "c2c.callId"}, "ringingTimeout": "30s"}})
    .to_string();
    let post = |token: String| {
        http.post(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
    };
    // A token for calls (sip.call) is not enough: trunks need sip.admin.
    let caller = AccessToken::with_api_key(KEY, SECRET)
        .with_grants(VideoGrants::default())
        .with_sip_grants(SIPGrants {
            call: true,
            ..Default::default()
        })
        .to_jwt()
        .unwrap();
    let resp = post(caller).await.unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "unauthenticated");

    let admin = AccessToken::with_api_key(KEY, SECRET)
        .with_grants(VideoGrants::default())
        .with_sip_grants(SIPGrants {
            admin: true,
            ..Default::default()
        })
        .to_jwt()
        .unwrap();
    let resp = post(admin).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    // Go twirp JSON: proto names, unpopulated fields present, map keys untouched.
    assert!(v["sip_trunk_id"].as_str().unwrap().starts_with("ST_"));
    assert_eq!(v["headers_to_attributes"]["X-C2C-Call-Id"], "c2c.callId");
    assert_eq!(v["ringing_timeout"], "30s");
    assert_eq!(v["numbers"], json!([]));
    assert_eq!(v["include_headers"], "SIP_NO_HEADERS");
    sim.shutdown().await;
}
