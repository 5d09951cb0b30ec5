//! The load: N calls, two streams each at 50 packets/s (160-byte payload, as G.711 at
//! 20 ms), sent from two sockets (the carrier's side and LiveKit's) through the relay
//! under test; each packet carries its send time, so what comes back out gives the
//! relay's one-way latency. Counts what was sent in the measured window and what of it
//! arrived; reads the relay process's CPU time (utime + stime) over the same window.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::ng;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Ours,
    Rtpengine,
}

#[derive(Args)]
pub struct LoadArgs {
    #[arg(long, value_enum)]
    target: Target,
    #[arg(long)]
    calls: usize,
    /// The measured window, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// `ours`: the host's ports file.
    #[arg(long)]
    ports: Option<std::path::PathBuf>,
    /// `rtpengine`: its ng address.
    #[arg(long, default_value = "127.0.0.1:22222")]
    ng: SocketAddr,
    /// The relay process, for its CPU time.
    #[arg(long)]
    pid: u32,
    /// The name the report gives the relay (default: `c2c` or `rtpengine`).
    #[arg(long)]
    label: Option<String>,
}

const PERIOD: Duration = Duration::from_millis(20);
const PAYLOAD: usize = 160;

/// Where each call's two streams go: A (the carrier's side) sends to `a_to`, B
/// (LiveKit's) to `b_to`; the relay sends A's packets to B from `b_to` and B's to A
/// from `a_to`.
struct Call {
    a_to: SocketAddr,
    b_to: SocketAddr,
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let r = socket2::SockRef::from(&s);
    let _ = r.set_recv_buffer_size(16 << 20);
    let _ = r.set_send_buffer_size(16 << 20);
    s
}

fn sdp(port: u16) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
}

