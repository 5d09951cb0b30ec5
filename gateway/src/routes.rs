//! The route table: every path the gateway answers or proxies, and who may call it.
//!
//! Each route is a constant [`RouteInfo`]; handlers dispatch by matching on these
//! constants, so a route's name, access rule and handler cannot drift apart.

use c2c_plugin_api::{Access, RouteInfo, Scope};
use http::Method;

use crate::api::openapi::{
    agent_paths, billing_paths, console_paths, paths, tenant_paths, OperationDoc,
};

const fn local(name: &'static str, access: Access, json_body: bool) -> RouteInfo {
    RouteInfo {
        name,
        access,
        dials: false,
        local: true,
        json_body,
    }
}

pub const LIVEZ: RouteInfo = local("livez", Access::Public, false);
pub const READYZ: RouteInfo = local("readyz", Access::Public, false);
pub const METRICS: RouteInfo = local("metrics", Access::Public, false);
/// The OpenAPI document of this API (`GET /openapi.json`).
pub const OPENAPI: RouteInfo = local("openapi", Access::Public, false);
pub const NORMALIZE: RouteInfo = local("normalize", Access::Key(Scope::Calls), true);
pub const OWNER_OUTBOUND_GET: RouteInfo =
    local("owner_outbound_get", Access::Key(Scope::Owner), false);
pub const OWNER_OUTBOUND_SET: RouteInfo =
    local("owner_outbound_set", Access::Key(Scope::Owner), true);

/// A `console` key may place calls too: the console's Sandbox is a real call.
pub const CLICK2CALL: RouteInfo = RouteInfo {
    dials: true,
    ..local(
        "click2call",
        Access::AnyKey(&[Scope::Calls, Scope::Console]),
        true,
    )
};
// Browser endpoints: keyed by the unguessable call id, no secret (the contract), and
// lenient about bodies because navigator.sendBeacon sends text/plain or nothing.
pub const CALL_CONNECT: RouteInfo = local("call_connect", Access::Public, false);
pub const CALL_HANGUP: RouteInfo = local("call_hangup", Access::Public, false);
pub const CALL_STATUS: RouteInfo = local("call_status", Access::Public, false);
pub const CALL_GET: RouteInfo = local("call_get", Access::Public, false);
pub const CALL_PREFLIGHT: RouteInfo = local("call_preflight", Access::Public, false);
// Authenticated by LiveKit's signature over the raw body, not by a key.
pub const LIVEKIT_WEBHOOK: RouteInfo = local("livekit_webhook", Access::Public, false);

// Proxied to LiveKit after the edge verifies the LiveKit access token.
const fn proxied(name: &'static str) -> RouteInfo {
    RouteInfo {
        name,
        access: Access::Public,
        dials: false,
        local: false,
        json_body: false,
    }
}
/// Browser signalling: `/rtc` (WebSocket) and paths under it, e.g. `/rtc/validate`.
pub const RTC: RouteInfo = proxied("rtc");
/// LiveKit server API pass-through for server SDKs pointed at the gateway.
pub const TWIRP: RouteInfo = proxied("twirp");

/// True for the routes proxied to LiveKit.
pub fn is_livekit_route(r: &RouteInfo) -> bool {
    matches!(*r, RTC | TWIRP)
}

/// Reports: a tenant key (its own tenant) or the owner key (any tenant).
pub const ANALYTICS: RouteInfo = local(
    "analytics",
    Access::AnyKey(&[Scope::Calls, Scope::Console, Scope::Owner]),
    false,
);
/// A tenant's call log.
pub const CALL_LOG: RouteInfo = local(
    "call_log",
    Access::AnyKey(&[Scope::Calls, Scope::Console, Scope::Owner]),
    false,
);

/// Browser assets embedded in the binary: `/js/c2c-client.js` and the console pages.
pub const ASSET: RouteInfo = local("asset", Access::Public, false);
/// Console JSON endpoints: a tenant's `console` key (its own tenant) or the owner key.
const CONSOLE_KEYS: Access = Access::AnyKey(&[Scope::Console, Scope::Owner]);
pub const CONSOLE_SESSION: RouteInfo = local("console_session", CONSOLE_KEYS, false);
pub const CONSOLE_TENANT: RouteInfo = local("console_tenant", CONSOLE_KEYS, false);
/// The console's editable settings: provisioning's view and change of one tenant.
pub const CONSOLE_SETTINGS_GET: RouteInfo = local("console_settings_get", CONSOLE_KEYS, false);
pub const CONSOLE_SETTINGS_PATCH: RouteInfo = local("console_settings_patch", CONSOLE_KEYS, true);
pub const CONSOLE_NORMALIZE: RouteInfo = local("console_normalize", CONSOLE_KEYS, true);
pub const CONSOLE_LIVEKIT_VALIDATE: RouteInfo =
    local("console_livekit_validate", CONSOLE_KEYS, true);
