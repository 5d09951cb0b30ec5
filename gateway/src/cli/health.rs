//! `c2c-gateway health`: one HTTP GET against a running gateway's health endpoint, exit
//! 0 on a 2xx answer and 1 otherwise. It is the container image's `HEALTHCHECK`: the
//! slim runtime image has no curl, and the binary is already there.
//!
//! Must not: follow redirects, speak TLS or read more than a status line's worth; it
//! probes the plain listener on the same host.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::Args;

use super::common::{CliResult, Failure};

/// Arguments of `health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Endpoint to probe (`/livez`: the process serves HTTP; `/readyz`: it also takes
    /// traffic). Plain `http://` only.
    #[arg(
        long,
        env = "C2C_HEALTH_URL",
        default_value = "http://127.0.0.1:8080/livez"
    )]
    pub url: String,
    /// Give up after this many milliseconds (connect plus answer).
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// Runs the probe; prints the status line on success, one sentence on failure.
pub fn run(args: HealthArgs) -> CliResult {
    let status = probe(&args.url, Duration::from_millis(args.timeout_ms.max(1)))?;
    if (200..300).contains(&status) {
        println!("{} {status}", args.url);
        Ok(())
    } else {
        Err(Failure::failed(format!("{} answered {status}", args.url)))
    }
}

/// The HTTP status `url` answers a GET with.
fn probe(url: &str, timeout: Duration) -> Result<u16, Failure> {
    let parsed = url::Url::parse(url).map_err(|e| Failure::Usage(format!("--url {url:?}: {e}")))?;
    if parsed.scheme() != "http" {
        return Err(Failure::Usage(format!(
            "--url {url:?}: only http:// is supported (probe the plain listener)"
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| Failure::Usage(format!("--url {url:?} has no host")))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr: SocketAddr = (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Failure::failed(format!("cannot resolve {host}")))?;
    let unreachable = |e: std::io::Error| Failure::failed(format!("{url}: {e}"));
    let mut sock = TcpStream::connect_timeout(&addr, timeout).map_err(unreachable)?;
    sock.set_read_timeout(Some(timeout)).map_err(unreachable)?;
    sock.set_write_timeout(Some(timeout)).map_err(unreachable)?;
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: c2c-gateway-health\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(request.as_bytes()).map_err(unreachable)?;
    // The status line is all we need; 256 bytes hold it with room to spare.
    let mut buf = [0u8; 256];
    let mut got = 0;
    while got < buf.len() && !buf[..got].contains(&b'\n') {
        match sock.read(&mut buf[got..]).map_err(unreachable)? {
            0 => break,
            n => got += n,
        }
    }
    parse_status(&buf[..got]).ok_or_else(|| Failure::failed(format!("{url}: not an HTTP answer")))
}

/// `HTTP/1.1 200 OK` -> 200.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\nx: y"), Some(200));
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn refuses_https_and_garbage_urls() {
        let t = Duration::from_millis(100);
        assert!(matches!(
            probe("https://127.0.0.1:1/livez", t),
            Err(Failure::Usage(_))
        ));
        assert!(matches!(probe("not a url", t), Err(Failure::Usage(_))));
    }
}
