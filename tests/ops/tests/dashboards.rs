//! Checks of `dashboards/`: the Grafana dashboards, their provisioning files and the
//! Prometheus alert rules, against the series the gateway really exports.
//!
//! The catalogue of known series is built from the registration code itself (a fresh
//! `Registry` with `c2c_metrics::GatewayMetrics` and `c2c_crm_webhooks::WebhookMetrics`
//! registered and touched so every family shows up in `gather()`, and the process
//! collector the gateway's default registry carries), plus fixed lists: the SIP edge's
//! series (until the `c2c-sip` crate exports them; cross-checked against `plugins/sip`
//! once that directory exists), the gateway's own inbound and fleet series (checked
//! against `gateway/src/inbound/metrics.rs` and `gateway/src/fleet/metrics.rs`), the
//! series Prometheus itself writes (`up`), and the series that are *planned* (they come
//! with another issue and are documented as such in `dashboards/README.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use c2c_crm_webhooks::{DeliveryResult, WebhookMetrics};
use c2c_metrics::GatewayMetrics;
use prometheus::core::Collector;
use prometheus::proto::MetricType;
use prometheus::{
    Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, LabelModifier};
use serde_json::Value;

/// The datasource reference every panel and target must carry.
const DS_VAR: &str = "${datasource}";

/// Labels Prometheus attaches to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Series of the SIP edge (`plugins/sip/src/metrics.rs`): name, kind, labels. Fixed here
/// while the `c2c-sip` crate is being written; `sip_series_match_the_sip_edge` checks
/// each name against its sources. Once `c2c_sip` exposes its metrics, register them in
/// `catalogue()` like the gateway's and drop this list.
const SIP_SERIES: &[(&str, Kind, &[&str])] = &[
    ("c2c_sip_responses_total", Kind::Counter, &["trunk", "code"]),
    (
        "c2c_sip_post_dial_delay_seconds",
        Kind::Histogram,
        &["trunk"],
    ),
    ("c2c_sip_setup_seconds", Kind::Histogram, &["trunk"]),
    ("c2c_sip_refused_sources_total", Kind::Counter, &[]),
    ("c2c_sip_flood_dropped_total", Kind::Counter, &[]),
    ("c2c_sip_scanners_dropped_total", Kind::Counter, &[]),
    ("c2c_sip_malformed_total", Kind::Counter, &["action"]),
    ("c2c_sip_limited_total", Kind::Counter, &["tenant", "limit"]),
    ("c2c_sip_dlt_blocked_total", Kind::Counter, &["tenant"]),
    ("c2c_sip_unmatched_responses_total", Kind::Counter, &[]),
    ("c2c_sip_send_errors_total", Kind::Counter, &["transport"]),
    ("c2c_sip_udp_receive_drops_total", Kind::Counter, &[]),
    ("c2c_sip_inbound_total", Kind::Counter, &["outcome"]),
    ("c2c_sip_transactions", Kind::Gauge, &[]),
    ("c2c_sip_dialogs", Kind::Gauge, &[]),
    // Anchored media (plugins/sip/src/media/metrics.rs).
    ("c2c_sip_media_port_pairs_in_use", Kind::Gauge, &[]),
    ("c2c_sip_media_port_pairs", Kind::Gauge, &[]),
    ("c2c_sip_media_calls_total", Kind::Counter, &["trunk"]),
    ("c2c_sip_media_refused_total", Kind::Counter, &["reason"]),
    (
        "c2c_sip_media_packets_total",
        Kind::Counter,
        &["trunk", "direction"],
    ),
    (
        "c2c_sip_media_loss_ratio",
        Kind::Histogram,
        &["trunk", "direction"],
    ),
    (
        "c2c_sip_media_jitter_ms",
        Kind::Histogram,
        &["trunk", "direction"],
    ),
    (
        "c2c_sip_media_events_total",
        Kind::Counter,
        &["trunk", "event"],
    ),
    (
        "c2c_sip_media_dropped_total",
        Kind::Counter,
        &["trunk", "reason"],
    ),
    ("c2c_sip_media_sdp_unanchored_total", Kind::Counter, &[]),
];

/// Series of the gateway's inbound calls (`gateway/src/inbound/metrics.rs`, registered by
/// the gateway itself, not `c2c-metrics`); `inbound_series_match_the_gateway` checks the
/// names against that source.
const INBOUND_SERIES: &[(&str, Kind, &[&str])] = &[
    (
        "c2c_inbound_offers_total",
        Kind::Counter,
        &["tenant", "outcome"],
    ),
    (
        "c2c_inbound_lookups_total",
        Kind::Counter,
        &["tenant", "outcome"],
    ),
    ("c2c_inbound_refused_total", Kind::Counter, &["reason"]),
    ("c2c_inbound_calls", Kind::Gauge, &[]),
    ("c2c_inbound_incoming_delay_seconds", Kind::Histogram, &[]),
];

/// Series of a fleet node (`gateway/src/fleet/metrics.rs`, registered by the gateway's
/// fleet service on a PostgreSQL store, not `c2c-metrics`; docs/fleet.md);
/// `fleet_series_match_the_gateway` checks the names and labels against that source.
const FLEET_SERIES: &[(&str, Kind, &[&str])] = &[
    (
        "c2c_fleet_lease_renewals_total",
        Kind::Counter,
        &["outcome"],
    ),
    ("c2c_fleet_lease_until_ms", Kind::Gauge, &[]),
    ("c2c_fleet_calls_taken_over_total", Kind::Counter, &[]),
    ("c2c_store_pool_connections", Kind::Gauge, &["state"]),
    ("c2c_store_pool_max_connections", Kind::Gauge, &[]),
    ("c2c_store_pool_waiting", Kind::Gauge, &[]),
    ("c2c_store_pool_checkouts_total", Kind::Counter, &[]),
    ("c2c_store_pool_wait_seconds_total", Kind::Counter, &[]),
    ("c2c_store_pool_exhausted_total", Kind::Counter, &[]),
];