pub const CONSOLE_CALL: RouteInfo = local("console_call", CONSOLE_KEYS, false);
/// Sandbox: the bundled simulator calls one of the tenant's numbers as a carrier.
pub const CONSOLE_SANDBOX_INBOUND: RouteInfo = local("console_sandbox_inbound", CONSOLE_KEYS, true);
/// Sandbox: the simulator's stand-in for the call's agent joins its room with audio.
pub const CONSOLE_SANDBOX_JOIN: RouteInfo = local("console_sandbox_join", CONSOLE_KEYS, true);

pub const WEBHOOKS_REPLAY: RouteInfo = local("webhooks_replay", Access::Key(Scope::Owner), true);
/// One call's stored record (numbers masked) and webhook delivery state, for the owner.
pub const OWNER_CALL_GET: RouteInfo = local("owner_call_get", Access::Key(Scope::Owner), false);
/// A consistent copy of the whole store, streamed (`c2c-gateway db backup`).
pub const OWNER_BACKUP: RouteInfo = local("owner_backup", Access::Key(Scope::Owner), false);

/// A wallet: a tenant key (its own tenant) or the owner key (any tenant).
pub const WALLET_GET: RouteInfo = local(
    "wallet_get",
    Access::AnyKey(&[Scope::Calls, Scope::Console, Scope::Owner]),
    false,
);
pub const WALLET_CSV: RouteInfo = local(
    "wallet_statement_csv",
    Access::AnyKey(&[Scope::Calls, Scope::Console, Scope::Owner]),
    false,
);
/// Provisioning: the owner creates, lists, reads and changes tenants (their policy
/// files, `crate::provision`).
pub const OWNER_TENANTS_LIST: RouteInfo =
    local("owner_tenants_list", Access::Key(Scope::Owner), false);
pub const OWNER_TENANT_CREATE: RouteInfo =
    local("owner_tenant_create", Access::Key(Scope::Owner), true);
pub const OWNER_TENANT_GET: RouteInfo = local("owner_tenant_get", Access::Key(Scope::Owner), false);
/// The platform's call settings (gateway.toml's `[calls]` and `answer_detection`).
pub const OWNER_GATEWAY_GET: RouteInfo =
    local("owner_gateway_get", Access::Key(Scope::Owner), false);
pub const OWNER_GATEWAY_PATCH: RouteInfo =
    local("owner_gateway_patch", Access::Key(Scope::Owner), true);
pub const OWNER_TENANT_PATCH: RouteInfo =
    local("owner_tenant_patch", Access::Key(Scope::Owner), true);

/// The owner's top-up, adjustment or refund.
pub const OWNER_WALLET_ENTRY: RouteInfo =
    local("owner_wallet_entry", Access::Key(Scope::Owner), true);

