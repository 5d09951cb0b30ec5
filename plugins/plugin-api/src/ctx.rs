//! Per-request state shared by the plugins of one request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::AsHeaderName;
use http::{HeaderMap, HeaderName, Method, Uri};

/// The header that carries a CRM's or the owner's API key.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A read-only view of the request head, borrowed from the proxy's session.
///
/// Borrowing (instead of copying headers into an owned struct) keeps the hot path free
/// of per-request allocations.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// The TCP peer; `None` only for in-memory tests.
    pub peer: Option<IpAddr>,
}

impl<'a> RequestHead<'a> {
    pub fn path(&self) -> &'a str {
        self.uri.path()
    }

    /// A header's value as text; `None` when absent or not visible ASCII.
    ///
    /// Takes a [`HeaderName`] (a constant such as [`X_API_KEY`] or `http::header::*`) on
    /// the request path: a `&str` also works, but is validated and lower-cased on every
    /// lookup, which is measurable at tens of thousands of requests per second.
    pub fn header<K: AsHeaderName>(&self, name: K) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header that must appear at most once (a credential, the body's content type):
    /// its value as [`Self::header`] reads it, or an error when the request carries it
    /// more than once. [`Self::header`] silently takes the first value; a proxy in front
    /// of the gateway might take the last, so where the value decides who the caller is
    /// or how the body is read, use this and refuse the request on `Err`.
    pub fn single_header(&self, name: &HeaderName) -> Result<Option<&'a str>, DuplicateHeader> {
        let mut values = self.headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(DuplicateHeader {
                name: name.clone(),
                count: 2 + values.count(),
            });
        }
        Ok(first.and_then(|v| v.to_str().ok()))
    }

    /// True when the client asked to switch protocols (WebSocket). Such requests still
    /// run every `on_request` hook: an `Upgrade` header must never be a way around auth.
    pub fn is_upgrade(&self) -> bool {
        self.headers.contains_key(http::header::UPGRADE)
    }
}

/// A header the gateway accepts once was sent several times (see
/// [`RequestHead::single_header`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {name} header appears {count} times; exactly one is allowed")]
pub struct DuplicateHeader {
    pub name: HeaderName,
    /// How many times it appears (at least 2).
    pub count: usize,
}

/// What a key is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Start and manage calls for its own tenant (`/api/c2c/*`).
    Calls,
    /// Platform owner: DLT toggles and cross-tenant administration.
    Owner,
    /// The web console for its own tenant (read settings and analytics, test normalize,
    /// sandbox calls). Typed by a person into a browser, so it is never the CRM's
    /// `calls` secret.
    Console,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Calls => "calls",
            Scope::Owner => "owner",
            Scope::Console => "console",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "calls" => Some(Scope::Calls),
            "owner" => Some(Scope::Owner),
            "console" => Some(Scope::Console),
            _ => None,
        }
    }
}

/// Who a route admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (liveness, metrics, browser endpoints keyed by an unguessable call id,
    /// signed LiveKit webhooks that authenticate themselves).
    Public,
    /// A key carrying this scope, sent as `X-api-key`.
    Key(Scope),
    /// A key carrying any of these scopes (e.g. analytics: a tenant's own key or the
    /// platform owner's).
    AnyKey(&'static [Scope]),
}

/// The route a request matched, decided once by the router plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    /// Stable, low-cardinality name used as the `route` metric label.
    pub name: &'static str,
    pub access: Access,
    /// The route places outbound calls: the DLT gate applies.
    pub dials: bool,
    /// The route is answered by the gateway itself (its body is read and handed to
    /// `on_body`); otherwise it is proxied upstream.
    pub local: bool,
    /// The route takes a JSON body (415 for another content type, 400 for bad JSON).
    pub json_body: bool,
}

/// Where a proxied request goes, decided by the plugin that authenticated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamChoice {
    /// A named region's upstream pool (with its fallback regions).
    Region(String),
    /// A fixed base URL (a bring-your-own LiveKit project).
    Url(String),
}

/// The authenticated caller, set by the auth plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `None` for platform owner keys (they belong to no tenant).
    pub tenant: Option<Arc<str>>,
    pub key_id: Arc<str>,
    /// Shared with the key ring: authenticating a request clones three pointers, not
    /// three heap strings.
    pub scopes: Arc<[Scope]>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Mutable state carried through all hooks of one request.
#[derive(Debug)]
pub struct RequestCtx {
    pub started: Instant,
    /// Set by the router; `None` until then (and for unmatched paths).
    pub route: Option<RouteInfo>,
    /// Path parameters captured by the router, in path order (e.g. `[tenant]`,
    /// `[call_id]`).
    pub params: Vec<String>,
    pub principal: Option<Principal>,
    /// The tenant owning the resource the request addresses (e.g. the call behind a
    /// browser endpoint), set by the handler that loaded it. Used for per-tenant CORS.
    pub resource_tenant: Option<String>,
    /// For proxied routes: where to send the request.
    pub upstream: Option<UpstreamChoice>,
    /// Final status, recorded by the gateway for the logging hook.
    pub status: u16,
    /// Time this request spent waiting on LiveKit's server API, added up by the
    /// handlers that call it. Lets metrics and the `Server-Timing` header separate the
    /// gateway's own latency from LiveKit's.
    pub livekit_wait: Duration,
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            route: None,
            params: Vec::new(),
            principal: None,
            resource_tenant: None,
            upstream: None,
            status: 0,
            livekit_wait: Duration::ZERO,
        }
    }
}

impl RequestCtx {
    pub fn route_name(&self) -> &'static str {
        self.route.map(|r| r.name).unwrap_or("unmatched")
    }

    pub fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }

    /// The tenant of the authenticated key, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.principal.as_ref().and_then(|p| p.tenant.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with(headers: &HeaderMap) -> RequestHead<'_> {
        static M: Method = Method::GET;
        static U: std::sync::OnceLock<Uri> = std::sync::OnceLock::new();
        RequestHead {
            method: &M,
            uri: U.get_or_init(|| Uri::from_static("/x")),
            headers,
            peer: None,
        }
    }

    #[test]
    fn single_header_refuses_repeats_that_header_would_hide() {
        let mut h = HeaderMap::new();
        assert_eq!(head_with(&h).single_header(&X_API_KEY), Ok(None));
        h.append(X_API_KEY, "k1".parse().unwrap());
        assert_eq!(head_with(&h).single_header(&X_API_KEY), Ok(Some("k1")));
        h.append(X_API_KEY, "k2".parse().unwrap());
        h.append(X_API_KEY, "k3".parse().unwrap());
        // `header` takes the first value; `single_header` refuses and says how many.
        assert_eq!(head_with(&h).header(X_API_KEY), Some("k1"));
        let e = head_with(&h).single_header(&X_API_KEY).unwrap_err();
        assert_eq!((e.name.as_str(), e.count), ("x-api-key", 3));
        assert_eq!(
            e.to_string(),
            "the x-api-key header appears 3 times; exactly one is allowed"
        );
    }
}
