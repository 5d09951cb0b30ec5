//! The route table: every path the gateway answers or proxies, and who may call it.
//!
//! Each route is a constant [`RouteInfo`]; handlers dispatch by matching on these
//! constants, so a route's name, access rule and handler cannot drift apart.

use c2c_plugin_api::{Access, RouteInfo, Scope};
use http::Method;

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
pub const CONSOLE_NORMALIZE: RouteInfo = local("console_normalize", CONSOLE_KEYS, true);
pub const CONSOLE_LIVEKIT_VALIDATE: RouteInfo =
    local("console_livekit_validate", CONSOLE_KEYS, true);
pub const CONSOLE_CALL: RouteInfo = local("console_call", CONSOLE_KEYS, false);

pub const WEBHOOKS_REPLAY: RouteInfo = local("webhooks_replay", Access::Key(Scope::Owner), true);
/// One call's stored record (numbers masked) and webhook delivery state, for the owner.
pub const OWNER_CALL_GET: RouteInfo = local("owner_call_get", Access::Key(Scope::Owner), false);
/// A consistent copy of the whole store, streamed (`c2c-gateway db backup`).
pub const OWNER_BACKUP: RouteInfo = local("owner_backup", Access::Key(Scope::Owner), false);

/// True for the routes a browser calls cross-origin.
pub fn is_browser_route(r: &RouteInfo) -> bool {
    matches!(
        *r,
        CALL_CONNECT | CALL_HANGUP | CALL_STATUS | CALL_GET | CALL_PREFLIGHT
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
                | WEBHOOKS_REPLAY
                | OWNER_CALL_GET
                | OWNER_BACKUP
        )
}

/// One entry: method, path pattern (`:x` captures a segment), route.
struct Entry {
    method: Method,
    pattern: &'static [&'static str],
    route: RouteInfo,
}

fn table() -> &'static [Entry] {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        vec![
            Entry {
                method: Method::GET,
                pattern: &["livez"],
                route: LIVEZ,
            },
            Entry {
                method: Method::GET,
                pattern: &["readyz"],
                route: READYZ,
            },
            Entry {
                method: Method::GET,
                pattern: &["metrics"],
                route: METRICS,
            },
            Entry {
                method: Method::GET,
                pattern: &["openapi.json"],
                route: OPENAPI,
            },
            Entry {
                method: Method::POST,
                pattern: &["api", "c2c", "normalize"],
                route: NORMALIZE,
            },
            Entry {
                method: Method::GET,
                pattern: &["api", "c2c", "analytics"],
                route: ANALYTICS,
            },
            Entry {
                method: Method::GET,
                pattern: &["api", "c2c", "calls"],
                route: CALL_LOG,
            },
            Entry {
                method: Method::POST,
                pattern: &["api", "c2c", "click2call"],
                route: CLICK2CALL,
            },
            Entry {
                method: Method::POST,
                pattern: &["api", "c2c", "calls", ":call_id", "connect"],
                route: CALL_CONNECT,
            },
            Entry {
                method: Method::POST,
                pattern: &["api", "c2c", "calls", ":call_id", "hangup"],
                route: CALL_HANGUP,
            },
            Entry {
                method: Method::POST,
                pattern: &["api", "c2c", "calls", ":call_id", "status"],
                route: CALL_STATUS,
            },
            Entry {
                method: Method::GET,
                pattern: &["api", "c2c", "calls", ":call_id"],
                route: CALL_GET,
            },
            Entry {
                method: Method::OPTIONS,
                pattern: &["api", "c2c", "calls", ":call_id", "connect"],
                route: CALL_PREFLIGHT,
            },
            Entry {
                method: Method::OPTIONS,
                pattern: &["api", "c2c", "calls", ":call_id", "hangup"],
                route: CALL_PREFLIGHT,
            },
            Entry {
                method: Method::OPTIONS,
                pattern: &["api", "c2c", "calls", ":call_id", "status"],
                route: CALL_PREFLIGHT,
            },
            Entry {
                method: Method::OPTIONS,
                pattern: &["api", "c2c", "calls", ":call_id"],
                route: CALL_PREFLIGHT,
            },
            Entry {
                method: Method::POST,
                pattern: &["webhooks", "livekit"],
                route: LIVEKIT_WEBHOOK,
            },
            Entry {
                method: Method::POST,
                pattern: &["api", "c2c", "webhooks", "replay"],
                route: WEBHOOKS_REPLAY,
            },
            Entry {
                method: Method::GET,
                pattern: &["api", "c2c", "owner", "calls", ":call_id"],
                route: OWNER_CALL_GET,
            },
            Entry {
                method: Method::GET,
                pattern: &["api", "c2c", "owner", "backup"],
                route: OWNER_BACKUP,
            },
            Entry {
                method: Method::GET,
                pattern: &["js", "c2c-client.js"],
                route: ASSET,
            },
            Entry {
                method: Method::GET,
                pattern: &["console"],
                route: ASSET,
            },
            Entry {
                method: Method::GET,
                pattern: &["console", ":file"],
                route: ASSET,
            },
            Entry {
                method: Method::GET,
                pattern: &["api", "c2c", "console", "session"],
                route: CONSOLE_SESSION,
            },
            Entry {
                method: Method::GET,
                pattern: &["api", "c2c", "console", "tenants", ":tenant"],
                route: CONSOLE_TENANT,
            },
            Entry {
                method: Method::POST,
                pattern: &["api", "c2c", "console", "tenants", ":tenant", "normalize"],
                route: CONSOLE_NORMALIZE,
            },
            Entry {
                method: Method::POST,
                pattern: &[
                    "api",
                    "c2c",
                    "console",
                    "tenants",
                    ":tenant",
                    "livekit-validate",
                ],
                route: CONSOLE_LIVEKIT_VALIDATE,
            },
            Entry {
                method: Method::GET,
                pattern: &["api", "c2c", "console", "calls", ":call_id"],
                route: CONSOLE_CALL,
            },
            Entry {
                method: Method::GET,
                pattern: &[
                    "api",
                    "telephony",
                    "config",
                    "owner",
                    ":tenant",
                    "outbound-enable",
                ],
                route: OWNER_OUTBOUND_GET,
            },
            Entry {
                method: Method::POST,
                pattern: &[
                    "api",
                    "telephony",
                    "config",
                    "owner",
                    ":tenant",
                    "outbound-enable",
                ],
                route: OWNER_OUTBOUND_SET,
            },
        ]
    })
}

