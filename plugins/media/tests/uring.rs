#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What only the io_uring engine can get wrong: a stopped call's ports are closed before
//! its report comes back (the edge then gives them to the next call), a dropped relay
//! frees its ports too, calls come and go by the hundred while others carry packets,
//! and a packet that arrives after a quiet spell is not held for a batch.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::time::{Duration, Instant};

use c2c_media::{Endpoint, MediaEngine, Relay, RelayConfig, DEFAULT_BATCH};
use tokio::net::UdpSocket;
use tokio::time::timeout;

fn config() -> RelayConfig {
    RelayConfig {
        media_timeout: Duration::from_secs(30),
        one_way_after: Duration::from_secs(30),
    }
}

fn engine(batch: Duration) -> MediaEngine {
    MediaEngine::io_uring(batch).expect("io_uring on this kernel")
}

fn packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(&[0xd5; 160]);
    p
}

/// A relay on four fresh ports; answers it with its carrier and LiveKit RTP addresses
/// and all four addresses.
fn relay_on(engine: &MediaEngine) -> (Relay, SocketAddr, SocketAddr, [SocketAddr; 4]) {
    let bind = || StdUdp::bind("127.0.0.1:0").unwrap();
    let (crtp, crtcp, lrtp, lrtcp) = (bind(), bind(), bind(), bind());
    let addrs = [&crtp, &crtcp, &lrtp, &lrtcp].map(|s| s.local_addr().unwrap());
    let relay = engine
        .start(
            Endpoint {
                rtp: crtp,
                rtcp: crtcp,
            },
            Endpoint {
                rtp: lrtp,
                rtcp: lrtcp,
            },
            config(),
        )
        .unwrap();
    (relay, addrs[0], addrs[2], addrs)
}

