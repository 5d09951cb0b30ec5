//! The transport of a WebSocket once it left Pingora: presence sockets
//! (crate::agents::socket) and relayed LiveKit signalling sockets (crate::rtc).

use pingora::protocols::Stream;

/// A socket's transport once out of Pingora: the plain TCP socket itself, or, for TLS,
/// Pingora's stream (the TLS state lives in it).
pub enum Detached {
    Tcp(tokio::net::TcpStream),
    Pingora(Stream),
}

/// Whether a request's headers ask for a WebSocket upgrade (`Upgrade: websocket` and
/// `Connection: upgrade`, each a token in a comma-separated list, any case).
pub fn asks_websocket_upgrade(h: &http::HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(http::header::UPGRADE, "websocket") && has(http::header::CONNECTION, "upgrade")
}

/// Takes the plain TCP socket out of Pingora's stream, which carries a 64 KiB read and
/// a 1.4 KiB write buffer per connection: about half of an idle presence socket's
/// memory (BENCHMARKS.md, issues 20 and 26). The descriptor is duplicated, then Pingora's stream
/// is dropped (it deregisters and closes its own descriptor; the socket stays open).
/// Nothing is lost: Pingora's read buffer is empty, a browser sends nothing before the
/// `101` (RFC 6455 §4.1). A TLS stream, or one that cannot be duplicated, is kept.
pub fn detach(stream: Stream) -> Detached {
    use std::os::fd::BorrowedFd;
    let plain = stream.get_ssl_digest().is_none()
        && stream
            .as_any()
            .is::<pingora::protocols::l4::stream::Stream>();
    if !plain {
        return Detached::Pingora(stream);
    }
    // SAFETY: `id()` of Pingora's L4 stream is its socket's descriptor, open for as long
    // as `stream` lives, which is past the duplication below.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.id()) };
    let tcp = fd
        .try_clone_to_owned()
        .map(std::net::TcpStream::from)
        .and_then(|s| {
            s.set_nonblocking(true)?;
            tokio::net::TcpStream::from_std(s)
        });
    match tcp {
        Ok(tcp) => {
            drop(stream);
            Detached::Tcp(tcp)
        }
        Err(e) => {
            tracing::debug!(error = %e, "socket kept on Pingora's stream");
            Detached::Pingora(stream)
        }
    }
}

impl tokio::io::AsyncRead for Detached {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Detached::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Detached::Pingora(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Detached {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Detached::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Detached::Pingora(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Detached::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            Detached::Pingora(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Detached::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Detached::Pingora(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}