/// Every route of the table as `(method, OpenAPI path template, route)`, e.g.
/// `(GET, "/api/c2c/calls/{call_id}", CALL_GET)`; the prefix routes ([`RTC`], [`TWIRP`])
/// are listed by [`PREFIX_ROUTES`]. The OpenAPI document and its tests walk this list so
/// an undocumented route cannot go unnoticed.
pub fn entries() -> impl Iterator<Item = (Method, String, RouteInfo)> {
    table().iter().map(|e| {
        let path: String = e
            .pattern
            .iter()
            .map(|s| match s.strip_prefix(':') {
                Some(p) => format!("/{{{p}}}"),
                None => format!("/{s}"),
            })
            .collect();
        (e.method.clone(), path, e.route)
    })
}

/// The prefix routes proxied to LiveKit, as `(method, OpenAPI path template, route)`:
/// `/rtc` (and paths under it) and `/twirp/{service_method}`.
pub const PREFIX_ROUTES: [(Method, &str, RouteInfo); 2] = [
    (Method::GET, "/rtc", RTC),
    (Method::POST, "/twirp/{service_method}", TWIRP),
];

/// Why no route matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The path exists for these other methods.
    MethodNotAllowed(Vec<Method>),
}

/// Path segment limit: no legitimate route is deeper, and it bounds matching work.
const MAX_SEGMENTS: usize = 12;

/// Finds the route for a request, capturing `:param` segments.
pub fn find(method: &Method, path: &str) -> Result<(RouteInfo, Vec<String>), Miss> {
    // Prefix routes first: everything under them is LiveKit's to answer.
    if path == "/rtc" || path.starts_with("/rtc/") {
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
    let mut allowed = Vec::new();
    for e in table() {
        if e.pattern.len() != segs.len() {
            continue;
        }
        let matches = e
            .pattern
            .iter()
            .zip(segs)
            .all(|(p, s)| p.starts_with(':') && !s.is_empty() || p == s);
        if !matches {
            continue;
        }
        // HEAD is answered like GET by HTTP semantics; we keep it simple and refuse it.
        if e.method == *method {
            let params = e
                .pattern
                .iter()
                .zip(segs)
                .filter(|(p, _)| p.starts_with(':'))
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
