//! The browser assets the gateway serves from its own origin: `/js/c2c-client.js` (the
//! agent client, `window.C2C`) and the web console under `/console/`. They are built
//! from `web/` by esbuild, committed under `web/dist/`, and embedded in the binary, so
//! `serve` needs no files and no CDN at run time.
//!
//! HTML carries a Content-Security-Policy that admits only this origin (plus ws/wss to
//! the gateway's public host for `/rtc`): no inline scripts, no third-party code. Pages
//! never contain keys: the console sends the key the user typed from sessionStorage.

use std::sync::OnceLock;

use bytes::Bytes;
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx, RequestHead};
use http::{header, HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use crate::app::App;

/// One embedded file.
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
    html: bool,
}

const CLIENT_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../../web/dist/c2c-client.js"),
    html: false,
};
const CONSOLE_HTML: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../../web/dist/console/index.html"),
    html: true,
};
const CONSOLE_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../../web/dist/console/app.js"),
    html: false,
};
const CONSOLE_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    bytes: include_bytes!("../../../web/dist/console/style.css"),
    html: false,
};

/// The asset for a request path, and its index (for the ETag cache).
fn lookup(path: &str) -> Option<(usize, &'static Asset)> {
    static ALL: [&Asset; 4] = [&CLIENT_JS, &CONSOLE_HTML, &CONSOLE_JS, &CONSOLE_CSS];
    let i = match path {
        "/js/c2c-client.js" => 0,
        "/console" | "/console/" | "/console/index.html" => 1,
        "/console/app.js" => 2,
        "/console/style.css" => 3,
        _ => return None,
    };
    Some((i, ALL[i]))
}

/// Strong ETags, computed once per asset (the bytes never change in a running binary).
fn etag(i: usize, a: &Asset) -> &'static str {
    static TAGS: [OnceLock<String>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    TAGS[i].get_or_init(|| {
        let d = Sha256::digest(a.bytes);
        format!("\"{}\"", hex::encode(&d[..12]))
    })
}

/// The CSP of console pages: this origin only; `connect-src` adds ws/wss to the public
/// host because the sandbox's LiveKit signalling goes to `ws_url` (the gateway).
pub fn csp(public_url: &str) -> String {
    let host = url::Url::parse(public_url)
        .ok()
        .and_then(|u| {
            let h = u.host_str()?.to_string();
            Some(match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            })
        })
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let ws = host
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{ws}; media-src 'self' blob: mediastream:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
}

fn hv(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|_| ApiError::internal("bad header value"))
}

/// `GET` of an embedded asset, with `If-None-Match` revalidation.
pub fn serve(
    app: &App,
    _ctx: &RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    let path = head.uri.path();
    let Some((i, asset)) = lookup(path) else {
        return Err(ApiError::not_found(format!("no asset at {path}")));
    };
    let tag = etag(i, asset);
    let fresh = head
        .header(http::header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut resp = if fresh {
        JsonResponse::empty(StatusCode::NOT_MODIFIED)
    } else {
        JsonResponse::raw(
            StatusCode::OK,
            asset.content_type,
            Bytes::from_static(asset.bytes),
        )
    };
    let h = &mut resp.headers;
    h.push((header::ETAG, hv(tag)?));
    // Revalidate every time: a new gateway build must reach agents at once.
    h.push((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    h.push((
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ));
    h.push((
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ));
    if asset.html {
        let public_url = app.policy().get().gateway.public_url.clone();
        h.push((header::CONTENT_SECURITY_POLICY, hv(&csp(&public_url))?));
        h.push((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")));
        h.push((
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("microphone=(self), camera=()"),
        ));
    } else {
        // Agent UIs on CRM origins load the client script cross-origin.
        h.push((
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        ));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_names_the_public_host_for_websockets() {
        let c = csp("http://127.0.0.1:8080");
        assert!(c.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        assert!(c.contains("script-src 'self';"));
        assert!(!c.contains("unsafe"));
        // A host that could break out of the header value is dropped, not embedded.
        assert!(!csp("http://exa mple.com").contains("ws://"));
    }

    #[test]
    fn every_asset_is_embedded_and_tagged() {
        for p in [
            "/js/c2c-client.js",
            "/console/",
            "/console/app.js",
            "/console/style.css",
        ] {
            let (i, a) = lookup(p).unwrap();
            assert!(!a.bytes.is_empty(), "{p}");
            assert_eq!(etag(i, a).len(), 26);
        }
        assert!(lookup("/console/../Cargo.toml").is_none());
    }
}
