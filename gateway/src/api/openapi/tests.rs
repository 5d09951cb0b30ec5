//! The document covers the route table and keeps to the one error shape.

use serde_json::Value;

use super::*;

fn doc() -> Value {
    serde_json::from_slice(&document()).expect("the document is JSON")
}

#[test]
fn every_route_is_documented() {
    let d = doc();
    let all = routes::entries().chain(
        routes::PREFIX_ROUTES
            .iter()
            .map(|(m, p, r)| (m.clone(), (*p).to_string(), *r)),
    );
    for (method, path, route) in all {
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
