//! The Prometheus series the gateway exports about itself.
//!
//! Owns: metric names, help texts, label sets and bucket layouts for the HTTP edge and
//! the policy loader, registered once at start-up into the registry the gateway serves
//! on `/metrics` (the process-wide default registry, so process metrics come along).
//!
//! Must not: label anything by call id, phone number or key material. Labels are
//! bounded: `route` is a fixed route name, `status` an HTTP status, `tenant` comes from
//! policy.
//!
//! Domain crates that own a measured process (webhook delivery, call state) register
//! their own series next to the code that moves them; this crate is for the edge.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

/// Series of the HTTP edge and the policy loader.
#[derive(Clone)]
pub struct GatewayMetrics {
    /// `c2c_http_requests_total{route,status}`.
    pub http_requests: IntCounterVec,
    /// `c2c_http_request_duration_seconds{route}`.
    pub http_duration: HistogramVec,
    /// `c2c_http_request_gateway_seconds{route}`: the same time minus what the request
    /// spent waiting on LiveKit's API, for requests that called it. Tells a slow
    /// gateway from a slow LiveKit.
    pub http_gateway_duration: HistogramVec,
    /// `c2c_policy_reloads_total{result="applied"|"rejected"}`.
    pub policy_reloads: IntCounterVec,
    /// `c2c_policy_generation`: bumps on every applied reload, so a dashboard can see
    /// when policy changed.
    pub policy_generation: IntGauge,
    /// `c2c_dlt_blocked_total{tenant}`: call attempts refused because outbound is off.
    pub dlt_blocked: IntCounterVec,
    /// `c2c_dlt_refusals_total{tenant,rule}`: calls refused by a DLT rule beyond the
    /// switch (rule: caller_id_series, dnd_blocked, outside_calling_hours,
    /// dnd_unavailable), at the API and at the SIP edge alike.
    pub dlt_refusals: IntCounterVec,
    /// `c2c_dlt_list_numbers{tenant,list}`: numbers in each tenant's DND and consent
    /// lists as in force.
    pub dlt_list_numbers: prometheus::IntGaugeVec,
    /// `c2c_dlt_list_reloads_total{tenant,list,result="read"|"failed"}`.
    pub dlt_list_reloads: IntCounterVec,
    /// `c2c_dlt_refusal_log_dropped_total`: refusals not written to the refusal log
    /// (its queue was full); the refusals themselves stood.
    pub dlt_refusal_log_dropped: IntCounter,
    /// `c2c_webhook_media_missing_total{tenant}`: call webhooks of tenants with
    /// `media_in_payload` sent with `"media": null` for an anchored call, because the
    /// SIP edge's report had not arrived within the wait.
    pub webhook_media_missing: IntCounterVec,
    /// `c2c_auth_failures_total{reason}` with reason in missing|invalid|scope|livekit_token|
    /// duplicate (a credential sent more than once).
    pub auth_failures: IntCounterVec,
    /// `c2c_calls_started_total{tenant,trunk}`: click2call acknowledged.
    pub calls_started: IntCounterVec,
    /// `c2c_call_outcomes_total{tenant,trunk,call_status}`: terminal outcomes.
    pub call_outcomes: IntCounterVec,
    /// `c2c_open_calls`: calls not yet ENDED.
    pub open_calls: IntGauge,
    /// `c2c_call_setup_seconds{tenant}`: from /connect to answer.
    pub call_setup: HistogramVec,
    /// `c2c_livekit_errors_total{op}`: failed LiveKit API calls by operation.
    pub livekit_errors: IntCounterVec,
    /// `c2c_livekit_requests_total{op}`: LiveKit API calls made, by operation (the same
    /// `op` values as `c2c_livekit_errors_total`, so the two divide into an error ratio).
    pub livekit_requests: IntCounterVec,
    /// `c2c_livekit_webhooks_total{result}`: accepted|duplicate|rejected.
    pub livekit_webhooks: IntCounterVec,
    /// `c2c_upstream_healthy{region,upstream}`: 1 healthy, 0 down (active checks).
    pub upstream_healthy: IntGaugeVec,
    /// `c2c_proxied_requests_total{region,upstream,status}`.
    pub proxied_requests: IntCounterVec,
    /// `c2c_websocket_sessions`: signalling WebSockets open through the gateway.
    pub websocket_sessions: IntGauge,
    /// `c2c_limit_rejections_total{tenant,kind}`: 429s by tenant ("-" for per-IP) and
    /// kind (tenant_rate, ip_rate, concurrent_calls).
    pub limit_rejections: IntCounterVec,
    /// `c2c_store_flush_seconds`: each group-commit flush of the call store (the disk
    /// sync every acknowledged call state waits for).
    pub store_flush: Histogram,
    /// `c2c_store_flush_errors_total`: failed flushes; the writes waiting on them fail.
    pub store_flush_errors: IntCounter,
    /// `c2c_cors_refused_total{tenant,route}`: browser requests from an origin not in the
    /// call's tenant's `allowed_origins` (the browser hides the answer from the page, so
    /// the CRM developer sees only a CORS error). The origin itself is in the log, not a
    /// label: it is whatever the client sends.
    /// `c2c_agents{tenant,availability}`: registered agents by live availability (an
    /// agent without a session is offline).
    pub agents: IntGaugeVec,
    /// `c2c_presence_sessions`: open presence sockets in this process.
    pub presence_sessions: IntGauge,
    /// `c2c_presence_refused_total{reason}`: presence sockets refused or closed by the
    /// gateway (bad token, auth timeout, flood, full, too slow, ...).
    pub presence_refused: IntCounterVec,
    /// `c2c_agent_refusals_total{tenant,code}`: click2call and /connect refused for an
    /// agent (`agent_not_registered`, `agent_disabled`, `agent_busy`).
    pub agent_refusals: IntCounterVec,
    /// `c2c_wallet_entries_total{tenant,kind}`: wallet ledger entries appended by this
    /// process (`top_up`, `adjustment`, `refund`, `call_charge`).
    pub wallet_entries: IntCounterVec,
    /// `c2c_wallet_balance_paise{tenant}`: a managed tenant's balance as this process
    /// last wrote or read it (set on every append and wallet read).
    pub wallet_balance: IntGaugeVec,
    /// `c2c_wallet_refusals_total{tenant,at}`: managed calls refused `402
    /// insufficient_balance` at `click2call` or `connect`.
    pub wallet_refusals: IntCounterVec,
    /// `c2c_wallet_available_paise{tenant}`: a managed tenant's balance minus its holds,
    /// refreshed every 10 s by the wallet service.
    pub wallet_available: IntGaugeVec,
    /// `c2c_wallet_low_balance{tenant}`: 1 while a managed tenant's available balance is
    /// below `billing.low_balance_paise`.
    pub wallet_low: IntGaugeVec,
    /// `c2c_wallet_settle_failures_total`: a call's charge or hold release that failed
    /// (the wallet sweep posts it again; a steady rise means the wallet store is away).
    pub wallet_settle_failures: prometheus::IntCounter,
    pub cors_refused: IntCounterVec,
    /// `c2c_build_info{version,revision}`: always 1; the labels say which build runs, so
    /// a dashboard shows a rolling upgrade and an alert can be joined to a version.
    pub build_info: IntGaugeVec,
}

