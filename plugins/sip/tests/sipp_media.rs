//! Anchored calls through the edge with sipp on both sides playing real RTP
//! (`play_pcap_audio` of sipp's own G.711 capture): LiveKit on 127.0.0.2 (media on
//! 127.0.0.2), the carrier on 127.0.0.1 with its media on 127.0.0.3. The scenarios check
//! that each side's SDP names only the edge; the tests check what the relay counted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use c2c_sip::{RelayReport, Side, SipConfig};
use c2c_tenancy::Policy;
use common::*;

const PLAY: &str =
    r#"<nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>"#;

/// [`policy`] with acme's trunk anchored.
fn anchored_policy(carrier: &str) -> Policy {
    anchored(policy(carrier, &Tp::Udp.carrier(free_port("127.0.0.1"))))
}

/// An even media port for sipp on `ip` (sipp also takes the one two above for video).
fn media_port(ip: &str) -> String {
    (free_port(ip) & !1).to_string()
}

/// Something to do while the call is up, this long after it started, given the first
/// port of the edge's media range.
type During = Option<(Duration, Box<dyn FnOnce(u16) + Send>)>;

struct Run {
    edge: Edge,
    uac: i32,
    uas: i32,
}

/// One anchored call: `carrier` / `livekit` scenarios (with their substitutions),
/// `tweak` applied to the edge's settings, `during` run while the call is up (after
/// `during_at`).
async fn run(
    carrier: (&str, &[(&str, &str)]),
    livekit: (&str, &[(&str, &str)]),
    call: &str,
    tweak: fn(&mut SipConfig),
    during: During,
    echo: bool,
) -> Run {
    require_sipp();
    let uas_port = free_port("127.0.0.1");
    let base = free_port("127.0.0.1") & !1;
    let edge = start_edge(
        anchored_policy(&Tp::Udp.carrier(uas_port)),
        &["127.0.0.2/32"],
        |c| {
            c.media.port_min = base;
            c.media.port_max = base + 7;
            tweak(c);
        },
    )
    .await;
    let dir = edge.dir.path().to_path_buf();
    let uas_sf = filled(&dir, carrier.0, carrier.1);
    let lk_sf = filled(&dir, livekit.0, livekit.1);
    let carrier_media = media_port("127.0.0.3");
    let mut args = vec!["-mi", "127.0.0.3", "-mp", carrier_media.as_str()];
    if echo {
        args.push("-rtp_echo");
    }
    let uas = Sipp::uas_with(&dir, &uas_sf, uas_port, &args);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lk_media = media_port("127.0.0.2");
    let uac = Sipp::uac_with(
        &dir,
        Uac {
            scenario: &lk_sf,
            tp: Tp::Udp,
            ip: "127.0.0.2",
            edge: edge.addr(),
            user: NUMBER,
            call_id: call,
            tenant: "acme",
        },
        &["-mi", "127.0.0.2", "-mp", &lk_media],
    );
    if let Some((at, f)) = during {
        tokio::time::sleep(at).await;
        f(base);
    }
    let uac = uac.wait().await;
    let uas = uas.wait().await;
    Run { edge, uac, uas }
}

/// Scenario `name` with its `@KEY@` placeholders filled (XML fragments included).
fn filled(dir: &std::path::Path, name: &str, subs: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(scenario(name)).unwrap();
    for (k, v) in subs {
        text = text.replace(&format!("@{k}@"), v);
    }
    // The SDP names sipp's real media address unless a test says otherwise.
    text = text.replace("@SDP_IP@", "[media_ip]");
    let out = dir.join(format!("filled-{name}"));
    std::fs::write(&out, text).unwrap();
    out
}

async fn report(edge: &Edge, call: &str) -> RelayReport {
    let obs = edge.observer.clone();
    eventually(5, || obs.report(call).is_some()).await;
    let r = edge.observer.report(call).unwrap();
    eprintln!("{call}: {r:?}");
    r
}

async fn ports_back(edge: &Edge) {
    for _ in 0..50 {
        if edge.metric("c2c_sip_media_port_pairs_in_use", &[]) == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("media ports not given back");
}

/// Dead air and one-way audio after a second.
fn quick_dead_air(c: &mut SipConfig) {
    c.media.relay.media_timeout = Duration::from_secs(1);
    c.media.relay.one_way_after = Duration::from_secs(1);
}

/// An RTP-shaped packet (version 2, PCMA) from nobody in the call.
fn stray(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef]);
    p.extend_from_slice(&[0xd5; 160]);
    p
}

