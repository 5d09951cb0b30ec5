#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The relay on real UDP sockets (127.0.0.1): audio both ways, latching to the real
//! source behind NAT, strangers dropped, early media timed, dead air and one-way audio
//! raised. Every test runs on both engines (a task per call on the runtime, and the
//! io_uring media thread): `runtime::*` and `io_uring::*`.

use std::net::SocketAddr;
use std::time::Duration;

use c2c_media::{AudioTarget, Endpoint, MediaEngine, MediaEvent, RelayConfig, Side, DEFAULT_BATCH};
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout};

async fn endpoint() -> (Endpoint, SocketAddr, SocketAddr) {
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (a, b) = (rtp.local_addr().unwrap(), rtcp.local_addr().unwrap());
    (Endpoint { rtp, rtcp }, a, b)
}

/// What an SDP naming `rtp` (and no `a=rtcp`) says.
fn target(rtp: SocketAddr) -> AudioTarget {
    AudioTarget {
        rtp,
        rtcp: SocketAddr::new(rtp.ip(), rtp.port() + 1),
        sends: true,
    }
}

fn packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[seq as u8; 160]);
    p
}

async fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// Two sockets on ports p and p + 1 (p even), as a peer's RTP and RTCP.
async fn adjacent_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..200 {
        let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let p = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        if p == 0 || p == u16::MAX - 1 {
            continue;
        }
        if let (Ok(a), Ok(b)) = (
            UdpSocket::bind(("127.0.0.1", p)).await,
            UdpSocket::bind(("127.0.0.1", p + 1)).await,
        ) {
            return (a, b);
        }
    }
    panic!("no two adjacent free UDP ports on 127.0.0.1");
}

async fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut b = [0u8; 2048];
    let (n, _) = timeout(Duration::from_secs(5), s.recv_from(&mut b))
        .await
        .expect("a relayed packet")
        .unwrap();
    b[..n].to_vec()
}

/// Each scenario as a test on each engine.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod runtime {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(c2c_media::MediaEngine::runtime()).await
                }
            )*
        }
        mod io_uring {
            $(
                #[tokio::test]
                async fn $name() {
                    // The CI machine's kernel has io_uring: a refusal here is a failure,
                    // not a reason to skip.
                    let engine = c2c_media::MediaEngine::io_uring(super::DEFAULT_BATCH)
                        .expect("io_uring on this kernel");
                    super::$name(engine).await
                }
            )*
        }
    };
}

on_both_engines!(
    audio_flows_both_ways_and_each_side_latches_to_its_real_source,
    early_media_is_timed_and_rtcp_follows_rtp_ports_plus_one,
    audio_that_comes_with_the_answer_is_not_early_media,
    dead_air_after_the_answer_is_raised_once_and_not_while_audio_flows,
    audio_from_one_side_only_is_one_way,
    a_stranger_first_does_not_keep_the_call_from_the_peer_its_sdp_names,
    an_sdp_hold_address_receives_nothing_and_rtcp_junk_is_dropped,
    a_carrier_on_hold_is_not_dead_air_and_off_hold_the_clock_restarts,
    rtcp_on_the_rtp_port_is_relayed_with_the_rtp,
);

fn config() -> RelayConfig {
    RelayConfig {
        media_timeout: Duration::from_secs(30),
        one_way_after: Duration::from_secs(30),
    }
}

