//! The HTTP/1.1 server: accept loop, connection bound, fault injection, and the
//! front of LiveKit's middleware chain (body limit, API-key auth) before Twirp.
//! `/rtc*` (signalling) goes to [`crate::rtc`] with the request intact, so it can
//! take over the connection with a WebSocket upgrade.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::auth;
use crate::core::Core;
use crate::hooks::{self, HOOK_PREFIX};
use crate::rtc;
use crate::service::{self, TWIRP_PREFIX};
use crate::twirp::{code, text_response, HttpResponse, TwirpError};

/// Accepts connections until `shutdown` flips (or its sender is dropped).
pub(crate) async fn serve(
    listener: TcpListener,
    core: Arc<Core>,
    mut shutdown: watch::Receiver<bool>,
    max_connections: usize,
) {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Shutdown first: an accept that is also ready must not win the race.
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "livekit-sim: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                if core.faults.refuse() {
                    continue; // dropping the stream closes it
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    continue; // over the connection bound: refuse
                };
                let core = core.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    let mut refuse = core.faults.watch_refuse();
                    let svc_core = core.clone();
                    let svc = service_fn(move |req| {
                        let core = svc_core.clone();
                        async move { Ok::<_, Infallible>(dispatch(&core, req).await) }
                    });
                    // `with_upgrades`: `/rtc` hands the socket to a WebSocket session
                    // (which then lives outside this connection's permit).
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        // "LiveKit went away": cut pooled keep-alive connections too.
                        _ = refuse.wait_for(|on| *on) => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

async fn dispatch(core: &Arc<Core>, req: Request<Incoming>) -> HttpResponse {
    if rtc::is_rtc_path(req.uri().path()) {
        return rtc::handle(core, req).await;
    }
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();

    if path.starts_with(HOOK_PREFIX) {
        return match read_body(body, core.max_request_bytes).await {
            Ok(bytes) => hooks::handle(core, &parts.method, &path, bytes).await,
            Err(resp) => resp,
        };
    }
    if path == "/" && parts.method == Method::GET {
        return text_response(StatusCode::OK, "OK");
    }

    core.counters.request();
    let latency = core.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if core.faults.unavailable() {
        return TwirpError::new(
            code::UNAVAILABLE,
            "livekit-sim: unavailable (fault injection)",
        )
        .into_response();
    }
    let claims = match auth::authenticate(
        &parts.headers,
        parts.uri.query(),
        &core.api_key,
        &core.api_secret,
    ) {
        Ok(claims) => claims,
        Err(e) => return e.into_response(),
    };
    let body = match read_body(body, core.max_request_bytes).await {
        Ok(bytes) => bytes,
        Err(resp) => return resp,
    };
    if path.starts_with(&format!("{TWIRP_PREFIX}/")) {
        return service::handle(core, &parts.method, &path, &parts.headers, claims, body).await;
    }
    text_response(StatusCode::NOT_FOUND, "404 page not found")
}

/// Reads at most `limit` bytes; larger bodies get 413 as from LiveKit's limiter.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, HttpResponse> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(text_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )),
    }
}