impl GatewayMetrics {
    /// Registers every series into `registry`.
    ///
    /// Fails only if a series of the same name is already registered there, which is a
    /// start-up wiring error.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let http_requests = IntCounterVec::new(
            Opts::new(
                "c2c_http_requests_total",
                "HTTP requests answered, by route and status",
            ),
            &["route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "c2c_http_request_duration_seconds",
                "Time from request head to the end of the response, by route",
            )
            // 100 us .. ~6.5 s: local answers sit in the first buckets, LiveKit calls in
            // the later ones.
            .buckets(exponential_buckets(0.0001, 2.0, 17)?),
            &["route"],
        )?;
        let http_gateway_duration = HistogramVec::new(
            HistogramOpts::new(
                "c2c_http_request_gateway_seconds",
                "Time from request head to the end of the response minus the time spent \
                 waiting on LiveKit's API, by route (requests that called LiveKit)",
            )
            .buckets(exponential_buckets(0.0001, 2.0, 17)?),
            &["route"],
        )?;
        let policy_reloads = IntCounterVec::new(
            Opts::new(
                "c2c_policy_reloads_total",
                "Policy reload attempts by result (applied or rejected)",
            ),
            &["result"],
        )?;
        let policy_generation = IntGauge::new(
            "c2c_policy_generation",
            "Generation of the policy in force; increases on each applied reload",
        )?;
        let dlt_blocked = IntCounterVec::new(
            Opts::new(
                "c2c_dlt_blocked_total",
                "Call attempts refused because the tenant's DLT outbound flag is off",
            ),
            &["tenant"],
        )?;
        let dlt_refusals = IntCounterVec::new(
            Opts::new(
                "c2c_dlt_refusals_total",
                "Calls refused by a DLT rule (caller-ID series, DND, calling hours), at the API and the SIP edge",
            ),
            &["tenant", "rule"],
        )?;
        let dlt_list_numbers = prometheus::IntGaugeVec::new(
            Opts::new(
                "c2c_dlt_list_numbers",
                "Numbers in each tenant's DND and consent lists as in force",
            ),
            &["tenant", "list"],
        )?;
        let dlt_list_reloads = IntCounterVec::new(
            Opts::new(
                "c2c_dlt_list_reloads_total",
                "Reads of tenants' DND and consent list files, by result",
            ),
            &["tenant", "list", "result"],
        )?;
        let dlt_refusal_log_dropped = IntCounter::new(
            "c2c_dlt_refusal_log_dropped_total",
            "DLT refusals not written to the refusal log because its queue was full",
        )?;
        let webhook_media_missing = IntCounterVec::new(
            Opts::new(
                "c2c_webhook_media_missing_total",
                "Extended call webhooks of anchored calls sent without their media report (it came too late)",
            ),
            &["tenant"],
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "c2c_auth_failures_total",
                "Requests refused by authentication or authorisation, by reason",
            ),
            &["reason"],
        )?;
        let calls_started = IntCounterVec::new(
            Opts::new(
                "c2c_calls_started_total",
                "Calls acknowledged by click2call, by tenant and trunk",
            ),
            &["tenant", "trunk"],
        )?;
        let call_outcomes = IntCounterVec::new(
            Opts::new(
                "c2c_call_outcomes_total",
                "Terminal call outcomes by tenant, trunk and call_status (ANSWERED, NOT_ANSWERED, FAILED)",
            ),
            &["tenant", "trunk", "call_status"],
        )?;
        let open_calls = IntGauge::new("c2c_open_calls", "Calls not yet ended")?;
        let call_setup = HistogramVec::new(
            HistogramOpts::new(
                "c2c_call_setup_seconds",
                "Time from /connect to answer, by tenant",
            )
            // Indian mobile networks take seconds to ring; ring timeouts go up to 90 s.
            .buckets(vec![
                0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0,
            ]),
            &["tenant"],
        )?;
        let livekit_errors = IntCounterVec::new(
            Opts::new(
                "c2c_livekit_errors_total",
                "Failed LiveKit API calls by operation",
            ),
            &["op"],
        )?;
        let livekit_requests = IntCounterVec::new(
            Opts::new(
                "c2c_livekit_requests_total",
                "LiveKit API calls made, by operation",
            ),
            &["op"],
        )?;
        let livekit_webhooks = IntCounterVec::new(
            Opts::new(
                "c2c_livekit_webhooks_total",
                "LiveKit webhooks received, by result (accepted, duplicate, rejected)",
            ),
            &["result"],
        )?;
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "c2c_upstream_healthy",
                "LiveKit upstream health from active checks (1 up, 0 down)",
            ),
            &["region", "upstream"],
        )?;
        let proxied_requests = IntCounterVec::new(
            Opts::new(
                "c2c_proxied_requests_total",
                "Requests proxied to LiveKit, by region, upstream and status",
            ),
            &["region", "upstream", "status"],
        )?;
        let websocket_sessions = IntGauge::new(
            "c2c_websocket_sessions",
            "Signalling WebSocket sessions currently open through the gateway",
        )?;
        let limit_rejections = IntCounterVec::new(
            Opts::new(
                "c2c_limit_rejections_total",
                "Requests refused with 429 by a limit, by tenant and kind",
            ),
            &["tenant", "kind"],
        )?;
        let store_flush = Histogram::with_opts(
            HistogramOpts::new(
                "c2c_store_flush_seconds",
                "Duration of each group-commit flush of the call store",
            )
            // 50 us .. ~3.3 s: a page-cache-only sync sits in the first buckets, a healthy
            // disk in the 0.2-5 ms ones, a failing one at the top.
            .buckets(exponential_buckets(0.00005, 2.0, 17)?),
        )?;
        let store_flush_errors = IntCounter::new(
            "c2c_store_flush_errors_total",
            "Call store flushes that failed (the writes waiting on them failed too)",
        )?;
        let cors_refused = IntCounterVec::new(
            Opts::new(
                "c2c_cors_refused_total",
                "Browser requests whose origin is not among the tenant's allowed_origins",
            ),
            &["tenant", "route"],
        )?;
        registry.register(Box::new(cors_refused.clone()))?;
        let agents = IntGaugeVec::new(
            Opts::new(
                "c2c_agents",
                "Registered agents by live availability (no session: offline)",
            ),
            &["tenant", "availability"],
        )?;
        registry.register(Box::new(agents.clone()))?;
        let presence_sessions = IntGauge::new(
            "c2c_presence_sessions",
            "Open presence sockets in this process",
        )?;
        registry.register(Box::new(presence_sessions.clone()))?;
        let presence_refused = IntCounterVec::new(
            Opts::new(
                "c2c_presence_refused_total",
                "Presence sockets refused or closed by the gateway, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(presence_refused.clone()))?;
        let agent_refusals = IntCounterVec::new(
            Opts::new(
                "c2c_agent_refusals_total",
                "click2call and /connect refused for an agent, by error code",
            ),
            &["tenant", "code"],
        )?;
        registry.register(Box::new(agent_refusals.clone()))?;
        let wallet_entries = IntCounterVec::new(
            Opts::new(
                "c2c_wallet_entries_total",
                "Wallet ledger entries appended, by tenant and kind",
            ),
            &["tenant", "kind"],
        )?;
        registry.register(Box::new(wallet_entries.clone()))?;
        let wallet_balance = IntGaugeVec::new(
            Opts::new(
                "c2c_wallet_balance_paise",
                "A managed tenant's wallet balance in paise, as last written or read",
            ),
            &["tenant"],
        )?;
        registry.register(Box::new(wallet_balance.clone()))?;
        let wallet_refusals = IntCounterVec::new(
            Opts::new(
                "c2c_wallet_refusals_total",
                "Managed calls refused 402 insufficient_balance, by tenant and step",
            ),
            &["tenant", "at"],
        )?;
        registry.register(Box::new(wallet_refusals.clone()))?;
        let wallet_available = IntGaugeVec::new(
            Opts::new(
                "c2c_wallet_available_paise",
                "A managed tenant's wallet balance minus the holds of its calls in progress",
            ),
            &["tenant"],
        )?;
        registry.register(Box::new(wallet_available.clone()))?;
        let wallet_low = IntGaugeVec::new(
            Opts::new(
                "c2c_wallet_low_balance",
                "1 while a managed tenant's available balance is below billing.low_balance_paise",
            ),
            &["tenant"],
        )?;
        registry.register(Box::new(wallet_low.clone()))?;
        let wallet_settle_failures = prometheus::IntCounter::new(
            "c2c_wallet_settle_failures_total",
            "Call charges or hold releases that failed and wait for the wallet sweep",
        )?;
        registry.register(Box::new(wallet_settle_failures.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "c2c_build_info",
                "Always 1; labelled with the gateway's version and source revision",
            ),
            &["version", "revision"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        registry.register(Box::new(store_flush.clone()))?;
        registry.register(Box::new(store_flush_errors.clone()))?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        registry.register(Box::new(websocket_sessions.clone()))?;
        for c in [
            &calls_started,
            &call_outcomes,
            &livekit_errors,
            &livekit_requests,
            &livekit_webhooks,
            &proxied_requests,
            &limit_rejections,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(open_calls.clone()))?;
        registry.register(Box::new(call_setup.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(http_gateway_duration.clone()))?;
        registry.register(Box::new(policy_reloads.clone()))?;
        registry.register(Box::new(policy_generation.clone()))?;
        registry.register(Box::new(dlt_blocked.clone()))?;
        registry.register(Box::new(dlt_refusals.clone()))?;
        registry.register(Box::new(dlt_list_numbers.clone()))?;
        registry.register(Box::new(dlt_list_reloads.clone()))?;
        registry.register(Box::new(dlt_refusal_log_dropped.clone()))?;
        registry.register(Box::new(webhook_media_missing.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        Ok(Self {
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
            wallet_available,
            wallet_low,
            wallet_settle_failures,
            build_info,
        })
    }

    /// Sets `c2c_build_info{version,revision}` to 1 (called once at start-up).
    pub fn set_build_info(&self, version: &str, revision: &str) {
        self.build_info
            .with_label_values(&[version, revision])
            .set(1);
    }
}

/// The `status` label for an HTTP status without allocating for the common ones.
pub fn status_label(code: u16) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow::Borrowed;
    match code {
        0 => Borrowed("0"),
        101 => Borrowed("101"),
        200 => Borrowed("200"),
        204 => Borrowed("204"),
        400 => Borrowed("400"),
        401 => Borrowed("401"),
        403 => Borrowed("403"),
        404 => Borrowed("404"),
        405 => Borrowed("405"),
        409 => Borrowed("409"),
        413 => Borrowed("413"),
        415 => Borrowed("415"),
        422 => Borrowed("422"),
        429 => Borrowed("429"),
        500 => Borrowed("500"),
        502 => Borrowed("502"),
        503 => Borrowed("503"),
        504 => Borrowed("504"),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> Vec<u8> {
    use prometheus::Encoder;
    let mut out = Vec::with_capacity(16 * 1024);
    // Encoding into a Vec only fails on invalid metric families, which `register`
    // already rejected; an empty scrape is the safe fallback.
    if prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .is_err()
    {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_renders() {
        let r = Registry::new();
        let m = GatewayMetrics::register(&r).unwrap();
        m.http_requests.with_label_values(&["livez", "200"]).inc();
        m.policy_reloads.with_label_values(&["rejected"]).inc();
        let text = String::from_utf8(render(&r)).unwrap();
        assert!(text.contains("c2c_http_requests_total{route=\"livez\",status=\"200\"} 1"));
        assert!(text.contains("c2c_policy_reloads_total{result=\"rejected\"} 1"));
    }

    #[test]
    fn build_info_is_one_with_version_and_revision() {
        let r = Registry::new();
        let m = GatewayMetrics::register(&r).unwrap();
        m.set_build_info("0.1.0", "0123456789ab");
        let text = String::from_utf8(render(&r)).unwrap();
        assert!(
            text.contains("c2c_build_info{revision=\"0123456789ab\",version=\"0.1.0\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn double_registration_is_an_error() {
        let r = Registry::new();
        GatewayMetrics::register(&r).unwrap();
        assert!(GatewayMetrics::register(&r).is_err());
    }
}
