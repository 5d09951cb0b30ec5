//! RFC 4475 torture messages and other malformed input against a running edge, over
//! TCP (responses come back on the connection, so every verdict is checked exactly)
//! and UDP (responses follow the messages' Vias, so UDP checks liveness, counters and
//! that nothing is relayed). Never a panic, never anything at a carrier.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use c2c_sip::codec::{next_frame, Frame};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// RFC 4475 messages (copied from the shared test data, with its README of verdicts).
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rfc4475");

/// RFC 4475 file -> expected first status code over TCP (None: no answer).
const VERDICTS: &[(&str, Option<u16>)] = &[
    // 3.1.1 valid: parsed and handled (refused by method/trunk where not an INVITE dialog).
    ("wsinv", Some(481)),
    ("intmeth", Some(405)),
    ("esc01", Some(404)),
    ("escnull", Some(405)),
    ("esc02", Some(405)),
    ("lwsdisp", Some(200)),
    ("longreq", Some(404)),
    ("dblreq", Some(405)),
    ("semiuri", Some(200)),
    ("transports", Some(200)),
    ("mpart01", Some(405)),
    ("unreason", None),
    ("noreason", None),
    // 3.1.2 invalid: 400 (505 for the version), or dropped when unframeable.
    ("badinv01", None), // its only Via is unusable: no response can be routed
    ("clerr", None),
    ("ncl", Some(400)),
    ("scalar02", Some(400)),
    ("scalarlg", None),
    ("quotbal", Some(400)),
    ("ltgtruri", Some(400)),
    ("lwsruri", Some(400)),
    ("lwsstart", Some(400)),
    ("trws", Some(400)),
    ("escruri", Some(400)),
    ("baddate", Some(400)),
    ("regbadct", Some(400)),
    ("badaspec", Some(400)),
    ("baddn", None),
    ("badvers", Some(505)),
    ("mismatch01", Some(400)),
    ("mismatch02", Some(400)),
    ("bigcode", None),
    // 3.2 transaction layer.
    ("badbranch", Some(200)),
    // 3.3 application layer.
    ("insuf", Some(400)),
    ("unkscm", Some(416)),
    ("novelsc", Some(416)),
    ("unksm2", Some(405)),
    ("bext01", Some(420)),
    ("invut", Some(404)),
    ("regaut01", Some(405)),
    ("multi01", Some(400)),
    ("mcl01", Some(400)),
    ("bcast", None),
    ("cparam01", Some(405)),
    ("cparam02", Some(405)),
    ("regescrt", Some(405)),
    ("sdp01", Some(404)),
    ("zeromf", Some(483)),
    // 3.4 backward compatibility.
    ("inv2543", Some(404)),
];

fn load(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}.dat")).expect("torture file")
}

async fn torture_edge() -> (Edge, Sink, Sink) {
    let acme = Sink::start().await;
    let globex = Sink::start().await;
    let edge = start_edge(
        policy(&Tp::Udp.carrier(acme.port), &Tp::Tcp.carrier(globex.port)),
        &["127.0.0.1/32"],
        |_| {},
    )
    .await;
    (edge, acme, globex)
}

/// Status codes of the responses read on a fresh TCP connection after sending `data`.
async fn tcp_exchange(edge: SocketAddr, data: &[u8], wait: Duration) -> Vec<u16> {
    let mut s = TcpStream::connect(edge).await.expect("connect");
    s.write_all(data).await.expect("write");
    let mut buf = BytesMut::new();
    let mut codes = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(end, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
        while let Ok(Some(f)) = next_frame(&mut buf) {
            if let Frame::Message(m) = f {
                codes.push(status(&m));
            }
        }
    }
    codes
}