#[tokio::test]
async fn an_anchored_call_carries_audio_both_ways_and_drops_strangers() {
    let call = "media-both";
    let r = run(
        (
            "carrier_media_answer.xml",
            &[
                ("EARLY_AUDIO", r#"<pause milliseconds="100"/>"#),
                ("ANSWER_AUDIO", PLAY),
            ],
        ),
        ("livekit_media_call.xml", &[("TALK_MS", "2500")]),
        call,
        |_| {},
        Some((
            Duration::from_millis(1800),
            Box::new(|base: u16| {
                // A third party on both of the call's RTP ports (the carrier's pair is
                // the range's first, LiveKit's the next): 10 RTP-shaped packets and 5
                // that are not RTP at all, each.
                let s = std::net::UdpSocket::bind("127.0.0.5:0").unwrap();
                for port in [base, base + 2] {
                    for i in 0..10 {
                        s.send_to(&stray(i), ("127.0.0.1", port)).unwrap();
                    }
                    for _ in 0..5 {
                        s.send_to(b"not rtp at all", ("127.0.0.1", port)).unwrap();
                    }
                }
            }),
        )),
        true,
    )
    .await;
    assert_eq!((r.uac, r.uas), (0, 0), "sipp scenarios (SDP checks) passed");
    let rep = report(&r.edge, call).await;
    // Both directions carried the capture's packets (about 50 a second). The carrier
    // echoes what reaches it (`-rtp_echo`), so its direction carries its own capture and
    // LiveKit's audio back: LiveKit's packets got through the relay to the carrier.
    assert!(rep.from_livekit.packets >= 40, "{rep:?}");
    assert!(
        rep.from_carrier.packets >= rep.from_livekit.packets + 40,
        "{rep:?}"
    );
    assert_eq!(rep.from_livekit.lost, 0, "{rep:?}");
    assert_eq!(rep.from_carrier.not_rtp, 0);
    assert_eq!(rep.strangers, 30, "{rep:?}");
    assert_eq!(rep.early_media_started_ms, None, "no RTP before the 200");
    assert!(!rep.media_timeout && rep.one_way.is_none(), "{rep:?}");
    let trunk = [("trunk", "airtel-mum")];
    assert_eq!(r.edge.metric("c2c_sip_media_calls_total", &trunk), 1.0);
    assert_eq!(
        r.edge.metric(
            "c2c_sip_media_dropped_total",
            &[("trunk", "airtel-mum"), ("reason", "stranger")]
        ),
        30.0
    );
    assert!(
        r.edge.metric(
            "c2c_sip_media_packets_total",
            &[("trunk", "airtel-mum"), ("direction", "from_carrier")]
        ) >= 40.0
    );
    ports_back(&r.edge).await;
    r.edge.stop().await;
}

#[tokio::test]
async fn early_media_before_the_answer_is_timed() {
    let call = "media-early";
    let r = run(
        (
            "carrier_media_answer.xml",
            &[
                (
                    "EARLY_AUDIO",
                    &format!(r#"{PLAY}<pause milliseconds="1500"/>"#),
                ),
                ("ANSWER_AUDIO", r#"<pause milliseconds="10"/>"#),
            ],
        ),
        ("livekit_media_call.xml", &[("TALK_MS", "1000")]),
        call,
        |_| {},
        None,
        false,
    )
    .await;
    assert_eq!((r.uac, r.uas), (0, 0));
    let rep = report(&r.edge, call).await;
    assert!(rep.early_media_started_ms.is_some(), "{rep:?}");
    let early = rep.early_media_ms.unwrap();
    assert!(
        (1_000.0..3_000.0).contains(&early),
        "early media ran {early} ms"
    );
    assert_eq!(
        r.edge.metric(
            "c2c_sip_media_events_total",
            &[("trunk", "airtel-mum"), ("event", "early_media")]
        ),
        1.0
    );
    ports_back(&r.edge).await;
    r.edge.stop().await;
}

#[tokio::test]
async fn an_announcement_then_busy_is_early_media_without_an_answer() {
    let call = "media-busy";
    let r = run(
        ("carrier_media_busy.xml", &[]),
        ("livekit_media_busy.xml", &[]),
        call,
        |_| {},
        None,
        false,
    )
    .await;
    assert_eq!((r.uac, r.uas), (0, 0));
    let rep = report(&r.edge, call).await;
    assert!(rep.early_media_started_ms.is_some(), "{rep:?}");
    assert_eq!(rep.early_media_ms, None, "never answered");
    assert!(rep.from_carrier.packets >= 20, "{rep:?}");
    let events = r.edge.observer.events();
    assert!(
        events.contains(&format!("end {call} Some(486)")),
        "{events:?}"
    );
    ports_back(&r.edge).await;
    r.edge.stop().await;
}

#[tokio::test]
async fn a_carrier_silent_after_the_answer_is_dead_air_and_one_way_audio() {
    let call = "media-dead";
    let r = run(
        (
            "carrier_media_answer.xml",
            &[
                ("EARLY_AUDIO", r#"<pause milliseconds="100"/>"#),
                ("ANSWER_AUDIO", r#"<pause milliseconds="10"/>"#),
            ],
        ),
        ("livekit_media_call.xml", &[("TALK_MS", "2500")]),
        call,
        quick_dead_air,
        None,
        false,
    )
    .await;
    assert_eq!((r.uac, r.uas), (0, 0));
    let rep = report(&r.edge, call).await;
    assert!(rep.media_timeout, "{rep:?}");
    assert_eq!(rep.one_way, Some(Side::Carrier), "{rep:?}");
    assert_eq!(rep.from_carrier.packets, 0);
    let events = r.edge.observer.events();
    assert!(
        events.contains(&format!("media {call} MediaTimeout")),
        "{events:?}"
    );
    assert!(
        events.contains(&format!("media {call} OneWayAudio {{ silent: Carrier }}")),
        "{events:?}"
    );
    assert_eq!(
        r.edge.metric(
            "c2c_sip_media_events_total",
            &[("trunk", "airtel-mum"), ("event", "media_timeout")]
        ),
        1.0
    );
    ports_back(&r.edge).await;
    r.edge.stop().await;
}

/// Dead air, and then no BYE from either side (both vanished): the edge forgets the
/// dialog 64*T1 after the dead air instead of holding its ports until
/// `max_dialog_duration` (T1 is 50 ms here: 3.2 s).
#[tokio::test]
async fn an_anchored_call_nobody_hangs_up_after_dead_air_gives_its_ports_back() {
    let call = "media-vanish";
    let r = run(
        ("carrier_media_vanish.xml", &[("TALK_MS", "1500")]),
        ("livekit_media_vanish.xml", &[("TALK_MS", "1500")]),
        call,
        |c| {
            quick_dead_air(c);
            c.timers.t1 = Duration::from_millis(50);
        },
        None,
        false,
    )
    .await;
    assert_eq!((r.uac, r.uas), (0, 0));
    // Both sides are gone without a BYE; dead air came ~1 s after the answer.
    assert_eq!(r.edge.metric("c2c_sip_media_port_pairs_in_use", &[]), 2.0);
    assert!(r
        .edge
        .observer
        .events()
        .contains(&format!("media {call} MediaTimeout")));
    let rep = report(&r.edge, call).await;
    assert!(rep.media_timeout, "{rep:?}");
    ports_back(&r.edge).await;
    assert_eq!(
        r.edge.metric(
            "c2c_sip_media_events_total",
            &[("trunk", "airtel-mum"), ("event", "dead_air_released")]
        ),
        1.0
    );
    assert_eq!(r.edge.metric("c2c_sip_dialogs", &[]), 0.0);
    r.edge.stop().await;
}

#[tokio::test]
async fn a_carrier_behind_nat_is_reached_where_its_packets_come_from() {
    // The carrier's SDP names an address nothing listens on (a private address behind
    // NAT, as it were); its RTP comes from its real address, where it also echoes what
    // reaches it. The edge latches the real source: LiveKit's audio reaches the carrier
    // and comes back.
    let call = "media-nat";
    let r = run(
        (
            "carrier_media_answer.xml",
            &[
                ("SDP_IP", "127.0.0.9"),
                ("EARLY_AUDIO", r#"<pause milliseconds="100"/>"#),
                ("ANSWER_AUDIO", PLAY),
            ],
        ),
        ("livekit_media_call.xml", &[("TALK_MS", "2500")]),
        call,
        |_| {},
        None,
        true,
    )
    .await;
    assert_eq!((r.uac, r.uas), (0, 0));
    let rep = report(&r.edge, call).await;
    assert!(rep.from_livekit.packets >= 40, "{rep:?}");
    // Its own capture and, from the latch on, LiveKit's audio echoed back.
    assert!(
        rep.from_carrier.packets >= rep.from_livekit.packets + 30,
        "{rep:?}"
    );
    ports_back(&r.edge).await;
    r.edge.stop().await;
}