async fn audio_flows_both_ways_and_each_side_latches_to_its_real_source(engine: MediaEngine) {
    let (c_end, c_rtp, _) = endpoint().await;
    let (l_end, l_rtp, _) = endpoint().await;
    let relay = engine.start(c_end, l_end, config()).unwrap();
    let (lk, lk_addr) = peer().await;
    // The carrier's SDP names one address; its packets come from another (NAT).
    let (sdp_said, sdp_addr) = peer().await;
    let (carrier, _) = peer().await;
    relay.set_remote(Side::Livekit, target(lk_addr)).await;
    relay.set_remote(Side::Carrier, target(sdp_addr)).await;
    relay.answered().await;
    for seq in 0..10 {
        carrier.send_to(&packet(seq, 1), c_rtp).await.unwrap();
        assert_eq!(recv(&lk).await, packet(seq, 1), "carrier -> LiveKit");
    }
    for seq in 0..10 {
        lk.send_to(&packet(seq, 2), l_rtp).await.unwrap();
        assert_eq!(
            recv(&carrier).await,
            packet(seq, 2),
            "LiveKit -> the carrier's real source, not its SDP address"
        );
    }
    // A third party aiming at the carrier side's port is dropped.
    let (stranger, _) = peer().await;
    stranger.send_to(&packet(99, 3), c_rtp).await.unwrap();
    // Malformed RTP from the carrier is not relayed either.
    carrier.send_to(&[0x80, 0x00, 0x01], c_rtp).await.unwrap();
    carrier.send_to(&packet(10, 1), c_rtp).await.unwrap();
    assert_eq!(
        recv(&lk).await,
        packet(10, 1),
        "only the carrier's next packet"
    );
    let mut b = [0u8; 64];
    assert!(
        timeout(Duration::from_millis(50), sdp_said.recv_from(&mut b))
            .await
            .is_err(),
        "nothing went to the SDP address once the carrier latched"
    );
    let r = relay.stop().await.unwrap();
    assert_eq!((r.from_carrier.packets, r.from_livekit.packets), (11, 10));
    assert_eq!((r.from_carrier.lost, r.from_carrier.not_rtp), (0, 1));
    assert_eq!(r.strangers, 1);
    assert_eq!(r.early_media_ms, None);
    assert_eq!((r.one_way, r.media_timeout), (None, false));
}

async fn early_media_is_timed_and_rtcp_follows_rtp_ports_plus_one(engine: MediaEngine) {
    let (c_end, c_rtp, c_rtcp) = endpoint().await;
    let (l_end, _, _) = endpoint().await;
    let relay = engine.start(c_end, l_end, config()).unwrap();
    // LiveKit's RTCP port is the one above its RTP port (no RTCP attribute in its SDP).
    let (lk, lk_rtcp) = adjacent_pair().await;
    let lk_addr = lk.local_addr().unwrap();
    relay.set_remote(Side::Livekit, target(lk_addr)).await;
    let (carrier, _) = peer().await;
    // A ringback announcement before the answer.
    for seq in 0..5 {
        carrier.send_to(&packet(seq, 1), c_rtp).await.unwrap();
        recv(&lk).await;
        sleep(Duration::from_millis(20)).await;
    }
    sleep(Duration::from_millis(100)).await;
    relay.answered().await;
    carrier
        .send_to(&[0x81, 200, 0, 6, 0, 0, 0, 1], c_rtcp)
        .await
        .unwrap();
    assert_eq!(recv(&lk_rtcp).await, vec![0x81, 200, 0, 6, 0, 0, 0, 1]);
    let r = relay.report().await.unwrap();
    let early = r.early_media_ms.expect("early media");
    assert!(
        (180.0..5_000.0).contains(&early),
        "{early} ms of early media"
    );
    assert!(r.early_media_started_ms.is_some());
    assert_eq!(r.rtcp_relayed, 1);
}

/// A carrier's first packet can beat the edge's handling of its 200 OK by a moment:
/// that is the answer's audio, not early media (seen in CI as 0.05 ms of "early media").
async fn audio_that_comes_with_the_answer_is_not_early_media(engine: MediaEngine) {
    let (c_end, c_rtp, _) = endpoint().await;
    let (l_end, _, _) = endpoint().await;
    let relay = engine.start(c_end, l_end, config()).unwrap();
    let (lk, _) = adjacent_pair().await;
    relay
        .set_remote(Side::Livekit, target(lk.local_addr().unwrap()))
        .await;
    let (carrier, _) = peer().await;
    carrier.send_to(&packet(0, 1), c_rtp).await.unwrap();
    recv(&lk).await;
    relay.answered().await;
    let r = relay.report().await.unwrap();
    assert_eq!(r.early_media_started_ms, None, "{r:?}");
    assert_eq!(r.early_media_ms, None, "{r:?}");
    assert_eq!(r.from_carrier.packets, 1, "{r:?}");
}

