//! Policy loading against the shipped example and against broken copies of it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use c2c_tenancy::{load_dir, AnswerDetection, PolicyError};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// Copies the example policy tree into a temp dir so a test can break it.
fn copy_example() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_tree(&example_dir(), d.path());
    d
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&p, s.replacen(from, to, 1)).unwrap();
}

fn errors(dir: &Path) -> Vec<PolicyError> {
    load_dir(dir).expect_err("policy should be rejected").0
}

fn has(errs: &[PolicyError], file: &str, key: &str, reason_part: &str) -> bool {
    errs.iter()
        .any(|e| e.file.ends_with(file) && e.key == key && e.reason.contains(reason_part))
}

#[test]
fn the_shipped_example_is_valid() {
    let p = load_dir(&example_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.tenants.len(), 2);
    let acme = p.tenant("acme").unwrap();
    assert_eq!(acme.default_trunk().unwrap().label, "airtel-mum");
    assert!(acme.dlt.outbound_enabled);
    assert!(!p.tenant("globex").unwrap().dlt.outbound_enabled);
    assert_eq!(p.gateway.answer_detection, AnswerDetection::Poll);
    assert!(p.livekit_for(acme).unwrap().is_sim());
    // two acme calls keys + the acme console key + the owner key
    assert_eq!(p.keys.len(), 4);
}

#[test]
fn example_keys_authenticate() {
    let p = load_dir(&example_dir()).unwrap();
    let who = p
        .keys
        .authenticate(Some("c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0"))
        .unwrap();
    assert_eq!(who.tenant.as_deref(), Some("acme"));
    let owner = p
        .keys
        .authenticate(Some("c2c_V9txkkwaqj2BNm7dNiSL76CnJiU3lS4ZJEQf"))
        .unwrap();
    assert_eq!(owner.tenant, None);
}

#[test]
fn console_keys_belong_to_a_tenant_and_carry_only_console() {
    let p = load_dir(&example_dir()).unwrap();
    let who = p
        .keys
        .authenticate(Some("c2c_MVFatqflX4eiQMbYpIWckdWX2N2SGJ2iWdKu"))
        .unwrap();
    assert_eq!(who.tenant.as_deref(), Some("acme"));
    assert!(who.has(c2c_plugin_api::Scope::Console));
    assert!(!who.has(c2c_plugin_api::Scope::Calls));
    // The owner key is not a console key of any tenant: "console" is a tenant scope.
    let d = copy_example();
    edit(
        d.path(),
        "gateway.toml",
        "scopes = [\"owner\"]",
        "scopes = [\"console\"]",
    );
    let errs = errors(d.path());
    assert!(
        has(
            &errs,
            "gateway.toml",
            "owner_keys[0].scopes[0]",
            "owner keys carry the owner scope only"
        ),
        "{errs:?}"
    );
}

#[test]
fn duplicate_tenant_id_is_named() {
    let d = copy_example();
    std::fs::copy(
        d.path().join("tenants/acme.toml"),
        d.path().join("tenants/acme2.toml"),
    )
    .unwrap();
    let errs = errors(d.path());
    assert!(
        has(&errs, "tenants/acme2.toml", "id", "duplicate tenant id"),
        "{errs:?}"
    );
}

#[test]
fn duplicate_key_ids_and_hashes_across_tenants_are_named() {
    let d = copy_example();
    // Give globex acme's key id and acme's hash.
    edit(
        d.path(),
        "tenants/globex.toml",
        "[crm_webhook]",
        "[[api_keys]]\nid = \"acme-k2\"\nsha256 = \"1111111111111111111111111111111111111111111111111111111111111111\"\nscopes = [\"calls\"]\n\n[[api_keys]]\nid = \"globex-1\"\nsha256 = \"e6c1380011a9563597ff651d110ccf0d4c0c2127b887d00756813f299c049a37\"\nscopes = [\"calls\"]\n\n[crm_webhook]",
    );
    let errs = errors(d.path());
    assert!(
        has(
            &errs,
            "tenants/globex.toml",
            "api_keys[0].id",
            "duplicate key id"
        ),
        "{errs:?}"
    );
    assert!(
        has(
            &errs,
            "tenants/globex.toml",
            "api_keys[1].sha256",
            "already used"
        ),
        "{errs:?}"
    );
}

