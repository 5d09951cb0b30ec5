//! Real SIP dialling (`SimConfig::sip_outbound`): the simulator places each
//! CreateSIPParticipant (made with the real livekit-api SIPClient) as a SIP call
//! to sipp, which stands in for the trunk's proxy/carrier and checks what
//! arrives with regexp actions (dialled Request-URI and To, the X- headers,
//! User-Agent, Via, route set on ACK/BYE...). sipp exits non-zero when a check or
//! the expected message flow fails.
//!
//! Needs `sipp` (Debian `sip-tester`).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{left_event, status_sequence, KEY, SECRET};
use livekit_api::services::room::RoomClient;
use livekit_api::services::sip::{CreateSIPParticipantOptions, SIPClient};
use livekit_api::services::{ServerError, ServiceError, SipCallError};
use livekit_protocol::DisconnectReason;
use livekit_sim::{SimHandle, Simulator, SipOutbound, SipTransport};

const ROOM: &str = "c2c-0123456789abcdef0123456789abcdef";
const IDENTITY: &str = "sip-customer";
/// What the gateway dials: dial prefix + number.
const NUMBER: &str = "99119530251797";
const CALL_ID: &str = "call_0123456789abcdef";
const TENANT: &str = "acme";

fn require_sipp() {
    let ok = std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "sipp is required for these tests: apt-get install -y sip-tester"
    );
}

/// A port free for `tp`, below the kernel's ephemeral range (an outgoing socket can take
/// a freed ephemeral port before sipp binds it); a per-process counter spreads tests.
fn free_port(tp: SipTransport) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..4096 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 12_000 + (seed.wrapping_add(n.wrapping_mul(4099)) % 20_000) as u16;
        let free = match tp {
            SipTransport::Udp => std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
            SipTransport::Tcp => std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        };
        if free {
            return port;
        }
    }
    panic!("no free port");
}

/// True once something listens on 127.0.0.1:`port` (Linux /proc).
fn bound(port: u16, tp: SipTransport) -> bool {
    let (file, want_listen) = match tp {
        SipTransport::Udp => ("/proc/net/udp", false),
        SipTransport::Tcp => ("/proc/net/tcp", true),
    };
    let needle = format!("0100007F:{port:04X}");
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1) == Some(&needle.as_str()) && (!want_listen || cols.get(3) == Some(&"0A"))
        })
}

