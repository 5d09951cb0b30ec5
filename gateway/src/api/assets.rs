//! The browser assets the gateway serves from its own origin: `/js/c2c-client.js` (the
//! agent client, `window.C2C`), `/js/livekit-client.js` (the pinned LiveKit browser SDK,
//! `window.LivekitClient`, which the client loads only when a call starts) and the web
//! console under `/console/`. They are built from `web/` by esbuild, committed under
//! `web/dist/`, and embedded in the binary, so `serve` needs no files and no CDN at run
//! time. A client that accepts gzip gets it (compressed once per process, on first use):
//! the SDK is ~600 KB as built and about a quarter of that compressed.
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
const LIVEKIT_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../../web/dist/livekit-client.js"),
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
const ASSETS: usize = 5;

fn lookup(path: &str) -> Option<(usize, &'static Asset)> {
    static ALL: [&Asset; ASSETS] = [
        &CLIENT_JS,
        &LIVEKIT_JS,
        &CONSOLE_HTML,
        &CONSOLE_JS,
        &CONSOLE_CSS,
    ];
    let i = match path {
        "/js/c2c-client.js" => 0,
        "/js/livekit-client.js" => 1,
        "/console" | "/console/" | "/console/index.html" => 2,
        "/console/app.js" => 3,
        "/console/style.css" => 4,
        _ => return None,
    };
    Some((i, ALL[i]))
}

/// One representation of an asset: its bytes and strong ETag (a gzip body has its own).
struct Variant {
    bytes: Bytes,
    etag: String,
}

fn variant(bytes: Bytes, suffix: &str) -> Variant {
    let d = Sha256::digest(&bytes);
    Variant {
        etag: format!("\"{}{suffix}\"", hex::encode(&d[..12])),
        bytes,
    }
}

/// The identity representation, tagged once per asset (the bytes never change in a
/// running binary).
fn identity(i: usize, a: &'static Asset) -> &'static Variant {
    static V: [OnceLock<Variant>; ASSETS] = [const { OnceLock::new() }; ASSETS];
    V[i].get_or_init(|| variant(Bytes::from_static(a.bytes), ""))
}

/// The gzip representation, compressed on first use and kept. None if compression
/// failed (it writes to memory: it does not), then the identity body is served.
fn gzipped(i: usize, a: &'static Asset) -> Option<&'static Variant> {
    static V: [OnceLock<Option<Variant>>; ASSETS] = [const { OnceLock::new() }; ASSETS];
    V[i].get_or_init(|| {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(a.bytes).ok()?;
        let gz = enc.finish().ok()?;
        Some(variant(Bytes::from(gz), "-gz"))
    })
    .as_ref()
}

/// Whether `Accept-Encoding` admits gzip (a `q=0` refuses it).
fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
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
    let gz = accepts_gzip(head.header(header::ACCEPT_ENCODING))
        .then(|| gzipped(i, asset))
        .flatten();
    let chosen = gz.unwrap_or_else(|| identity(i, asset));
    let tag = chosen.etag.as_str();
    let fresh = head
        .header(http::header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut resp = if fresh {
        JsonResponse::empty(StatusCode::NOT_MODIFIED)
    } else {
        JsonResponse::raw(StatusCode::OK, asset.content_type, chosen.bytes.clone())
    };
    let h = &mut resp.headers;
    if gz.is_some() && !fresh {
        h.push((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
    }
    // Caches must key on the encoding the client accepts.
    h.push((header::VARY, HeaderValue::from_static("Accept-Encoding")));
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
            "/js/livekit-client.js",
            "/console/",
            "/console/app.js",
            "/console/style.css",
        ] {
            let (i, a) = lookup(p).unwrap();
            assert!(!a.bytes.is_empty(), "{p}");
            assert_eq!(identity(i, a).etag.len(), 26);
            let gz = gzipped(i, a).unwrap();
            assert!(gz.bytes.len() < a.bytes.len(), "{p} compresses");
            assert_ne!(gz.etag, identity(i, a).etag);
        }
        assert!(lookup("/console/../Cargo.toml").is_none());
    }

    #[test]
    fn the_client_script_stays_small_and_the_sdk_is_apart() {
        let (_, client) = lookup("/js/c2c-client.js").unwrap();
        let (_, sdk) = lookup("/js/livekit-client.js").unwrap();
        // The SDK is loaded only when a call starts: the page-load script must not carry it.
        assert!(client.bytes.len() < 64 * 1024, "{}", client.bytes.len());
        assert!(sdk.bytes.len() > 200 * 1024);
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        assert!(accepts_gzip(Some("gzip, deflate, br")));
        assert!(accepts_gzip(Some("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("br, deflate")));
        assert!(!accepts_gzip(None));
    }
}
