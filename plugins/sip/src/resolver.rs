//! Carrier (and LiveKit SIP) host names to addresses, off the hot path.
//!
//! The proxy core is synchronous; it asks [`Resolver::lookup`], which answers from a
//! bounded cache and, on a miss or a stale entry, queues the name for the background
//! task (the call meanwhile gets 503 + Retry-After). IP-literal carriers never get here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const TTL: Duration = Duration::from_secs(300);
const MAX_NAMES: usize = 1024;

pub struct Resolver {
    cache: RwLock<HashMap<(String, u16), (SocketAddr, Instant)>>,
    tx: mpsc::Sender<(String, u16)>,
}

impl Resolver {
    pub fn new() -> (Arc<Self>, mpsc::Receiver<(String, u16)>) {
        let (tx, rx) = mpsc::channel(64);
        (
            Arc::new(Self {
                cache: RwLock::new(HashMap::new()),
                tx,
            }),
            rx,
        )
    }

    /// The cached address; schedules a refresh when missing or stale.
    pub fn lookup(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let key = (host.to_string(), port);
        let hit = self.cache.read().get(&key).copied();
        match hit {
            Some((addr, at)) => {
                if at.elapsed() > TTL {
                    let _ = self.tx.try_send(key);
                }
                Some(addr)
            }
            None => {
                let _ = self.tx.try_send(key);
                None
            }
        }
    }

    /// The cached address, or a lookup now (at most 5 s) whose answer is cached: for
    /// callers that may wait, outside the core lock (the inbound forward target).
    pub async fn resolve(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let key = (host.to_string(), port);
        let hit = self.cache.read().get(&key).copied();
        if let Some((addr, at)) = hit {
            if at.elapsed() <= TTL {
                return Some(addr);
            }
        }
        let addr = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|mut addrs| addrs.next())?;
        self.remember(key, addr);
        Some(addr)
    }

    fn remember(&self, key: (String, u16), addr: SocketAddr) {
        let mut c = self.cache.write();
        if c.len() >= MAX_NAMES {
            c.clear();
        }
        c.insert(key, (addr, Instant::now()));
    }

    /// Resolves queued names until shutdown.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<(String, u16)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let (host, port) = tokio::select! {
                k = rx.recv() => match k { Some(k) => k, None => return },
                _ = shutdown.changed() => return,
            };
            let fresh = self
                .cache
                .read()
                .get(&(host.clone(), port))
                .is_some_and(|(_, at)| at.elapsed() < TTL);
            if fresh {
                continue;
            }
            let res = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|mut addrs| addrs.next());
            match res {
                Some(addr) => self.remember((host, port), addr),
                None => tracing::warn!(host = %host, "SIP carrier host does not resolve"),
            }
        }
    }
}
