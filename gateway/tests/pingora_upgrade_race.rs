//! Guard for the vendored pingora-proxy patch (`plugins/vendor/pingora-proxy`, upstream
//! issue cloudflare/pingora#946): an HTTP/1 upgrade must stay open when the upstream's
//! `101` is read before the proxy has forwarded the end of the upgrade request's own
//! (empty) body.
//!
//! Unpatched, Pingora 0.9.1 takes that late end-of-body for the end of the tunnel: the
//! client gets the `101`, maybe the first upstream bytes, then EOF. The LiveKit edge
//! (`/rtc` signalling WebSockets) hit this when a retry or a busy core let the upstream
//! answer first: an agent's browser saw its signalling socket drop right after joining.
//!
//! Here the ordering is forced, not hoped for: the test proxy's `request_body_filter`
//! holds the request's body end for 150 ms, so the instant `101` is always read first.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::raw::{contains, read_until};

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(10);
const HOLD_BODY_END: Duration = Duration::from_millis(150);
const GREETING: &[u8] = b"hello-from-upstream";

/// Answers any request with an immediate `101` plus a greeting, then echoes bytes.
async fn instant_upgrade_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let head = read_until(&mut conn, T, |h| contains(h, b"\r\n\r\n")).await;
                if !contains(&head, b"\r\n\r\n") {
                    return;
                }
                let mut hello = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\n\r\n"
                    .to_vec();
                hello.extend_from_slice(GREETING);
                if conn.write_all(&hello).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

struct SlowBodyEndProxy {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for SlowBodyEndProxy {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        _ctx: &mut (),
    ) -> Result<()> {
        // The end of the upgrade request's own body, before the 101 reaches downstream.
        if end_of_stream && !session.was_upgraded() {
            tokio::time::sleep(HOLD_BODY_END).await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_survives_a_101_read_before_the_request_body_end() {
    let upstream = instant_upgrade_upstream().await;
    let proxy_addr = common::pingora_proxy::serve(SlowBodyEndProxy { upstream }).await;

    let mut client = TcpStream::connect(proxy_addr).await.unwrap();
    client
        .write_all(
            b"GET /rtc HTTP/1.1\r\nHost: livekit.test\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\n\r\n",
        )
        .await
        .unwrap();
    // Until the greeting is in: the 101 and the first upstream bytes may come apart.
    let head_and_rest = read_until(&mut client, T, |got| contains(got, GREETING)).await;
    assert!(
        contains(&head_and_rest, GREETING),
        "EOF before the greeting: {:?}",
        String::from_utf8_lossy(&head_and_rest)
    );
    assert!(
        head_and_rest.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&head_and_rest)
    );

    // Let the held body end reach the upstream half, then use the tunnel both ways.
    tokio::time::sleep(HOLD_BODY_END * 2).await;
    client.write_all(b"ping through the tunnel").await.unwrap();
    let echo = read_until(&mut client, T, |got| {
        got.len() >= b"ping through the tunnel".len()
    })
    .await;
    assert_eq!(
        String::from_utf8_lossy(&echo),
        "ping through the tunnel",
        "the tunnel closed once the request's body end arrived after the 101"
    );
}