/// Series that come with another issue. Alerts may already use them;
/// `dashboards/README.md` marks them "planned". Once the gateway registers one, the
/// catalogue check below says to move it out of this list. None at present
/// (`c2c_webhook_backlog_oldest_age_seconds` came with issue 18's CRM catch-up).
const PLANNED_SERIES: &[(&str, Kind, &[&str])] = &[];

/// Series Prometheus writes itself for every scrape target.
const PROMETHEUS_SERIES: &[(&str, Kind, &[&str])] = &[("up", Kind::Gauge, &[])];

/// Base of every alert's `runbook_url`; the anchor is the alert's runbook heading in
/// `dashboards/README.md`.
const RUNBOOK_BASE: &str =
    "https://github.com/c2c-gateway/c2c-gateway/blob/main/dashboards/README.md#";

/// What issue 6 asks the dashboards to show: each of these series must be used by at
/// least one panel.
const REQUIRED_ON_DASHBOARDS: &[&str] = &[
    "c2c_sip_responses_total",
    "c2c_call_outcomes_total",
    "c2c_call_setup_seconds",
    "c2c_sip_post_dial_delay_seconds",
    "c2c_open_calls",
    "c2c_webhook_outbox_pending",
    "c2c_webhook_outbox_oldest_pending_age_seconds",
    "c2c_upstream_healthy",
    "c2c_policy_reloads_total",
    "c2c_limit_rejections_total",
    "c2c_http_requests_total",
    "c2c_http_request_duration_seconds",
    // Issue 17: agents' signalling sessions, the process itself, what runs where.
    "c2c_websocket_sessions",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "c2c_build_info",
    "c2c_livekit_requests_total",
    // Issue 18: how long the CRM has been missing outcomes, per tenant.
    "c2c_webhook_backlog_oldest_age_seconds",
    // Issue 22: a fleet node's lease and the calls taken over from dead nodes.
    "c2c_fleet_lease_renewals_total",
    "c2c_fleet_lease_until_ms",
    "c2c_fleet_calls_taken_over_total",
    // Issue 22: whether a node's pool of PostgreSQL connections is too small.
    "c2c_store_pool_connections",
    "c2c_store_pool_waiting",
    "c2c_store_pool_wait_seconds_total",
    "c2c_store_pool_exhausted_total",
];

