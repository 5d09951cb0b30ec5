//! Starting and running the edge on the caller's tokio runtime: sockets, the I/O loops,
//! the timer loop, and the glue that decodes outside the core lock and carries out the
//! core's actions after releasing it (also for the inbound control API,
//! `inbound.rs`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus::Registry;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::carriers::CarrierIps;
use crate::config::SipConfig;
use crate::error::SipError;
use crate::flow::{Flow, Transport};
use crate::inbound::InboundControl;
use crate::limits::FloodGuard;
use crate::media::relays::Relays;
use crate::message::{decode, Decoded};
use crate::metrics::SipMetrics;
use crate::normalize::MAX_MESSAGE;
use crate::observer::SipObserver;
use crate::parse::Host;
use crate::proxy::{Action, Local, Proxy};
use crate::resolver::Resolver;
use crate::sockets::SipSockets;
use crate::sources::{OutboundGate, PolicySource};
use crate::tcp::{self, TcpPool};
use crate::udp_drops;

/// Dead-air notices from the relays waiting for the core; a notice that finds it full
/// is dropped (logged), and its dialog keeps its ordinary expiry.
const DEAD_AIR_QUEUE: usize = 1024;

/// Shared state of a running edge.
pub(crate) struct Inner {
    pub cfg: Arc<SipConfig>,
    pub carriers: Arc<CarrierIps>,
    pub resolver: Arc<Resolver>,
    pub core: Mutex<Proxy>,
    pub flood: Mutex<FloodGuard>,
    pub metrics: SipMetrics,
    pub observer: Arc<dyn SipObserver>,
    /// Anchored calls' relays.
    pub relays: Relays,
    pub udp: UdpSocket,
    pub tcp: TcpPool,
    pub wake: Notify,
    /// The deadline the timer task sleeps until. Written by the timer task and read by
    /// the message path only while `core` is locked, so a message that sets an earlier
    /// deadline either is seen by the timer's next computation or sees the new value and
    /// wakes it (see [`Inner::with_core`]).
    timer_at: Mutex<Instant>,
    pub shutdown: watch::Receiver<bool>,
}

impl Inner {
    /// One message's bytes from `from`: flood check, decode, core, actions.
    pub async fn on_bytes(self: &Arc<Self>, from: Flow, data: Bytes) {
        let now = Instant::now();
        let ip = from.addr.ip();
        let trusted = self.cfg.allowed_region(ip).is_some() || self.carriers.contains(ip);
        if !self.flood.lock().allow(ip, trusted, now) {
            self.metrics.flood_dropped.inc();
            return;
        }
        let (actions, timers_sooner) = match decode(data) {
            Decoded::Keepalive => return,
            Decoded::Drop(why) => {
                self.metrics.malformed.with_label_values(&["dropped"]).inc();
                tracing::debug!(source = %ip, why, "SIP message dropped");
                return;
            }
            Decoded::Msg(m) => self.with_core(|core| core.handle(now, from, &m)),
            Decoded::Reject(n, e) => {
                tracing::debug!(source = %ip, error = %e, "SIP request rejected");
                self.with_core(|core| core.reject(from, &n, &e))
            }
        };
        self.execute(actions).await;
        if timers_sooner {
            self.wake.notify_one();
        }
    }

    /// Runs `f` on the core; also says whether it left a deadline before the one the
    /// timer task sleeps until. Most messages do not (a retransmission timer is 500 ms
    /// out, and the task usually waits for an earlier one): waking the task for every
    /// datagram cost a second task wake-up and lock of the core per message.
    fn with_core(&self, f: impl FnOnce(&mut Proxy) -> Vec<Action>) -> (Vec<Action>, bool) {
        let mut core = self.core.lock();
        let actions = f(&mut core);
        let sooner = core
            .next_deadline()
            .is_some_and(|next| next < *self.timer_at.lock());
        (actions, sooner)
    }

    pub async fn execute(self: &Arc<Self>, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, data } => self.send(to, data).await,
                Action::Observe(o) => o.deliver(self.observer.as_ref()),
                Action::Media(op) => self.relays.apply(op, &self.observer, &self.shutdown),
            }
        }
    }

    async fn send(self: &Arc<Self>, to: Flow, data: Bytes) {
        match to.transport {
            Transport::Udp => {
                if let Err(e) = self.udp.send_to(&data, to.addr).await {
                    tracing::debug!(peer = %to.addr, error = %e, "SIP UDP send failed");
                    self.metrics.send_errors.with_label_values(&["udp"]).inc();
                }
            }
            Transport::Tcp => tcp::send(self, to, data),
        }
    }
}

