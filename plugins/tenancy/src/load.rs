//! Reading and validating a policy directory into a [`Policy`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use c2c_plugin_api::Scope;
use serde::de::DeserializeOwned;

use crate::error::{PolicyError, PolicyErrors};
use crate::file::{self, GatewayFile, TenantFile};
use crate::keyring::{KeyRecord, KeyRing};
use crate::policy::*;
use crate::{keys, secret};

/// Policy files are small; anything bigger is a mistake (or an attack on the loader).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Collects errors for one file.
struct Errs<'a> {
    file: &'a Path,
    out: &'a mut Vec<PolicyError>,
}

impl Errs<'_> {
    fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.out.push(PolicyError::new(self.file, key, reason));
    }
}

/// Loads `dir/gateway.toml` and every `dir/tenants/*.toml`.
///
/// Returns every problem found, not just the first.
pub fn load_dir(dir: &Path) -> Result<Policy, PolicyErrors> {
    load_dir_with(dir, &[])
}

/// Like [`load_dir`], but each `(path, text)` in `overlay` is read as if `path` (one of
/// the directory's policy files, as `dir/gateway.toml` or `dir/tenants/<file>.toml`)
/// contained `text`. Tools that edit a policy file validate the whole resulting policy
/// set this way before writing anything; secret file references still resolve against
/// the real directory.
pub fn load_dir_with(dir: &Path, overlay: &[(PathBuf, String)]) -> Result<Policy, PolicyErrors> {
    let mut errors = Vec::new();
    let gw_path = dir.join("gateway.toml");
    let gw_file: Option<GatewayFile> = read_toml(&gw_path, overlay, &mut errors);
    let mut tenant_files = Vec::new();
    let tenants_dir = dir.join("tenants");
    match std::fs::read_dir(&tenants_dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for p in paths {
                if let Some(t) = read_toml::<TenantFile>(&p, overlay, &mut errors) {
                    tenant_files.push((p, t));
                }
            }
        }
        Err(e) => errors.push(PolicyError::new(
            &tenants_dir,
            "-",
            format!("cannot read the tenants directory: {e}"),
        )),
    }
    let Some(gw_file) = gw_file else {
        return Err(PolicyErrors(errors));
    };

    let mut ring = KeyRing::default();
    let mut key_ids: HashMap<String, PathBuf> = HashMap::new();
    let gateway = {
        let mut e = Errs {
            file: &gw_path,
            out: &mut errors,
        };
        let g = gateway_config(&gw_file.server, &gw_file, dir, &mut e);
        for (i, k) in gw_file.owner_keys.iter().enumerate() {
            add_key(
                k,
                &format!("owner_keys[{i}]"),
                None,
                &mut ring,
                &mut key_ids,
                &mut e,
            );
        }
        g
    };

    let mut tenants = BTreeMap::new();
    let mut seen_files: HashMap<String, PathBuf> = HashMap::new();
    for (path, tf) in tenant_files {
        let mut e = Errs {
            file: &path,
            out: &mut errors,
        };
        if let Some(prev) = seen_files.get(&tf.id) {
            e.push(
                "id",
                format!(
                    "duplicate tenant id {:?}, already defined in {}",
                    tf.id,
                    prev.display()
                ),
            );
            continue;
        }
        seen_files.insert(tf.id.clone(), path.clone());
        for (i, k) in tf.api_keys.iter().enumerate() {
            add_key(
                k,
                &format!("api_keys[{i}]"),
                Some(&tf.id),
                &mut ring,
                &mut key_ids,
                &mut e,
            );
        }
        if let Some(t) = tenant(tf, &path, dir, &gateway, &mut e) {
            tenants.insert(t.id.clone(), Arc::new(t));
        }
    }

    if errors.is_empty() {
        Ok(Policy::new(gateway, tenants, ring))
    } else {
        Err(PolicyErrors(errors))
    }
}

fn read_toml<T: DeserializeOwned>(
    path: &Path,
    overlay: &[(PathBuf, String)],
    errors: &mut Vec<PolicyError>,
) -> Option<T> {
    if let Some((_, text)) = overlay.iter().find(|(p, _)| p == path) {
        if text.len() as u64 > MAX_FILE_BYTES {
            errors.push(PolicyError::new(path, "-", "file is larger than 1 MiB"));
            return None;
        }
        return parse_toml(path, text, errors);
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errors.push(PolicyError::new(path, "-", format!("cannot read: {e}")));
            return None;
        }
    };
    if meta.len() > MAX_FILE_BYTES {
        errors.push(PolicyError::new(path, "-", "file is larger than 1 MiB"));
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(PolicyError::new(path, "-", format!("cannot read: {e}")));
            return None;
        }
    };
    parse_toml(path, &text, errors)
}

