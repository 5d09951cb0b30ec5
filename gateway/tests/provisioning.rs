//! Provisioning through the real binary: the owner API creates managed and
//! bring-your-own tenants (mode inferred, an explicit mode refused by name), the new key
//! works the moment the answer arrives, secrets land in 0600 files and never in answers,
//! new LiveKit credentials are checked live against a real (simulated) LiveKit, changes
//! are audited and guarded by the file's revision, bad input writes nothing, and
//! `c2c-gateway tenant add|show` do the same from the shell.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::cli::{cli, ok, s};
use common::*;
use livekit_sim::{SimConfig, Simulator};
use serde_json::{json, Value};

const TENANTS: &str = "/api/c2c/owner/tenants";
const OUTBOUND_KEY: &str = "initech-outbound-key-7f3a9c";
const SIGNING: &str = "whsec_aW5pdGVjaC1zaWduaW5nLXNlY3JldA==";
const BYO_KEY: &str = "APIinitechown";
const BYO_SECRET: &str = "initech-own-livekit-secret-0123456789abcdef";

/// Every file under the policy directory and its bytes: "nothing was written" is this
/// map staying equal.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "tenants", "secrets"] {
        let d = dir.join(sub);
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn managed_spec(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Initech Realty",
        "region": "singapore",
        "crm_webhook": {"url": "http://127.0.0.1:8092/c2c/webhook",
                        "outbound_key": OUTBOUND_KEY, "signing_secret": SIGNING},
        "dlt": {"principal_entity_id": "1101555512345678901"},
        "trunks": [{"label": "airtel-mum", "livekit_trunk_id": "ST_initech", "prefix": "9911",
                    "default_did": "+919999999990", "carrier": "sip:127.0.0.1:5080",
                    "default": true}]
    })
}

async fn send(c: &reqwest::Client, req: reqwest::RequestBuilder, key: &str) -> (u16, Value) {
    let _ = c;
    json(req.header("x-api-key", key).send().await.unwrap()).await
}

