//! The transport of a presence socket once it left Pingora.

use pingora::protocols::Stream;

/// A presence socket's transport once out of Pingora: the plain TCP socket itself, or,
/// for TLS, Pingora's stream (the TLS state lives in it).
pub enum PresenceIo {
    Tcp(tokio::net::TcpStream),
    Pingora(Stream),
}

/// Takes the plain TCP socket out of Pingora's stream, which carries a 64 KiB read and
/// a 1.4 KiB write buffer per connection: about half of an idle presence socket's
/// memory (BENCHMARKS.md, issue 20). The descriptor is duplicated, then Pingora's stream
/// is dropped (it deregisters and closes its own descriptor; the socket stays open).
/// Nothing is lost: Pingora's read buffer is empty, a browser sends nothing before the
/// `101` (RFC 6455 §4.1). A TLS stream, or one that cannot be duplicated, is kept.
pub fn detach(stream: Stream) -> PresenceIo {
    use std::os::fd::BorrowedFd;
    let plain = stream.get_ssl_digest().is_none()
        && stream
            .as_any()
            .is::<pingora::protocols::l4::stream::Stream>();
    if !plain {
        return PresenceIo::Pingora(stream);
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
            PresenceIo::Tcp(tcp)
        }
        Err(e) => {
            tracing::debug!(error = %e, "presence socket kept on Pingora's stream");
            PresenceIo::Pingora(stream)
        }
    }
}

impl tokio::io::AsyncRead for PresenceIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            PresenceIo::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            PresenceIo::Pingora(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for PresenceIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PresenceIo::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            PresenceIo::Pingora(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            PresenceIo::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            PresenceIo::Pingora(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            PresenceIo::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            PresenceIo::Pingora(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}