#[test]
fn rates_load_and_bad_ones_are_named() {
    let p = load_dir(&example_dir()).unwrap();
    let b = &p.gateway.billing;
    assert_eq!(
        (b.default_rate.paise_per_pulse, b.default_rate.pulse_seconds),
        (100, 60)
    );
    assert_eq!((b.min_call_minutes, b.overdraft_paise), (1, 0));
    // Calls are not paid from wallets until the operator says so; ₹100 is low.
    assert_eq!((b.charge_calls, b.low_balance_paise), (false, 10_000));
    let acme = p.tenant("acme").unwrap();
    let (airtel, jio) = (
        acme.trunk("airtel-mum").unwrap(),
        acme.trunk("jio-del").unwrap(),
    );
    assert_eq!(b.rate_for(airtel).0.pulse_seconds, 1);
    assert_eq!(b.rate_for(airtel).1, c2c_tenancy::RateSource::Trunk);
    assert_eq!(
        b.rate_for(jio),
        (b.default_rate, c2c_tenancy::RateSource::Platform)
    );

    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "pulse_seconds = 1",
        "pulse_seconds = 0",
    );
    edit(
        d.path(),
        "tenants/acme.toml",
        "enabled = false",
        "enabled = false\npaise_per_pulse = 5",
    );
    edit(
        d.path(),
        "gateway.toml",
        "paise_per_pulse = 100",
        "paise_per_pulse = 1000001",
    );
    edit(
        d.path(),
        "gateway.toml",
        "min_call_minutes = 1",
        "min_call_minutes = 0",
    );
    edit(
        d.path(),
        "gateway.toml",
        "low_balance_paise = 10000",
        "low_balance_paise = 1000000001",
    );
    let errs = errors(d.path());
    for (file, key, why) in [
        (
            "tenants/acme.toml",
            "trunks[0].pulse_seconds",
            "between 1 and 3600",
        ),
        ("tenants/acme.toml", "trunks[1].paise_per_pulse", "both"),
        ("gateway.toml", "billing.paise_per_pulse", "at most 1000000"),
        (
            "gateway.toml",
            "billing.min_call_minutes",
            "between 1 and 60",
        ),
        (
            "gateway.toml",
            "billing.low_balance_paise",
            "at most 1000000000",
        ),
    ] {
        assert!(has(&errs, file, key, why), "{key}: {errs:?}");
    }
}

#[test]
fn two_default_trunks_bad_prefix_and_bad_did_are_named() {
    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "enabled = false",
        "enabled = false\ndefault = true",
    );
    edit(
        d.path(),
        "tenants/acme.toml",
        "prefix = \"9911\"",
        "prefix = \"99a1\"",
    );
    edit(
        d.path(),
        "tenants/acme.toml",
        "+918888888888",
        "918888888888",
    );
    let errs = errors(d.path());
    assert!(
        has(
            &errs,
            "tenants/acme.toml",
            "trunks[1].default",
            "only one trunk"
        ),
        "{errs:?}"
    );
    assert!(
        has(
            &errs,
            "tenants/acme.toml",
            "trunks[0].prefix",
            "digits only"
        ),
        "{errs:?}"
    );
    assert!(
        has(&errs, "tenants/acme.toml", "trunks[1].default_did", "E.164"),
        "{errs:?}"
    );
}