/// Alerts issue 6 asks for: name, the series its expression must use, required `for`.
const REQUIRED_ALERTS: &[(&str, &str, Option<&str>)] = &[
    (
        "C2CSipTrunkFailureRatioHigh",
        "c2c_sip_responses_total",
        Some("10m"),
    ),
    (
        "C2CWebhookBacklogStale",
        "c2c_webhook_outbox_oldest_pending_age_seconds",
        None,
    ),
    ("C2CUpstreamRegionDown", "c2c_upstream_healthy", None),
    // Issue 17.
    ("C2CGatewayDown", "up", None),
    ("C2CHttp5xxRatioHigh", "c2c_http_requests_total", None),
    (
        "C2CLiveKitApiErrorRatioHigh",
        "c2c_livekit_requests_total",
        None,
    ),
    (
        "C2CLiveKitApiErrorRatioHigh",
        "c2c_livekit_errors_total",
        None,
    ),
    (
        "C2CWebhookUndeliveredTooOld",
        "c2c_webhook_backlog_oldest_age_seconds",
        None,
    ),
    // Issue 22.
    (
        "C2CFleetLeaseRenewalsFailing",
        "c2c_fleet_lease_renewals_total",
        None,
    ),
    (
        "C2CFleetCallsTakenOver",
        "c2c_fleet_calls_taken_over_total",
        None,
    ),
    (
        "C2CStorePoolExhausted",
        "c2c_store_pool_exhausted_total",
        None,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Registered by gateway code today.
    Exported,
    /// The SIP edge's, the inbound calls' and the fleet's series, from the fixed lists
    /// above.
    Sip,
    /// Written by Prometheus itself (`up`).
    Prometheus,
    /// Comes with a later issue.
    Planned,
}

#[derive(Debug, Clone)]
struct Series {
    kind: Kind,
    labels: BTreeSet<String>,
    origin: Origin,
}

type Catalogue = BTreeMap<String, Series>;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dashboards_dir() -> PathBuf {
    repo_root().join("dashboards")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ------------------------------------------------------------------------------------
// The catalogue of series

/// Puts one child into a collector so its family appears in `gather()`.
trait Touch {
    fn touch(&self);
}

fn label_arity(c: &dyn Collector) -> usize {
    c.desc().first().map_or(0, |d| d.variable_labels.len())
}

impl Touch for IntCounterVec {
    fn touch(&self) {
        self.with_label_values(&vec!["x"; label_arity(self)]).inc();
    }
}

impl Touch for HistogramVec {
    fn touch(&self) {
        self.with_label_values(&vec!["x"; label_arity(self)])
            .observe(1.0);
    }
}

impl Touch for IntGaugeVec {
    fn touch(&self) {
        self.with_label_values(&vec!["x"; label_arity(self)]).set(1);
    }
}

impl Touch for Histogram {
    fn touch(&self) {
        self.observe(1.0);
    }
}

impl Touch for IntCounter {
    fn touch(&self) {
        self.inc();
    }
}

impl Touch for IntGauge {
    fn touch(&self) {
        self.set(1);
    }
}

fn catalogue() -> Catalogue {
    let registry = Registry::new();
    let gw = GatewayMetrics::register(&registry).expect("register GatewayMetrics");
    // Exhaustive on purpose (no `..`): a series added to GatewayMetrics must be touched
    // here too, or this test stops compiling.
    let GatewayMetrics {
        http_requests,
        http_duration,
        http_gateway_duration,
        policy_reloads,
        policy_generation,
        dlt_blocked,
        dlt_refusals,
        dlt_list_numbers,
        dlt_list_reloads,
        dlt_refusal_log_dropped,
        webhook_media_missing,
        auth_failures,
        calls_started,
        call_outcomes,
        open_calls,
        call_setup,
        livekit_errors,
        livekit_requests,
        livekit_webhooks,
        upstream_healthy,
        proxied_requests,
        websocket_sessions,
        limit_rejections,
        store_flush,
        store_flush_errors,
        cors_refused,
        agents,
        presence_sessions,
        presence_refused,
        agent_refusals,
        wallet_entries,
        wallet_balance,
        wallet_refusals,
        wallet_settle_failures,
        wallet_available,
        wallet_low,
        build_info,
    } = &gw;
    let touch: [&dyn Touch; 37] = [
        http_requests,
        http_duration,
        http_gateway_duration,
        policy_reloads,
        policy_generation,
        dlt_blocked,
        dlt_refusals,
        dlt_list_numbers,
        dlt_list_reloads,
        dlt_refusal_log_dropped,
        webhook_media_missing,
        auth_failures,
        calls_started,
        call_outcomes,
        open_calls,
        call_setup,
        livekit_errors,
        livekit_requests,
        livekit_webhooks,
        upstream_healthy,
        proxied_requests,
        websocket_sessions,
        limit_rejections,
        store_flush,
        store_flush_errors,
        cors_refused,
        agents,
        presence_sessions,
        presence_refused,
        agent_refusals,
        wallet_entries,
        wallet_balance,
        wallet_refusals,
        wallet_settle_failures,
        wallet_available,
        wallet_low,
        build_info,
    ];
    for t in touch {
        t.touch();
    }

    // The default registry the gateway serves carries the process collector.
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("register the process collector");

    let wh = WebhookMetrics::new().expect("WebhookMetrics::new");
    wh.register_in(&registry).expect("register WebhookMetrics");
    wh.delivery("x", DeliveryResult::Delivered);
    wh.set_outbox(1, 1.0);
    wh.set_backlog(&BTreeMap::from([("x".to_string(), 1.0)]));

    let mut cat = Catalogue::new();
    for family in registry.gather() {
        let kind = match family.get_field_type() {
            MetricType::COUNTER => Kind::Counter,
            MetricType::GAUGE => Kind::Gauge,
            MetricType::HISTOGRAM => Kind::Histogram,
            other => panic!("{}: unexpected metric type {other:?}", family.get_name()),
        };
        let labels = family
            .get_metric()
            .first()
            .map(|m| {
                m.get_label()
                    .iter()
                    .map(|l| l.get_name().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let prev = cat.insert(
            family.get_name().to_string(),
            Series {
                kind,
                labels,
                origin: Origin::Exported,
            },
        );
        assert!(prev.is_none(), "{} registered twice", family.get_name());
    }
    assert!(
        cat.len() >= 15,
        "expected the gateway's and the webhook outbox's series, got {:?}",
        cat.keys().collect::<Vec<_>>()
    );

    for &(name, kind, labels) in SIP_SERIES {
        add_fixed(&mut cat, name, kind, labels, Origin::Sip);
    }
    for &(name, kind, labels) in INBOUND_SERIES {
        add_fixed(&mut cat, name, kind, labels, Origin::Sip);
    }
    for &(name, kind, labels) in FLEET_SERIES {
        add_fixed(&mut cat, name, kind, labels, Origin::Sip);
    }
    for &(name, kind, labels) in PLANNED_SERIES {
        add_fixed(&mut cat, name, kind, labels, Origin::Planned);
    }
    for &(name, kind, labels) in PROMETHEUS_SERIES {
        add_fixed(&mut cat, name, kind, labels, Origin::Prometheus);
    }
    cat
}

fn add_fixed(cat: &mut Catalogue, name: &str, kind: Kind, labels: &[&str], origin: Origin) {
    let labels: BTreeSet<String> = labels.iter().map(|s| s.to_string()).collect();
    if let Some(existing) = cat.get(name) {
        // The series is registered by gateway code now.
        assert!(
            origin != Origin::Planned,
            "{name} is exported by the gateway now: move it out of PLANNED_SERIES in \
             tests/ops/tests/dashboards.rs and out of the planned list in dashboards/README.md"
        );
        assert_eq!(
            (existing.kind, &existing.labels),
            (kind, &labels),
            "{name}: the exported series differs from the fixed SIP list in this test"
        );
        return;
    }
    cat.insert(
        name.to_string(),
        Series {
            kind,
            labels,
            origin,
        },
    );
}

/// Reads every `.rs` file under `dir`.
fn rust_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&read(&p));
            out.push('\n');
        }
    }
}

#[test]
fn sip_series_match_the_sip_edge() {
    let sip = repo_root().join("plugins/sip");
    if !sip.is_dir() {
        eprintln!("plugins/sip does not exist yet; using the fixed SIP series list");
        return;
    }
    let mut src = String::new();
    rust_sources(&sip, &mut src);
    if !src.contains("c2c_sip_") {
        eprintln!("plugins/sip registers no c2c_sip_* series yet; using the fixed list");
        return;
    }
    let missing: Vec<&str> = SIP_SERIES
        .iter()
        .map(|s| s.0)
        .filter(|name| !src.contains(&format!("\"{name}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboards use SIP series that plugins/sip does not register: {missing:?}; \
         rename them in SIP_SERIES (tests/ops/tests/dashboards.rs), dashboards/*.json, \
         dashboards/alerts.yml and dashboards/README.md, or register them in plugins/sip"
    );
}

#[test]
fn inbound_series_match_the_gateway() {
    let src = read(&repo_root().join("gateway/src/inbound/metrics.rs"));
    let missing: Vec<&str> = INBOUND_SERIES
        .iter()
        .map(|s| s.0)
        .filter(|name| !src.contains(&format!("\"{name}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboards use inbound series that gateway/src/inbound/metrics.rs does not \
         register: {missing:?}"
    );
}

#[test]
fn fleet_series_match_the_gateway() {
    let src = read(&repo_root().join("gateway/src/fleet/metrics.rs"));
    let quoted = |s: &str| src.contains(&format!("\"{s}\""));
    let missing: Vec<&str> = FLEET_SERIES
        .iter()
        .map(|s| s.0)
        .filter(|name| !quoted(name))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboards use fleet series that gateway/src/fleet/metrics.rs does not \
         register: {missing:?}"
    );
    let missing_labels: Vec<(&str, &str)> = FLEET_SERIES
        .iter()
        .flat_map(|&(name, _, labels)| labels.iter().map(move |l| (name, *l)))
        .filter(|(_, label)| !quoted(label))
        .collect();
    assert!(
        missing_labels.is_empty(),
        "labels of FLEET_SERIES that gateway/src/fleet/metrics.rs never names: \
         {missing_labels:?}"
    );
}

// ------------------------------------------------------------------------------------
// PromQL checks

/// Replaces Grafana variables in `expr` so it parses as plain PromQL. Multi-value
/// variables must sit in a regex matcher (`=~"$trunk"`). Returns an error for an
/// unknown variable.
fn substitute(expr: &str, vars: &BTreeSet<String>) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {expr}"))?;
            let inner = &body[..end];
            // ${var:format} is allowed; the format does not change validity.
            (inner.split(':').next().unwrap_or(inner), end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let value = match name {
            "__rate_interval" | "__interval" | "__range" => "5m",
            "__interval_ms" | "__range_ms" => "300000",
            "__range_s" => "300",
            v if vars.contains(v) => {
                let before = out.trim_end_matches('"').trim_end();
                if !(before.ends_with("=~") || before.ends_with("!~")) {
                    return Err(format!(
                        "${name} must be used inside a regex matcher (=~\"${name}\"): \
                         it is a multi-value variable: {expr}"
                    ));
                }
                ".*"
            }
            other => return Err(format!("unknown variable ${other} in {expr}")),
        };
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What an expression's walk found.
#[derive(Default)]
struct Usage {
    /// Base metric names (histogram suffixes stripped).
    metrics: BTreeSet<String>,
    errors: Vec<String>,
}

struct Resolved<'a> {
    base: String,
    series: &'a Series,
    /// `_bucket`, `_sum`, `_count` or empty.
    suffix: &'static str,
}

fn resolve<'a>(cat: &'a Catalogue, name: &str) -> Result<Resolved<'a>, String> {
    if let Some(s) = cat.get(name) {
        if s.kind == Kind::Histogram {
            return Err(format!(
                "{name} is a histogram: use {name}_bucket, {name}_sum or {name}_count"
            ));
        }
        return Ok(Resolved {
            base: name.to_string(),
            series: s,
            suffix: "",
        });
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(s) = cat.get(base) {
                if s.kind == Kind::Histogram {
                    return Ok(Resolved {
                        base: base.to_string(),
                        series: s,
                        suffix,
                    });
                }
            }
        }
    }
    Err(format!(
        "{name} is not a series the gateway exports (nor a SIP or planned one)"
    ))
}

fn allowed_labels(r: &Resolved<'_>) -> BTreeSet<String> {
    let mut l = r.series.labels.clone();
    l.extend(TARGET_LABELS.iter().map(|s| s.to_string()));
    if r.suffix == "_bucket" {
        l.insert("le".into());
    }
    l
}

fn selector_name(vs: &parser::VectorSelector) -> Option<String> {
    vs.name.clone().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    })
}