/// The SIP edge. See [`SipEdge::start`].
pub struct SipEdge;

/// A running edge: its bound addresses, its tasks, and its shared state (for
/// [`Self::inbound`]).
pub struct SipEdgeHandle {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    inner: Arc<Inner>,
}

impl SipEdgeHandle {
    /// The control of held inbound calls (forward to LiveKit SIP, or reject). Take it
    /// before awaiting [`Self::stopped`]; it stays usable while the edge runs (after
    /// shutdown it answers `NotHeld`).
    pub fn inbound(&self) -> InboundControl {
        InboundControl {
            inner: self.inner.clone(),
        }
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Waits until every task has stopped (after the shutdown signal).
    pub async fn stopped(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

impl SipEdge {
    /// Binds UDP and TCP on `config.listen` (same port), spawns the edge's tasks on the
    /// current tokio runtime and returns at once. Everything stops when `shutdown`
    /// becomes `true` (or its sender is dropped).
    pub async fn start(
        config: SipConfig,
        policy: Arc<dyn PolicySource>,
        dlt: Arc<dyn OutboundGate>,
        observer: Arc<dyn SipObserver>,
        registry: &Registry,
        shutdown: watch::Receiver<bool>,
    ) -> Result<SipEdgeHandle, SipError> {
        config.advertised_ip()?;
        let sockets = SipSockets::bind(config.listen)?;
        Self::start_on(sockets, config, policy, dlt, observer, registry, shutdown).await
    }

    /// [`Self::start`] on sockets bound earlier with [`SipSockets::bind`] (a process
    /// binds them while it starts, so a taken port stops it there).
    pub async fn start_on(
        sockets: SipSockets,
        config: SipConfig,
        policy: Arc<dyn PolicySource>,
        dlt: Arc<dyn OutboundGate>,
        observer: Arc<dyn SipObserver>,
        registry: &Registry,
        shutdown: watch::Receiver<bool>,
    ) -> Result<SipEdgeHandle, SipError> {
        let advertise: IpAddr = config.advertised_ip()?;
        let adopt = |transport, source| SipError::Bind {
            transport,
            addr: config.listen,
            source,
        };
        let udp = UdpSocket::from_std(sockets.udp).map_err(|e| adopt("udp", e))?;
        let listener = TcpListener::from_std(sockets.tcp).map_err(|e| adopt("tcp", e))?;
        size_udp_buffers(&udp, config.udp_socket_buffer);
        let metrics = SipMetrics::register(registry)?;
        let udp_addr = udp.local_addr().map_err(|source| SipError::Bind {
            transport: "udp",
            addr: config.listen,
            source,
        })?;
        let tcp_addr = listener.local_addr().map_err(|source| SipError::Bind {
            transport: "tcp",
            addr: config.listen,
            source,
        })?;
        let cfg = Arc::new(config);
        let (resolver, resolver_rx) = Resolver::new();
        let me = Local {
            host: Host::Ip(advertise),
            port: udp_addr.port(),
        };
        let carriers = Arc::new(CarrierIps::new(policy.clone(), resolver.clone()));
        let core = Proxy::new(
            cfg.clone(),
            me,
            policy,
            dlt,
            metrics.clone(),
            resolver.clone(),
            carriers.clone(),
        )?;
        let (dead_air_tx, dead_air) = tokio::sync::mpsc::channel(DEAD_AIR_QUEUE);
        let engine = c2c_media::MediaEngine::new(cfg.media.io, cfg.media.batch)
            .map_err(|e| SipError::Config(format!("[sip.media] io = \"io_uring\": {e}")))?;
        match engine.fallback() {
            Some(why) => tracing::warn!(reason = why, "anchored media relays run on the runtime"),
            None => tracing::info!(engine = engine.name(), "anchored media relays"),
        }
        let relays = Relays::new(
            cfg.media.relay,
            engine,
            core.media_pool(),
            metrics.media.clone(),
            dead_air_tx,
        );
        let inner = Arc::new(Inner {
            relays,
            carriers,
            resolver: resolver.clone(),
            flood: Mutex::new(FloodGuard::new(cfg.flood)),
            tcp: TcpPool::new(cfg.max_tcp_connections, cfg.tcp_write_queue),
            cfg,
            core: Mutex::new(core),
            metrics,
            observer,
            udp,
            wake: Notify::new(),
            timer_at: Mutex::new(Instant::now()),
            shutdown: shutdown.clone(),
        });
        let drops = udp_drops::watch_drops(
            udp_drops::socket_inode(&inner.udp),
            inner.metrics.udp_receive_drops.clone(),
            shutdown.clone(),
        );
        let tasks = vec![
            tokio::spawn(udp_loop(inner.clone())),
            tokio::spawn(drops),
            tokio::spawn(tcp::accept_loop(inner.clone(), listener)),
            tokio::spawn(timer_loop(inner.clone(), dead_air)),
            tokio::spawn(resolver.run(resolver_rx, shutdown)),
        ];
        tracing::info!(udp = %udp_addr, tcp = %tcp_addr, "SIP edge listening");
        Ok(SipEdgeHandle {
            udp_addr,
            tcp_addr,
            tasks,
            inner,
        })
    }
}

/// Asks for `want` bytes of kernel buffer each way on the UDP socket. A refusal or a
/// smaller grant is not fatal (the edge works, it just drops datagrams sooner under
/// bursts), so it is logged rather than failing the start.
fn size_udp_buffers(udp: &UdpSocket, want: usize) {
    let sock = socket2::SockRef::from(udp);
    let set = sock
        .set_recv_buffer_size(want)
        .and_then(|()| sock.set_send_buffer_size(want));
    // Linux reports twice the granted size (it counts its own bookkeeping).
    let got = sock.recv_buffer_size().map(|n| n / 2);
    match (set, got) {
        (Ok(()), Ok(n)) if n >= want => {
            tracing::debug!(bytes = n, "SIP UDP socket buffers sized");
        }
        (Ok(()), Ok(n)) => tracing::warn!(
            wanted = want,
            granted = n,
            "SIP UDP receive buffer smaller than configured; raise net.core.rmem_max \
             (and wmem_max) or bursts will be dropped and retransmitted"
        ),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "SIP UDP socket buffers left at the kernel default")
        }
    }
}

async fn udp_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.clone();
    let mut buf = vec![0u8; 65536];
    loop {
        let r = tokio::select! {
            r = inner.udp.recv_from(&mut buf) => r,
            _ = shutdown.changed() => return,
        };
        match r {
            Ok((n, src)) if n > MAX_MESSAGE => {
                inner
                    .metrics
                    .malformed
                    .with_label_values(&["dropped"])
                    .inc();
                tracing::debug!(source = %src.ip(), size = n, "oversized SIP datagram dropped");
            }
            Ok((n, src)) => {
                inner
                    .on_bytes(Flow::udp(src), Bytes::copy_from_slice(&buf[..n]))
                    .await
            }
            // ICMP errors surface here on some systems; the socket stays usable.
            Err(e) => {
                tracing::debug!(error = %e, "SIP UDP receive error");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// The timers of the core, and the dead air its relays heard (a dialog's expiry moves).
async fn timer_loop(inner: Arc<Inner>, mut dead_air: tokio::sync::mpsc::Receiver<String>) {
    let mut shutdown = inner.shutdown.clone();
    loop {
        let at = {
            let core = inner.core.lock();
            let cap = Instant::now() + Duration::from_secs(1);
            let at = core.next_deadline().map_or(cap, |n| n.min(cap));
            // Under the core's lock: see `Inner::timer_at`.
            *inner.timer_at.lock() = at;
            at
        };
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = inner.wake.notified() => {}
            Some(key) = dead_air.recv() => {
                inner.core.lock().dead_air(Instant::now(), &key);
                continue;
            }
            _ = shutdown.changed() => return,
        }
        let actions = inner.core.lock().on_timers(Instant::now());
        inner.execute(actions).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Linux grants is `min(asked, net.core.rmem_max)`; both caps are read so the
    /// test holds on hosts with the small default too.
    fn sysctl(name: &str) -> usize {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX)
    }

    #[tokio::test]
    async fn udp_buffers_are_sized_up_to_the_kernel_cap() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let want = 1 << 20;
        size_udp_buffers(&udp, want);
        let sock = socket2::SockRef::from(&udp);
        let rcv = sock.recv_buffer_size().unwrap() / 2;
        let snd = sock.send_buffer_size().unwrap() / 2;
        assert_eq!(rcv, want.min(sysctl("rmem_max")));
        assert_eq!(snd, want.min(sysctl("wmem_max")));
    }
}