#[test]
fn missing_secret_references_are_named() {
    let d = copy_example();
    std::fs::remove_file(d.path().join("secrets/acme-crm-outbound.key")).unwrap();
    edit(
        d.path(),
        "tenants/globex.toml",
        "outbound_key_file = \"secrets/globex-crm-outbound.key\"",
        "outbound_key_env = \"C2C_TEST_VAR_THAT_IS_NOT_SET\"",
    );
    let errs = errors(d.path());
    assert!(
        has(
            &errs,
            "tenants/acme.toml",
            "crm_webhook.outbound_key_env",
            "cannot be read"
        ),
        "{errs:?}"
    );
    assert!(
        has(
            &errs,
            "tenants/globex.toml",
            "crm_webhook.outbound_key_env",
            "C2C_TEST_VAR_THAT_IS_NOT_SET is not set"
        ),
        "{errs:?}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "prefix = \"9911\"",
        "prefix = \"9911\"\ncolour = \"red\"",
    );
    edit(
        d.path(),
        "gateway.toml",
        "threads = 2",
        "threads = 2\nworkers = 4",
    );
    let errs = errors(d.path());
    assert!(
        errs.iter().any(|e| e.file.ends_with("tenants/acme.toml")
            && e.key.starts_with("trunks[0]")
            && e.reason.contains("unknown field `colour`")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.file.ends_with("gateway.toml")
            && e.key.starts_with("server")
            && e.reason.contains("unknown field `workers`")),
        "{errs:?}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "prefix = \"9911\"",
        "prefix = \"x\"",
    );
    edit(d.path(), "tenants/globex.toml", "+917777777777", "7777");
    edit(
        d.path(),
        "gateway.toml",
        "answer_detection = \"poll\"",
        "answer_detection = \"psychic\"",
    );
    let errs = errors(d.path());
    assert!(errs.len() >= 3, "{errs:?}");
}

#[test]
fn syntax_errors_name_the_file() {
    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "name = \"Acme Realty\"",
        "name = \"Acme",
    );
    let errs = errors(d.path());
    assert!(
        errs.iter().any(|e| e.file.ends_with("tenants/acme.toml")),
        "{errs:?}"
    );
}

#[test]
fn tenant_keys_cannot_be_owner_keys() {
    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "scopes = [\"calls\"]",
        "scopes = [\"owner\"]",
    );
    let errs = errors(d.path());
    assert!(
        has(
            &errs,
            "tenants/acme.toml",
            "api_keys[0].scopes[0]",
            "owner scope"
        ),
        "{errs:?}"
    );
}

#[test]
fn sip_caps_default_and_are_validated() {
    let p = load_dir(&example_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway.sip.calls_per_second, 10);
    assert_eq!(p.gateway.sip.max_concurrent_calls, 100);
    assert_eq!(p.gateway.sip.max_transactions, 8192);

    let d = copy_example();
    edit(
        d.path(),
        "gateway.toml",
        "[calls]",
        "[sip]\ncalls_per_second = 5000\nmax_concurrent_calls = 20000\nmax_transactions = 500000\n\n[calls]",
    );
    let p = load_dir(d.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway.sip.calls_per_second, 5000);
    assert_eq!(p.gateway.sip.max_concurrent_calls, 20000);
    assert_eq!(p.gateway.sip.max_transactions, 500_000);

    let d = copy_example();
    edit(
        d.path(),
        "gateway.toml",
        "[calls]",
        "[sip]\ncalls_per_second = 0\nmax_transactions = 10\n\n[calls]",
    );
    let errs = errors(d.path());
    assert!(has(
        &errs,
        "gateway.toml",
        "sip.calls_per_second",
        "between"
    ));
    assert!(has(
        &errs,
        "gateway.toml",
        "sip.max_transactions",
        "between"
    ));
}

#[test]
fn store_cache_defaults_to_64_mib_and_is_validated() {
    let p = load_dir(&example_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway.store_cache_bytes, 64 * 1024 * 1024);
    let d = copy_example();
    edit(
        d.path(),
        "gateway.toml",
        "[calls]",
        "[store]
cache_mb = 16

[calls]",
    );
    let p = load_dir(d.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway.store_cache_bytes, 16 * 1024 * 1024);
    for bad in ["cache_mb = 1", "cache_mb = 100000", "cache_size = 8"] {
        let d = copy_example();
        edit(
            d.path(),
            "gateway.toml",
            "[calls]",
            &format!("[store]\n{bad}\n\n[calls]"),
        );
        let errs = errors(d.path());
        assert!(!errs.is_empty(), "{bad} was accepted");
    }
}