/// The agent registry: a tenant's `calls` or `console` key, its own tenant.
const AGENT_KEYS: Access = Access::AnyKey(&[Scope::Calls, Scope::Console]);
pub const AGENTS_LIST: RouteInfo = local("agents_list", AGENT_KEYS, false);
pub const AGENT_GET: RouteInfo = local("agent_get", AGENT_KEYS, false);
pub const AGENT_PUT: RouteInfo = local("agent_put", AGENT_KEYS, true);
pub const AGENT_DELETE: RouteInfo = local("agent_delete", AGENT_KEYS, false);
/// Mints a presence token; the body (`{"supervisor": true}`) is optional, so not
/// required to be JSON-labelled.
pub const AGENT_SESSION: RouteInfo = local("agent_session", AGENT_KEYS, false);
/// The presence WebSocket. Its upgrade is taken over before the chain runs
/// (`crate::agents::socket`); anything else at this path gets `426`.
pub const PRESENCE: RouteInfo = local("agent_presence", Access::Public, false);
/// The presence socket's path (also in the `ws_url` of a presence token's answer).
pub const PRESENCE_PATH: &str = "/api/c2c/agents/presence";
/// A fresh agent token for an open call (browser endpoint, keyed by the call id).
pub const CALL_TOKEN: RouteInfo = local("call_token", Access::Public, false);
/// Takes an inbound call offered to an agent (browser endpoint, presence token).
pub const CALL_ACCEPT: RouteInfo = local("call_accept", Access::Public, false);
pub const CONSOLE_AGENTS: RouteInfo = local("console_agents", CONSOLE_KEYS, false);
pub const CONSOLE_AGENT_TELEPHONY: RouteInfo = local("console_agent_telephony", CONSOLE_KEYS, true);
pub const CONSOLE_AGENTS_AUDIT: RouteInfo = local("console_agents_audit", CONSOLE_KEYS, false);
pub const CONSOLE_PRESENCE_SESSION: RouteInfo =
    local("console_presence_session", CONSOLE_KEYS, false);

/// True for the routes a browser calls cross-origin.
pub fn is_browser_route(r: &RouteInfo) -> bool {
    matches!(
        *r,
        CALL_CONNECT
            | CALL_HANGUP
            | CALL_STATUS
            | CALL_GET
            | CALL_PREFLIGHT
            | CALL_TOKEN
            | CALL_ACCEPT
    )
}

/// True for the routes that read or write call records (or their tallies): answered
/// `503 starting` until the store is fully open (crate::lifecycle).
pub fn uses_call_store(r: &RouteInfo) -> bool {
    is_browser_route(r)
        || matches!(
            *r,
            CLICK2CALL
                | LIVEKIT_WEBHOOK
                | ANALYTICS
                | CALL_LOG
                | CONSOLE_CALL
                | CONSOLE_SANDBOX_INBOUND
                | CONSOLE_SANDBOX_JOIN
                | WEBHOOKS_REPLAY
                | OWNER_CALL_GET
                | OWNER_BACKUP
        )
}

/// One route of the table: method, path template (`{x}` captures a segment), route,
/// and what the OpenAPI document says of it. The router and the document are both built
/// from [`ENDPOINTS`], so a path is written once.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub route: RouteInfo,
    pub doc: &'static OperationDoc,
}

const fn at(
    method: Method,
    path: &'static str,
    route: RouteInfo,
    doc: &'static OperationDoc,
) -> Endpoint {
    Endpoint {
        method,
        path,
        route,
        doc,
    }
}

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const OPTIONS: Method = Method::OPTIONS;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;
const PATCH: Method = Method::PATCH;