fn status(m: &[u8]) -> u16 {
    std::str::from_utf8(&m[8..11.min(m.len())])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn rfc4475_over_tcp_gets_the_rfc_verdicts() {
    let (edge, acme, globex) = torture_edge().await;
    let mut set = tokio::task::JoinSet::new();
    for (name, want) in VERDICTS {
        let addr = edge.handle.tcp_addr();
        set.spawn(async move {
            (
                name,
                want,
                tcp_exchange(addr, &load(name), Duration::from_millis(600)).await,
            )
        });
    }
    let mut wrong = Vec::new();
    while let Some(r) = set.join_next().await {
        let (name, want, codes) = r.expect("exchange task");
        if codes.first().copied() != *want {
            wrong.push(format!("{name}: want {want:?}, got {codes:?}"));
        }
    }
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
    assert_eq!(
        acme.count() + globex.count(),
        0,
        "something was relayed to a carrier"
    );
    assert_alive(&edge).await;
    edge.stop().await;
}

#[tokio::test]
async fn rfc4475_over_udp_never_relays_or_crashes() {
    let (edge, acme, globex) = torture_edge().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for (name, _) in VERDICTS {
        sock.send_to(&load(name), edge.addr()).await.expect("send");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        acme.count() + globex.count(),
        0,
        "something was relayed to a carrier"
    );
    // Every 3.1.2 request (and the invalid 3.3 ones) was refused or dropped.
    let rejected = edge.metric("c2c_sip_malformed_total", &[("action", "rejected")]);
    let dropped = edge.metric("c2c_sip_malformed_total", &[("action", "dropped")]);
    assert!(rejected >= 20.0, "rejected {rejected}");
    assert!(dropped >= 3.0, "dropped {dropped}");
    assert_alive(&edge).await;
    edge.stop().await;
}

/// The edge still answers an OPTIONS (over UDP, with rport so the answer comes back).
async fn assert_alive(edge: &Edge) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = sock.local_addr().expect("addr").port();
    let msg = format!(
        "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKalive;rport\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:e@127.0.0.1>\r\nCall-ID: alive\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        edge.addr()
    );
    sock.send_to(msg.as_bytes(), edge.addr())
        .await
        .expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("edge answers")
        .expect("recv");
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Answers over UDP to a socket that asked for rport, so every answer comes back here.
async fn udp_exchange(edge: SocketAddr, data: &[u8]) -> Option<Bytes> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.send_to(data, edge).await.expect("send");
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(Bytes::copy_from_slice(&buf[..n])),
        _ => None,
    }
}

fn req(method: &str, extra: &str) -> String {
    format!(
        "{method} sip:{NUMBER}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmal{method};rport\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{NUMBER}@127.0.0.1>\r\nCall-ID: mal-{method}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn other_malformed_and_hostile_input() {
    let (edge, acme, globex) = torture_edge().await;
    let a = edge.addr();
    // Garbage, NULs, oversize, header without colon, too many headers: no answer, or 400.
    assert!(udp_exchange(a, b"\x00\x01\x02garbage\xff\xfe")
        .await
        .is_none());
    assert!(udp_exchange(a, &vec![b'A'; 17 * 1024]).await.is_none());
    let no_colon = req("OPTIONS", "ThisHasNoColon\r\n");
    assert!(udp_exchange(a, no_colon.as_bytes())
        .await
        .unwrap()
        .starts_with(b"SIP/2.0 400 "));
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert!(udp_exchange(a, req("OPTIONS", &many).as_bytes())
        .await
        .is_none());
    let long_uri = format!("INVITE sip:{}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKlong;rport\r\n\r\n", "9".repeat(600));
    assert!(udp_exchange(a, long_uri.as_bytes())
        .await
        .unwrap()
        .starts_with(b"SIP/2.0 400 "));
    // Keepalive: nothing over UDP, a CRLF pong over TCP.
    assert!(udp_exchange(a, b"\r\n\r\n").await.is_none());
    let mut s = TcpStream::connect(edge.handle.tcp_addr())
        .await
        .expect("connect");
    s.write_all(b"\r\n\r\n").await.expect("ping");
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut pong))
        .await
        .expect("pong")
        .expect("read");
    assert_eq!(&pong, b"\r\n");
    // Stray CANCEL / BYE / ACK / response.
    assert!(udp_exchange(a, req("CANCEL", "").as_bytes())
        .await
        .unwrap()
        .starts_with(b"SIP/2.0 481 "));
    assert!(udp_exchange(a, req("BYE", "").as_bytes())
        .await
        .unwrap()
        .starts_with(b"SIP/2.0 481 "));
    assert!(udp_exchange(a, req("ACK", "").as_bytes()).await.is_none());
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-c2c-nothing\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    assert!(udp_exchange(a, stray.as_bytes()).await.is_none());
    assert_eq!(edge.metric("c2c_sip_unmatched_responses_total", &[]), 1.0);
    // Scanners are dropped silently.
    let scan = req("OPTIONS", "User-Agent: friendly-scanner\r\n");
    assert!(udp_exchange(a, scan.as_bytes()).await.is_none());
    assert_eq!(edge.metric("c2c_sip_scanners_dropped_total", &[]), 1.0);
    // Max-Forwards 0 on an INVITE: 483, never relayed.
    let mf0 =
        req("INVITE", "X-C2C-Tenant: acme\r\n").replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert!(udp_exchange(a, mf0.as_bytes())
        .await
        .unwrap()
        .starts_with(b"SIP/2.0 483 "));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(acme.count() + globex.count(), 0);
    assert_alive(&edge).await;
    edge.stop().await;
}
