//! Receive paths: the UDP socket loop, the TCP accept loop and one task per TCP
//! connection (reader with Content-Length framing + writer from a queue).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use super::message::{frame, Frame, Message, MAX_MESSAGE_BYTES};
use super::Ua;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // Err: the simulator is gone, which also means stop.
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Reads datagrams until shutdown; unparseable ones are dropped.
pub(super) async fn udp_loop(ua: Arc<Ua>, socket: Arc<UdpSocket>) {
    let mut shutdown = ua.shutdown_signal();
    // One byte more than accepted, so an oversized datagram is seen as such.
    let mut buf = vec![0u8; MAX_MESSAGE_BYTES + 1];
    loop {
        let (n, peer) = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(got) => got,
                Err(e) => {
                    // e.g. ICMP port unreachable surfacing on some platforms.
                    tracing::debug!(error = %e, "livekit-sim sip: recv failed");
                    continue;
                }
            },
        };
        let data = &buf[..n];
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            continue; // keep-alive
        }
        match Message::parse(data) {
            Ok(msg) => ua.dispatch(msg, peer),
            Err(e) => tracing::debug!(%peer, error = %e, "livekit-sim sip: dropped datagram"),
        }
    }
}

/// Accepts connections from peers (a proxy may open its own towards our Via/Contact).
pub(super) async fn tcp_accept(ua: Arc<Ua>, listener: TcpListener) {
    let mut shutdown = ua.shutdown_signal();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            r = listener.accept() => match r {
                Ok(got) => got,
                Err(e) => {
                    tracing::debug!(error = %e, "livekit-sim sip: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Some((id, rx)) = ua.tcp_register_accepted(peer) else {
            continue; // over the bound: dropping closes it
        };
        tokio::spawn(tcp_conn(
            Arc::downgrade(&ua),
            peer,
            id,
            Some(stream),
            rx,
            ua.shutdown_signal(),
        ));
    }
}

/// One TCP connection: connects first when `stream` is `None`. Ends on EOF,
/// error, unframeable input or shutdown, and removes itself from the pool.
pub(super) async fn tcp_conn(
    ua: Weak<Ua>,
    peer: SocketAddr,
    id: u64,
    stream: Option<TcpStream>,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stream = match stream {
        Some(s) => Some(s),
        None => tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer))
            .await
            .ok()
            .and_then(Result::ok),
    };
    if let Some(stream) = stream {
        serve_conn(&ua, peer, stream, &mut outgoing, &mut shutdown).await;
    } else {
        tracing::debug!(%peer, "livekit-sim sip: TCP connect failed");
    }
    if let Some(ua) = ua.upgrade() {
        ua.tcp_unregister(peer, id);
    }
}

async fn serve_conn(
    ua: &Weak<Ua>,
    peer: SocketAddr,
    stream: TcpStream,
    outgoing: &mut mpsc::Receiver<Vec<u8>>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    loop {
        tokio::select! {
            _ = stopped(shutdown) => return,
            out = outgoing.recv() => {
                let Some(bytes) = out else { return };
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            r = rd.read(&mut chunk) => {
                let n = match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match frame(&buf) {
                        Frame::Incomplete => break,
                        Frame::Invalid => return,
                        Frame::Keepalive(k) => {
                            buf.drain(..k);
                        }
                        Frame::Message(len) => {
                            let parsed = Message::parse(&buf[..len]);
                            buf.drain(..len);
                            let Some(ua) = ua.upgrade() else { return };
                            match parsed {
                                Ok(msg) => ua.dispatch(msg, peer),
                                Err(e) => tracing::debug!(%peer, error = %e, "livekit-sim sip: dropped message"),
                            }
                        }
                    }
                }
            }
        }
    }
}