/// Every route. [`RTC`] and [`TWIRP`] are prefix routes: [`find`] matches them by prefix
/// (`/rtc/...`, `/twirp/...`) before this table.
#[rustfmt::skip]
pub static ENDPOINTS: [Endpoint; 60] = [
    at(GET, "/livez", LIVEZ, &paths::LIVEZ),
    at(GET, "/readyz", READYZ, &paths::READYZ),
    at(GET, "/metrics", METRICS, &paths::METRICS),
    at(GET, "/openapi.json", OPENAPI, &paths::OPENAPI),
    at(POST, "/api/c2c/normalize", NORMALIZE, &paths::NORMALIZE),
    at(GET, "/api/c2c/analytics", ANALYTICS, &paths::ANALYTICS),
    at(GET, "/api/c2c/calls", CALL_LOG, &paths::CALL_LOG),
    at(POST, "/api/c2c/click2call", CLICK2CALL, &paths::CLICK2CALL),
    at(POST, "/api/c2c/calls/{call_id}/connect", CALL_CONNECT, &paths::CONNECT),
    at(POST, "/api/c2c/calls/{call_id}/hangup", CALL_HANGUP, &paths::HANGUP),
    at(POST, "/api/c2c/calls/{call_id}/status", CALL_STATUS, &paths::REPORT_STATUS),
    at(GET, "/api/c2c/calls/{call_id}", CALL_GET, &paths::GET_CALL),
    at(OPTIONS, "/api/c2c/calls/{call_id}/connect", CALL_PREFLIGHT,
        &OperationDoc { id: "preflight_connect", ..paths::PREFLIGHT }),
    at(OPTIONS, "/api/c2c/calls/{call_id}/hangup", CALL_PREFLIGHT,
        &OperationDoc { id: "preflight_hangup", ..paths::PREFLIGHT }),
    at(OPTIONS, "/api/c2c/calls/{call_id}/status", CALL_PREFLIGHT,
        &OperationDoc { id: "preflight_status", ..paths::PREFLIGHT }),
    at(OPTIONS, "/api/c2c/calls/{call_id}", CALL_PREFLIGHT,
        &OperationDoc { id: "preflight_get", ..paths::PREFLIGHT }),
    at(POST, "/api/c2c/calls/{call_id}/token", CALL_TOKEN, &agent_paths::CALL_TOKEN),
    at(OPTIONS, "/api/c2c/calls/{call_id}/token", CALL_PREFLIGHT,
        &OperationDoc { id: "preflight_token", ..paths::PREFLIGHT }),
    at(POST, "/api/c2c/calls/{call_id}/accept", CALL_ACCEPT, &agent_paths::CALL_ACCEPT),
    at(OPTIONS, "/api/c2c/calls/{call_id}/accept", CALL_PREFLIGHT,
        &OperationDoc { id: "preflight_accept", ..paths::PREFLIGHT }),
    at(POST, "/webhooks/livekit", LIVEKIT_WEBHOOK, &paths::LIVEKIT_WEBHOOK),
    // The literal `presence` before the `{agent_id}` capture: the first match wins.
    at(GET, "/api/c2c/agents/presence", PRESENCE, &agent_paths::PRESENCE),
    at(GET, "/api/c2c/agents", AGENTS_LIST, &agent_paths::AGENTS_LIST),
    at(GET, "/api/c2c/agents/{agent_id}", AGENT_GET, &agent_paths::AGENT_GET),
    at(PUT, "/api/c2c/agents/{agent_id}", AGENT_PUT, &agent_paths::AGENT_PUT),
    at(DELETE, "/api/c2c/agents/{agent_id}", AGENT_DELETE, &agent_paths::AGENT_DELETE),
    at(POST, "/api/c2c/agents/{agent_id}/session", AGENT_SESSION, &agent_paths::AGENT_SESSION),
    at(GET, "/api/c2c/console/tenants/{tenant}/agents", CONSOLE_AGENTS,
        &agent_paths::CONSOLE_AGENTS),
    at(GET, "/api/c2c/console/tenants/{tenant}/agents/audit", CONSOLE_AGENTS_AUDIT,
        &agent_paths::CONSOLE_AGENTS_AUDIT),
    at(POST, "/api/c2c/console/tenants/{tenant}/agents/{agent_id}/telephony",
        CONSOLE_AGENT_TELEPHONY, &agent_paths::CONSOLE_AGENT_TELEPHONY),
    at(POST, "/api/c2c/console/tenants/{tenant}/presence-session", CONSOLE_PRESENCE_SESSION,
        &agent_paths::CONSOLE_PRESENCE_SESSION),
    at(POST, "/api/c2c/webhooks/replay", WEBHOOKS_REPLAY, &paths::WEBHOOKS_REPLAY),
    at(GET, "/api/c2c/owner/calls/{call_id}", OWNER_CALL_GET, &paths::OWNER_CALL_GET),
    at(GET, "/api/c2c/owner/backup", OWNER_BACKUP, &paths::OWNER_BACKUP),
    at(GET, "/api/c2c/wallet", WALLET_GET, &billing_paths::WALLET_GET),
    at(GET, "/api/c2c/wallet/statement.csv", WALLET_CSV, &billing_paths::WALLET_CSV),
    at(GET, "/api/c2c/owner/gateway", OWNER_GATEWAY_GET, &tenant_paths::OWNER_GATEWAY_GET),
    at(PATCH, "/api/c2c/owner/gateway", OWNER_GATEWAY_PATCH, &tenant_paths::OWNER_GATEWAY_PATCH),
    at(GET, "/api/c2c/owner/tenants", OWNER_TENANTS_LIST, &tenant_paths::OWNER_TENANTS_LIST),
    at(POST, "/api/c2c/owner/tenants", OWNER_TENANT_CREATE, &tenant_paths::OWNER_TENANT_CREATE),
    at(GET, "/api/c2c/owner/tenants/{tenant}", OWNER_TENANT_GET, &tenant_paths::OWNER_TENANT_GET),
    at(PATCH, "/api/c2c/owner/tenants/{tenant}", OWNER_TENANT_PATCH,
        &tenant_paths::OWNER_TENANT_PATCH),
    at(POST, "/api/c2c/owner/tenants/{tenant}/wallet/entries", OWNER_WALLET_ENTRY,
        &billing_paths::OWNER_WALLET_ENTRY),
    at(GET, "/js/c2c-client.js", ASSET, &console_paths::CLIENT_JS),
    at(GET, "/js/livekit-client.js", ASSET, &console_paths::LIVEKIT_JS),
    at(GET, "/console", ASSET, &console_paths::CONSOLE_PAGE),
    at(GET, "/console/{file}", ASSET, &console_paths::CONSOLE_FILE),
    at(GET, "/api/c2c/console/session", CONSOLE_SESSION, &console_paths::CONSOLE_SESSION),
    at(GET, "/api/c2c/console/tenants/{tenant}", CONSOLE_TENANT, &console_paths::CONSOLE_TENANT),
    at(GET, "/api/c2c/console/tenants/{tenant}/settings", CONSOLE_SETTINGS_GET,
        &tenant_paths::CONSOLE_SETTINGS_GET),
    at(PATCH, "/api/c2c/console/tenants/{tenant}/settings", CONSOLE_SETTINGS_PATCH,
        &tenant_paths::CONSOLE_SETTINGS_PATCH),
    at(POST, "/api/c2c/console/tenants/{tenant}/normalize", CONSOLE_NORMALIZE,
        &console_paths::CONSOLE_NORMALIZE),
    at(POST, "/api/c2c/console/tenants/{tenant}/livekit-validate", CONSOLE_LIVEKIT_VALIDATE,
        &console_paths::CONSOLE_LIVEKIT_VALIDATE),
    at(GET, "/api/c2c/console/calls/{call_id}", CONSOLE_CALL, &console_paths::CONSOLE_CALL),
    at(POST, "/api/c2c/console/tenants/{tenant}/sandbox/inbound", CONSOLE_SANDBOX_INBOUND,
        &console_paths::CONSOLE_SANDBOX_INBOUND),
    at(POST, "/api/c2c/console/calls/{call_id}/sandbox-join", CONSOLE_SANDBOX_JOIN,
        &console_paths::CONSOLE_SANDBOX_JOIN),
    at(GET, "/api/telephony/config/owner/{tenant}/outbound-enable", OWNER_OUTBOUND_GET,
        &paths::OWNER_OUTBOUND_GET),
    at(POST, "/api/telephony/config/owner/{tenant}/outbound-enable", OWNER_OUTBOUND_SET,
        &paths::OWNER_OUTBOUND_SET),
    at(GET, "/rtc", RTC, &paths::RTC),
    at(POST, "/twirp/{service_method}", TWIRP, &paths::TWIRP),
];