async fn dead_air_after_the_answer_is_raised_once_and_not_while_audio_flows(engine: MediaEngine) {
    let (c_end, c_rtp, _) = endpoint().await;
    let (l_end, l_rtp, _) = endpoint().await;
    // Margins wide enough for a loaded CI machine: 50 ms between packets against a
    // 1.5 s timeout.
    let cfg = RelayConfig {
        media_timeout: Duration::from_millis(1_500),
        one_way_after: Duration::from_millis(1_000),
    };
    let mut relay = engine.start(c_end, l_end, cfg).unwrap();
    let (lk, lk_addr) = peer().await;
    let (carrier, carrier_addr) = peer().await;
    relay.set_remote(Side::Livekit, target(lk_addr)).await;
    relay.set_remote(Side::Carrier, target(carrier_addr)).await;
    relay.answered().await;
    // 2 s of audio both ways every 50 ms: no dead air, no one-way audio.
    for seq in 0..40 {
        carrier.send_to(&packet(seq, 1), c_rtp).await.unwrap();
        lk.send_to(&packet(seq, 2), l_rtp).await.unwrap();
        sleep(Duration::from_millis(50)).await;
    }
    let r = relay.report().await.unwrap();
    assert_eq!((r.media_timeout, r.one_way), (false, None));
    // The carrier goes silent.
    let e = timeout(Duration::from_secs(5), relay.next_event())
        .await
        .expect("dead air raised");
    assert_eq!(e, Some(MediaEvent::MediaTimeout));
    assert!(relay.report().await.unwrap().media_timeout);
    assert!(
        timeout(Duration::from_millis(2_000), relay.next_event())
            .await
            .is_err(),
        "raised once"
    );
}

async fn audio_from_one_side_only_is_one_way(engine: MediaEngine) {
    let (c_end, c_rtp, _) = endpoint().await;
    let (l_end, _, _) = endpoint().await;
    let cfg = RelayConfig {
        media_timeout: Duration::from_secs(30),
        one_way_after: Duration::from_millis(300),
    };
    let mut relay = engine.start(c_end, l_end, cfg).unwrap();
    let (lk, lk_addr) = peer().await;
    relay.set_remote(Side::Livekit, target(lk_addr)).await;
    relay.answered().await;
    let (carrier, _) = peer().await;
    for seq in 0..5 {
        carrier.send_to(&packet(seq, 1), c_rtp).await.unwrap();
        recv(&lk).await;
    }
    let e = timeout(Duration::from_secs(5), relay.next_event())
        .await
        .expect("one-way audio raised");
    assert_eq!(
        e,
        Some(MediaEvent::OneWayAudio {
            silent: Side::Livekit
        })
    );
    assert_eq!(relay.report().await.unwrap().one_way, Some(Side::Livekit));
}

async fn a_stranger_first_does_not_keep_the_call_from_the_peer_its_sdp_names(engine: MediaEngine) {
    let (c_end, c_rtp, _) = endpoint().await;
    let (l_end, l_rtp, _) = endpoint().await;
    let relay = engine.start(c_end, l_end, config()).unwrap();
    let (lk, lk_addr) = peer().await;
    let (carrier, carrier_addr) = peer().await;
    relay.set_remote(Side::Livekit, target(lk_addr)).await;
    relay.set_remote(Side::Carrier, target(carrier_addr)).await;
    // A scanner on another address gets its packet in before the carrier's first.
    let stranger = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    stranger.send_to(&packet(1, 66), c_rtp).await.unwrap();
    assert_eq!(recv(&lk).await, packet(1, 66));
    // The carrier, from the address its SDP named, takes the latch over.
    carrier.send_to(&packet(1, 7), c_rtp).await.unwrap();
    assert_eq!(recv(&lk).await, packet(1, 7));
    stranger.send_to(&packet(2, 66), c_rtp).await.unwrap();
    carrier.send_to(&packet(2, 7), c_rtp).await.unwrap();
    assert_eq!(
        recv(&lk).await,
        packet(2, 7),
        "the stranger's second packet is dropped"
    );
    lk.send_to(&packet(1, 9), l_rtp).await.unwrap();
    assert_eq!(
        recv(&carrier).await,
        packet(1, 9),
        "LiveKit's audio reaches the carrier"
    );
    // The same SDP again (a session refresh) keeps the latch.
    relay.set_remote(Side::Carrier, target(carrier_addr)).await;
    stranger.send_to(&packet(3, 66), c_rtp).await.unwrap();
    carrier.send_to(&packet(3, 7), c_rtp).await.unwrap();
    assert_eq!(recv(&lk).await, packet(3, 7));
    let r = relay.stop().await.unwrap();
    assert_eq!((r.relatched, r.strangers), (1, 2));
}