#[test]
fn store_kind_defaults_to_sled_and_postgres_takes_its_url_from_the_environment() {
    use c2c_tenancy::StoreKind;
    let p = load_dir(&example_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway.store, StoreKind::Sled);
    assert_eq!(p.gateway.fleet_size, 1);

    std::env::set_var("C2C_TEST_STORE_URL", "postgres://c2c:s3cret@db:5432/c2c");
    let d = copy_example();
    edit(
        d.path(),
        "gateway.toml",
        "[calls]",
        "[store]
kind = \"postgres\"
url_env = \"C2C_TEST_STORE_URL\"
pool_size = 8
statement_timeout_ms = 2000
schema = \"fleet_1\"
lease_ms = 3000
node_name = \"gw-a\"
fleet_size = 2

[calls]",
    );
    let p = load_dir(d.path()).unwrap_or_else(|e| panic!("{e}"));
    let StoreKind::Postgres(pg) = &p.gateway.store else {
        panic!("not postgres: {:?}", p.gateway.store);
    };
    assert_eq!(pg.url.expose(), "postgres://c2c:s3cret@db:5432/c2c");
    assert!(
        !format!("{pg:?}").contains("s3cret"),
        "the URL never prints"
    );
    assert_eq!(pg.pool_size, 8);
    assert_eq!(pg.statement_timeout, std::time::Duration::from_secs(2));
    assert_eq!(pg.schema.as_deref(), Some("fleet_1"));
    assert_eq!(pg.lease, std::time::Duration::from_secs(3));
    assert_eq!(pg.node_name.as_deref(), Some("gw-a"));
    assert_eq!(p.gateway.fleet_size, 2);
    // Each node takes its share of a rate cap, rounded up, at least 1.
    assert_eq!(p.gateway.node_share(10), 5);
    assert_eq!(p.gateway.node_share(5), 3);
    assert_eq!(p.gateway.node_share(1), 1);

    for (bad, key) in [
        ("kind = \"mysql\"", "store.kind"),
        ("kind = \"postgres\"", "store.url_env"),
        (
            "kind = \"postgres\"\nurl_env = \"C2C_TEST_STORE_URL\"\nurl_file = \"x\"",
            "store.url_env",
        ),
        (
            "kind = \"postgres\"\nurl_env = \"C2C_TEST_NO_SUCH_VAR\"",
            "store.url_env",
        ),
        ("url_env = \"C2C_TEST_STORE_URL\"", "store.url_env"),
        ("fleet_size = 2", "store.fleet_size"),
        (
            "kind = \"postgres\"\nurl_env = \"C2C_TEST_STORE_URL\"\nlease_ms = 100",
            "store.lease_ms",
        ),
        (
            "kind = \"postgres\"\nurl_env = \"C2C_TEST_STORE_URL\"\npool_size = 0",
            "store.pool_size",
        ),
        (
            "kind = \"postgres\"\nurl_env = \"C2C_TEST_STORE_URL\"\nschema = \"x; drop\"",
            "store.schema",
        ),
        (
            "kind = \"postgres\"\nurl_env = \"C2C_TEST_STORE_URL\"\ncache_mb = 8",
            "store.cache_mb",
        ),
    ] {
        let d = copy_example();
        edit(
            d.path(),
            "gateway.toml",
            "[calls]",
            &format!("[store]\n{bad}\n\n[calls]"),
        );
        let errs = errors(d.path());
        assert!(has(&errs, "gateway.toml", key, ""), "{bad}: {errs:?}");
    }
}

#[test]
fn call_retention_is_off_by_default_and_validated() {
    let p = load_dir(&example_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway.calls.retention, None);

    let d = copy_example();
    edit(
        d.path(),
        "gateway.toml",
        "[calls]",
        "[calls]\nretention_days = 90",
    );
    let p = load_dir(d.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.gateway.calls.retention,
        Some(std::time::Duration::from_secs(90 * 86_400))
    );

    // 0 is "keep forever", like leaving it out.
    let d = copy_example();
    edit(
        d.path(),
        "gateway.toml",
        "[calls]",
        "[calls]\nretention_days = 0",
    );
    let p = load_dir(d.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway.calls.retention, None);

    for bad in [
        "retention_days = 3651",
        "retention_days = -1",
        "retention_days = 1.5",
    ] {
        let d = copy_example();
        edit(
            d.path(),
            "gateway.toml",
            "[calls]",
            &format!("[calls]\n{bad}"),
        );
        let errs = errors(d.path());
        assert!(
            errs.iter()
                .any(|e| e.file.ends_with("gateway.toml") && e.key == "calls.retention_days"),
            "{bad}: {errs:?}"
        );
    }
}

