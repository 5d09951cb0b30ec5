//! `[server]` and `[server.tls]`: the HTTP listeners, the public URL, threads and the
//! shutdown grace period.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::Errs;
use crate::file::{ServerSection, TlsSection};
use crate::policy::TlsListener;

/// `[server]` without its TLS listener (see [`tls`]).
pub(super) struct Server {
    pub listen: SocketAddr,
    pub public_url: String,
    pub threads: usize,
    pub grace_period: Duration,
}

pub(super) fn validate(s: &ServerSection, e: &mut Errs<'_>) -> Server {
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
    Server {
        listen,
        public_url,
        threads,
        grace_period: Duration::from_secs(grace),
    }
}

/// `[server.tls]`: certificate and key paths are relative to the policy directory.
pub(super) fn tls(t: Option<&TlsSection>, dir: &Path, e: &mut Errs<'_>) -> Option<TlsListener> {
    let t = t?;
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
}