/// A routed (not prefix) entry's path split into segments, for matching.
struct Pattern {
    segments: Vec<&'static str>,
    endpoint: &'static Endpoint,
}

fn is_capture(segment: &str) -> bool {
    segment.starts_with('{')
}

fn table() -> &'static [Pattern] {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<Pattern>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ENDPOINTS
            .iter()
            .filter(|e| !is_livekit_route(&e.route))
            .map(|endpoint| Pattern {
                segments: endpoint.path.trim_start_matches('/').split('/').collect(),
                endpoint,
            })
            .collect()
    })
}

/// Every route as `(method, OpenAPI path template, route)`, e.g.
/// `(GET, "/api/c2c/calls/{call_id}", CALL_GET)`. The OpenAPI document's tests walk this
/// list so an undocumented route cannot go unnoticed.
pub fn entries() -> impl Iterator<Item = (Method, String, RouteInfo)> {
    ENDPOINTS
        .iter()
        .map(|e| (e.method.clone(), e.path.to_string(), e.route))
}

/// Why no route matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The path exists for these other methods.
    MethodNotAllowed(Vec<Method>),
}

/// Path segment limit: no legitimate route is deeper, and it bounds matching work.
const MAX_SEGMENTS: usize = 12;

/// `/rtc` and the paths under it: LiveKit's signalling ([`RTC`]).
pub fn is_rtc_path(path: &str) -> bool {
    path == "/rtc" || path.starts_with("/rtc/")
}

