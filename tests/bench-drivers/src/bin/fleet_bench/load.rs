//! Full lifecycles (click2call, the agent joins, connect, ANSWERED, hangup, CRM webhook)
//! back to back from `concurrency` workers, spread over one or more nodes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use c2c_bench_drivers::http1;

pub(crate) use c2c_bench_drivers::lifecycle::created;
use c2c_bench_drivers::lifecycle::post;

/// The click2call body: always the same number and agent (`agent-1`, not registered:
/// no gating), as lifecycle-bench.
const CLICK2CALL: &[u8] =
    br#"{"case_id":"b","customer_number":"9530251797","agent_id":"agent-1","customer_crm_id":"c"}"#;
const JOIN: &[u8] = br#"{"identity":"agent-1"}"#;

/// How a worker picks the node for its requests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Spread {
    /// Lifecycle `k` of worker `w` goes to node `(w + k) % nodes`: round robin by
    /// lifecycle, every request of one call on one node.
    Lifecycle,
    /// Each request to the next node in turn (a balancer without stickiness): a call's
    /// requests alternate between the nodes, and its driver with them.
    Request,
}

#[derive(Default)]
pub(crate) struct Lat {
    pub(crate) click2call: Vec<u64>,
    pub(crate) connect: Vec<u64>,
    pub(crate) status: Vec<u64>,
    pub(crate) hangup: Vec<u64>,
    /// Minus the LiveKit time each response reported (`Server-Timing: livekit;dur=`).
    pub(crate) click2call_own: Vec<u64>,
    pub(crate) connect_own: Vec<u64>,
    pub(crate) hangup_own: Vec<u64>,
}

impl Lat {
    fn extend(&mut self, o: Lat) {
        self.click2call.extend(o.click2call);
        self.connect.extend(o.connect);
        self.status.extend(o.status);
        self.hangup.extend(o.hangup);
        self.click2call_own.extend(o.click2call_own);
        self.connect_own.extend(o.connect_own);
        self.hangup_own.extend(o.hangup_own);
    }
}

/// `p` quantile of µs samples, in ms.
pub(crate) fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

/// One worker's connections: one per node, one to the simulator; `turn` picks the node.
pub(crate) struct Worker {
    gws: Vec<http1::Conn>,
    sim: http1::Conn,
    turn: usize,
    spread: Spread,
}

impl Worker {
    pub(crate) fn new(nodes: &[SocketAddr], sim: SocketAddr, first: usize, spread: Spread) -> Self {
        Worker {
            gws: nodes.iter().map(|a| http1::Conn::new(*a)).collect(),
            sim: http1::Conn::new(sim),
            turn: first,
            spread,
        }
    }

    /// The node for the next request (`Request`) or lifecycle (`Lifecycle`).
    fn next(&mut self) -> usize {
        let i = self.turn % self.gws.len();
        self.turn += 1;
        i
    }