/// Labels any series selected inside `e` can carry (for `by (...)` checks).
fn labels_within(e: &Expr, cat: &Catalogue, out: &mut BTreeSet<String>) {
    match e {
        Expr::VectorSelector(vs) => {
            if let Some(r) = selector_name(vs).and_then(|n| resolve(cat, &n).ok()) {
                out.extend(allowed_labels(&r));
            }
        }
        Expr::MatrixSelector(ms) => labels_within(&Expr::VectorSelector(ms.vs.clone()), cat, out),
        Expr::Aggregate(a) => labels_within(&a.expr, cat, out),
        Expr::Unary(u) => labels_within(&u.expr, cat, out),
        Expr::Binary(b) => {
            labels_within(&b.lhs, cat, out);
            labels_within(&b.rhs, cat, out);
        }
        Expr::Paren(p) => labels_within(&p.expr, cat, out),
        Expr::Subquery(s) => labels_within(&s.expr, cat, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| labels_within(a, cat, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

fn check_selector(vs: &parser::VectorSelector, cat: &Catalogue, u: &mut Usage) -> Option<Kind> {
    let Some(name) = selector_name(vs) else {
        u.errors
            .push(format!("selector without a fixed metric name: {vs}"));
        return None;
    };
    match resolve(cat, &name) {
        Ok(r) => {
            let allowed = allowed_labels(&r);
            for m in &vs.matchers.matchers {
                if m.name != "__name__" && !allowed.contains(&m.name) {
                    u.errors.push(format!(
                        "{name} has no label {:?} (labels: {:?})",
                        m.name, r.series.labels
                    ));
                }
            }
            u.metrics.insert(r.base.clone());
            // A histogram's component series count, so rate() over them is fine.
            Some(if r.suffix.is_empty() {
                r.series.kind
            } else {
                Kind::Counter
            })
        }
        Err(e) => {
            u.errors.push(e);
            None
        }
    }
}

fn walk(e: &Expr, cat: &Catalogue, u: &mut Usage) {
    match e {
        Expr::VectorSelector(vs) => {
            check_selector(vs, cat, u);
        }
        Expr::MatrixSelector(ms) => {
            check_selector(&ms.vs, cat, u);
        }
        Expr::Aggregate(a) => {
            if let Some(LabelModifier::Include(ls)) = &a.modifier {
                let mut avail = BTreeSet::new();
                labels_within(&a.expr, cat, &mut avail);
                for l in &ls.labels {
                    if !avail.contains(l) {
                        u.errors.push(format!(
                            "{} by ({l}): no series under it has label {l:?}",
                            a.op
                        ));
                    }
                }
            }
            walk(&a.expr, cat, u);
            if let Some(p) = &a.param {
                walk(p, cat, u);
            }
        }
        Expr::Unary(x) => walk(&x.expr, cat, u),
        Expr::Binary(b) => {
            walk(&b.lhs, cat, u);
            walk(&b.rhs, cat, u);
        }
        Expr::Paren(p) => walk(&p.expr, cat, u),
        Expr::Subquery(s) => walk(&s.expr, cat, u),
        Expr::Call(c) => {
            let name = c.func.name;
            if matches!(name, "rate" | "irate" | "increase" | "resets") {
                if let Some(Expr::MatrixSelector(ms)) = c.args.args.first().map(|a| &**a) {
                    let mut scratch = Usage::default();
                    if let Some(kind) = check_selector(&ms.vs, cat, &mut scratch) {
                        if kind != Kind::Counter {
                            u.errors.push(format!(
                                "{name}() over {}, which is a {kind:?}, not a counter",
                                ms.vs
                            ));
                        }
                    }
                }
            }
            if name == "histogram_quantile" {
                check_histogram_quantile(c, cat, u);
            }
            for a in &c.args.args {
                walk(a, cat, u);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// `histogram_quantile(q, <aggregation keeping le> (rate(x_bucket[..])))`.
fn check_histogram_quantile(c: &parser::Call, cat: &Catalogue, u: &mut Usage) {
    let Some(arg) = c.args.args.get(1) else {
        return;
    };
    let mut labels = BTreeSet::new();
    labels_within(arg, cat, &mut labels);
    if !labels.contains("le") {
        u.errors.push(format!(
            "histogram_quantile over {arg}: no _bucket series (no `le` label)"
        ));
    }
    if let Expr::Aggregate(a) = strip_parens(arg) {
        let keeps_le = match &a.modifier {
            Some(LabelModifier::Include(ls)) => ls.labels.iter().any(|l| l == "le"),
            Some(LabelModifier::Exclude(ls)) => !ls.labels.iter().any(|l| l == "le"),
            None => false,
        };
        if !keeps_le {
            u.errors.push(format!(
                "histogram_quantile over {arg}: the aggregation drops `le`"
            ));
        }
    }
}

/// Every vector selector in `expr`.
fn selectors_in(e: &Expr, out: &mut Vec<parser::VectorSelector>) {
    match e {
        Expr::VectorSelector(vs) => out.push(vs.clone()),
        Expr::MatrixSelector(ms) => out.push(ms.vs.clone()),
        Expr::Aggregate(a) => {
            selectors_in(&a.expr, out);
            if let Some(p) = &a.param {
                selectors_in(p, out);
            }
        }
        Expr::Unary(u) => selectors_in(&u.expr, out),
        Expr::Binary(b) => {
            selectors_in(&b.lhs, out);
            selectors_in(&b.rhs, out);
        }
        Expr::Paren(p) => selectors_in(&p.expr, out),
        Expr::Subquery(s) => selectors_in(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors_in(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The selectors of a dashboard query that are not narrowed by the `instance` variable
/// (`instance=~"$instance"`). An expression that does not parse yields none: the
/// PromQL check reports it.
fn selectors_without_instance(expr: &str, vars: &BTreeSet<String>) -> Vec<String> {
    // Substituting `$instance` by a marker keeps the check honest: a matcher that reads
    // `instance=~".*"` literally does not count.
    const MARKER: &str = "__instance_variable__";
    let marked = expr
        .replace("${instance}", MARKER)
        .replace("$instance", MARKER);
    let Ok(plain) = substitute(&marked, vars) else {
        return Vec::new();
    };
    let Ok(ast) = parser::parse(&plain) else {
        return Vec::new();
    };
    let mut all = Vec::new();
    selectors_in(&ast, &mut all);
    all.into_iter()
        .filter(|vs| {
            !vs.matchers.matchers.iter().any(|m| {
                m.name == "instance" && matches!(m.op, MatchOp::Re(_)) && m.value == MARKER
            })
        })
        .map(|vs| vs.to_string())
        .collect()
}

#[test]
fn instance_check_finds_unfiltered_selectors() {
    let vars: BTreeSet<String> = ["instance".to_string(), "tenant".to_string()].into();
    let filtered = r#"sum(rate(c2c_open_calls{instance=~"$instance"}[5m])) / sum(c2c_open_calls{tenant=~"$tenant", instance=~"$instance"})"#;
    assert!(selectors_without_instance(filtered, &vars).is_empty());
    let half = r#"sum(c2c_open_calls{instance=~"$instance"}) / sum(c2c_open_calls)"#;
    assert_eq!(selectors_without_instance(half, &vars), ["c2c_open_calls"]);
    let literal = r#"sum(c2c_open_calls{instance=~".*"})"#;
    assert_eq!(selectors_without_instance(literal, &vars).len(), 1);
}

/// Parses `expr` (after variable substitution) and checks the series it uses.
fn check_promql(
    what: &str,
    expr: &str,
    vars: &BTreeSet<String>,
    cat: &Catalogue,
    used: &mut BTreeSet<String>,
    errors: &mut Vec<String>,
) {
    if expr.trim().is_empty() {
        errors.push(format!("{what}: empty expression"));
        return;
    }
    let plain = match substitute(expr, vars) {
        Ok(p) => p,
        Err(e) => {
            errors.push(format!("{what}: {e}"));
            return;
        }
    };
    let ast = match parser::parse(&plain) {
        Ok(a) => a,
        Err(e) => {
            errors.push(format!("{what}: PromQL does not parse: {e}\n    {plain}"));
            return;
        }
    };
    let mut u = Usage::default();
    walk(&ast, cat, &mut u);
    errors.extend(u.errors.into_iter().map(|e| format!("{what}: {e}")));
    used.extend(u.metrics);
}

#[test]
fn substitution_handles_grafana_variables() {
    let vars: BTreeSet<String> = ["tenant".to_string()].into();
    assert_eq!(
        substitute(r#"rate(x{tenant=~"$tenant"}[$__rate_interval])"#, &vars).unwrap(),
        r#"rate(x{tenant=~".*"}[5m])"#
    );
    assert_eq!(
        substitute(r#"x{tenant!~"${tenant:regex}"}"#, &vars).unwrap(),
        r#"x{tenant!~".*"}"#
    );
    assert!(substitute(r#"x{tenant="$tenant"}"#, &vars).is_err());
    assert!(substitute(r#"x{tenant=~"$tenants"}"#, &vars).is_err());
}

#[test]
fn promql_checks_catch_wrong_series_and_labels() {
    let cat = catalogue();
    let vars = BTreeSet::new();
    let bad = [
        "sum(rate(c2c_no_such_series_total[5m]))",
        "sum by (tenant) (rate(c2c_open_calls[5m]))",
        r#"c2c_call_outcomes_total{status="ANSWERED"}"#,
        "sum by (code) (rate(c2c_call_outcomes_total[5m]))",
        "histogram_quantile(0.9, sum by (tenant) (rate(c2c_call_setup_seconds_bucket[5m])))",
        "c2c_call_setup_seconds",
        "sum(rate(c2c_http_requests_total[5m]",
    ];
    for expr in bad {
        let mut errors = Vec::new();
        check_promql(
            "probe",
            expr,
            &vars,
            &cat,
            &mut BTreeSet::new(),
            &mut errors,
        );
        assert!(!errors.is_empty(), "accepted a bad expression: {expr}");
    }
    let good = [
        "histogram_quantile(0.9, sum by (tenant, le) (rate(c2c_call_setup_seconds_bucket[5m])))",
        r#"topk by (trunk) (5, sum by (trunk, code) (increase(c2c_sip_responses_total{code=~"[3-6]..", code!~"486|487"}[1h])))"#,
        "sum(rate(c2c_http_request_duration_seconds_sum[5m])) / sum(rate(c2c_http_request_duration_seconds_count[5m]))",
        "max by (region) (c2c_upstream_healthy) == 0",
    ];
    for expr in good {
        let mut errors = Vec::new();
        check_promql(
            "probe",
            expr,
            &vars,
            &cat,
            &mut BTreeSet::new(),
            &mut errors,
        );
        assert!(errors.is_empty(), "rejected a good expression: {errors:?}");
    }
}

// ------------------------------------------------------------------------------------
// Dashboards

struct Dashboard {
    file: String,
    json: Value,
    raw: String,
}

fn dashboards() -> Vec<Dashboard> {
    let mut out: Vec<Dashboard> = fs::read_dir(dashboards_dir())
        .expect("read dashboards/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let raw = read(&p);
            let json = serde_json::from_str(&raw)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            Dashboard {
                file: p.file_name().unwrap().to_string_lossy().into_owned(),
                json,
                raw,
            }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    assert!(
        out.len() >= 2,
        "expected at least two dashboards in dashboards/, found {}",
        out.len()
    );
    out
}

fn is_ds_var(v: &Value) -> bool {
    v.get("uid").and_then(Value::as_str) == Some(DS_VAR)
        && v.get("type").and_then(Value::as_str) == Some("prometheus")
}

/// All panels, rows' nested panels included.
fn flat_panels(panels: &[Value], out: &mut Vec<Value>) {
    for p in panels {
        out.push(p.clone());
        if let Some(nested) = p.get("panels").and_then(Value::as_array) {
            flat_panels(nested, out);
        }
    }
}

/// The selector inside `label_values(<selector>, label)`.
fn label_values_selector(q: &str) -> Option<(String, String)> {
    let body = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (sel, label) = body.rsplit_once(',')?;
    Some((sel.trim().to_string(), label.trim().to_string()))
}

#[test]
fn dashboards_are_valid_and_use_only_exported_series() {
    let cat = catalogue();
    let mut errors = Vec::new();
    let mut uids = BTreeMap::new();
    let mut titles = BTreeMap::new();
    let mut used_everywhere = BTreeSet::new();
    let mut exprs_everywhere = Vec::new();

    for d in dashboards() {
        let f = &d.file;
        let j = &d.json;
        let mut err = |m: String| errors.push(format!("{f}: {m}"));

        // Identity.
        let uid = j.get("uid").and_then(Value::as_str).unwrap_or("");
        if uid.is_empty()
            || uid.len() > 40
            || !uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            err(format!(
                "uid {uid:?} must be 1-40 characters of [A-Za-z0-9_-]"
            ));
        }
        if let Some(other) = uids.insert(uid.to_string(), f.clone()) {
            err(format!("uid {uid:?} is also used by {other}"));
        }
        let title = j.get("title").and_then(Value::as_str).unwrap_or("");
        if title.is_empty() {
            err("empty title".into());
        }
        if let Some(other) = titles.insert(title.to_string(), f.clone()) {
            err(format!("title {title:?} is also used by {other}"));
        }
        if !j.get("id").is_none_or(Value::is_null) {
            err("carries a database id; export with \"id\": null".into());
        }
        match j.get("schemaVersion").and_then(Value::as_u64) {
            Some(v) if v >= 36 => {}
            v => err(format!("schemaVersion {v:?}: expected >= 36")),
        }
        // Exported-for-sharing dashboards break file provisioning.
        for bad in ["DS_PROMETHEUS", "__inputs"] {
            if d.raw.contains(bad) {
                err(format!(
                    "contains {bad}: use the ${{datasource}} variable instead"
                ));
            }
        }

        // Template variables.
        let vars_json = j
            .pointer("/templating/list")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut vars = BTreeSet::new();
        for v in &vars_json {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            if !vars.insert(name.to_string()) {
                err(format!("template variable {name:?} defined twice"));
            }
        }
        let var = |name: &str| {
            vars_json
                .iter()
                .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
        };
        match var("datasource") {
            Some(v)
                if v.get("type").and_then(Value::as_str) == Some("datasource")
                    && v.get("query").and_then(Value::as_str) == Some("prometheus") => {}
            _ => err(
                "needs a template variable `datasource` of type datasource, query \"prometheus\""
                    .into(),
            ),
        }
        for name in ["tenant", "trunk", "instance"] {
            let Some(v) = var(name) else {
                err(format!("needs a `{name}` template variable"));
                continue;
            };
            if v.get("type").and_then(Value::as_str) != Some("query") {
                err(format!("`{name}` must be a query variable"));
            }
            if !v.get("datasource").is_some_and(is_ds_var) {
                err(format!("`{name}` must query the ${{datasource}} variable"));
            }
            let q = v
                .get("query")
                .and_then(|q| {
                    q.as_str()
                        .or_else(|| q.get("query").and_then(Value::as_str))
                })
                .unwrap_or("");
            match label_values_selector(q) {
                Some((sel, label)) if label == name => {
                    let mut used = BTreeSet::new();
                    let mut es = Vec::new();
                    check_promql(
                        &format!("variable {name}"),
                        &sel,
                        &vars,
                        &cat,
                        &mut used,
                        &mut es,
                    );
                    es.into_iter().for_each(&mut err);
                    for m in &used {
                        if !cat[m].labels.contains(name) && !TARGET_LABELS.contains(&name) {
                            err(format!("variable {name}: {m} has no label {name}"));
                        }
                    }
                }
                _ => err(format!(
                    "`{name}` query must be label_values(<series>, {name}), got {q:?}"
                )),
            }
            if v.get("multi").and_then(Value::as_bool) == Some(true)
                || v.get("includeAll").and_then(Value::as_bool) == Some(true)
            {
                // Used as a regex; "All" must match every value, not build a huge alternation.
                if v.get("allValue").and_then(Value::as_str) != Some(".*") {
                    err(format!("`{name}` should set allValue \".*\""));
                }
            }
        }

        // Panels.
        let mut panels = Vec::new();
        flat_panels(
            j.get("panels")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            &mut panels,
        );
        let mut ids = BTreeSet::new();
        let mut n_queries = 0;
        for p in &panels {
            let id = p.get("id").and_then(Value::as_u64);
            let ptitle = p
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            match id {
                Some(id) if ids.insert(id) => {}
                _ => err(format!("panel {ptitle:?}: missing or duplicate id {id:?}")),
            }
            match (
                p.pointer("/gridPos/x").and_then(Value::as_u64),
                p.pointer("/gridPos/w").and_then(Value::as_u64),
                p.pointer("/gridPos/h").and_then(Value::as_u64),
            ) {
                (Some(x), Some(w), Some(h)) if w >= 1 && x + w <= 24 && h >= 1 => {}
                _ => err(format!(
                    "panel {ptitle:?}: gridPos missing or wider than 24"
                )),
            }
            let ptype = p.get("type").and_then(Value::as_str).unwrap_or("");
            if ptype == "row" {
                if p.get("targets").is_some() {
                    err(format!("row {ptitle:?} has targets"));
                }
                continue;
            }
            if p.get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                err(format!(
                    "panel {ptitle:?}: no description (README and tooltips rely on it)"
                ));
            }
            if !p.get("datasource").is_some_and(is_ds_var) {
                err(format!(
                    "panel {ptitle:?}: datasource must be {{type: prometheus, uid: {DS_VAR}}}"
                ));
            }
            let targets = p
                .get("targets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if targets.is_empty() {
                err(format!("panel {ptitle:?}: no targets"));
            }
            for t in &targets {
                let refid = t.get("refId").and_then(Value::as_str).unwrap_or("?");
                if !t.get("datasource").is_some_and(is_ds_var) {
                    err(format!(
                        "panel {ptitle:?} target {refid}: datasource must be {DS_VAR}"
                    ));
                }
                let expr = t.get("expr").and_then(Value::as_str).unwrap_or("");
                let mut used = BTreeSet::new();
                let mut es = Vec::new();
                check_promql(
                    &format!("panel {ptitle:?} target {refid}"),
                    expr,
                    &vars,
                    &cat,
                    &mut used,
                    &mut es,
                );
                es.into_iter().for_each(&mut err);
                // The instance variable narrows every panel to the chosen gateways.
                for sel in selectors_without_instance(expr, &vars) {
                    err(format!(
                        "panel {ptitle:?} target {refid}: {sel} has no instance=~\"$instance\" matcher"
                    ));
                }
                used_everywhere.extend(used);
                exprs_everywhere.push(expr.to_string());
                n_queries += 1;
            }
        }
        if n_queries == 0 {
            err("no queries".into());
        }
    }

    for m in REQUIRED_ON_DASHBOARDS {
        if !used_everywhere.contains(*m) {
            errors.push(format!("no dashboard panel uses {m}"));
        }
    }
    let has = |needle: &str, metric: &str| {
        exprs_everywhere
            .iter()
            .any(|e| e.contains(needle) && e.contains(metric))
    };
    for (needle, metric, what) in [
        (
            "topk",
            "c2c_sip_responses_total",
            "top failure codes per trunk (topk)",
        ),
        (
            "group_left",
            "c2c_sip_responses_total",
            "share of each SIP code per trunk",
        ),
        (
            "histogram_quantile",
            "c2c_call_setup_seconds_bucket",
            "call setup percentiles",
        ),
        (
            "histogram_quantile",
            "c2c_sip_post_dial_delay_seconds_bucket",
            "post-dial delay percentiles",
        ),
        (
            "ANSWERED",
            "c2c_call_outcomes_total",
            "answer rate per tenant",
        ),
    ] {
        if !has(needle, metric) {
            errors.push(format!("no panel shows {what}"));
        }
    }

    for origin in [Origin::Sip, Origin::Planned, Origin::Prometheus] {
        let names: Vec<&String> = used_everywhere
            .iter()
            .filter(|m| cat.get(*m).is_some_and(|s| s.origin == origin))
            .collect();
        eprintln!("dashboards use {origin:?} series: {names:?}");
    }
    assert!(
        errors.is_empty(),
        "{} problem(s) in dashboards/:\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
}

// ------------------------------------------------------------------------------------
// Provisioning

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
}

#[test]
fn provisioning_files_are_valid() {
    let dir = dashboards_dir().join("provisioning");
    let ds = yaml(&dir.join("datasources.yml"));
    assert_eq!(
        ds["apiVersion"].as_u64(),
        Some(1),
        "datasources.yml: apiVersion 1"
    );
    let list = ds["datasources"]
        .as_sequence()
        .expect("datasources.yml: datasources list");
    let prom: Vec<_> = list
        .iter()
        .filter(|d| d["type"].as_str() == Some("prometheus"))
        .collect();
    assert!(
        !prom.is_empty(),
        "datasources.yml: no prometheus datasource"
    );
    for d in prom {
        let uid = d["uid"].as_str().unwrap_or("");
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "datasources.yml: prometheus datasource needs a uid"
        );
        assert!(
            d["url"].as_str().is_some_and(|u| u.starts_with("http")),
            "datasources.yml: url"
        );
    }

    let db = yaml(&dir.join("dashboards.yml"));
    assert_eq!(
        db["apiVersion"].as_u64(),
        Some(1),
        "dashboards.yml: apiVersion 1"
    );
    let providers = db["providers"]
        .as_sequence()
        .expect("dashboards.yml: providers list");
    assert!(!providers.is_empty(), "dashboards.yml: no provider");
    for p in providers {
        assert!(
            p["name"].as_str().is_some_and(|n| !n.is_empty()),
            "dashboards.yml: provider name"
        );
        assert_eq!(
            p["type"].as_str(),
            Some("file"),
            "dashboards.yml: file provider"
        );
        assert!(
            p["options"]["path"]
                .as_str()
                .is_some_and(|x| x.starts_with('/')),
            "dashboards.yml: options.path must be absolute"
        );
    }
}

// ------------------------------------------------------------------------------------
// Alerts

fn readme() -> String {
    read(&dashboards_dir().join("README.md"))
}

/// GitHub's anchor for a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn alert_rules_are_valid_documented_and_use_exported_series() {
    let cat = catalogue();
    let doc = readme();
    let anchors: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();

    let rules = yaml(&dashboards_dir().join("alerts.yml"));
    let groups = rules["groups"].as_sequence().expect("alerts.yml: groups");
    let mut errors = Vec::new();
    let mut seen = BTreeMap::new();
    let no_vars = BTreeSet::new();
    for g in groups {
        for r in g["rules"].as_sequence().expect("alerts.yml: rules") {
            let Some(name) = r["alert"].as_str() else {
                continue; // recording rule
            };
            let expr = r["expr"].as_str().unwrap_or("");
            let mut used = BTreeSet::new();
            let mut es = Vec::new();
            check_promql(
                &format!("alert {name}"),
                expr,
                &no_vars,
                &cat,
                &mut used,
                &mut es,
            );
            errors.extend(es);
            if !matches!(
                r["labels"]["severity"].as_str(),
                Some("critical" | "warning" | "info")
            ) {
                errors.push(format!(
                    "alert {name}: labels.severity must be critical, warning or info"
                ));
            }
            for a in ["summary", "description"] {
                if r["annotations"][a].as_str().is_none_or(str::is_empty) {
                    errors.push(format!("alert {name}: no {a} annotation"));
                }
            }
            let runbook = r["annotations"]["runbook_url"].as_str().unwrap_or("");
            match runbook.strip_prefix(RUNBOOK_BASE) {
                Some(a) if a == anchor(name) && anchors.contains(a) => {}
                _ => errors.push(format!(
                    "alert {name}: annotations.runbook_url must be {RUNBOOK_BASE}{} \
                     and dashboards/README.md must have a `### {name}` runbook heading",
                    anchor(name)
                )),
            }
            if seen
                .insert(
                    name.to_string(),
                    (used, r["for"].as_str().map(str::to_string)),
                )
                .is_some()
            {
                errors.push(format!("alert {name} defined twice"));
            }
        }
    }
    for (name, metric, for_) in REQUIRED_ALERTS {
        match seen.get(*name) {
            None => errors.push(format!("missing alert {name}")),
            Some((used, got_for)) => {
                if !used.contains(*metric) {
                    errors.push(format!("alert {name} must be computed from {metric}"));
                }
                if let Some(f) = for_ {
                    if got_for.as_deref() != Some(*f) {
                        errors.push(format!(
                            "alert {name}: expected `for: {f}`, got {got_for:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} problem(s) in dashboards/alerts.yml:\n  {}",
        errors.len(),
        errors.join("\n  ")
    );
}

fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

fn run_promtool(bin: &Path, args: &[&str]) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("run promtool: {e}"));
    let mut text = String::new();
    let _ = write!(
        text,
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    let Some(bin) = promtool() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "promtool is not installed; CI must install the Debian package `prometheus` \
             (apt-get install -y prometheus) so alert rules are checked"
        );
        eprintln!("promtool not installed (Debian package `prometheus`): alert rules not checked");
        return;
    };
    run_promtool(&bin, &["check", "rules", "dashboards/alerts.yml"]);
    run_promtool(&bin, &["test", "rules", "dashboards/alerts.test.yml"]);
}

// ------------------------------------------------------------------------------------
// README

#[test]
fn readme_documents_planned_series_dashboards_and_alerts() {
    let doc = readme();
    let mut errors = Vec::new();
    for (name, _, _) in PLANNED_SERIES {
        if !doc
            .lines()
            .any(|l| l.contains(name) && l.to_lowercase().contains("planned"))
        {
            errors.push(format!(
                "README.md must mark {name} as planned (on the line that names it)"
            ));
        }
    }
    for d in dashboards() {
        let title = d.json["title"].as_str().unwrap_or("");
        let uid = d.json["uid"].as_str().unwrap_or("");
        if !doc.contains(title) || !doc.contains(uid) {
            errors.push(format!(
                "README.md does not describe dashboard {title:?} ({uid})"
            ));
        }
    }
    for p in [
        "/etc/grafana/provisioning/dashboards",
        "/etc/grafana/provisioning/datasources",
    ] {
        if !doc.contains(p) {
            errors.push(format!(
                "README.md does not say where provisioning files go ({p})"
            ));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