fn no_secret_in(text: &str) {
    for secret in [OUTBOUND_KEY, SIGNING, BYO_SECRET] {
        assert!(!text.contains(secret), "a secret leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_tenant_is_in_force_when_the_answer_arrives() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();

    let (st, v) = send(
        &c,
        c.post(gw.url(TENANTS)).json(&managed_spec("initech")),
        OWNER_KEY,
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        v["tenant"]["billing_mode"], "managed",
        "no livekit credentials: managed"
    );
    assert_eq!(v["tenant"]["crm_webhook"]["outbound_key_set"], true);
    assert_eq!(v["api_key"]["id"], "initech-k1");
    no_secret_in(&v.to_string());
    let key = v["api_key"]["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("c2c_"));
    assert!(
        !v.to_string().contains("sha256"),
        "the key's hash is not shown either"
    );

    // In force now, not after the next reload tick: the key reads its own wallet at once.
    let (st, w) = send(&c, c.get(gw.url("/api/c2c/wallet")), &key).await;
    assert_eq!(st, 200, "{w}");
    assert_eq!(
        (w["tenant"].as_str(), w["billing_mode"].as_str()),
        (Some("initech"), Some("managed"))
    );
    // DLT: outbound starts disabled until the owner's audited toggle.
    let (st, e) = send(
        &c,
        c.post(gw.url("/api/c2c/click2call")).json(&json!({
            "customer_number": "9530251797", "agent_id": "a1", "lead_id": "L1"})),
        &key,
    )
    .await;
    assert_eq!((st, error_code(&e)), (403, "dlt_pending"), "{e}");

    // The file names secret files; the secrets live only there, mode 0600.
    let file = std::fs::read_to_string(p.path().join("tenants/initech.toml")).unwrap();
    no_secret_in(&file);
    assert!(file.contains("outbound_enabled = false"), "{file}");
    let outbound_ref = file
        .lines()
        .find_map(|l| l.strip_prefix("outbound_key_file = \""))
        .map(|r| r.trim_end_matches('"').to_string())
        .expect("outbound_key_file");
    let secret_path = p.path().join(&outbound_ref);
    assert_eq!(
        std::fs::read_to_string(&secret_path).unwrap().trim(),
        OUTBOUND_KEY
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    ok(&cli(&["policy", "check", &s(p.path())], &[]));

    // The owner's view: masked, with the audited creation.
    let (st, t) = send(&c, c.get(gw.url(&format!("{TENANTS}/initech"))), OWNER_KEY).await;
    assert_eq!(st, 200, "{t}");
    no_secret_in(&t.to_string());
    let change = &t["changes"][0];
    assert_eq!(change["action"], "create");
    assert!(change["actor"].as_str().unwrap().starts_with("owner:"));
    let fields: Vec<&str> = change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"trunks[airtel-mum].default_did"),
        "{fields:?}"
    );
    let secret = change["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "crm_webhook.outbound_key")
        .unwrap();
    assert_eq!(secret["secret"], true);
    assert!(secret.get("to").is_none());
    let (st, l) = send(&c, c.get(gw.url(TENANTS)), OWNER_KEY).await;
    assert_eq!(st, 200);
    let ids: Vec<&str> = l["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "globex", "initech"]);

    // A second create of the same id, and a tenant key, change nothing.
    let before = snapshot(p.path());
    let (st, e) = send(
        &c,
        c.post(gw.url(TENANTS)).json(&managed_spec("initech")),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (409, "tenant_exists"), "{e}");
    let (st, _) = send(
        &c,
        c.post(gw.url(TENANTS)).json(&managed_spec("hooli")),
        ACME_KEY,
    )
    .await;
    assert_eq!(st, 403, "a tenant key never provisions");
    let (st, _) = send(&c, c.get(gw.url(&format!("{TENANTS}/initech"))), &key).await;
    assert_eq!(
        st, 403,
        "a tenant key never reads another tenant's provisioning"
    );
    assert_eq!(snapshot(p.path()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_write_nothing() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let before = snapshot(p.path());

    // The mode is inferred: sending it is refused, naming the field, however spelled.
    for field in ["billingMode", "billing_mode", "mode"] {
        let mut spec = managed_spec("initech");
        spec[field] = json!("byot");
        let (st, e) = send(&c, c.post(gw.url(TENANTS)).json(&spec), OWNER_KEY).await;
        assert_eq!((st, error_code(&e)), (400, "mode_not_accepted"), "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(field),
            "{e}"
        );
    }
    let (st, e) = send(
        &c,
        c.patch(gw.url(&format!("{TENANTS}/acme")))
            .json(&json!({"billingMode": "managed"})),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (400, "mode_not_accepted"), "{e}");

    // A policy the loader refuses: every problem by key, and no file or secret behind.
    let mut spec = managed_spec("initech");
    spec["trunks"][0]["default_did"] = json!("12345");
    spec["dlt"]["principal_entity_id"] = json!("not-a-number");
    let (st, e) = send(&c, c.post(gw.url(TENANTS)).json(&spec), OWNER_KEY).await;
    assert_eq!((st, error_code(&e)), (422, "invalid_policy"), "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("trunks[0].default_did") && msg.contains("dlt.principal_entity_id"),
        "{msg}"
    );

    // Fields the request itself gets wrong.
    for body in [
        json!({"id": "initech"}),
        json!({"id": "initech", "name": "x", "crm_webhook": {"url": "http://a", "outbound_key": "k"}, "dlt": {"principal_entity_id": "1", "outbound_enabled": true}}),
        json!({"id": 7, "name": "x", "crm_webhook": {"url": "http://a", "outbound_key": "k"}, "dlt": {"principal_entity_id": "1"}}),
    ] {
        let (st, e) = send(&c, c.post(gw.url(TENANTS)).json(&body), OWNER_KEY).await;
        assert_eq!((st, error_code(&e)), (400, "invalid_json"), "{body}: {e}");
    }
    let cases = [
        json!({"id": "../etc", "name": "x", "crm_webhook": {"url": "http://a", "outbound_key": "k"}, "dlt": {"principal_entity_id": "1"}}),
        json!({"id": "initech", "name": "x", "crm_webhook": {"url": "http://a", "outbound_key": " padded"}, "dlt": {"principal_entity_id": "1"}}),
        json!({"id": "initech", "name": "x", "crm_webhook": {"url": "http://a", "outbound_key": "k"}, "dlt": {"principal_entity_id": "1"}, "livekit": {"url": "sim", "api_key": "k", "api_secret": "s"}}),
    ];
    for body in cases {
        let (st, e) = send(&c, c.post(gw.url(TENANTS)).json(&body), OWNER_KEY).await;
        assert_eq!((st, error_code(&e)), (422, "invalid_field"), "{body}: {e}");
    }
    let (st, e) = send(
        &c,
        c.post(gw.url(TENANTS))
            .header("content-type", "application/json")
            .body("{\"id\": "),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (400, "invalid_json"), "{e}");
    let (st, e) = send(
        &c,
        c.patch(gw.url(&format!("{TENANTS}/nope")))
            .json(&json!({"name": "x"})),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (404, "not_found"), "{e}");
    let (st, e) = send(
        &c,
        c.patch(gw.url(&format!("{TENANTS}/acme"))).json(&json!({})),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (422, "nothing_to_change"), "{e}");
    // Two default trunks: the loader's rule, refused before the file is touched.
    let two_defaults = json!({"trunks": [
        {"label": "a", "livekit_trunk_id": "ST_a", "default_did": "+919999999999", "carrier": "sip:127.0.0.1:5080", "default": true},
        {"label": "b", "livekit_trunk_id": "ST_b", "default_did": "+919999999999", "carrier": "sip:127.0.0.1:5080", "default": true}]});
    let (st, e) = send(
        &c,
        c.patch(gw.url(&format!("{TENANTS}/acme")))
            .json(&two_defaults),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (422, "invalid_policy"), "{e}");

    assert_eq!(
        snapshot(p.path()),
        before,
        "a refused request changed the policy directory"
    );
    let (st, _) = send(&c, c.get(gw.url(&format!("{TENANTS}/initech"))), OWNER_KEY).await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_your_own_credentials_are_checked_live_and_make_the_tenant_byot() {
    let byo = Simulator::start(SimConfig::new(BYO_KEY, BYO_SECRET))
        .await
        .unwrap();
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let before = snapshot(p.path());

    let mut spec = managed_spec("initech");
    spec["livekit"] = json!({"url": byo.url(), "api_key": BYO_KEY, "api_secret": "wrong-secret"});
    let (st, e) = send(&c, c.post(gw.url(TENANTS)).json(&spec), OWNER_KEY).await;
    assert_eq!((st, error_code(&e)), (422, "livekit_invalid"), "{e}");
    assert_eq!(
        snapshot(p.path()),
        before,
        "refused credentials wrote something"
    );

    spec["livekit"]["api_secret"] = json!(BYO_SECRET);
    let (st, v) = send(&c, c.post(gw.url(TENANTS)).json(&spec), OWNER_KEY).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["tenant"]["billing_mode"], "byot", "own credentials: byot");
    assert_eq!(v["tenant"]["livekit"]["api_key"], BYO_KEY);
    no_secret_in(&v.to_string());
    let key = v["api_key"]["key"].as_str().unwrap().to_string();
    let (_, w) = send(&c, c.get(gw.url("/api/c2c/wallet")), &key).await;
    assert_eq!(w["billing_mode"], "byot", "{w}");
    // The console's live check uses the tenant's own project now.
    let file = std::fs::read_to_string(p.path().join("tenants/initech.toml")).unwrap();
    let lk_secret = file
        .lines()
        .find_map(|l| l.strip_prefix("api_secret_file = \""))
        .map(|r| r.trim_end_matches('"').to_string())
        .unwrap();
    assert!(p.path().join(&lk_secret).exists());

    // Dropping the credentials makes it managed; the audit says so without the secret,
    // and the secret file provisioning made for it is gone.
    let (_, t) = send(&c, c.get(gw.url(&format!("{TENANTS}/initech"))), OWNER_KEY).await;
    let rev = t["tenant"]["revision"].as_str().unwrap();
    let (st, v) = send(
        &c,
        c.patch(gw.url(&format!("{TENANTS}/initech")))
            .json(&json!({"revision": rev, "livekit": null})),
        OWNER_KEY,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["tenant"]["billing_mode"], "managed");
    let changes = v["change"]["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["field"] == "billing_mode" && c["from"] == "byot" && c["to"] == "managed"),
        "{changes:?}"
    );
    assert!(changes
        .iter()
        .any(|c| c["field"] == "livekit.api_secret" && c["secret"] == true));
    no_secret_in(&v.to_string());
    assert!(
        !p.path().join(&lk_secret).exists(),
        "the replaced secret file stays behind"
    );
    let (_, w) = send(&c, c.get(gw.url("/api/c2c/wallet")), &key).await;
    assert_eq!(w["billing_mode"], "managed", "{w}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_keeps_the_hand_written_file_and_is_guarded_by_its_revision() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let (st, t) = send(&c, c.get(gw.url(&format!("{TENANTS}/acme"))), OWNER_KEY).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["tenant"]["billing_mode"], "managed");
    let rev = t["tenant"]["revision"].as_str().unwrap().to_string();
    let mut trunks = t["tenant"]["trunks"].clone();
    assert_eq!(trunks[1]["label"], "jio-del");
    trunks[1]["enabled"] = json!(true);

    let patch = json!({"revision": rev, "crm_webhook": {"url": "http://127.0.0.1:8093/v2/webhook"}, "trunks": trunks});
    let (st, v) = send(
        &c,
        c.patch(gw.url(&format!("{TENANTS}/acme"))).json(&patch),
        OWNER_KEY,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let changes: Vec<(String, Value, Value)> = v["change"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_string(),
                c["from"].clone(),
                c["to"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                "crm_webhook.url".to_string(),
                json!("http://127.0.0.1:8090/c2c/webhook"),
                json!("http://127.0.0.1:8093/v2/webhook")
            ),
            (
                "trunks[jio-del].enabled".to_string(),
                json!(false),
                json!(true)
            ),
        ]
    );
    // Comments, keys and sections the change did not touch are as they were.
    let file = std::fs::read_to_string(p.path().join("tenants/acme.toml")).unwrap();
    assert!(file.starts_with("# Example managed tenant"), "{file}");
    assert!(
        file.contains("# The previous key, still accepted") && file.contains("[[inbound.numbers]]")
    );
    assert!(file.contains("outbound_key_file = \"secrets/acme-crm-outbound.key\""));
    ok(&cli(&["policy", "check", &s(p.path())], &[]));
    // The old key still works, the trunk is usable at once.
    let (st, n) = send(
        &c,
        c.post(gw.url("/api/c2c/normalize"))
            .json(&json!({"customer_number": "9530251797", "trunk": "jio-del"})),
        ACME_KEY,
    )
    .await;
    assert_eq!(st, 200, "{n}");

    // Someone else's change meanwhile: the stale revision is refused, nothing written.
    let before = snapshot(p.path());
    let (st, e) = send(
        &c,
        c.patch(gw.url(&format!("{TENANTS}/acme")))
            .json(&json!({"revision": rev, "name": "Acme 2"})),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (409, "revision_conflict"), "{e}");
    assert_eq!(snapshot(p.path()), before);
    let (_, t) = send(&c, c.get(gw.url(&format!("{TENANTS}/acme"))), OWNER_KEY).await;
    assert_eq!(t["changes"].as_array().unwrap().len(), 1);
    assert_eq!(t["changes"][0]["action"], "update");
}

#[test]
fn the_cli_provisions_without_a_gateway_and_through_one() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let spec = data.path().join("initech.json");
    std::fs::write(&spec, managed_spec("initech").to_string()).unwrap();
    let o = cli(
        &[
            "tenant",
            "add",
            "--spec",
            &s(&spec),
            "--policies",
            &s(p.path()),
            "--data",
            &s(data.path()),
        ],
        &[],
    );
    ok(&o);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["tenant"]["billing_mode"], "managed");
    assert!(v["api_key"]["key"].as_str().unwrap().starts_with("c2c_"));
    assert!(o.stderr.contains("shown this once"));
    no_secret_in(&o.stdout);
    ok(&cli(&["policy", "check", &s(p.path())], &[]));

    // Again: refused, exit 1, nothing changed.
    let before = snapshot(p.path());
    let o = cli(
        &[
            "tenant",
            "add",
            "--spec",
            &s(&spec),
            "--policies",
            &s(p.path()),
            "--data",
            &s(data.path()),
        ],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("already exists"), "{}", o.stderr);
    assert_eq!(snapshot(p.path()), before);

    let o = cli(
        &[
            "tenant",
            "show",
            "initech",
            "--policies",
            &s(p.path()),
            "--data",
            &s(data.path()),
        ],
        &[],
    );
    ok(&o);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["changes"][0]["actor"], "cli");

    // Through a running gateway's API: in force when the command returns.
    let gw_data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), gw_data.path());
    let edit = data.path().join("edit.json");
    std::fs::write(&edit, json!({"name": "Initech Realty Pvt Ltd"}).to_string()).unwrap();
    let o = cli(
        &[
            "tenant",
            "edit",
            "initech",
            "--spec",
            &s(&edit),
            "--gateway",
            &gw.base,
        ],
        &[("C2C_OWNER_KEY", OWNER_KEY)],
    );
    ok(&o);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["tenant"]["name"], "Initech Realty Pvt Ltd");
    assert_eq!(
        v["change"]["actor"].as_str().unwrap().split(':').next(),
        Some("owner")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_call_settings_change_audited_and_say_what_needs_a_restart() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let url = gw.url("/api/c2c/owner/gateway");
    let (st, g) = send(&c, c.get(&url), OWNER_KEY).await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["settings"]["answer_detection"], "poll");
    assert_eq!(g["settings"]["calls"]["ring_timeout_seconds"], 45);
    assert_eq!(g["restart_needed"], json!([]));
    let rev = g["settings"]["revision"].as_str().unwrap().to_string();

    // A call knob: in force at once, nothing waits for a restart.
    let (st, v) = send(
        &c,
        c.patch(&url)
            .json(&json!({"revision": rev, "calls": {"ring_timeout_seconds": 30}})),
        OWNER_KEY,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["settings"]["calls"]["ring_timeout_seconds"], 30);
    assert_eq!(v["restart_needed"], json!([]));
    assert_eq!(v["change"]["tenant"], "(platform)");
    assert_eq!(
        v["change"]["changes"][0]["field"],
        "calls.ring_timeout_seconds"
    );
    assert_eq!(
        (
            v["change"]["changes"][0]["from"].clone(),
            v["change"]["changes"][0]["to"].clone()
        ),
        (json!(45), json!(30))
    );
    // Answer detection is read at start: saved, and listed as waiting for a restart.
    let (st, v) = send(
        &c,
        c.patch(&url).json(&json!({"answer_detection": "webhook"})),
        OWNER_KEY,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["restart_needed"], json!(["answer_detection"]));
    let text = std::fs::read_to_string(p.path().join("gateway.toml")).unwrap();
    assert!(
        text.contains("answer_detection = \"webhook\"") && text.contains("# poll | webhook | sip"),
        "comments stay"
    );
    ok(&cli(&["policy", "check", &s(p.path())], &[]));

    // Out of range, stale, empty, or not the owner: refused, nothing written.
    let before = snapshot(p.path());
    let (st, e) = send(
        &c,
        c.patch(&url)
            .json(&json!({"calls": {"ring_timeout_seconds": 1}})),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (422, "invalid_policy"), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("calls.ring_timeout_seconds"),
        "{e}"
    );
    let (st, e) = send(
        &c,
        c.patch(&url)
            .json(&json!({"revision": rev, "calls": {"ring_timeout_seconds": 50}})),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (409, "revision_conflict"), "{e}");
    let (st, e) = send(&c, c.patch(&url).json(&json!({"calls": {}})), OWNER_KEY).await;
    assert_eq!((st, error_code(&e)), (422, "nothing_to_change"), "{e}");
    let (st, e) = send(
        &c,
        c.patch(&url).json(&json!({"answer_detection": "guess"})),
        OWNER_KEY,
    )
    .await;
    assert_eq!((st, error_code(&e)), (400, "invalid_json"), "{e}");
    let (st, _) = send(
        &c,
        c.patch(&url)
            .json(&json!({"calls": {"ring_timeout_seconds": 50}})),
        ACME_KEY,
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(snapshot(p.path()), before);
    let (_, g) = send(&c, c.get(&url), OWNER_KEY).await;
    assert_eq!(g["changes"].as_array().unwrap().len(), 2);
}
