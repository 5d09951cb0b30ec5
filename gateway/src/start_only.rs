//! Which `gateway.toml` settings a running gateway reads only at start.
//!
//! A hot reload swaps the whole [`Policy`](c2c_tenancy::Policy) in, but some settings
//! were consumed once while the server was assembled (`server.rs`): the listeners and
//! worker threads, the LiveKit region pools and their health-check services (`edge.rs`),
//! the SIP edge's allow list and caps (`sip.rs`), the answer-detection services (the
//! poller is only added in `poll` mode; the SIP observer and the simulator's webhook URL
//! are fixed at start), the bundled simulator (`calls/livekit_pool.rs`) and the CRM
//! webhook deliverer (`calls/services.rs`). Changing them in a reload changes nothing
//! until a restart, so the reloader warns and `policy check --against` lists them.
//!
//! This is the one list of those settings. [`changes`] destructures every field of
//! [`GatewayConfig`] without `..`: a new field does not compile until it is classified
//! here as start-only or hot.
//!
//! Hot (read on every use, so a reload applies them): `server.public_url`, owner keys,
//! the platform and tenant `[livekit]` projects (the pool rebuilds changed clients;
//! only a platform project on `url = "sim"` is tied to the simulator started with it),
//! `calls.*` (including `calls.retention_days`), `agents.*` (an open presence socket keeps
//! the heartbeat it started with), `limits.per_ip_requests_per_second`, and
//! everything in `tenants/*.toml`.

use c2c_tenancy::{GatewayConfig, Region};

/// The start-only settings that differ between the policy a gateway runs with and
/// `next`, named as in `gateway.toml` (`server.threads`, `regions.mumbai.upstreams`),
/// in file order. Empty when a reload to `next` takes full effect.
pub fn changes(running: &GatewayConfig, next: &GatewayConfig) -> Vec<String> {
    let GatewayConfig {
        listen,
        public_url: _,
        threads,
        grace_period,
        regions,
        livekit,
        answer_detection,
        calls: _,
        webhooks,
        simulator,
        per_ip_rps: _,
        health_check_interval,
        tls,
        sip,
        store_cache_bytes,
        store,
        fleet_size,
        presence: _,
        billing: _,
        dlt: _,
    } = running;
    let mut out = Vec::new();
    let mut diff = |key: &str, changed: bool| {
        if changed {
            out.push(key.to_string());
        }
    };
    diff(
        "answer_detection",
        *answer_detection != next.answer_detection,
    );
    diff("server.listen", *listen != next.listen);
    diff("server.threads", *threads != next.threads);
    diff(
        "server.grace_period_seconds",
        *grace_period != next.grace_period,
    );
    diff("server.tls", *tls != next.tls);
    diff(
        "store.cache_mb",
        *store_cache_bytes != next.store_cache_bytes,
    );
    diff("store", *store != next.store);
    diff("store.fleet_size", *fleet_size != next.fleet_size);
    diff(
        "limits.health_check_interval_ms",
        *health_check_interval != next.health_check_interval,
    );
    diff(
        "sip.calls_per_second",
        sip.calls_per_second != next.sip.calls_per_second,
    );
    diff(
        "sip.max_concurrent_calls",
        sip.max_concurrent_calls != next.sip.max_concurrent_calls,
    );
    diff(
        "sip.max_transactions",
        sip.max_transactions != next.sip.max_transactions,
    );
    diff("sip.media", sip.media != next.sip.media);
    diff(
        "webhooks.timeout_seconds",
        webhooks.timeout != next.webhooks.timeout,
    );
    diff(
        "webhooks.max_age_hours",
        webhooks.max_age != next.webhooks.max_age,
    );
    diff(
        "webhooks.per_tenant_concurrency",
        webhooks.per_tenant_concurrency != next.webhooks.per_tenant_concurrency,
    );
    diff(
        "webhooks.allow_private_targets",
        webhooks.allow_private_targets != next.webhooks.allow_private_targets,
    );
    diff(
        "simulator.listen",
        simulator.listen != next.simulator.listen,
    );
    diff(
        "simulator.sip_disconnect_code_attribute",
        simulator.sip_disconnect_code_attribute != next.simulator.sip_disconnect_code_attribute,
    );
    diff(
        "simulator.sip_outbound",
        simulator.sip_outbound != next.simulator.sip_outbound,
    );
    // A project with a real URL is rebuilt on reload; the bundled simulator keeps the
    // key pair it was started with.
    let sim = |p: &Option<c2c_tenancy::LiveKitProject>| p.as_ref().is_some_and(|p| p.is_sim());
    diff(
        "livekit (the bundled simulator)",
        (sim(livekit) || sim(&next.livekit)) && *livekit != next.livekit,
    );
    region_changes(regions, &next.regions, &mut out);
    out
}