#[test]
fn inbound_numbers_are_indexed_and_checked() {
    let p = load_dir(&example_dir()).unwrap_or_else(|e| panic!("{e}"));
    let (t, n) = p.inbound_number("+918045678901").expect("example DID");
    assert_eq!((t.id.as_str(), n.trunk.as_str()), ("acme", "airtel-mum"));
    assert_eq!(t.inbound.lead_wait.as_millis(), 1500);
    assert!(p.inbound_number("+918045678902").is_none());

    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "trunk = \"airtel-mum\"\n",
        "trunk = \"nope\"\n\n[[inbound.numbers]]\ndid = \"8045678901\"\ntrunk = \"airtel-mum\"\n",
    );
    edit(
        d.path(),
        "tenants/acme.toml",
        "ring_agent_seconds = 20",
        "ring_agent_seconds = 90\nlookup_url = \"ftp://x\"",
    );
    // The same DID in another tenant: one tenant per number.
    let globex = std::fs::read_to_string(d.path().join("tenants/globex.toml")).unwrap();
    std::fs::write(
        d.path().join("tenants/globex.toml"),
        format!("{globex}\n[[inbound.numbers]]\ndid = \"+918045678901\"\ntrunk = \"x\"\n"),
    )
    .unwrap();
    let errs = errors(d.path());
    assert!(
        has(
            &errs,
            "acme.toml",
            "inbound.numbers[0].trunk",
            "not a trunk"
        ),
        "{errs:?}"
    );
    assert!(
        has(&errs, "acme.toml", "inbound.numbers[1].did", "E.164"),
        "{errs:?}"
    );
    assert!(
        has(&errs, "acme.toml", "inbound.ring_agent_seconds", "longer"),
        "{errs:?}"
    );
    assert!(
        has(&errs, "acme.toml", "inbound.lookup_url", "http(s)"),
        "{errs:?}"
    );
    assert!(
        has(
            &errs,
            "globex.toml",
            "inbound.numbers[0].did",
            "tenant \"acme\""
        ),
        "{errs:?}"
    );
}

/// Provisioning validates a tenant before its file exists: an overlay for a new file in
/// `tenants/` is loaded as if it were there, and its problems are named by that file.
#[test]
fn an_overlay_may_add_a_tenant_file() {
    let d = copy_example();
    let new = d.path().join("tenants/initech.toml");
    let text = "id = \"initech\"\nname = \"Initech\"\n\n[dlt]\nprincipal_entity_id = \"1101\"\n";
    let p = c2c_tenancy::load_dir_with(d.path(), &[(new.clone(), text.to_string())]).unwrap();
    assert_eq!(p.tenant("initech").unwrap().name, "Initech");
    assert!(!new.exists(), "validation wrote nothing");
    let bad = text.replace("1101", "not-digits");
    let errs = c2c_tenancy::load_dir_with(d.path(), &[(new.clone(), bad)])
        .unwrap_err()
        .0;
    assert!(
        has(&errs, "initech.toml", "dlt.principal_entity_id", "numeric"),
        "{errs:?}"
    );
    // A path outside tenants/ is no tenant file.
    let stray = d.path().join("initech.toml");
    let p = c2c_tenancy::load_dir_with(d.path(), &[(stray, text.to_string())]).unwrap();
    assert!(p.tenant("initech").is_none());
}

