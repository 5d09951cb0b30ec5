//! Relays an upgraded signalling socket's bytes between the browser and LiveKit.
//!
//! Two plain TCP sockets (the usual case) are relayed with no buffer of their own while
//! idle: the task waits for either side to become readable, reads into a buffer that
//! belongs to the thread, and writes straight through. Only when the other side cannot
//! take the bytes at once are they copied into a buffer of the direction's own, held
//! until it drains, and that direction reads nothing more meanwhile (backpressure). So
//! an idle socket costs the task, its two registrations and nothing else, where a
//! copying relay holds two buffers per socket for its whole life (BENCHMARKS.md, issue
//! 26). A TLS side keeps Pingora's stream and goes through tokio's copy instead.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::detach::Detached;

/// The thread's read buffer: a LiveKit signalling message is a few hundred bytes to a
/// few KiB, and a larger one simply takes more than one read.
const SCRATCH: usize = 16 * 1024;
/// Reads in a row from one side before the task looks at the other one: a side that
/// streams must not starve its peer's direction.
const READS_PER_TURN: usize = 8;
/// After one side ended its half, how long the other has to end its own. WebSocket
/// peers close right after each other (close frame, then FIN); a peer that never does
/// must not hold the socket and its upstream open forever.
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Rounds over both directions in one poll of the relay before it yields.
const TURNS_PER_POLL: usize = 4;

thread_local! {
    static BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// How a relayed socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides ended their halves.
    Closed,
    /// One side ended its half and the other did not within the grace period.
    HalfOpen,
    /// A read or write failed (a reset, a broken pipe).
    Failed,
}

/// Relays until both directions are done or one fails.
pub async fn run(client: Detached, upstream: Detached) -> RelayEnd {
    match (client, upstream) {
        (Detached::Tcp(a), Detached::Tcp(b)) => plain(a, b).await,
        (mut a, mut b) => match tokio::io::copy_bidirectional(&mut a, &mut b).await {
            Ok(_) => RelayEnd::Closed,
            Err(e) => {
                tracing::debug!(error = %e, "signalling relay (TLS) ended");
                RelayEnd::Failed
            }
        },
    }
}

/// One direction of the relay: bytes read from one socket and not yet written to the
/// other, and whether its source has ended.
#[derive(Default)]
struct Direction {
    /// Bytes waiting for the destination to become writable, from `sent` on.
    pending: Option<(Box<[u8]>, usize)>,
    /// The source sent its FIN (and the destination's write half was shut).
    done: bool,
}