/// `regions.<name>` for an added or removed region, `regions.<name>.<field>` for a
/// changed one, and `regions` when only their order changed (the first region is the
/// default for tokens that name no call).
fn region_changes(running: &[Region], next: &[Region], out: &mut Vec<String>) {
    let before = out.len();
    let find = |list: &[Region], name: &str| list.iter().position(|r| r.name == name);
    for r in running {
        match find(next, &r.name).map(|i| &next[i]) {
            None => out.push(format!("regions.{}", r.name)),
            Some(n) => {
                for (field, changed) in [
                    ("upstreams", r.upstreams != n.upstreams),
                    ("fallback", r.fallback != n.fallback),
                    ("sip_sources", r.sip_sources != n.sip_sources),
                ] {
                    if changed {
                        out.push(format!("regions.{}.{field}", r.name));
                    }
                }
            }
        }
    }
    for n in next {
        if find(running, &n.name).is_none() {
            out.push(format!("regions.{}", n.name));
        }
    }
    let names = |l: &[Region]| l.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    if out.len() == before && names(running) != names(next) {
        out.push("regions".into());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn example() -> GatewayConfig {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        c2c_tenancy::load_dir(&dir)
            .expect("the example policy is valid")
            .gateway
    }

    #[test]
    fn identical_policies_have_no_start_only_changes() {
        assert!(changes(&example(), &example()).is_empty());
    }

    #[test]
    fn hot_settings_are_not_reported() {
        let (a, mut b) = (example(), example());
        b.public_url = "https://gw.example.com".into();
        b.per_ip_rps += 1;
        b.calls.ring_timeout += Duration::from_secs(1);
        b.calls.poll_interval += Duration::from_millis(1);
        assert!(changes(&a, &b).is_empty(), "{:?}", changes(&a, &b));
        // A real LiveKit project is rebuilt on reload...
        let real = c2c_tenancy::LiveKitProject {
            url: "https://lk.example.com".into(),
            api_key: "APIa".into(),
            api_secret: c2c_tenancy::Secret::new("s"),
        };
        let (mut c, mut d) = (example(), example());
        c.livekit = Some(real.clone());
        d.livekit = Some(c2c_tenancy::LiveKitProject {
            api_key: "APIb".into(),
            ..real
        });
        assert!(changes(&c, &d).is_empty());
        // ...the simulator's project is not.
        let mut e = example();
        if let Some(p) = e.livekit.as_mut() {
            p.api_key = "APIother".into();
        }
        assert_eq!(changes(&a, &e), ["livekit (the bundled simulator)"]);
    }

    #[test]
    fn each_start_only_setting_is_named() {
        let a = example();
        let mut b = a.clone();
        b.answer_detection = c2c_tenancy::AnswerDetection::Webhook;
        b.listen = "127.0.0.1:9999".parse().unwrap();
        b.threads += 1;
        b.grace_period += Duration::from_secs(1);
        b.health_check_interval += Duration::from_millis(1);
        b.sip.calls_per_second += 1;
        b.sip.max_concurrent_calls += 1;
        b.sip.max_transactions += 1;
        b.sip.media.port_max -= 2;
        b.webhooks.timeout += Duration::from_secs(1);
        b.webhooks.max_age += Duration::from_secs(3600);
        b.webhooks.per_tenant_concurrency += 1;
        b.webhooks.allow_private_targets = !b.webhooks.allow_private_targets;
        b.simulator.listen = "127.0.0.1:1".into();
        b.simulator.sip_disconnect_code_attribute = !b.simulator.sip_disconnect_code_attribute;
        b.simulator.sip_outbound = Some("udp:127.0.0.1:5060".into());
        b.store_cache_bytes *= 2;
        b.tls = Some(c2c_tenancy::TlsListener {
            listen: "127.0.0.1:8443".parse().unwrap(),
            cert_file: "c.pem".into(),
            key_file: "k.pem".into(),
        });
        assert_eq!(
            changes(&a, &b),
            [
                "answer_detection",
                "server.listen",
                "server.threads",
                "server.grace_period_seconds",
                "server.tls",
                "store.cache_mb",
                "limits.health_check_interval_ms",
                "sip.calls_per_second",
                "sip.max_concurrent_calls",
                "sip.max_transactions",
                "sip.media",
                "webhooks.timeout_seconds",
                "webhooks.max_age_hours",
                "webhooks.per_tenant_concurrency",
                "webhooks.allow_private_targets",
                "simulator.listen",
                "simulator.sip_disconnect_code_attribute",
                "simulator.sip_outbound",
            ]
        );
        // Symmetric: reverting is just as much a change.
        assert_eq!(changes(&b, &a).len(), 18);
    }

    #[test]
    fn region_changes_name_the_region_and_field() {
        let a = example();
        assert_eq!(a.regions[0].name, "singapore");
        let mut b = a.clone();
        b.regions[0].upstreams.push("http://127.0.0.1:7882".into());
        b.regions[0].sip_sources.clear();
        b.regions[1].fallback = vec!["singapore".into()];
        assert_eq!(
            changes(&a, &b),
            [
                "regions.singapore.upstreams",
                "regions.singapore.sip_sources",
                "regions.mumbai.fallback"
            ]
        );
        let mut c = a.clone();
        c.regions.remove(1);
        c.regions.push(Region {
            name: "hyderabad".into(),
            upstreams: vec!["http://127.0.0.1:7883".into()],
            fallback: vec![],
            sip_sources: vec![],
            livekit_sip: None,
        });
        assert_eq!(changes(&a, &c), ["regions.mumbai", "regions.hyderabad"]);
        // Same regions, another default (the first one).
        let mut d = a.clone();
        d.regions.reverse();
        assert_eq!(changes(&a, &d), ["regions"]);
    }
}
