//! Guard for the vendored pingora-core/pingora-proxy patch that sends a small proxied
//! request to the upstream in one write (`plugins/vendor/README.md`, "header and body in
//! one write"), and for the HTTP semantics it must not break.
//!
//! Unpatched, Pingora 0.9.1 writes an upstream request's header and flushes it, then
//! writes the body: two sends, two segments, two wake-ups of the upstream for every
//! Twirp call the LiveKit edge forwards. With the patch the header waits for the first
//! body bytes when the downstream half already has them, and both go out in one `writev`.
//! The upstream here counts the data segments each request arrived in (the kernel's
//! `tcpi_data_segs_in`), so the guard does not depend on timing: one segment with the
//! patch, two without it.
//!
//! The rest pins what the deferral must leave alone: a client that waits for
//! `100 Continue` gets it (its header is not held for a body it has not sent), a body that
//! arrives later still follows its header, chunked bodies and pipelined requests pass
//! through intact.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use async_trait::async_trait;
use pingora::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(10);

/// Data segments the kernel has received on this socket so far.
fn data_segments_in(conn: &TcpStream) -> u32 {
    // SAFETY: `info` is a plain C struct the kernel fills in, `len` is its size, and the
    // descriptor is a live TCP socket owned by `conn` for the duration of the call.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            conn.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        assert_eq!(rc, 0, "getsockopt(TCP_INFO)");
        info.tcpi_data_segs_in
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `got`; false on EOF.
async fn read_more(conn: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(T, conn.read(&mut buf))
        .await
        .expect("read timed out")
    {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            got.extend_from_slice(&buf[..n]);
            true
        }
    }
}

/// An HTTP/1.1 upstream that answers every request with `segments=<n> body=<body>`: how
/// many data segments the request (head and body) arrived in, and the body it decoded
/// (Content-Length or chunked). It answers `Expect: 100-continue` with a `100` first.
async fn segment_counting_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                // A new connection has received no data yet (the handshake carries none);
                // the proxy sends the next request only after reading this one's answer,
                // so what arrives in between is exactly this request.
                let mut counted = 0;
                loop {
                    let head_end = loop {
                        if let Some(i) = find(&got, b"\r\n\r\n") {
                            break i + 4;
                        }
                        if !read_more(&mut conn, &mut got).await {
                            return;
                        }
                    };
                    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
                    got.drain(..head_end);
                    if head.contains("expect: 100-continue") {
                        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                            .await
                            .unwrap();
                    }
                    let body = if head.contains("transfer-encoding: chunked") {
                        let mut body = Vec::new();
                        loop {
                            let line_end = loop {
                                if let Some(i) = find(&got, b"\r\n") {
                                    break i;
                                }
                                if !read_more(&mut conn, &mut got).await {
                                    return;
                                }
                            };
                            let size = usize::from_str_radix(
                                std::str::from_utf8(&got[..line_end]).unwrap().trim(),
                                16,
                            )
                            .unwrap();
                            while got.len() < line_end + 2 + size + 2 {
                                if !read_more(&mut conn, &mut got).await {
                                    return;
                                }
                            }
                            body.extend_from_slice(&got[line_end + 2..line_end + 2 + size]);
                            got.drain(..line_end + 2 + size + 2);
                            if size == 0 {
                                break body;
                            }
                        }
                    } else {
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        while got.len() < len {
                            if !read_more(&mut conn, &mut got).await {
                                return;
                            }
                        }
                        got.drain(..len).collect()
                    };
                    let now = data_segments_in(&conn);
                    let segments = now - std::mem::replace(&mut counted, now);
                    let answer = format!(
                        "segments={segments} body={}",
                        String::from_utf8_lossy(&body)
                    );
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if conn.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

struct PassThrough {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// Pingora's HTTP proxy (the vendored, patched one) in front of the counting upstream.
async fn proxy() -> std::net::SocketAddr {
    let upstream = segment_counting_upstream().await;
    common::pingora_proxy::serve(PassThrough { upstream }).await
}

/// Reads one response with a Content-Length body; returns (head, body). Skips nothing:
/// an interim `100` is returned as a head with an empty body.
async fn read_response(conn: &mut TcpStream, got: &mut Vec<u8>) -> (String, String) {
    let head_end = loop {
        if let Some(i) = find(got, b"\r\n\r\n") {
            break i + 4;
        }
        assert!(read_more(conn, got).await, "EOF before a response head");
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    got.drain(..head_end);
    let len = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .map_or(0, |v| v.parse::<usize>().unwrap());
    while got.len() < len {
        assert!(read_more(conn, got).await, "EOF inside a response body");
    }
    let body = String::from_utf8_lossy(&got[..len]).to_string();
    got.drain(..len);
    (head, body)
}

fn post(body: &str) -> String {
    format!(
        "POST /twirp/livekit.RoomService/ListRooms HTTP/1.1\r\nHost: livekit.test\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn a_small_request_reaches_the_upstream_in_one_segment() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let mut got = Vec::new();
    // The first request opens the upstream connection, the others reuse it: both paths.
    for i in 0..5 {
        let body = format!("{{\"n\":{i}}}");
        client.write_all(post(&body).as_bytes()).await.unwrap();
        let (head, answer) = read_response(&mut client, &mut got).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            answer,
            format!("segments=1 body={body}"),
            "request {i}: the header and the body went to the upstream in separate writes"
        );
    }
}

#[tokio::test]
async fn a_client_waiting_for_100_continue_gets_it() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    client
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: livekit.test\r\nContent-Length: 5\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    // A held header would never reach the upstream, which would never say 100: this
    // read would time out.
    let mut got = Vec::new();
    let (interim, _) = read_response(&mut client, &mut got).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    client.write_all(b"hello").await.unwrap();
    let (head, answer) = read_response(&mut client, &mut got).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(answer.ends_with("body=hello"), "{answer}");
}

#[tokio::test]
async fn a_body_sent_after_its_header_still_follows_it() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let request = post("{\"late\":true}");
    let (head, body) = request.split_at(request.find("\r\n\r\n").unwrap() + 4);
    client.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.write_all(body.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let (head, answer) = read_response(&mut client, &mut got).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The header went ahead on its own (the body was not there yet), as unpatched Pingora
    // sends it: two segments.
    assert_eq!(answer, "segments=2 body={\"late\":true}");
}

#[tokio::test]
async fn a_chunked_body_passes_through_intact() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let mut got = Vec::new();
    // Twice on one connection: the first opens the upstream connection, the second
    // reuses it (a chunked body left half-written would break the second).
    for _ in 0..2 {
        client
            .write_all(
                b"POST /chunked HTTP/1.1\r\nHost: livekit.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        let (head, answer) = read_response(&mut client, &mut got).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(answer.ends_with(" body=hello world"), "{answer}");
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_or_left_for_a_retry() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    let requests: String = (1..=3)
        .map(|i| post(&format!("{{\"pipelined\":{i}}}")))
        .collect();
    client.write_all(requests.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    assert!(read_more(&mut client, &mut got).await, "no answer at all");
    // Pingora 0.9 answers the first request and then closes a connection that carried
    // more (RFC 9112 9.3.2: the client retries what was not answered). Whatever is
    // answered must be the right request's answer, in order, whole.
    let mut answered = 0;
    loop {
        if got.is_empty() && !read_more(&mut client, &mut got).await {
            break;
        }
        let (head, answer) = read_response(&mut client, &mut got).await;
        answered += 1;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            answer.ends_with(&format!(" body={{\"pipelined\":{answered}}}")),
            "{answer}"
        );
    }
    assert!(answered >= 1);
}