fn parse_toml<T: DeserializeOwned>(
    path: &Path,
    text: &str,
    errors: &mut Vec<PolicyError>,
) -> Option<T> {
    let de = toml::Deserializer::new(text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Some(v),
        Err(e) => {
            let key = e.path().to_string();
            let key = if key == "." { "-".to_string() } else { key };
            let inner = e.into_inner();
            // toml reports syntax errors with a span; turn it into a line number.
            let at = inner
                .span()
                .map(|s| {
                    format!(
                        " (line {})",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_default();
            errors.push(PolicyError::new(
                path,
                key,
                format!("{}{at}", inner.message().trim()),
            ));
            None
        }
    }
}

fn add_key(
    k: &file::KeyEntry,
    at: &str,
    tenant: Option<&str>,
    ring: &mut KeyRing,
    ids: &mut HashMap<String, PathBuf>,
    e: &mut Errs<'_>,
) {
    let Some(hash) = keys::parse_hash(&k.sha256) else {
        e.push(
            format!("{at}.sha256"),
            "must be 64 hex digits (the SHA-256 of the key)",
        );
        return;
    };
    if ring.contains(&hash) {
        e.push(
            format!("{at}.sha256"),
            "this key hash is already used by another key",
        );
        return;
    }
    if k.id.trim().is_empty() {
        e.push(format!("{at}.id"), "must not be empty");
    }
    if let Some(prev) = ids.get(&k.id) {
        e.push(
            format!("{at}.id"),
            format!("duplicate key id {:?} (also in {})", k.id, prev.display()),
        );
        return;
    }
    ids.insert(k.id.clone(), e.file.to_path_buf());
    let mut scopes = Vec::new();
    for (i, s) in k.scopes.iter().enumerate() {
        match Scope::parse(s) {
            Some(Scope::Owner) if tenant.is_some() => e.push(
                format!("{at}.scopes[{i}]"),
                "tenant keys cannot carry the owner scope; owner keys live in gateway.toml",
            ),
            Some(Scope::Calls | Scope::Console) if tenant.is_none() => e.push(
                format!("{at}.scopes[{i}]"),
                "owner keys carry the owner scope only",
            ),
            Some(sc) => scopes.push(sc),
            None => e.push(
                format!("{at}.scopes[{i}]"),
                format!("unknown scope {s:?}; known scopes: calls, console, owner"),
            ),
        }
    }
    if k.scopes.is_empty() {
        e.push(format!("{at}.scopes"), "at least one scope is required");
    }
    ring.insert(KeyRecord {
        hash,
        id: k.id.as_str().into(),
        tenant: tenant.map(Into::into),
        scopes: scopes.into(),
    });
}

fn gateway_config(
    s: &file::ServerSection,
    f: &GatewayFile,
    dir: &Path,
    e: &mut Errs<'_>,
) -> GatewayConfig {
    let listen = s.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen: SocketAddr = listen.parse().unwrap_or_else(|_| {
        e.push(
            "server.listen",
            format!("{listen:?} is not an address like 127.0.0.1:8080"),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let public_url = s
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{listen}"));
    match url::Url::parse(&public_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https" | "ws" | "wss") => {}
        _ => e.push("server.public_url", "must be an http(s):// or ws(s):// URL"),
    }
    let threads = s.threads.unwrap_or(2);
    if threads == 0 || threads > 256 {
        e.push("server.threads", "must be between 1 and 256");
    }
    let grace = s.grace_period_seconds.unwrap_or(10);
    if grace > 300 {
        e.push("server.grace_period_seconds", "must be at most 300");
    }

    let mut names = HashSet::new();
    let mut regions = Vec::new();
    for (i, r) in f.regions.iter().enumerate() {
        if !valid_id(&r.name) {
            e.push(
                format!("regions[{i}].name"),
                "must be lowercase letters, digits and dashes",
            );
        }
        if !names.insert(r.name.clone()) {
            e.push(
                format!("regions[{i}].name"),
                format!("duplicate region {:?}", r.name),
            );
        }
        if r.upstreams.is_empty() {
            e.push(
                format!("regions[{i}].upstreams"),
                "at least one upstream URL is required",
            );
        }
        for (j, u) in r.upstreams.iter().enumerate() {
            if !is_http_url(u) {
                e.push(
                    format!("regions[{i}].upstreams[{j}]"),
                    "must be an http(s):// or ws(s):// URL",
                );
            }
        }
        for (j, src) in r.sip_sources.iter().enumerate() {
            if !valid_cidr(src) {
                e.push(
                    format!("regions[{i}].sip_sources[{j}]"),
                    "must be an IP address or CIDR like 10.1.0.0/16",
                );
            }
        }
        regions.push(Region {
            name: r.name.clone(),
            upstreams: r.upstreams.clone(),
            fallback: r.fallback.clone(),
            sip_sources: r.sip_sources.clone(),
        });
    }
    for (i, r) in regions.iter().enumerate() {
        for (j, fb) in r.fallback.iter().enumerate() {
            if !names.contains(fb) || fb == &r.name {
                e.push(
                    format!("regions[{i}].fallback[{j}]"),
                    format!("{fb:?} is not another region defined in this file"),
                );
            }
        }
    }

    let livekit = f
        .livekit
        .as_ref()
        .and_then(|lk| livekit_project(lk, "livekit", dir, e));

    let answer_detection = match f.answer_detection.as_deref().unwrap_or("poll") {
        "poll" => AnswerDetection::Poll,
        "webhook" => AnswerDetection::Webhook,
        "sip" => AnswerDetection::Sip,
        other => {
            e.push(
                "answer_detection",
                format!("{other:?} is not one of poll, webhook, sip"),
            );
            AnswerDetection::Poll
        }
    };

    let c = &f.calls;
    let mut secs = |key: &str, v: Option<u64>, default: u64, min: u64, max: u64| {
        let v = v.unwrap_or(default);
        if v < min || v > max {
            e.push(
                format!("calls.{key}"),
                format!("must be between {min} and {max}"),
            );
        }
        v
    };
    let calls = CallKnobs {
        ring_timeout: Duration::from_secs(secs(
            "ring_timeout_seconds",
            c.ring_timeout_seconds,
            45,
            5,
            300,
        )),
        agent_drop_grace: Duration::from_secs(secs(
            "agent_drop_grace_seconds",
            c.agent_drop_grace_seconds,
            20,
            0,
            600,
        )),
        max_duration: Duration::from_secs(secs(
            "max_duration_seconds",
            c.max_duration_seconds,
            3600,
            10,
            86_400,
        )),
        unconnected_expiry: Duration::from_secs(secs(
            "unconnected_expiry_seconds",
            c.unconnected_expiry_seconds,
            600,
            10,
            86_400,
        )),
        poll_interval: Duration::from_millis(secs(
            "poll_interval_ms",
            c.poll_interval_ms,
            1000,
            100,
            60_000,
        )),
        token_ttl: Duration::from_secs(secs(
            "token_ttl_seconds",
            c.token_ttl_seconds,
            3600,
            60,
            86_400,
        )),
        // 0 (the default) keeps calls forever; at most ten years.
        retention: match secs("retention_days", c.retention_days, 0, 0, 3650) {
            0 => None,
            days => Some(Duration::from_secs(days * 86_400)),
        },
    };

    let w = &f.webhooks;
    let timeout = w.timeout_seconds.unwrap_or(15);
    if !(1..=60).contains(&timeout) {
        e.push("webhooks.timeout_seconds", "must be between 1 and 60");
    }
    let max_age = w.max_age_hours.unwrap_or(72);
    if !(24..=24 * 30).contains(&max_age) {
        e.push(
            "webhooks.max_age_hours",
            "must be between 24 and 720 (retries last at least a day)",
        );
    }
    let conc = w.per_tenant_concurrency.unwrap_or(4);
    if !(1..=64).contains(&conc) {
        e.push(
            "webhooks.per_tenant_concurrency",
            "must be between 1 and 64",
        );
    }

    GatewayConfig {
        listen,
        public_url,
        threads,
        grace_period: Duration::from_secs(grace),
        regions,
        livekit,
        answer_detection,
        calls,
        webhooks: WebhookPolicy {
            timeout: Duration::from_secs(timeout),
            max_age: Duration::from_secs(max_age * 3600),
            per_tenant_concurrency: conc,
            allow_private_targets: w.allow_private_targets.unwrap_or(false),
        },
        simulator: SimulatorConfig {
            listen: {
                let l = f
                    .simulator
                    .listen
                    .clone()
                    .unwrap_or_else(|| "127.0.0.1:0".into());
                match l.parse::<SocketAddr>() {
                    Ok(a) if a.ip().is_loopback() => {}
                    _ => e.push(
                        "simulator.listen",
                        "must be a loopback address like 127.0.0.1:7880",
                    ),
                }
                l
            },
            sip_disconnect_code_attribute: f
                .simulator
                .sip_disconnect_code_attribute
                .unwrap_or(false),
            sip_outbound: f.simulator.sip_outbound.clone(),
        },
        per_ip_rps: {
            let v = f.limits.per_ip_requests_per_second.unwrap_or(50);
            if !(1..=1_000_000).contains(&v) {
                e.push(
                    "limits.per_ip_requests_per_second",
                    "must be between 1 and 1000000",
                );
            }
            v
        },
        sip: {
            let s = &f.sip;
            let cps = s.calls_per_second.unwrap_or(10);
            if !(1..=100_000).contains(&cps) {
                e.push("sip.calls_per_second", "must be between 1 and 100000");
            }
            let conc = s.max_concurrent_calls.unwrap_or(100);
            if !(1..=1_000_000).contains(&conc) {
                e.push("sip.max_concurrent_calls", "must be between 1 and 1000000");
            }
            let txns = s.max_transactions.unwrap_or(8192);
            if !(64..=4_000_000).contains(&txns) {
                e.push("sip.max_transactions", "must be between 64 and 4000000");
            }
            SipKnobs {
                calls_per_second: cps,
                max_concurrent_calls: conc,
                max_transactions: txns,
            }
        },
        store_cache_bytes: {
            let mb = f.store.cache_mb.unwrap_or(64);
            if !(4..=65_536).contains(&mb) {
                e.push("store.cache_mb", "must be between 4 and 65536");
            }
            mb * 1024 * 1024
        },
        health_check_interval: {
            let v = f.limits.health_check_interval_ms.unwrap_or(1000);
            if !(100..=60_000).contains(&v) {
                e.push(
                    "limits.health_check_interval_ms",
                    "must be between 100 and 60000",
                );
            }
            Duration::from_millis(v)
        },
        tls: s.tls.as_ref().and_then(|t| {
            let listen = t
                .listen
                .parse::<SocketAddr>()
                .map_err(|_| e.push("server.tls.listen", "must be an address like 0.0.0.0:8443"))
                .ok()?;
            let cert_file = dir.join(&t.cert_file);
            let key_file = dir.join(&t.key_file);
            if !cert_file.is_file() {
                e.push(
                    "server.tls.cert_file",
                    format!("{} does not exist", cert_file.display()),
                );
            }
            if !key_file.is_file() {
                e.push(
                    "server.tls.key_file",
                    format!("{} does not exist", key_file.display()),
                );
            }
            Some(TlsListener {
                listen,
                cert_file,
                key_file,
            })
        }),
    }
}

fn livekit_project(
    lk: &file::LiveKitSection,
    at: &str,
    dir: &Path,
    e: &mut Errs<'_>,
) -> Option<LiveKitProject> {
    if lk.url != "sim" && !is_http_url(&lk.url) {
        e.push(
            format!("{at}.url"),
            "must be an http(s):// or ws(s):// URL, or \"sim\"",
        );
    }
    if lk.api_key.trim().is_empty() {
        e.push(format!("{at}.api_key"), "must not be empty");
    }
    match secret::resolve(
        lk.api_secret_env.as_deref(),
        lk.api_secret_file.as_deref(),
        dir,
    ) {
        Ok(s) => Some(LiveKitProject {
            url: lk.url.clone(),
            api_key: lk.api_key.clone(),
            api_secret: s,
        }),
        Err(reason) => {
            e.push(format!("{at}.api_secret_env"), reason);
            None
        }
    }
}

fn tenant(
    tf: TenantFile,
    path: &Path,
    dir: &Path,
    gw: &GatewayConfig,
    e: &mut Errs<'_>,
) -> Option<Tenant> {
    if !valid_id(&tf.id) {
        e.push("id", "must be 1-63 lowercase letters, digits and dashes");
    }
    if path.file_stem().and_then(|s| s.to_str()) != Some(tf.id.as_str()) {
        e.push("id", format!("must match the file name ({}.toml)", tf.id));
    }
    if tf.name.trim().is_empty() {
        e.push("name", "must not be empty");
    }
    let region = tf.region.clone().unwrap_or_else(|| "singapore".to_string());
    if tf.livekit.is_none() && !gw.regions.iter().any(|r| r.name == region) {
        e.push(
            "region",
            format!("region {region:?} is not defined in gateway.toml [[regions]]"),
        );
    }
    for (i, o) in tf.allowed_origins.iter().enumerate() {
        let ok = url::Url::parse(o)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/")
            .unwrap_or(false);
        if !ok {
            e.push(
                format!("allowed_origins[{i}]"),
                "must be an origin like https://crm.example.com (scheme and host, no path)",
            );
        }
    }
    let livekit = tf
        .livekit
        .as_ref()
        .and_then(|lk| livekit_project(lk, "livekit", dir, e));
    if tf.livekit.is_none() && gw.livekit.is_none() {
        e.push(
            "livekit",
            "no [livekit] section and gateway.toml has no platform [livekit] to fall back to",
        );
    }
    let crm_webhook = tf.crm_webhook.as_ref().and_then(|c| {
        if !is_http_url(&c.url) || c.url.starts_with("ws") {
            e.push("crm_webhook.url", "must be an http(s):// URL");
        }
        let key = secret::resolve(
            c.outbound_key_env.as_deref(),
            c.outbound_key_file.as_deref(),
            dir,
        )
        .map_err(|r| e.push("crm_webhook.outbound_key_env", r))
        .ok()?;
        let signing = match (&c.signing_secret_env, &c.signing_secret_file) {
            (None, None) => None,
            (env, file) => secret::resolve(env.as_deref(), file.as_deref(), dir)
                .map_err(|r| e.push("crm_webhook.signing_secret_env", r))
                .ok(),
        };
        Some(CrmWebhook {
            url: c.url.clone(),
            outbound_key: key,
            signing_secret: signing,
        })
    });
    let pe = tf.dlt.principal_entity_id.trim();
    if pe.is_empty() || !pe.bytes().all(|b| b.is_ascii_digit()) {
        e.push(
            "dlt.principal_entity_id",
            "must be the numeric DLT Principal Entity id",
        );
    }

    let mut labels = HashSet::new();
    let mut defaults = 0;
    let mut trunks = Vec::new();
    for (i, t) in tf.trunks.iter().enumerate() {
        let at = format!("trunks[{i}]");
        if !valid_id(&t.label) {
            e.push(
                format!("{at}.label"),
                "must be lowercase letters, digits and dashes",
            );
        }
        if !labels.insert(t.label.clone()) {
            e.push(
                format!("{at}.label"),
                format!("duplicate trunk label {:?}", t.label),
            );
        }
        if t.livekit_trunk_id.trim().is_empty() {
            e.push(format!("{at}.livekit_trunk_id"), "must not be empty");
        }
        if !t.prefix.bytes().all(|b| b.is_ascii_digit()) || t.prefix.len() > 12 {
            e.push(format!("{at}.prefix"), "must be digits only (at most 12)");
        }
        if !is_e164(&t.default_did) {
            e.push(
                format!("{at}.default_did"),
                "must be in E.164, like +919999999999",
            );
        }
        if !valid_sip_uri(&t.carrier) {
            e.push(
                format!("{at}.carrier"),
                "must be a SIP URI like sip:10.0.0.5:5060",
            );
        }
        if t.default {
            defaults += 1;
            if defaults > 1 {
                e.push(format!("{at}.default"), "only one trunk may be the default");
            }
        }
        trunks.push(Trunk {
            label: t.label.clone(),
            livekit_trunk_id: t.livekit_trunk_id.clone(),
            prefix: t.prefix.clone(),
            default_did: t.default_did.clone(),
            carrier: t.carrier.clone(),
            default: t.default,
            enabled: t.enabled,
        });
    }

    Some(Tenant {
        id: tf.id,
        name: tf.name,
        region,
        allowed_origins: tf.allowed_origins,
        livekit,
        crm_webhook,
        dlt: DltPolicy {
            principal_entity_id: pe.to_string(),
            outbound_enabled: tf.dlt.outbound_enabled,
        },
        limits: {
            let rps = tf.limits.requests_per_second.unwrap_or(50);
            let calls = tf.limits.max_concurrent_calls.unwrap_or(100);
            if !(1..=100_000).contains(&rps) {
                e.push("limits.requests_per_second", "must be between 1 and 100000");
            }
            if !(1..=1_000_000).contains(&calls) {
                e.push(
                    "limits.max_concurrent_calls",
                    "must be between 1 and 1000000",
                );
            }
            TenantLimits {
                requests_per_second: rps,
                max_concurrent_calls: calls,
            }
        },
        trunks,
    })
}

fn valid_cidr(s: &str) -> bool {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(addr) => {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
        }
        Err(_) => false,
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https" | "ws" | "wss") && u.host().is_some())
        .unwrap_or(false)
}

/// E.164: `+`, a non-zero country code digit, 8 to 15 digits in all.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

fn valid_sip_uri(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sip:") else {
        return false;
    };
    let hostport = rest.split(';').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (hostport, None),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}