/// One packet each way through `relay`, latching both sides to `carrier` and `lk`.
async fn both_ways(
    relay: &Relay,
    carrier: &UdpSocket,
    c_rtp: SocketAddr,
    lk: &UdpSocket,
    l_rtp: SocketAddr,
) {
    let mut b = [0u8; 2048];
    // LiveKit first: with no carrier address yet it goes nowhere, but LiveKit latches.
    // The carrier's packet only once the relay has counted it (the two sockets' reads
    // may complete in either order within one batch).
    lk.send_to(&packet(1), l_rtp).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.report().await.unwrap().from_livekit.packets == 0 {
        assert!(
            Instant::now() < deadline,
            "LiveKit's first packet never counted"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    carrier.send_to(&packet(2), c_rtp).await.unwrap();
    let (n, _) = timeout(Duration::from_secs(5), lk.recv_from(&mut b))
        .await
        .expect("carrier -> LiveKit")
        .unwrap();
    assert_eq!(&b[..n], &packet(2)[..]);
    lk.send_to(&packet(3), l_rtp).await.unwrap();
    let (n, _) = timeout(Duration::from_secs(5), carrier.recv_from(&mut b))
        .await
        .expect("LiveKit -> carrier")
        .unwrap();
    assert_eq!(&b[..n], &packet(3)[..]);
}

fn rebind_all(addrs: &[SocketAddr]) {
    for a in addrs {
        StdUdp::bind(a).unwrap_or_else(|e| panic!("port {a} still held after the stop: {e}"));
    }
}

#[tokio::test]
async fn a_stopped_call_has_closed_its_ports_when_its_report_comes_back() {
    let engine = engine(DEFAULT_BATCH);
    let (relay, c_rtp, l_rtp, addrs) = relay_on(&engine);
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let lk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    both_ways(&relay, &carrier, c_rtp, &lk, l_rtp).await;
    let report = relay.report().await.expect("a running relay reports");
    assert_eq!(report.from_carrier.packets, 1);
    let report = relay.stop().await.expect("the final report");
    assert_eq!(
        (report.from_carrier.packets, report.from_livekit.packets),
        (1, 2)
    );
    assert_eq!(
        report.undeliverable, 1,
        "LiveKit's first packet had nowhere to go"
    );
    rebind_all(&addrs);
}

#[tokio::test]
async fn a_dropped_relay_frees_its_ports() {
    let engine = engine(DEFAULT_BATCH);
    let (relay, _, _, addrs) = relay_on(&engine);
    drop(relay);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if addrs.iter().all(|a| StdUdp::bind(a).is_ok()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ports still held 5 s after the drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn hundreds_of_calls_come_and_go_while_others_carry_packets() {
    let engine = engine(DEFAULT_BATCH);
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let lk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A call that carries packets throughout.
    let (steady, s_c, s_l, _) = relay_on(&engine);
    both_ways(&steady, &carrier, s_c, &lk, s_l).await;
    let mut sent = 1u64;
    for round in 0..5 {
        let calls: Vec<_> = (0..100).map(|_| relay_on(&engine)).collect();
        // Each new call relays a packet from its own carrier socket.
        let c2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for (_, c_rtp, _, _) in &calls {
            c2.send_to(&packet(round), *c_rtp).await.unwrap();
        }
        carrier.send_to(&packet(100 + round), s_c).await.unwrap();
        sent += 1;
        let mut b = [0u8; 2048];
        let (n, _) = timeout(Duration::from_secs(5), lk.recv_from(&mut b))
            .await
            .expect("the steady call still relays")
            .unwrap();
        assert_eq!(&b[..n], &packet(100 + round)[..]);
        let mut addrs = Vec::new();
        for (relay, _, _, a) in calls {
            let r = relay.stop().await.expect("report");
            assert_eq!(
                r.from_carrier.packets, 1,
                "each new call counted its packet"
            );
            assert_eq!(
                r.undeliverable, 1,
                "with no LiveKit address it went nowhere"
            );
            addrs.extend(a);
        }
        rebind_all(&addrs);
    }
    let r = steady.stop().await.unwrap();
    assert_eq!(r.from_carrier.packets, sent);
}

#[tokio::test]
async fn a_packet_after_a_quiet_spell_is_not_held_for_a_batch() {
    // A batch far longer than any test timing: were a lone packet held for it, the
    // first check fails.
    let engine = engine(Duration::from_millis(400));
    let (relay, c_rtp, l_rtp, _) = relay_on(&engine);
    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let lk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    lk.send_to(&packet(1), l_rtp).await.unwrap();
    // Let the engine go idle: its next look finds nothing.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let t0 = Instant::now();
    carrier.send_to(&packet(2), c_rtp).await.unwrap();
    let mut b = [0u8; 2048];
    let (n, _) = timeout(Duration::from_secs(5), lk.recv_from(&mut b))
        .await
        .expect("relayed")
        .unwrap();
    assert_eq!(&b[..n], &packet(2)[..]);
    let lone = t0.elapsed();
    assert!(
        lone < Duration::from_millis(200),
        "a lone packet took {lone:?}: held for the 400 ms batch"
    );
    // Right after it the engine is batching: the next packet may wait for the batch,
    // but no longer than it (and the timer slack).
    let t1 = Instant::now();
    carrier.send_to(&packet(3), c_rtp).await.unwrap();
    let (n, _) = timeout(Duration::from_secs(5), lk.recv_from(&mut b))
        .await
        .expect("relayed")
        .unwrap();
    assert_eq!(&b[..n], &packet(3)[..]);
    assert!(
        t1.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        t1.elapsed()
    );
    relay.stop().await.unwrap();
}

#[test]
fn the_engine_names_itself_and_auto_says_why_it_fell_back() {
    let e = engine(DEFAULT_BATCH);
    assert_eq!((e.name(), e.fallback()), ("io_uring", None));
    let auto = MediaEngine::new(c2c_media::MediaIo::Auto, DEFAULT_BATCH).unwrap();
    assert_eq!(auto.name(), "io_uring", "this kernel has io_uring");
    let rt = MediaEngine::new(c2c_media::MediaIo::Runtime, DEFAULT_BATCH).unwrap();
    assert_eq!((rt.name(), rt.fallback()), ("runtime", None));
    assert!("epoll".parse::<c2c_media::MediaIo>().is_err());
}