fn setup(args: &LoadArgs, a: &UdpSocket, b: &UdpSocket) -> Vec<Call> {
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    match args.target {
        Target::Ours => {
            let path = args.ports.as_ref().expect("--ports");
            std::fs::read_to_string(path)
                .expect("ports file")
                .lines()
                .take(args.calls)
                .map(|l| {
                    let mut f = l
                        .split_whitespace()
                        .map(|p| p.parse::<u16>().expect("port"));
                    let (c, lk) = (f.next().expect("carrier"), f.next().expect("livekit"));
                    Call {
                        a_to: at(c),
                        b_to: at(lk),
                    }
                })
                .collect()
        }
        Target::Rtpengine => {
            let ctl = UdpSocket::bind("127.0.0.1:0").expect("ng socket");
            let pa = a.local_addr().expect("addr").port();
            let pb = b.local_addr().expect("addr").port();
            (0..args.calls)
                .map(|i| {
                    let id = format!("bench-{i}");
                    let to_b = ng::command(&ctl, args.ng, "offer", &id, None, &sdp(pa));
                    let to_a = ng::command(&ctl, args.ng, "answer", &id, Some("tt"), &sdp(pb));
                    Call {
                        a_to: at(ng::audio_port(&to_a)),
                        b_to: at(ng::audio_port(&to_b)),
                    }
                })
                .collect()
        }
    }
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("relay stat");
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

struct Tally {
    sent: u64,
    received: u64,
    latencies_us: Vec<u32>,
    send_retries: u64,
}

pub fn run(args: LoadArgs) {
    let (a, b) = (socket(), socket());
    let calls = setup(&args, &a, &b);
    let n = calls.len();
    assert!(n > 0, "no calls");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    // The relay's sending port -> call, per receiving socket.
    let mut from_a_to = vec![usize::MAX; 65536];
    let mut from_b_to = vec![usize::MAX; 65536];
    for (i, c) in calls.iter().enumerate() {
        // B receives A's stream from `b_to`; A receives B's from `a_to`.
        from_b_to[usize::from(c.b_to.port())] = i;
        from_a_to[usize::from(c.a_to.port())] = i;
    }
    let t0 = Instant::now();
    let warm_end = t0 + Duration::from_secs(args.warmup);
    let end = warm_end + Duration::from_secs(args.seconds);
    let ns = |t: Instant| u64::try_from(t.duration_since(t0).as_nanos()).unwrap_or(u64::MAX);
    let (win_start, win_end) = (ns(warm_end), ns(end));
    // Call i first sends at i/N of a period: the load is spread evenly.
    let mut due: Vec<Instant> = (0..n)
        .map(|i| t0 + PERIOD.mul_f64(i as f64 / n as f64))
        .collect();
    let mut seq = vec![0u16; n];
    let mut cursor = 0usize;
    let mut pkt = [0u8; 12 + PAYLOAD];
    let mut buf = [0u8; 2048];
    let mut t = Tally {
        sent: 0,
        received: 0,
        latencies_us: Vec::with_capacity(n * 2 * 50 * args.seconds as usize),
        send_retries: 0,
    };
    let mut cpu_start = None;
    let mut cpu_end = None;
    let drain_until = end + Duration::from_millis(500);
    loop {
        let now = Instant::now();
        if cpu_start.is_none() && now >= warm_end {
            cpu_start = Some(cpu_seconds(args.pid));
        }
        if cpu_end.is_none() && now >= end {
            cpu_end = Some(cpu_seconds(args.pid));
        }
        if now >= drain_until {
            break;
        }
        // Send what is due (nothing after the window: what is in flight drains).
        let mut budget = 64;
        while now < end && due[cursor] <= now && budget > 0 {
            budget -= 1;
            let i = cursor;
            let stamp = ns(Instant::now());
            for (dir, (sock, to)) in [(&a, calls[i].a_to), (&b, calls[i].b_to)]
                .into_iter()
                .enumerate()
            {
                pkt[0] = 0x80;
                pkt[1] = 8;
                pkt[2..4].copy_from_slice(&seq[i].to_be_bytes());
                let ts = u32::from(seq[i]).wrapping_mul(160);
                pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                let ssrc = u32::try_from(i * 2 + dir).unwrap_or(0);
                pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
                pkt[12..20].copy_from_slice(&stamp.to_be_bytes());
                loop {
                    match sock.send_to(&pkt, to) {
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => t.send_retries += 1,
                        Err(e) => panic!("send: {e}"),
                    }
                }
                if (win_start..win_end).contains(&stamp) {
                    t.sent += 1;
                }
            }
            seq[i] = seq[i].wrapping_add(1);
            due[i] += PERIOD;
            cursor = (cursor + 1) % n;
        }
        // Drain both sockets.
        for (sock, map) in [(&a, &from_a_to), (&b, &from_b_to)] {
            loop {
                match sock.recv_from(&mut buf) {
                    Ok((len, src)) => {
                        if len < 20 || map[usize::from(src.port())] == usize::MAX {
                            continue;
                        }
                        let mut s = [0u8; 8];
                        s.copy_from_slice(&buf[12..20]);
                        let sent_at = u64::from_be_bytes(s);
                        if (win_start..win_end).contains(&sent_at) {
                            t.received += 1;
                            let lat = ns(Instant::now()).saturating_sub(sent_at) / 1000;
                            t.latencies_us.push(u32::try_from(lat).unwrap_or(u32::MAX));
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
    }
    let cpu = cpu_end.unwrap_or(0.0) - cpu_start.unwrap_or(0.0);
    t.latencies_us.sort_unstable();
    let pct = |p: f64| {
        t.latencies_us
            .get(
                ((t.latencies_us.len() as f64 * p) as usize)
                    .min(t.latencies_us.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(0)
    };
    let lost = t.sent.saturating_sub(t.received);
    let name = args.label.as_deref().unwrap_or(match args.target {
        Target::Ours => "c2c",
        Target::Rtpengine => "rtpengine",
    });
    println!(
        "relay={name} calls={n} pps={} sent={} received={} lost={lost} loss_pct={:.4} p50_us={} p99_us={} cpu_s={cpu:.2} cpu_s_per_mpkt={:.3} send_retries={}",
        n * 2 * 50,
        t.sent,
        t.received,
        lost as f64 * 100.0 / t.sent.max(1) as f64,
        pct(0.5),
        pct(0.99),
        cpu * 1e6 / t.received.max(1) as f64,
        t.send_retries
    );
}
