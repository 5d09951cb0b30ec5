//! SIP over TCP: accepted and outbound connections, one bounded write queue each,
//! stream reassembly on read, idle timeout, and a bounded connection table. Messages
//! to a peer reuse its open connection (by id, then by address) before connecting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::edge::Inner;
use crate::flow::{ConnId, Flow};
use crate::framing::{next_frame, Frame, FrameError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Conn {
    tx: mpsc::Sender<Bytes>,
    peer: SocketAddr,
}

#[derive(Default)]
struct PoolState {
    conns: HashMap<ConnId, Conn>,
    by_addr: HashMap<SocketAddr, ConnId>,
    next: ConnId,
}

/// Open TCP connections of the edge.
pub struct TcpPool {
    state: Mutex<PoolState>,
    max: usize,
    queue: usize,
}

impl TcpPool {
    pub fn new(max: usize, queue: usize) -> Self {
        Self {
            state: Mutex::new(PoolState::default()),
            max,
            queue: queue.max(1),
        }
    }

    fn register(
        &self,
        peer: SocketAddr,
    ) -> Option<(ConnId, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)> {
        let mut st = self.state.lock();
        if st.conns.len() >= self.max {
            return None;
        }
        st.next += 1;
        let id = st.next;
        let (tx, rx) = mpsc::channel(self.queue);
        st.conns.insert(
            id,
            Conn {
                tx: tx.clone(),
                peer,
            },
        );
        st.by_addr.insert(peer, id);
        Some((id, tx, rx))
    }

    fn remove(&self, id: ConnId) {
        let mut st = self.state.lock();
        if let Some(c) = st.conns.remove(&id) {
            if st.by_addr.get(&c.peer) == Some(&id) {
                st.by_addr.remove(&c.peer);
            }
        }
    }

    /// Whether a message to `addr` can go out now: a connection to it is open, or there
    /// is room for one more.
    pub fn can_reach(&self, addr: SocketAddr) -> bool {
        let st = self.state.lock();
        st.by_addr.contains_key(&addr) || st.conns.len() < self.max
    }

    fn sender(&self, to: &Flow) -> Option<mpsc::Sender<Bytes>> {
        let st = self.state.lock();
        to.conn
            .and_then(|c| st.conns.get(&c))
            .or_else(|| st.by_addr.get(&to.addr).and_then(|c| st.conns.get(c)))
            .map(|c| c.tx.clone())
            .filter(|tx| !tx.is_closed())
    }
}

/// Queues `data` for `to`, connecting if no connection to it is open.
pub fn send(inner: &Arc<Inner>, to: Flow, data: Bytes) {
    if let Some(tx) = inner.tcp.sender(&to) {
        if tx.try_send(data).is_err() {
            inner.metrics.send_errors.with_label_values(&["tcp"]).inc();
        }
        return;
    }
    let Some((id, tx, rx)) = inner.tcp.register(to.addr) else {
        inner.metrics.send_errors.with_label_values(&["tcp"]).inc();
        return;
    };
    let _ = tx.try_send(data);
    let inner = inner.clone();
    tokio::spawn(async move {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to.addr)).await {
            Ok(Ok(stream)) => run(inner, id, to.addr, stream, rx).await,
            _ => {
                tracing::warn!(peer = %to.addr, "SIP TCP connect failed");
                inner.metrics.send_errors.with_label_values(&["tcp"]).inc();
                inner.tcp.remove(id);
            }
        }
    });
}

/// Accepts connections until shutdown.
pub async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut shutdown = inner.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "SIP TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match inner.tcp.register(peer) {
            Some((id, _tx, rx)) => {
                tokio::spawn(run(inner.clone(), id, peer, stream, rx));
            }
            None => {
                tracing::warn!("SIP TCP connection limit reached; connection refused");
                drop(stream);
            }
        }
    }
}

async fn run(
    inner: Arc<Inner>,
    id: ConnId,
    peer: SocketAddr,
    stream: TcpStream,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut shutdown = inner.shutdown.clone();
    let mut buf = BytesMut::with_capacity(8192);
    let idle = inner.cfg.tcp_idle_timeout;
    'conn: loop {
        let read = tokio::select! {
            r = tokio::time::timeout(idle, rd.read_buf(&mut buf)) => r,
            _ = shutdown.changed() => break,
        };
        match read {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
        loop {
            match next_frame(&mut buf) {
                Ok(Some(Frame::Ping)) => send(
                    &inner,
                    Flow::tcp(peer, Some(id)),
                    Bytes::from_static(b"\r\n"),
                ),
                Ok(Some(Frame::Message(m))) => inner.on_bytes(Flow::tcp(peer, Some(id)), m).await,
                Ok(None) => break,
                Err(FrameError::BadLength(head)) => {
                    inner.on_bytes(Flow::tcp(peer, Some(id)), head).await;
                    break 'conn;
                }
                Err(FrameError::TooLarge) => {
                    inner
                        .metrics
                        .malformed
                        .with_label_values(&["dropped"])
                        .inc();
                    break 'conn;
                }
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
    }
    inner.tcp.remove(id);
    // The writer drains what is queued, then ends when the last sender is gone.
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}