/// `[sip.media]` and a trunk's `media`: defaults, values read, and each bad value named
/// by its key.
#[test]
fn media_settings_are_read_and_checked() {
    let d = copy_example();
    let p = c2c_tenancy::load_dir(d.path()).unwrap();
    let m = p.gateway.sip.media;
    assert_eq!((m.address, m.port_min, m.port_max), (None, 20_000, 29_999));
    assert_eq!(m.media_timeout, std::time::Duration::from_secs(30));
    let acme = p.tenant("acme").unwrap();
    assert!(acme
        .trunks
        .iter()
        .all(|t| t.media == c2c_tenancy::MediaMode::Direct));

    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "media = \"direct\"",
        "media = \"anchor\"",
    );
    let gw = std::fs::read_to_string(d.path().join("gateway.toml")).unwrap();
    std::fs::write(
        d.path().join("gateway.toml"),
        format!("{gw}\n[sip.media]\naddress = \"203.0.113.10\"\nport_min = 30000\nport_max = 30999\nmedia_timeout_seconds = 5\n"),
    )
    .unwrap();
    let p = c2c_tenancy::load_dir(d.path()).unwrap();
    let m = p.gateway.sip.media;
    assert_eq!(m.address, Some("203.0.113.10".parse().unwrap()));
    assert_eq!((m.port_min, m.port_max), (30_000, 30_999));
    assert_eq!(m.media_timeout, std::time::Duration::from_secs(5));
    assert_eq!(
        (m.io, m.batch),
        (
            c2c_tenancy::RelayIo::Auto,
            std::time::Duration::from_micros(200)
        ),
        "defaults"
    );
    for (io, want) in [
        ("io_uring", c2c_tenancy::RelayIo::IoUring),
        ("runtime", c2c_tenancy::RelayIo::Runtime),
        ("auto", c2c_tenancy::RelayIo::Auto),
    ] {
        let gw = std::fs::read_to_string(d.path().join("gateway.toml")).unwrap();
        let gw = gw.split("\nio = ").next().unwrap().to_string();
        std::fs::write(
            d.path().join("gateway.toml"),
            format!("{gw}\nio = \"{io}\"\nbatch_us = 0\n"),
        )
        .unwrap();
        let m = c2c_tenancy::load_dir(d.path()).unwrap().gateway.sip.media;
        assert_eq!((m.io, m.batch), (want, std::time::Duration::ZERO), "{io}");
    }
    assert_eq!(
        p.tenant("acme").unwrap().trunks[0].media,
        c2c_tenancy::MediaMode::Anchor
    );

    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "media = \"direct\"",
        "media = \"tunnel\"",
    );
    let gw = std::fs::read_to_string(d.path().join("gateway.toml")).unwrap();
    std::fs::write(
        d.path().join("gateway.toml"),
        format!("{gw}\n[sip.media]\naddress = \"0.0.0.0\"\nport_min = 30001\nmedia_timeout_seconds = 0\none_way_seconds = 9999\nio = \"epoll\"\nbatch_us = 9999\n"),
    )
    .unwrap();
    let errs = errors(d.path());
    for (file, key, why) in [
        (
            "tenants/acme.toml",
            "trunks[0].media",
            "\"direct\" or \"anchor\"",
        ),
        ("gateway.toml", "sip.media.address", "IP address"),
        ("gateway.toml", "sip.media.port_min", "even"),
        (
            "gateway.toml",
            "sip.media.media_timeout_seconds",
            "between 1 and 3600",
        ),
        (
            "gateway.toml",
            "sip.media.one_way_seconds",
            "between 1 and 3600",
        ),
        ("gateway.toml", "sip.media.io", "\"io_uring\""),
        ("gateway.toml", "sip.media.batch_us", "between 0 and 5000"),
    ] {
        assert!(has(&errs, file, key, why), "{key}: {errs:?}");
    }
}

