//! Our relays, one per call, each with its two port pairs from a `PortPool`, bound on
//! 127.0.0.1. No SDP: each side latches on its first packet (symmetric RTP), so the
//! load generator's sockets become the peers.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use c2c_media::{Endpoint, MediaEngine, MediaIo, PortPool, RelayConfig};

pub fn run(calls: usize, port_min: u16, ports: &Path, io: &str, batch: Duration) {
    let io: MediaIo = io.parse().expect("--io");
    let mut b = tokio::runtime::Builder::new_current_thread();
    // Experiment: sleep this long before each park, so one wake-up finds many packets.
    if let Some(us) = std::env::var("C2C_MEDIA_PARK_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|us| *us > 0)
    {
        b.on_thread_park(move || std::thread::sleep(Duration::from_micros(us)));
    }
    let rt = b.enable_all().build().expect("runtime");
    rt.block_on(async move {
        let engine = MediaEngine::new(io, batch).expect("media engine");
        eprintln!("media-bench host: {} relays on {}", calls, engine.name());
        let max = port_min + u16::try_from(calls * 4 + 3).expect("port range fits");
        let mut pool = PortPool::new(port_min, max).expect("port range");
        let cfg = RelayConfig {
            media_timeout: Duration::from_secs(3600),
            one_way_after: Duration::from_secs(3600),
        };
        let mut relays = Vec::with_capacity(calls);
        let mut out = String::new();
        for _ in 0..calls {
            let c = pool.allocate().expect("pair");
            let l = pool.allocate().expect("pair");
            let bind = |p: u16| {
                std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], p))).expect("bind")
            };
            let carrier = Endpoint {
                rtp: bind(c.rtp),
                rtcp: bind(c.rtcp),
            };
            let livekit = Endpoint {
                rtp: bind(l.rtp),
                rtcp: bind(l.rtcp),
            };
            relays.push(engine.start(carrier, livekit, cfg).expect("relay"));
            out.push_str(&format!("{} {}\n", c.rtp, l.rtp));
        }
        let tmp = ports.with_extension("tmp");
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(out.as_bytes()))
            .expect("ports file");
        std::fs::rename(&tmp, ports).expect("ports file");
        // Runs until the script kills it.
        std::future::pending::<()>().await;
        drop(relays);
    });
}