impl Direction {
    fn waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Reads what `from` has and writes it to `to`, until `from` has nothing more, `to`
    /// is full (the rest is kept in `pending`), or a turn's reads are used up.
    fn pump(&mut self, from: &TcpStream, to: &TcpStream) -> io::Result<()> {
        BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            for _ in 0..READS_PER_TURN {
                let (n, drained) = match read_once(from, &mut buf) {
                    Ok((0, _)) => {
                        self.done = true;
                        // Our FIN to the other side; it answers with its own.
                        return socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
                    }
                    Ok(read) => read,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                };
                let wrote = match to.try_write(&buf[..n]) {
                    Ok(w) => w,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                if wrote < n {
                    self.pending = Some((buf[wrote..n].into(), 0));
                    return Ok(());
                }
                if drained {
                    return Ok(());
                }
            }
            Ok(())
        })
    }

    /// Writes what is pending to `to`, as far as it takes it.
    fn flush(&mut self, to: &TcpStream) -> io::Result<()> {
        let Some((bytes, sent)) = &mut self.pending else {
            return Ok(());
        };
        while *sent < bytes.len() {
            match to.try_write(&bytes[*sent..]) {
                Ok(w) => *sent += w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.pending = None;
        Ok(())
    }
}

/// One read from `from`. Returns the bytes read and whether that emptied the socket: a
/// read shorter than the buffer took all there was, so the socket's readiness is
/// cleared then and there (nginx does the same in `ngx_unix_recv`) instead of by a
/// second read that would only say `EAGAIN`: one system call less per message. Bytes
/// that arrive after the read raise a new edge-triggered event, which tokio keeps
/// (readiness is cleared only for the event the read started from).
fn read_once(from: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    use std::io::Read;
    let mut n = 0;
    let read = from.try_io(tokio::io::Interest::READABLE, || {
        n = (&*socket2::SockRef::from(from)).read(buf)?;
        if n > 0 && n < buf.len() {
            // Not an error: the signal that clears the readiness (see above).
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match read {
        Ok(()) => Ok((n, false)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => Ok((n, true)),
        Err(e) => Err(e),
    }
}

/// The relay of two plain TCP sockets. Each direction either waits to read its source
/// or, with bytes pending, to write its destination; the two never wait on each other.
///
/// Polled by hand rather than through `select!` over `readable()`/`writable()`: those
/// futures join each socket's waiter list under its lock and leave it when dropped,
/// twice per message; `poll_read_ready`/`poll_write_ready` keep the task's waker in the
/// socket's own reader and writer slots, each used here by one direction only.
async fn plain(client: TcpStream, upstream: TcpStream) -> RelayEnd {
    let mut up = Direction::default(); // client -> upstream
    let mut down = Direction::default(); // upstream -> client
    let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        for _ in 0..TURNS_PER_POLL {
            if up.done && down.done {
                return Poll::Ready(RelayEnd::Closed);
            }
            if grace.is_none() && (up.done || down.done) {
                grace = Some(Box::pin(tokio::time::sleep(HALF_CLOSE_GRACE)));
            }
            let mut moved = false;
            for (dir, from, to) in [
                (&mut up, &client, &upstream),
                (&mut down, &upstream, &client),
            ] {
                let step = if dir.waiting() {
                    match to.poll_write_ready(cx) {
                        Poll::Ready(r) => r.and_then(|()| dir.flush(to)),
                        Poll::Pending => continue,
                    }
                } else if !dir.done {
                    match from.poll_read_ready(cx) {
                        Poll::Ready(r) => r.and_then(|()| dir.pump(from, to)),
                        Poll::Pending => continue,
                    }
                } else {
                    continue;
                };
                if let Err(e) = step {
                    tracing::debug!(error = %e, "signalling relay ended");
                    return Poll::Ready(RelayEnd::Failed);
                }
                moved = true;
            }
            if !moved {
                // Every open direction's waker is registered: wait.
                return match grace.as_mut().map(|g| g.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => Poll::Ready(RelayEnd::HalfOpen),
                    _ => Poll::Pending,
                };
            }
        }
        // Still busy: let the runtime's other sockets have their turn.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Two connected pairs: (client, relay's client side) and (relay's upstream side,
    /// upstream), the relay running between the middle two.
    async fn relayed() -> (TcpStream, TcpStream, tokio::task::JoinHandle<RelayEnd>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (relay_client, _) = l.accept().await.unwrap();
        let relay_up = TcpStream::connect(addr).await.unwrap();
        let (upstream, _) = l.accept().await.unwrap();
        let task = tokio::spawn(run(Detached::Tcp(relay_client), Detached::Tcp(relay_up)));
        (client, upstream, task)
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_and_a_close_ends_the_relay() {
        let (mut client, mut upstream, task) = relayed().await;
        client.write_all(b"hello upstream").await.unwrap();
        let mut got = [0u8; 14];
        upstream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello upstream");
        upstream.write_all(b"hello client").await.unwrap();
        let mut got = [0u8; 12];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello client");
        // The client's FIN reaches the upstream, whose own FIN reaches the client.
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        upstream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        upstream.shutdown().await.unwrap();
        client.read_to_end(&mut rest).await.unwrap();
        assert_eq!(task.await.unwrap(), RelayEnd::Closed);
    }

    /// Far more than the sockets' buffers hold, both ways at once, with the reading
    /// side slower than the writing one: the pending path, and neither direction
    /// waiting on the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_reader_gets_every_byte_in_order_both_ways() {
        let (client, upstream, task) = relayed().await;
        let payload: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let (cr, mut cw) = client.into_split();
        let (ur, mut uw) = upstream.into_split();
        let p = payload.clone();
        let write_up = tokio::spawn(async move {
            cw.write_all(&p).await.unwrap();
            cw.shutdown().await.unwrap();
        });
        let p = payload.clone();
        let write_down = tokio::spawn(async move {
            uw.write_all(&p).await.unwrap();
            uw.shutdown().await.unwrap();
        });
        let slow_read = |mut r: tokio::net::tcp::OwnedReadHalf| async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = r.read(&mut buf).await.unwrap();
                if n == 0 {
                    return got;
                }
                got.extend_from_slice(&buf[..n]);
                if got.len() % (1024 * 1024) < 4096 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let (at_up, at_client) = tokio::join!(slow_read(ur), slow_read(cr));
        write_up.await.unwrap();
        write_down.await.unwrap();
        assert!(at_up == payload, "client -> upstream corrupted");
        assert!(at_client == payload, "upstream -> client corrupted");
        assert_eq!(task.await.unwrap(), RelayEnd::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_side_that_never_closes_its_half_is_cut_after_the_grace() {
        let (mut client, mut upstream, task) = relayed().await;
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        upstream.read_to_end(&mut rest).await.unwrap();
        // The upstream keeps its half open.
        let end = tokio::time::timeout(HALF_CLOSE_GRACE * 2, task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(end, RelayEnd::HalfOpen);
        // Both sockets are closed with the relay.
        upstream.write_all(b"late").await.ok();
        let mut got = Vec::new();
        assert_eq!(client.read_to_end(&mut got).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_reset_ends_the_relay() {
        let (client, mut upstream, task) = relayed().await;
        // SO_LINGER 0: close sends a RST.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(end, RelayEnd::Failed);
        let mut rest = Vec::new();
        let _ = upstream.read_to_end(&mut rest).await;
    }
}
