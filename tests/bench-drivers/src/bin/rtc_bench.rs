//! WebSocket signalling at scale (issue 26): what an agent's LiveKit signalling socket
//! (`/rtc`) costs a proxy, and how fast it relays, with many of them open. Run through
//! `tests/bench/rtc.sh`, which starts the proxies (the gateway and nginx) in front of
//! one upstream and runs this driver once per proxy.
//!
//! `rtc-bench upstream --listen ADDR`: the upstream, a WebSocket echo server (every
//! message straight back) that also answers a plain `GET` with `200` (the gateway's
//! LiveKit health check).
//!
//! `rtc-bench relay --url ws://PROXY/rtc?access_token=T --pid PID ...`: opens N sockets
//! through the proxy, lets them settle, reads the proxy's RSS (KiB per socket against
//! the reading before), then sends messages at a steady total rate spread over all the
//! sockets (each socket one message every N/rate seconds, at its own phase) and times
//! each echo: p50/p99/max of the round trip through the proxy, and the proxy's CPU per
//! message. Prints one line of figures. Exits non-zero only when a socket cannot be
//! opened or an echo never comes back, never on a missed target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c2c_bench_drivers::{cpu_secs, proc_status_field};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// The echo upstream.
    Upstream {
        #[arg(long)]
        listen: String,
    },
    /// Sockets through one proxy: memory per socket and relay latency.
    Relay(Relay),
}

#[derive(clap::Args)]
struct Relay {
    /// `ws://host:port/rtc?access_token=...`
    #[arg(long)]
    url: String,
    /// The proxy process whose memory and CPU are read (nginx: its worker).
    #[arg(long)]
    pid: u32,
    #[arg(long)]
    label: String,
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Messages per second over all the sockets.
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Bytes per message (a LiveKit signal message is a few hundred).
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Quiet time before each memory reading.
    #[arg(long, default_value_t = 5)]
    settle_seconds: u64,
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.mode {
        Mode::Upstream { listen } => rt.block_on(upstream(listen)),
        Mode::Relay(r) => rt.block_on(relay(r)),
    }
}

async fn upstream(listen: String) {
    let listener = TcpListener::bind(&listen).await.unwrap();
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_upstream(conn));
    }
}

async fn serve_upstream(mut conn: TcpStream) {
    // Peek at the head: a WebSocket handshake is left in the socket for tungstenite, a
    // health check is answered here.
    let mut head = [0u8; 4096];
    let n = loop {
        let Ok(n) = conn.peek(&mut head).await else {
            return;
        };
        if n == 0 || head[..n].windows(4).any(|w| w == b"\r\n\r\n") || n == head.len() {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let lower = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    if !lower.contains("upgrade: websocket") {
        let mut sink = vec![0u8; n];
        let _ = conn.read_exact(&mut sink).await;
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    let Ok(mut ws) = tokio_tungstenite::accept_async(conn).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_binary() || msg.is_text()) && ws.send(msg).await.is_err() {
            break;
        }
    }
}

fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn open(url: &str) -> Ws {
    let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().unwrap();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap());
    for attempt in 0..5 {
        let tcp = match TcpStream::connect(&addr).await {
            Ok(tcp) => tcp,
            Err(e) if attempt < 4 => {
                eprintln!("connect: {e}; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => panic!("connect {addr}: {e}"),
        };
        let _ = tcp.set_nodelay(true);
        match tokio_tungstenite::client_async(url, tcp).await {
            Ok((ws, _)) => return ws,
            Err(e) if attempt < 4 => {
                eprintln!("handshake: {e}; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("WebSocket handshake through {addr}: {e}"),
        }
    }
    unreachable!()
}

async fn relay(r: Relay) {
    tokio::time::sleep(Duration::from_secs(r.settle_seconds)).await;
    let rss_before = proc_status_field(r.pid, "VmRSS:");

    // Open every socket (a bounded number of handshakes at once).
    let gate = Arc::new(Semaphore::new(r.setup_concurrency));
    let mut opening = Vec::with_capacity(r.sockets);
    for _ in 0..r.sockets {
        let (gate, url) = (gate.clone(), r.url.clone());
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            open(&url).await
        }));
    }
    let mut sockets = Vec::with_capacity(r.sockets);
    for o in opening {
        sockets.push(o.await.expect("a socket could not be opened"));
    }
    tokio::time::sleep(Duration::from_secs(r.settle_seconds)).await;
    let rss_open = proc_status_field(r.pid, "VmRSS:");

    // Steady messages: socket i sends every `period`, starting at i * period / N.
    let period = Duration::from_secs_f64(r.sockets as f64 / r.rate);
    let rtts = Arc::new(Mutex::new(Vec::<u64>::with_capacity(
        (r.rate * r.seconds as f64) as usize + r.sockets,
    )));
    let lost = Arc::new(AtomicU64::new(0));
    let base = Instant::now();
    let end = base + Duration::from_secs(r.seconds);
    let cpu_before = cpu_secs(r.pid);
    let n = r.sockets;
    let mut tasks = Vec::with_capacity(n);
    for (i, mut ws) in sockets.into_iter().enumerate() {
        let (rtts, lost) = (rtts.clone(), lost.clone());
        let size = r.size.max(8);
        tasks.push(tokio::spawn(async move {
            let mut next = base + period.mul_f64(i as f64 / n as f64);
            let mut payload = vec![b'x'; size];
            while next < end {
                tokio::time::sleep_until(next.into()).await;
                let sent = base.elapsed().as_micros() as u64;
                payload[..8].copy_from_slice(&sent.to_le_bytes());
                if ws.send(Message::binary(payload.clone())).await.is_err() {
                    lost.fetch_add(1, Ordering::Relaxed);
                    return ws;
                }
                match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                    Ok(Some(Ok(Message::Binary(echo)))) if echo.len() == size => {
                        let at = u64::from_le_bytes(echo[..8].try_into().unwrap());
                        let rtt = base.elapsed().as_micros() as u64 - at;
                        rtts.lock().unwrap().push(rtt);
                    }
                    _ => {
                        lost.fetch_add(1, Ordering::Relaxed);
                        return ws;
                    }
                }
                next += period;
            }
            ws
        }));
    }
    let mut open_sockets = Vec::with_capacity(n);
    for t in tasks {
        open_sockets.push(t.await.unwrap());
    }
    let cpu = cpu_secs(r.pid) - cpu_before;
    let rss_active = proc_status_field(r.pid, "VmRSS:");
    let mut rtts = std::mem::take(&mut *rtts.lock().unwrap());
    rtts.sort_unstable();
    let lost = lost.load(Ordering::Relaxed);
    println!(
        "{:<8} sockets={} rss_before={}KiB idle_per_socket={:.2}KiB active_per_socket={:.2}KiB \
         messages={} lost={} rtt_p50={:.3}ms rtt_p99={:.3}ms rtt_max={:.3}ms cpu_per_message={:.1}us",
        r.label,
        n,
        rss_before,
        (rss_open.saturating_sub(rss_before)) as f64 / n as f64,
        (rss_active.saturating_sub(rss_before)) as f64 / n as f64,
        rtts.len(),
        lost,
        pct_ms(&rtts, 0.50),
        pct_ms(&rtts, 0.99),
        pct_ms(&rtts, 1.0),
        cpu * 1e6 / rtts.len().max(1) as f64,
    );
    for mut ws in open_sockets {
        let _ = ws.close(None).await;
    }
    if lost > 0 {
        std::process::exit(1);
    }
}
