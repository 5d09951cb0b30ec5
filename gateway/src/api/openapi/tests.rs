//! The document covers the route table and keeps to the one error shape.

use serde_json::Value;

use c2c_plugin_api::Scope;

use super::*;

/// The security scheme the document names for a key scope.
fn scheme_of(scope: Scope) -> &'static str {
    match scope {
        Scope::Calls => "tenant_key",
        Scope::Console => "console_key",
        Scope::Owner => "owner_key",
    }
}

fn doc() -> Value {
    serde_json::from_slice(&document()).expect("the document is JSON")
}

#[test]
fn every_route_is_documented() {
    let d = doc();
    for (method, path, route) in routes::entries() {
        let op = &d["paths"][&path][method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{method} {path} ({}) is undocumented",
            route.name
        );
        let keyed = !matches!(route.access, Access::Public);
        assert_eq!(
            op.get("security").is_some(),
            keyed || routes::is_livekit_route(&route),
            "{method} {path}: security must follow the route's access rule"
        );
        if keyed {
            assert!(op["responses"]["401"].is_object(), "{method} {path}: 401");
        }
        // One alternative per scope the route admits, each naming that scope's scheme.
        let scopes: &[Scope] = match &route.access {
            Access::Public => &[],
            Access::Key(s) => std::slice::from_ref(s),
            Access::AnyKey(s) => s,
        };
        let mut want: Vec<&str> = scopes.iter().map(|s| scheme_of(*s)).collect();
        want.sort();
        let mut got: Vec<&str> = op["security"]
            .as_array()
            .map(|alts| {
                alts.iter()
                    .filter_map(|a| a.as_object()?.keys().next().map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        got.sort();
        if keyed {
            assert_eq!(got, want, "{method} {path}: security schemes vs scopes");
        }
    }
}

#[test]
fn errors_use_the_one_shape() {
    let d = doc();
    let mut seen = 0;
    for (path, item) in d["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        resp["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                    seen += 1;
                }
            }
        }
    }
    assert!(seen > 50, "only {seen} error responses documented");
    let e = &d["components"]["schemas"]["ErrorBody"];
    assert_eq!(e["required"], serde_json::json!(["error"]));
}

#[test]
fn contract_shapes_are_published() {
    let d = doc();
    let s = &d["components"]["schemas"];
    let keys = |name: &str| -> Vec<String> {
        let mut k: Vec<String> = s[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} missing"))
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        keys("CrmWebhookPayload"),
        [
            "agent_id",
            "call_id",
            "call_status",
            "case_id",
            "customer_crm_id",
            "duration_seconds",
            "phone_from",
            "phone_to"
        ]
    );
    assert_eq!(
        keys("Click2CallResponse"),
        ["call_id", "customer_number", "room", "token", "ws_url"]
    );
    assert_eq!(
        s["CallStatus"]["enum"],
        serde_json::json!(["ANSWERED", "NOT_ANSWERED", "FAILED"])
    );
    assert!(d["webhooks"]["crmCallOutcome"]["post"].is_object());
    // The opt-in body: the contract's schema, then `media` (the call API's, or null).
    let ext = &d["webhooks"]["crmCallOutcomeWithMedia"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["allOf"];
    assert_eq!(
        ext[0]["$ref"], "#/components/schemas/CrmWebhookPayload",
        "{ext}"
    );
    assert_eq!(
        ext[1]["properties"]["media"]["oneOf"][0]["$ref"], "#/components/schemas/MediaView",
        "{ext}"
    );
    assert!(s["MediaView"].is_object(), "MediaView is in the components");
    // The call log's page bound is the store's.
    let limit = d["paths"]["/api/c2c/calls"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        limit["schema"]["maximum"].as_u64(),
        Some(c2c_callstate::MAX_PAGE as u64)
    );
}

/// What the document says of `customer_number` is what the dial plan does: the first
/// example it quotes is accepted, every other quoted example is refused.
#[test]
fn the_customer_number_text_matches_the_validation() {
    let d = doc();
    let text = d["components"]["schemas"]["Click2CallRequest"]["properties"]["customer_number"]
        ["description"]
        .as_str()
        .expect("customer_number is described")
        .to_owned();
    assert!(!text.contains("tolerated"), "{text}");
    assert!(text.contains("422 invalid_number"), "{text}");
    let quoted: Vec<&str> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|q| q.chars().any(|c| c.is_ascii_digit()) && !q.contains('_'))
        .collect();
    assert!(quoted.len() >= 6, "examples quoted: {quoted:?}");
    let (accepted, refused) = quoted.split_at(1);
    assert!(
        c2c_dialplan::validate_number(accepted[0]).is_ok(),
        "{}",
        accepted[0]
    );
    assert!(c2c_dialplan::validate_number(&format!("  {}  ", accepted[0])).is_ok());
    for q in refused {
        assert!(
            c2c_dialplan::validate_number(q).is_err(),
            "the document says {q:?} is refused"
        );
    }
}