async fn an_sdp_hold_address_receives_nothing_and_rtcp_junk_is_dropped(engine: MediaEngine) {
    let (c_end, c_rtp, c_rtcp) = endpoint().await;
    let (l_end, _, _) = endpoint().await;
    let relay = engine.start(c_end, l_end, config()).unwrap();
    relay
        .set_remote(Side::Livekit, target("0.0.0.0:4000".parse().unwrap()))
        .await;
    let (carrier, _) = peer().await;
    carrier.send_to(&packet(1, 7), c_rtp).await.unwrap();
    carrier.send_to(&[0x81, 0x01, 0x00], c_rtcp).await.unwrap();
    let counted = async {
        loop {
            let r = relay.report().await.unwrap();
            if r.from_carrier.packets == 1 && r.not_rtcp == 1 {
                break r;
            }
            sleep(Duration::from_millis(10)).await;
        }
    };
    let r = timeout(Duration::from_secs(5), counted)
        .await
        .expect("both datagrams counted");
    assert_eq!((r.undeliverable, r.rtcp_relayed), (1, 0));
}

async fn a_carrier_on_hold_is_not_dead_air_and_off_hold_the_clock_restarts(engine: MediaEngine) {
    let (c_end, c_rtp, _) = endpoint().await;
    let (l_end, l_rtp, _) = endpoint().await;
    let cfg = RelayConfig {
        media_timeout: Duration::from_millis(800),
        one_way_after: Duration::from_millis(400),
    };
    let mut relay = engine.start(c_end, l_end, cfg).unwrap();
    let (lk, lk_addr) = peer().await;
    let (carrier, carrier_addr) = peer().await;
    relay.set_remote(Side::Livekit, target(lk_addr)).await;
    relay.set_remote(Side::Carrier, target(carrier_addr)).await;
    relay.answered().await;
    carrier.send_to(&packet(0, 1), c_rtp).await.unwrap();
    recv(&lk).await;
    // The carrier puts the call on hold (same address, `a=recvonly`); LiveKit plays on.
    let hold = AudioTarget {
        sends: false,
        ..target(carrier_addr)
    };
    relay.set_remote(Side::Carrier, hold).await;
    for seq in 0..40 {
        lk.send_to(&packet(seq, 2), l_rtp).await.unwrap();
        sleep(Duration::from_millis(50)).await;
    }
    assert!(
        timeout(Duration::from_millis(100), relay.next_event())
            .await
            .is_err(),
        "2 s of hold: no dead air, no one-way audio"
    );
    // The latch survived the direction change: LiveKit's audio still reaches the carrier.
    assert_eq!(recv(&carrier).await[1], 0x00);
    // Off hold, and silent: dead air comes a whole timeout after the resume.
    let resumed = tokio::time::Instant::now();
    relay.set_remote(Side::Carrier, target(carrier_addr)).await;
    let e = timeout(Duration::from_secs(5), relay.next_event())
        .await
        .expect("dead air raised");
    assert_eq!(e, Some(MediaEvent::MediaTimeout));
    assert!(
        resumed.elapsed() >= Duration::from_millis(750),
        "{:?}",
        resumed.elapsed()
    );
    let r = relay.report().await.unwrap();
    assert_eq!((r.media_timeout, r.one_way), (true, None));
}

async fn rtcp_on_the_rtp_port_is_relayed_with_the_rtp(engine: MediaEngine) {
    let (c_end, c_rtp, _) = endpoint().await;
    let (l_end, _, _) = endpoint().await;
    let relay = engine.start(c_end, l_end, config()).unwrap();
    let (lk, lk_addr) = peer().await;
    relay.set_remote(Side::Livekit, target(lk_addr)).await;
    let (carrier, _) = peer().await;
    carrier.send_to(&packet(0, 1), c_rtp).await.unwrap();
    recv(&lk).await;
    // A receiver report (RFC 3550 6.4.2, packet type 201) multiplexed on the RTP port.
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    carrier.send_to(&rr, c_rtp).await.unwrap();
    assert_eq!(recv(&lk).await, rr.to_vec());
    let r = relay.report().await.unwrap();
    assert_eq!(
        (r.rtcp_relayed, r.from_carrier.rtcp, r.from_carrier.packets),
        (1, 1, 1)
    );
}