fn unique_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "livekit-sim-sipp/{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// sipp as the trunk (UAS) on 127.0.0.1.
struct Sipp {
    child: tokio::process::Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Sipp {
    async fn uas(scenario: &str, tp: SipTransport, subs: &[(&str, &str)]) -> Sipp {
        require_sipp();
        let port = free_port(tp);
        let dir = unique_dir(scenario.trim_end_matches(".xml"));
        let mut text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/scenarios")
                .join(scenario),
        )
        .unwrap();
        let port_s = port.to_string();
        let (tp_name, tp_param, contact, contact_re) = match tp {
            SipTransport::Udp => (
                "UDP",
                "",
                // Unreachable on purpose: ACK/BYE must go by the Record-Route.
                "127.0.0.1:9".to_owned(),
                r"127\.0\.0\.1:9".to_owned(),
            ),
            SipTransport::Tcp => (
                "TCP",
                ";transport=tcp",
                format!("127.0.0.1:{port};transport=tcp"),
                format!(r"127\.0\.0\.1:{port};transport=tcp"),
            ),
        };
        let mut all: Vec<(&str, &str)> = vec![
            ("NUMBER", NUMBER),
            ("CALLID", CALL_ID),
            ("TENANT", TENANT),
            ("PORT", &port_s),
            ("TP", tp_name),
            ("TPPARAM", tp_param),
            ("CONTACT_RE", &contact_re),
            ("CONTACT", &contact),
        ];
        all.extend_from_slice(subs);
        for (k, v) in all {
            text = text.replace(&format!("@{k}@"), v);
        }
        assert!(!text.contains("@NUMBER@"), "unfilled placeholder");
        let path = dir.join(scenario);
        std::fs::write(&path, text).unwrap();
        let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
        let child = tokio::process::Command::new("sipp")
            .args([
                "-sf",
                &path.to_string_lossy(),
                "-i",
                "127.0.0.1",
                "-p",
                &port_s,
                "-t",
                match tp {
                    SipTransport::Udp => "u1",
                    SipTransport::Tcp => "t1",
                },
                "-m",
                "1",
                "-nostdin",
                "-trace_err",
                "-timeout",
                "20",
                "-timeout_error",
                "-trace_msg",
                "-message_file",
                &dir.join("messages.log").to_string_lossy(),
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sipp");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !bound(port, tp) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "sipp did not bind {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Sipp {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Waits for sipp to finish; returns the message log. Panics (with sipp's
    /// error log) unless every check and the whole flow passed.
    async fn success(mut self) -> String {
        let status = tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("sipp finishes")
            .expect("sipp status");
        let messages = std::fs::read_to_string(self.dir.join("messages.log")).unwrap_or_default();
        if status.code() != Some(0) {
            let mut errors = String::new();
            for e in std::fs::read_dir(&self.dir).unwrap().flatten() {
                if e.file_name().to_string_lossy().ends_with("errors.log") {
                    errors += &std::fs::read_to_string(e.path()).unwrap_or_default();
                }
            }
            panic!(
                "sipp exited {:?} (logs in {}):\n{errors}\n--- messages ---\n{messages}",
                status.code(),
                self.dir.display()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        messages
    }
}

async fn sim(proxy: SocketAddr, tp: SipTransport, code_attribute: bool) -> SimHandle {
    let mut cfg = common::config();
    cfg.sip_outbound = Some(match tp {
        SipTransport::Udp => SipOutbound::udp(proxy),
        SipTransport::Tcp => SipOutbound::tcp(proxy),
    });
    cfg.sip_disconnect_code_attribute = code_attribute;
    Simulator::start(cfg).await.unwrap()
}

fn options(wait: bool, ring: Duration) -> CreateSIPParticipantOptions {
    let mut headers = HashMap::new();
    headers.insert("X-C2C-Call-Id".to_owned(), CALL_ID.to_owned());
    headers.insert("X-C2C-Tenant".to_owned(), TENANT.to_owned());
    CreateSIPParticipantOptions {
        participant_identity: IDENTITY.into(),
        sip_number: Some("1600".into()),
        hide_phone_number: Some(true),
        ringing_timeout: Some(ring),
        wait_until_answered: Some(wait),
        headers: Some(headers),
        ..Default::default()
    }
}

async fn dial(
    sim: &SimHandle,
    wait: bool,
    ring: Duration,
) -> Result<livekit_protocol::SipParticipantInfo, ServiceError> {
    SIPClient::with_api_key(&sim.url(), KEY, SECRET)
        .create_sip_participant(
            "ST_trunk".into(),
            NUMBER.into(),
            ROOM.into(),
            options(wait, ring),
            None,
        )
        .await
}

async fn left_reason(sim: &SimHandle) -> (DisconnectReason, HashMap<String, String>) {
    let p = left_event(sim, IDENTITY).await.participant.unwrap();
    (
        DisconnectReason::try_from(p.disconnect_reason).unwrap(),
        p.attributes,
    )
}

/// The blocks of sipp's message log that start with `start_line_prefix`.
fn logged<'a>(messages: &'a str, start_line_prefix: &str) -> Vec<&'a str> {
    messages
        .split("-----------------------------------------------")
        .filter_map(|block| {
            let body = block.split_once("\n\n")?.1;
            body.starts_with(start_line_prefix).then_some(body)
        })
        .collect()
}

fn branch_of(message: &str) -> String {
    let via = message
        .lines()
        .find(|l| l.starts_with("Via:"))
        .expect("Via");
    via.split(';')
        .find_map(|p| p.strip_prefix("branch="))
        .expect("branch")
        .to_owned()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn answered_then_delete_room_sends_bye_through_the_route_set() {
    let sipp = Sipp::uas("carrier_answer_sim_bye.xml", SipTransport::Udp, &[]).await;
    let sim = sim(sipp.addr, SipTransport::Udp, false).await;
    let started = std::time::Instant::now();
    let info = dial(&sim, true, Duration::from_secs(10)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "before answer"
    );
    let p = &sim.participants(ROOM)[0];
    assert_eq!(p.sid, info.participant_id);
    assert_eq!(p.attributes["sip.callStatus"], "active");
    let sip_call_id = p.attributes["sip.callIDFull"].clone();
    assert_eq!(sip_call_id.len(), 32);

    RoomClient::with_api_key(&sim.url(), KEY, SECRET)
        .delete_room(ROOM)
        .await
        .unwrap();
    let messages = sipp.success().await;
    let (reason, _) = left_reason(&sim).await;
    assert_eq!(reason, DisconnectReason::RoomDeleted);
    // The ACK for a 2xx is a new transaction; the BYE another one.
    let invite = branch_of(logged(&messages, "INVITE ")[0]);
    let ack = branch_of(logged(&messages, "ACK ")[0]);
    let bye = branch_of(logged(&messages, "BYE ")[0]);
    assert!(invite != ack && ack != bye && invite != bye);
    assert!(messages.contains(&format!("Call-ID: {sip_call_id}")));
    sim.shutdown().await;
}

#[tokio::test]
async fn answered_then_carrier_hangs_up() {
    let sipp = Sipp::uas("carrier_answer_carrier_bye.xml", SipTransport::Udp, &[]).await;
    let sim = sim(sipp.addr, SipTransport::Udp, false).await;
    dial(&sim, false, Duration::from_secs(10)).await.unwrap();
    let mut seq = status_sequence(&sim, ROOM, IDENTITY, Duration::from_secs(15)).await;
    let (reason, attributes) = left_reason(&sim).await;
    seq.push(attributes["sip.callStatus"].clone());
    assert_eq!(seq, strings(&["dialing", "ringing", "active", "hangup"]));
    assert_eq!(reason, DisconnectReason::ClientInitiated);
    sipp.success().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn tcp_answered_then_carrier_hangs_up() {
    let sipp = Sipp::uas("carrier_answer_carrier_bye.xml", SipTransport::Tcp, &[]).await;
    let sim = sim(sipp.addr, SipTransport::Tcp, false).await;
    dial(&sim, true, Duration::from_secs(10)).await.unwrap();
    let (reason, attributes) = left_reason(&sim).await;
    assert_eq!(attributes["sip.callStatus"], "hangup");
    assert_eq!(reason, DisconnectReason::ClientInitiated);
    sipp.success().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn tcp_answered_then_delete_room_sends_bye() {
    let sipp = Sipp::uas("carrier_answer_sim_bye.xml", SipTransport::Tcp, &[]).await;
    let sim = sim(sipp.addr, SipTransport::Tcp, false).await;
    dial(&sim, true, Duration::from_secs(10)).await.unwrap();
    RoomClient::with_api_key(&sim.url(), KEY, SECRET)
        .delete_room(ROOM)
        .await
        .unwrap();
    sipp.success().await;
    assert_eq!(left_reason(&sim).await.0, DisconnectReason::RoomDeleted);
    sim.shutdown().await;
}

#[tokio::test]
async fn busy_486_is_user_rejected_with_the_sip_status() {
    let sipp = Sipp::uas(
        "carrier_reject.xml",
        SipTransport::Udp,
        &[("CODE", "486"), ("REASON", "Busy Here")],
    )
    .await;
    let sim = sim(sipp.addr, SipTransport::Udp, true).await;
    let err = dial(&sim, true, Duration::from_secs(10)).await.unwrap_err();
    let sip_err = SipCallError::from_error(&err).expect("sip status in meta");
    assert_eq!(sip_err.sip_status_code(), Some(486));
    assert_eq!(sip_err.sip_status(), Some("Busy Here"));
    assert_eq!(sip_err.code(), "resource_exhausted");
    let (reason, attributes) = left_reason(&sim).await;
    assert_eq!(reason, DisconnectReason::UserRejected);
    assert_eq!(attributes["sip.disconnectCode"], "486");
    assert_eq!(attributes["sip.callStatus"], "ringing");
    let messages = sipp.success().await;
    // The ACK for a non-2xx final is hop-by-hop: same branch as the INVITE.
    assert_eq!(
        branch_of(logged(&messages, "ACK ")[0]),
        branch_of(logged(&messages, "INVITE ")[0])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unavailable_503_is_trunk_failure() {
    let sipp = Sipp::uas(
        "carrier_reject.xml",
        SipTransport::Tcp,
        &[("CODE", "503"), ("REASON", "Service Unavailable")],
    )
    .await;
    let sim = sim(sipp.addr, SipTransport::Tcp, false).await;
    dial(&sim, false, Duration::from_secs(10)).await.unwrap();
    let (reason, attributes) = left_reason(&sim).await;
    assert_eq!(reason, DisconnectReason::SipTrunkFailure);
    assert!(!attributes.contains_key("sip.disconnectCode"));
    sipp.success().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn ringing_timeout_cancels_the_invite() {
    let sipp = Sipp::uas("carrier_ring_cancel.xml", SipTransport::Udp, &[]).await;
    let sim = sim(sipp.addr, SipTransport::Udp, false).await;
    let started = std::time::Instant::now();
    let err = dial(&sim, true, Duration::from_millis(1500))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(1500));
    match &err {
        ServiceError::Twirp(ServerError::Twirp(e)) => {
            assert_eq!(e.code, "canceled");
            assert!(!e.meta.contains_key("sip_status_code"));
        }
        other => panic!("{other:?}"),
    }
    let (reason, attributes) = left_reason(&sim).await;
    assert_eq!(reason, DisconnectReason::UserUnavailable);
    assert_eq!(attributes["sip.callStatus"], "ringing");
    let messages = sipp.success().await;
    let invite = branch_of(logged(&messages, "INVITE ")[0]);
    assert_eq!(branch_of(logged(&messages, "CANCEL ")[0]), invite);
    assert_eq!(branch_of(logged(&messages, "ACK ")[0]), invite);
    sim.shutdown().await;
}

/// livekit/sip#106: the callee must stop ringing when the room goes away.
#[tokio::test]
async fn delete_room_while_ringing_cancels() {
    let sipp = Sipp::uas("carrier_ring_cancel.xml", SipTransport::Udp, &[]).await;
    let sim = sim(sipp.addr, SipTransport::Udp, false).await;
    dial(&sim, false, Duration::from_secs(30)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ringing = sim
            .participants(ROOM)
            .first()
            .is_some_and(|p| p.attributes["sip.callStatus"] == "ringing");
        if ringing {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never rang");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    RoomClient::with_api_key(&sim.url(), KEY, SECRET)
        .delete_room(ROOM)
        .await
        .unwrap();
    sipp.success().await;
    assert_eq!(left_reason(&sim).await.0, DisconnectReason::RoomDeleted);
    sim.shutdown().await;
}

/// Nobody answers: INVITE retransmitted at T1, 2T1, 4T1... until timer B (64*T1),
/// then `SIP_TRUNK_FAILURE` and Twirp `canceled`, as livekit/sip's transaction
/// timeout. The call is forgotten after lingering another 64*T1.
#[tokio::test]
async fn no_response_retransmits_then_trunk_failure() {
    let hole = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut outbound = SipOutbound::udp(hole.local_addr().unwrap());
    outbound.t1 = Duration::from_millis(40);
    let mut cfg = common::config();
    cfg.sip_outbound = Some(outbound);
    cfg.sip_disconnect_code_attribute = true;
    let sim = Simulator::start(cfg).await.unwrap();
    let counter = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(4), hole.recv_from(&mut buf)).await
        {
            got.push(buf[..n].to_vec());
        }
        got
    });
    let started = std::time::Instant::now();
    let err = dial(&sim, true, Duration::from_secs(30)).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(64 * 40) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    match &err {
        ServiceError::Twirp(ServerError::Twirp(e)) => {
            assert_eq!(e.code, "canceled");
            assert!(e.msg.contains("transaction"), "{}", e.msg);
        }
        other => panic!("{other:?}"),
    }
    let (reason, attributes) = left_reason(&sim).await;
    assert_eq!(reason, DisconnectReason::SipTrunkFailure);
    assert_eq!(attributes["sip.disconnectCode"], "408");
    let got = counter.await.unwrap();
    // Sent at 0, 1, 3, 7, 15, 31, 63 T1: seven identical INVITEs.
    assert_eq!(got.len(), 7, "INVITE transmissions");
    assert!(got.iter().all(|m| m == &got[0]));
    assert!(got[0].starts_with(format!("INVITE sip:{NUMBER}@").as_bytes()));
    // Lingering ends 64*T1 after the call.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sim.stats().sip_calls != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "call never forgotten"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_sip_headers_are_refused_before_dialling() {
    let hole = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sim = sim(hole.local_addr().unwrap(), SipTransport::Udp, false).await;
    let mut opts = options(false, Duration::from_secs(5));
    opts.headers = Some(HashMap::from([(
        "X-Evil".to_owned(),
        "x\r\nVia: SIP/2.0/UDP 10.0.0.1".to_owned(),
    )]));
    let err = SIPClient::with_api_key(&sim.url(), KEY, SECRET)
        .create_sip_participant("ST_trunk".into(), NUMBER.into(), ROOM.into(), opts, None)
        .await
        .unwrap_err();
    match &err {
        ServiceError::Twirp(ServerError::Twirp(e)) => assert_eq!(e.code, "invalid_argument"),
        other => panic!("{other:?}"),
    }
    assert!(sim.participants(ROOM).is_empty());
    assert_eq!(sim.stats().sip_calls, 0);
    sim.shutdown().await;
}

/// A hand-driven proxy: responses with compact names, folded lines, LF-only line
/// ends and comma-joined Record-Route; then a BYE from the far end. Also the
/// stateless answers for unknown Call-IDs.
#[tokio::test]
async fn folded_compact_responses_from_a_raw_proxy() {
    let proxy = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let sim = sim(proxy_addr, SipTransport::Udp, false).await;
    let sim_sip = sim.sip_local_addr().unwrap();
    let mut buf = vec![0u8; 65536];
    let mut recv = async |want: &str| -> String {
        loop {
            let (n, from) = tokio::time::timeout(Duration::from_secs(5), proxy.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {want}"))
                .unwrap();
            assert_eq!(from, sim_sip);
            let text = String::from_utf8(buf[..n].to_vec()).unwrap();
            if text.starts_with(want) {
                return text;
            }
        }
    };
    let header = |msg: &str, name: &str| -> String {
        msg.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} in {msg}"))
            .to_owned()
    };

    let sip = SIPClient::with_api_key(&sim.url(), KEY, SECRET);
    let dialled = tokio::spawn(async move {
        sip.create_sip_participant(
            "ST_trunk".into(),
            NUMBER.into(),
            ROOM.into(),
            options(true, Duration::from_secs(10)),
            None,
        )
        .await
    });
    let invite = recv("INVITE ").await;
    let (via, from, call_id) = (
        header(&invite, "Via"),
        header(&invite, "From"),
        header(&invite, "Call-ID"),
    );
    let ringing = format!(
        "SIP/2.0 180 Ringing\nv: {via}\nf: {from}\nt: <sip:{NUMBER}@{proxy_addr}>\n\t;tag=far\n\
         i: {call_id}\nCSeq : 1 INVITE\nl: 0\n\n"
    );
    proxy.send_to(ringing.as_bytes(), sim_sip).await.unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\r\nv: {via}\r\nf: {from}\r\nt: <sip:{NUMBER}@{proxy_addr}>;tag=far\r\n\
         i: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Record-Route: <sip:{proxy_addr};lr;r=2>,\r\n  <sip:{proxy_addr};lr;r=1>\r\n\
         m: <sip:callee@10.255.255.1:5060>\r\nc: application/sdp\r\nl: 5\r\n\r\nv=0\r\n"
    );
    proxy.send_to(ok.as_bytes(), sim_sip).await.unwrap();
    let ack = recv("ACK ").await;
    assert!(
        ack.starts_with("ACK sip:callee@10.255.255.1:5060 SIP/2.0\r\n"),
        "{ack}"
    );
    let routes: Vec<&str> = ack.lines().filter(|l| l.starts_with("Route: ")).collect();
    assert_eq!(
        routes,
        vec![
            format!("Route: <sip:{proxy_addr};lr;r=1>"),
            format!("Route: <sip:{proxy_addr};lr;r=2>")
        ]
    );
    dialled.await.unwrap().unwrap();
    assert_eq!(
        sim.participants(ROOM)[0].attributes["sip.callStatus"],
        "active"
    );

    // The far end hangs up.
    let bye = format!(
        "BYE sip:livekit@{sim_sip} SIP/2.0\r\nVia: SIP/2.0/UDP {proxy_addr};branch=z9hG4bKfar1\r\n\
         From: <sip:{NUMBER}@{proxy_addr}>;tag=far\r\nTo: {from}\r\nCall-ID: {call_id}\r\n\
         CSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    proxy.send_to(bye.as_bytes(), sim_sip).await.unwrap();
    let ok = recv("SIP/2.0 200 OK").await;
    assert!(ok.contains("CSeq: 7 BYE"), "{ok}");
    assert!(ok.contains("branch=z9hG4bKfar1"), "{ok}");
    let (reason, attributes) = left_reason(&sim).await;
    assert_eq!(reason, DisconnectReason::ClientInitiated);
    assert_eq!(attributes["sip.callStatus"], "hangup");
    // A retransmitted BYE is answered again while the call lingers.
    proxy.send_to(bye.as_bytes(), sim_sip).await.unwrap();
    recv("SIP/2.0 200 OK").await;

    // Unknown Call-IDs: OPTIONS 200, anything else 481, garbage ignored.
    proxy.send_to(b"\r\n\r\n", sim_sip).await.unwrap();
    proxy.send_to(b"NOT SIP AT ALL", sim_sip).await.unwrap();
    let stray = |method: &str| {
        format!(
            "{method} sip:livekit@{sim_sip} SIP/2.0\r\nVia: SIP/2.0/UDP {proxy_addr};branch=z9hG4bKs{method}\r\n\
             From: <sip:x@{proxy_addr}>;tag=s\r\nTo: <sip:livekit@{sim_sip}>\r\nCall-ID: unknown-{method}\r\n\
             CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    proxy
        .send_to(stray("OPTIONS").as_bytes(), sim_sip)
        .await
        .unwrap();
    let ok = recv("SIP/2.0 ").await;
    assert!(
        ok.starts_with("SIP/2.0 200 OK") && ok.contains("CSeq: 1 OPTIONS"),
        "{ok}"
    );
    proxy
        .send_to(stray("INFO").as_bytes(), sim_sip)
        .await
        .unwrap();
    let nope = recv("SIP/2.0 ").await;
    assert!(nope.starts_with("SIP/2.0 481 "), "{nope}");
    assert!(nope.contains(";tag="), "481 carries a To tag: {nope}");
    sim.shutdown().await;
}