/// Finds the route for a request, capturing `:param` segments.
pub fn find(method: &Method, path: &str) -> Result<(RouteInfo, Vec<String>), Miss> {
    // Prefix routes first: everything under them is LiveKit's to answer.
    if is_rtc_path(path) {
        return if *method == Method::GET {
            Ok((RTC, Vec::new()))
        } else {
            Err(Miss::MethodNotAllowed(vec![Method::GET]))
        };
    }
    if path.starts_with("/twirp/") {
        return if *method == Method::POST {
            Ok((TWIRP, Vec::new()))
        } else {
            Err(Miss::MethodNotAllowed(vec![Method::POST]))
        };
    }
    let mut segs: [&str; MAX_SEGMENTS] = [""; MAX_SEGMENTS];
    let mut n = 0;
    for s in path.trim_matches('/').split('/') {
        if n == MAX_SEGMENTS {
            return Err(Miss::NotFound);
        }
        segs[n] = s;
        n += 1;
    }
    let segs = &segs[..n];
    let matching = |p: &&Pattern| {
        p.segments.len() == segs.len()
            && p.segments
                .iter()
                .zip(segs)
                .all(|(p, s)| is_capture(p) && !s.is_empty() || p == s)
    };
    // The most specific paths win: `/api/c2c/agents/presence` is that route alone, not
    // also `/api/c2c/agents/{agent_id}` (whose methods would otherwise answer there).
    let literals = |p: &Pattern| p.segments.iter().filter(|s| !is_capture(s)).count();
    let best = table().iter().filter(matching).map(literals).max();
    let mut allowed = Vec::new();
    for p in table().iter().filter(matching) {
        if Some(literals(p)) != best {
            continue;
        }
        let e = p.endpoint;
        // HEAD is answered like GET by HTTP semantics; we keep it simple and refuse it.
        if e.method == *method {
            let params = p
                .segments
                .iter()
                .zip(segs)
                .filter(|(p, _)| is_capture(p))
                .map(|(_, s)| (*s).to_string())
                .collect();
            return Ok((e.route, params));
        }
        allowed.push(e.method.clone());
    }
    if allowed.is_empty() {
        Err(Miss::NotFound)
    } else {
        Err(Miss::MethodNotAllowed(allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_routes_and_params() {
        let (r, p) = find(
            &Method::POST,
            "/api/telephony/config/owner/acme/outbound-enable",
        )
        .unwrap();
        assert_eq!(r, OWNER_OUTBOUND_SET);
        assert_eq!(p, vec!["acme".to_string()]);
        assert_eq!(find(&Method::GET, "/livez").unwrap().0, LIVEZ);
    }

    #[test]
    fn a_literal_path_shadows_a_capture() {
        let (r, _) = find(&Method::GET, "/api/c2c/agents/presence").unwrap();
        assert_eq!(r, PRESENCE);
        assert_eq!(
            find(&Method::PUT, "/api/c2c/agents/presence"),
            Err(Miss::MethodNotAllowed(vec![Method::GET]))
        );
        let (r, p) = find(&Method::PUT, "/api/c2c/agents/agent-42").unwrap();
        assert_eq!((r, p), (AGENT_PUT, vec!["agent-42".to_string()]));
    }

    #[test]
    fn livekit_prefixes() {
        assert_eq!(find(&Method::GET, "/rtc").unwrap().0, RTC);
        assert_eq!(find(&Method::GET, "/rtc/validate").unwrap().0, RTC);
        assert_eq!(
            find(&Method::POST, "/twirp/livekit.RoomService/ListRooms")
                .unwrap()
                .0,
            TWIRP
        );
        assert!(find(&Method::POST, "/rtc").is_err());
        assert_eq!(find(&Method::GET, "/rtcx"), Err(Miss::NotFound));
    }

    #[test]
    fn unknown_paths_and_wrong_methods() {
        assert_eq!(find(&Method::GET, "/nope"), Err(Miss::NotFound));
        assert_eq!(
            find(&Method::GET, "/api/c2c/normalize"),
            Err(Miss::MethodNotAllowed(vec![Method::POST]))
        );
        assert_eq!(
            find(&Method::GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m"),
            Err(Miss::NotFound)
        );
        assert_eq!(
            find(&Method::GET, "/api/telephony/config/owner//outbound-enable"),
            Err(Miss::NotFound)
        );
    }
}