    pub(crate) async fn lifecycle(&mut self, lat: &mut Lat) {
        let per_request = self.spread == Spread::Request;
        let mut node = self.next();
        let (t, r) = post(
            &mut self.gws[node],
            "/api/c2c/click2call",
            Some(CLICK2CALL),
            true,
        )
        .await;
        lat.click2call.push(t);
        lat.click2call_own.push(t.saturating_sub(r.livekit_us));
        let (id, room) = created(&r);
        post(
            &mut self.sim,
            &format!("/sim/rooms/{room}/join"),
            Some(JOIN),
            false,
        )
        .await;
        if per_request {
            node = self.next();
        }
        let (t, r) = post(
            &mut self.gws[node],
            &format!("/api/c2c/calls/{id}/connect"),
            None,
            false,
        )
        .await;
        lat.connect.push(t);
        lat.connect_own.push(t.saturating_sub(r.livekit_us));
        if per_request {
            node = self.next();
        }
        let (t, _) = post(
            &mut self.gws[node],
            &format!("/api/c2c/calls/{id}/status"),
            Some(br#"{"status":"ANSWERED"}"#),
            false,
        )
        .await;
        lat.status.push(t);
        if per_request {
            node = self.next();
        }
        let (t, r) = post(
            &mut self.gws[node],
            &format!("/api/c2c/calls/{id}/hangup"),
            None,
            false,
        )
        .await;
        lat.hangup.push(t);
        lat.hangup_own.push(t.saturating_sub(r.livekit_us));
    }

    /// A click2call on node `node` only (a call left unconnected).
    pub(crate) async fn click2call_on(&mut self, node: usize) -> (String, String) {
        let (_, r) = post(
            &mut self.gws[node],
            "/api/c2c/click2call",
            Some(CLICK2CALL),
            true,
        )
        .await;
        created(&r)
    }

    /// click2call, the agent joins, connect, all on node `node`; returns the call id.
    pub(crate) async fn ringing_on(&mut self, node: usize) -> String {
        let (id, room) = self.click2call_on(node).await;
        post(
            &mut self.sim,
            &format!("/sim/rooms/{room}/join"),
            Some(JOIN),
            false,
        )
        .await;
        let (_, r) = post(
            &mut self.gws[node],
            &format!("/api/c2c/calls/{id}/connect"),
            None,
            false,
        )
        .await;
        assert!(
            r.body.windows(7).any(|w| w == b"ringing"),
            "connect of {id}: {}",
            String::from_utf8_lossy(&r.body)
        );
        id
    }
}

/// What a run of lifecycles measured.
pub(crate) struct Run {
    pub(crate) total: u64,
    /// From the first request to the last webhook delivered.
    pub(crate) secs: f64,
    /// From the first request to the last response.
    pub(crate) http_secs: f64,
    /// Webhooks of this run delivered by the last response.
    pub(crate) delivered_by_then: u64,
    pub(crate) lat: Lat,
}

/// `calls` lifecycles from `concurrency` workers, then waits for their webhooks
/// (`delivered` counts the sink's; it must hold only earlier lifecycles' now).
pub(crate) async fn run(
    nodes: &[SocketAddr],
    sim: SocketAddr,
    calls: usize,
    concurrency: usize,
    spread: Spread,
    delivered: &AtomicU64,
    t0: Instant,
) -> Run {
    let before = delivered.load(Ordering::Relaxed);
    let per = calls / concurrency;
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let nodes = nodes.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut lat = Lat::default();
            let mut worker = Worker::new(&nodes, sim, w, spread);
            for _ in 0..per {
                worker.lifecycle(&mut lat).await;
            }
            lat
        }));
    }
    let mut lat = Lat::default();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let total = (per * concurrency) as u64;
    let http_secs = t0.elapsed().as_secs_f64();
    let delivered_by_then = delivered.load(Ordering::Relaxed) - before;
    while delivered.load(Ordering::Relaxed) < before + total {
        if t0.elapsed() > Duration::from_secs(300) {
            println!(
                "  webhooks delivered: {} of {total} after 300 s",
                delivered.load(Ordering::Relaxed) - before
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Run {
        total,
        secs: t0.elapsed().as_secs_f64(),
        http_secs,
        delivered_by_then,
        lat,
    }
}

/// `n` lifecycles one after another on each node (warm-up), then waits for their
/// webhooks.
pub(crate) async fn warm_up(
    nodes: &[SocketAddr],
    sim: SocketAddr,
    n: usize,
    delivered: &AtomicU64,
) {
    let before = delivered.load(Ordering::Relaxed);
    let mut lat = Lat::default();
    for i in 0..nodes.len() {
        let mut w = Worker::new(nodes, sim, i, Spread::Lifecycle);
        for _ in 0..n {
            w.lifecycle(&mut lat).await;
            // Back on node i for the next one.
            w.turn = i;
        }
    }
    let want = before + (n * nodes.len()) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