/// `[dlt]` of gateway.toml and of a tenant, and each trunk's `category`: defaults, values
/// read, a trunk whose caller ID does not fit its category refused by `policy check`,
/// and each bad value named by its key.
#[test]
fn dlt_rules_are_read_and_checked() {
    use c2c_tenancy::{CallCategory, CallingHours, EntityClass};
    let d = copy_example();
    let p = c2c_tenancy::load_dir(d.path()).unwrap();
    assert_eq!(p.gateway.dlt.calling_hours, CallingHours::default());
    assert_eq!(p.gateway.dlt.series.promotional, vec!["140".to_string()]);
    let acme = p.tenant("acme").unwrap();
    assert_eq!(acme.dlt.entity_class, EntityClass::Commercial);
    assert_eq!(
        acme.dlt.registered_numbers,
        vec!["+919999999999".to_string(), "+918888888888".to_string()],
        "undeclared: the trunks' DIDs"
    );
    assert!(acme
        .trunks
        .iter()
        .all(|t| t.category == CallCategory::Service));
    assert_eq!(
        (acme.dlt.dnd_file.as_ref(), acme.dlt.calling_hours),
        (None, None)
    );

    // A promotional trunk with a 140-series DID, a financial entity's 1601 service trunk.
    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "category = \"service\"",
        "category = \"promotional\"",
    );
    edit(
        d.path(),
        "tenants/acme.toml",
        "default_did = \"+919999999999\"",
        "default_did = \"+911401234567\"",
    );
    edit(
        d.path(),
        "tenants/acme.toml",
        "outbound_enabled = true\n",
        "outbound_enabled = true\ncalling_hours = \"10:00-19:00\"\ndnd_file = \"dlt/acme-dnd.txt\"\n",
    );
    edit(
        d.path(),
        "tenants/globex.toml",
        "outbound_enabled = false\n",
        "outbound_enabled = false\nentity_class = \"financial\"\n",
    );
    edit(
        d.path(),
        "tenants/globex.toml",
        "default_did = \"+917777777777\"",
        "default_did = \"+911601221234\"",
    );
    let gw = std::fs::read_to_string(d.path().join("gateway.toml")).unwrap();
    std::fs::write(
        d.path().join("gateway.toml"),
        format!("{gw}\n[dlt]\ncalling_hours = \"09:30-20:00\"\npromotional_series = [\"140\", \"141\"]\n"),
    )
    .unwrap();
    let p = c2c_tenancy::load_dir(d.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.gateway.dlt.calling_hours.to_string(), "09:30-20:00");
    assert_eq!(p.gateway.dlt.series.promotional.len(), 2);
    let acme = p.tenant("acme").unwrap();
    assert_eq!(acme.trunks[0].category, CallCategory::Promotional);
    assert_eq!(acme.dlt.calling_hours.unwrap().to_string(), "10:00-19:00");
    assert_eq!(acme.dlt.dnd_file, Some(d.path().join("dlt/acme-dnd.txt")));
    assert_eq!(
        p.tenant("globex").unwrap().dlt.entity_class,
        EntityClass::Financial
    );

    // What does not fit, and what is malformed.
    let d = copy_example();
    edit(
        d.path(),
        "tenants/acme.toml",
        "category = \"service\"",
        "category = \"promotional\"",
    );
    edit(
        d.path(),
        "tenants/acme.toml",
        "outbound_enabled = true\n",
        "outbound_enabled = true\nentity_class = \"bank\"\nregistered_numbers = [\"12345\"]\ncalling_hours = \"21:00-09:00\"\ndnd_file = \"../outside.txt\"\n",
    );
    edit(
        d.path(),
        "tenants/globex.toml",
        "outbound_enabled = false\n",
        "outbound_enabled = false\nregistered_numbers = [\"+912240001234\"]\n",
    );
    edit(
        d.path(),
        "tenants/globex.toml",
        "label = \"vi-blr\"",
        "label = \"vi-blr\"\ncategory = \"marketing\"",
    );
    let gw = std::fs::read_to_string(d.path().join("gateway.toml")).unwrap();
    std::fs::write(
        d.path().join("gateway.toml"),
        format!("{gw}\n[dlt]\ncalling_hours = \"9-21\"\nfinancial_series = [\"16x\"]\nmax_list_numbers = 0\n"),
    )
    .unwrap();
    let errs = errors(d.path());
    for (file, key, why) in [
        ("tenants/acme.toml", "trunks[0].default_did", "140-series"),
        ("tenants/acme.toml", "dlt.entity_class", "\"commercial\""),
        ("tenants/acme.toml", "dlt.registered_numbers[0]", "E.164"),
        ("tenants/acme.toml", "dlt.calling_hours", "start before end"),
        (
            "tenants/acme.toml",
            "dlt.dnd_file",
            "inside the policy directory",
        ),
        (
            "tenants/globex.toml",
            "trunks[0].category",
            "\"promotional\"",
        ),
        (
            "tenants/globex.toml",
            "trunks[0].default_did",
            "not registered",
        ),
        ("gateway.toml", "dlt.calling_hours", "09:00-21:00"),
        ("gateway.toml", "dlt.financial_series", "prefixes"),
        ("gateway.toml", "dlt.max_list_numbers", "between 1 and"),
    ] {
        assert!(has(&errs, file, key, why), "{key}: {errs:?}");
    }
}
