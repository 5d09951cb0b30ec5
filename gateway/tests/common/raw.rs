//! Raw HTTP/1.1 over a TCP socket, for requests no HTTP client library will send
//! (broken chunked framing, short bodies, control bytes, duplicate credentials on an
//! `Upgrade`), and a look at the gateway's log for what it said about them.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// What came back on the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Status line and headers, as sent.
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `bytes` to 127.0.0.1:`port`; with `half_close` shuts the write side down
/// afterwards (the client says "that is all I will send"). Returns the first response, or
/// `None` if the connection closed (or went quiet for 5 s) without one.
pub fn send(port: u16, bytes: &[u8], half_close: bool) -> Option<RawResponse> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    s.write_all(bytes).expect("write the request");
    if half_close {
        s.shutdown(Shutdown::Write).ok();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if complete(&buf) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    parse(&buf)
}

/// A full response: the head and as many body bytes as its Content-Length says.
fn complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|n| buf.len() >= end + 4 + n)
}

fn parse(buf: &[u8]) -> Option<RawResponse> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = String::from_utf8_lossy(&buf[end + 4..]).into_owned();
    Some(RawResponse { status, head, body })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Log lines that would page someone or fill an error dashboard: every ERROR, and the
/// WARNs of the proxy layer (Pingora's and ours). The harness logs at debug, so these
/// words only appear as levels (ANSI-coloured or not).
pub fn loud_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("ERROR")
                || (l.contains("WARN")
                    && (l.contains("pingora_proxy")
                        || l.contains("pingora_core")
                        || l.contains("c2c_gateway::proxy")))
        })
        .collect()
}

/// Reads from an async socket until `done` holds for everything read so far, or EOF;
/// panics after `within`.
pub async fn read_until<S: tokio::io::AsyncRead + Unpin>(
    conn: &mut S,
    within: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !done(&got) {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    };
    tokio::time::timeout(within, read)
        .await
        .expect("read timed out")
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
