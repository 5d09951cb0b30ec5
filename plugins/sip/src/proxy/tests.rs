//! The proxy core driven directly (no sockets, virtual time): inbound classification,
//! admission, hold (180 refresh, expiry), forward, reject and cancel.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use c2c_tenancy::{KeyRing, Policy, Tenant};
use tokio::time::Instant;

use super::*;
use crate::inbound::InboundError;
use crate::message::{decode, Decoded};
use crate::observer::{InboundCall, InboundGone};
use crate::parse::uri as parse_uri;
use crate::sources::StaticPolicy;

mod abandon;
mod forward;
mod media;

const DID: &str = "+918045678901";
const CARRIER: &str = "127.0.0.1:5099";
const LIVEKIT: &str = "127.0.0.2:5070";

struct Open;

impl OutboundGate for Open {
    fn check(&self, _: &c2c_tenancy::Tenant) -> Result<(), c2c_dlt::DltPending> {
        Ok(())
    }

    fn check_call(
        &self,
        _: &c2c_tenancy::DltRules,
        _: &c2c_tenancy::Tenant,
        _: &c2c_dlt::CallFacts<'_>,
    ) -> Result<(), c2c_dlt::DltRefusal> {
        Ok(())
    }
}

/// The example policy; `acme`'s trunks take inbound calls from `sources` when given.
fn policy(sources: Option<&[&str]>) -> Policy {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut p = c2c_tenancy::load_dir(&dir).unwrap();
    let gateway = p.gateway.clone();
    let mut tenants: BTreeMap<String, Arc<Tenant>> = std::mem::take(&mut p.tenants);
    drop(p);
    if let Some(sources) = sources {
        let acme = tenants.remove("acme").unwrap();
        let mut acme = Arc::try_unwrap(acme).unwrap();
        for t in &mut acme.trunks {
            t.sources = sources.iter().map(|s| s.to_string()).collect();
        }
        tenants.insert("acme".into(), Arc::new(acme));
    }
    Policy::new(gateway, tenants, KeyRing::default())
}

struct Core {
    proxy: Proxy,
    registry: prometheus::Registry,
    now: Instant,
}

fn core(sources: Option<&[&str]>, tweak: impl FnOnce(&mut SipConfig)) -> Core {
    core_with(policy(sources), tweak)
}

fn core_with(policy: Policy, tweak: impl FnOnce(&mut SipConfig)) -> Core {
    let mut cfg = SipConfig::new("127.0.0.1:5060".parse().unwrap());
    cfg.allow = vec![crate::config::AllowedRegion {
        region: "singapore".into(),
        sources: vec!["127.0.0.2/32".parse().unwrap()],
    }];
    cfg.timers.t1 = Duration::from_millis(50);
    cfg.timers.t2 = Duration::from_millis(400);
    tweak(&mut cfg);
    let registry = prometheus::Registry::new();
    let metrics = SipMetrics::register(&registry).unwrap();
    let (resolver, _rx) = Resolver::new();
    let policy: Arc<dyn PolicySource> = Arc::new(StaticPolicy(Arc::new(policy)));
    let carriers = Arc::new(CarrierIps::new(policy.clone(), resolver.clone()));
    let me = Local {
        host: Host::Ip("127.0.0.1".parse().unwrap()),
        port: 5060,
    };
    let proxy = Proxy::new(
        Arc::new(cfg),
        me,
        policy,
        Arc::new(Open),
        metrics,
        resolver,
        carriers,
    )
    .unwrap();
    Core {
        proxy,
        registry,
        now: Instant::now(),
    }
}

fn msg(s: &str) -> SipMsg {
    match decode(Bytes::copy_from_slice(s.as_bytes())) {
        Decoded::Msg(m) => *m,
        other => panic!("{other:?}"),
    }
}

fn udp(a: &str) -> Flow {
    Flow::udp(a.parse::<SocketAddr>().unwrap())
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

/// The carrier's INVITE to `user` (Request-URI and To), with an SDP offer unless `sdp`
/// is false; carries an `X-C2C-Call-Id` the edge must drop.
fn carrier_invite(call: &str, user: &str, sdp: bool) -> String {
    let (ct, body) = if sdp {
        ("Content-Type: application/sdp\r\n", SDP)
    } else {
        ("", "")
    };
    format!(
        "INVITE sip:{user}@127.0.0.1:5060;user=phone SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK{call};rport\r\nFrom: \"Asha K\" <sip:09876543210@carrier.example>;tag=cr{call}\r\nTo: <sip:{user}@127.0.0.1:5060>\r\nCall-ID: {call}\r\nCSeq: 7 INVITE\r\nContact: <sip:c@{CARRIER}>\r\nMax-Forwards: 70\r\nX-C2C-Call-Id: spoofed\r\nX-C2C-Tenant: globex\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn cancel(call: &str, user: &str) -> String {
    format!(
        "CANCEL sip:{user}@127.0.0.1:5060;user=phone SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK{call};rport\r\nFrom: \"Asha K\" <sip:09876543210@carrier.example>;tag=cr{call}\r\nTo: <sip:{user}@127.0.0.1:5060>\r\nCall-ID: {call}\r\nCSeq: 7 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

impl Core {
    fn feed(&mut self, from: &str, text: &str) -> Vec<Action> {
        let m = msg(text);
        self.proxy.handle(self.now, udp(from), &m)
    }

    fn after(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.proxy.on_timers(self.now)
    }

    fn inbound(&self, outcome: &str) -> u64 {
        self.proxy
            .metrics
            .inbound
            .with_label_values(&[outcome])
            .get()
    }

    fn responses(&self, trunk: &str, code: &str) -> u64 {
        self.proxy
            .metrics
            .responses
            .with_label_values(&[trunk, code])
            .get()
    }

    fn forward(
        &mut self,
        call: &str,
        room: &str,
        tenant: &str,
    ) -> Result<Vec<Action>, InboundError> {
        let f = Forward {
            uri: parse_uri(&format!("sip:{LIVEKIT}")).unwrap(),
            target: udp(LIVEKIT),
            room: room.into(),
            call_id: "c2c-call-1".into(),
            tenant: tenant.into(),
        };
        self.proxy.forward_inbound(self.now, call, f)
    }
}

/// (destination, message) of every send.
fn sent(actions: &[Action]) -> Vec<(SocketAddr, SipMsg)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, data } => match decode(data.clone()) {
                Decoded::Msg(m) => Some((to.addr, *m)),
                _ => None,
            },
            Action::Observe(_) | Action::Media(_) => None,
        })
        .collect()
}

fn observed(actions: &[Action]) -> Vec<Observation> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Observe(o) => Some(o.clone()),
            Action::Send { .. } | Action::Media(_) => None,
        })
        .collect()
}

fn code(m: &SipMsg) -> u16 {
    match m.start {
        StartLine::Response { code, .. } => code,
        StartLine::Request { .. } => 0,
    }
}

fn codes(actions: &[Action]) -> Vec<u16> {
    sent(actions).iter().map(|(_, m)| code(m)).collect()
}

fn text(m: &SipMsg) -> String {
    String::from_utf8_lossy(&m.raw).into_owned()
}

/// A held call's report, checked.
fn held(c: &mut Core, call: &str, user: &str) -> Vec<Action> {
    let a = c.feed(CARRIER, &carrier_invite(call, user, true));
    assert_eq!(codes(&a), vec![100, 180], "{call}");
    a
}

#[test]
fn a_carrier_invite_for_a_did_is_held_and_reported() {
    let mut c = core(None, |_| {});
    let a = held(&mut c, "in-1", "08045678901");
    let s = sent(&a);
    assert!(s.iter().all(|(to, _)| to.to_string() == CARRIER));
    let ringing = &s[1].1;
    assert!(ringing.to_tag.is_some(), "180 carries our To tag");
    assert_eq!(ringing.header("Contact"), Some("<sip:127.0.0.1:5060>"));
    assert_eq!(
        observed(&a),
        vec![Observation::Inbound(InboundCall {
            sip_call_id: "in-1".into(),
            tenant: "acme".into(),
            trunk: "airtel-mum".into(),
            did: DID.into(),
            caller: "+919876543210".into(),
            caller_name: Some("Asha K".into()),
        })]
    );
    assert_eq!(c.inbound("held"), 1);
    assert_eq!(c.responses("airtel-mum", "180"), 1);
    assert_eq!(c.proxy.dialogs.active("acme"), 1, "a held call counts");
    // A retransmitted INVITE gets the 180 again; nothing else happens.
    let a = c.feed(CARRIER, &carrier_invite("in-1", "08045678901", true));
    assert_eq!(codes(&a), vec![180]);
    assert!(observed(&a).is_empty());
}

#[test]
fn doors_unknown_number_wrong_source_no_sdp_and_strangers() {
    let mut c = core(Some(&["127.0.0.3/32"]), |_| {});
    // The example's globex carrier (127.0.0.1) is a carrier: past the gate, but
    // 127.0.0.1 is not acme's inbound source.
    let a = c.feed(CARRIER, &carrier_invite("w-1", DID, true));
    assert_eq!(codes(&a), vec![403]);
    assert_eq!(c.inbound("forbidden_source"), 1);
    let a = c.feed(CARRIER, &carrier_invite("w-2", "+918000000000", true));
    assert_eq!(codes(&a), vec![404]);
    assert_eq!(c.inbound("unknown_did"), 1);
    let a = c.feed(
        "127.0.0.3:5099",
        &carrier_invite("w-3", "918045678901", false),
    );
    let r = &sent(&a)[0].1;
    assert_eq!(code(r), 488);
    assert!(r.header("Warning").is_some_and(|w| w.contains("SDP")));
    assert_eq!(c.inbound("no_sdp"), 1);
    assert_eq!(c.responses("airtel-mum", "488"), 1);
    let a = c.feed("127.0.0.9:5099", &carrier_invite("w-4", DID, true));
    assert_eq!(codes(&a), vec![403], "not a carrier at all");
    assert_eq!(c.proxy.metrics.refused_sources.get(), 1);
    // From the right source it is held.
    held_from(&mut c, "127.0.0.3:5099", "w-5");
    assert!(c.proxy.dialogs.get("w-1").is_none());
}

fn held_from(c: &mut Core, from: &str, call: &str) {
    let a = c.feed(from, &carrier_invite(call, DID, true));
    assert_eq!(codes(&a), vec![100, 180]);
}

#[test]
fn livekit_with_a_call_id_is_outbound_even_to_a_did_number() {
    let mut c = core(None, |_| {});
    let inv = carrier_invite("lk-1", "8045678901", true).replace("spoofed", "c2c-out-1");
    let a = c.feed(LIVEKIT, &inv);
    // Outbound: tenant from X-C2C-Tenant (globex, DLT fine here), plain number: relayed.
    assert!(observed(&a)
        .iter()
        .all(|o| !matches!(o, Observation::Inbound(_))));
    assert_eq!(c.inbound("held"), 0);
    // Relayed to globex's carrier as `prefix + number`, 100 Trying to LiveKit.
    let s = sent(&a);
    assert_eq!(code(&s[0].1), 100);
    assert_eq!(s[0].0.to_string(), LIVEKIT);
    assert_eq!(s[1].0.to_string(), "127.0.0.1:5082");
    assert_eq!(s[1].1.method(), Some(&Method::Invite));
}

#[test]
fn ringing_is_refreshed_and_the_hold_expires_with_480() {
    let mut c = core(None, |cfg| cfg.inbound_hold_max = Duration::from_secs(150));
    held(&mut c, "exp-1", DID);
    assert!(codes(&c.after(Duration::from_secs(59))).is_empty());
    assert_eq!(codes(&c.after(Duration::from_secs(1))), vec![180]);
    assert_eq!(codes(&c.after(Duration::from_secs(60))), vec![180]);
    let a = c.after(Duration::from_secs(30));
    assert_eq!(codes(&a), vec![480]);
    assert_eq!(
        observed(&a),
        vec![Observation::InboundGone {
            sip_call_id: "exp-1".into(),
            why: InboundGone::HoldExpired
        }]
    );
    assert_eq!(c.inbound("expired"), 1);
    assert_eq!(c.responses("airtel-mum", "480"), 1);
    assert_eq!(c.proxy.dialogs.active("acme"), 0);
    // Timer G until the ACK, which is absorbed; then silence (no more 180 either).
    assert_eq!(codes(&c.after(Duration::from_millis(50))), vec![480]);
    let tag = c
        .proxy
        .txns
        .get(
            c.proxy
                .txns
                .by_server("z9hG4bKexp-1|127.0.0.1:5099|INVITE")
                .unwrap(),
        )
        .unwrap()
        .local_tag
        .clone();
    let ack = carrier_invite("exp-1", DID, false)
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("CSeq: 7 INVITE", "CSeq: 7 ACK")
        .replace(
            &format!("To: <sip:{DID}@127.0.0.1:5060>"),
            &format!("To: <sip:{DID}@127.0.0.1:5060>;tag={tag}"),
        );
    assert!(c.feed(CARRIER, &ack).is_empty());
    assert!(codes(&c.after(Duration::from_secs(2))).is_empty());
    assert_eq!(
        c.forward("exp-1", "room-1", "acme").unwrap_err(),
        InboundError::NotHeld
    );
}

#[test]
fn cancel_while_held_answers_487_and_tells_the_gateway() {
    let mut c = core(None, |_| {});
    held(&mut c, "can-1", DID);
    let a = c.feed(CARRIER, &cancel("can-1", DID));
    assert_eq!(codes(&a), vec![200, 487]);
    assert_eq!(
        observed(&a),
        vec![Observation::InboundGone {
            sip_call_id: "can-1".into(),
            why: InboundGone::CallerCancelled
        }]
    );
    assert_eq!(c.inbound("cancelled"), 1);
    assert_eq!(c.proxy.dialogs.active("acme"), 0);
    assert_eq!(
        c.proxy.reject_inbound(c.now, "can-1", 480).unwrap_err(),
        InboundError::NotHeld
    );
}

#[test]
fn reject_sends_the_code_with_its_phrase() {
    let mut c = core(None, |_| {});
    held(&mut c, "rej-1", DID);
    assert!(matches!(
        c.proxy.reject_inbound(c.now, "rej-1", 200),
        Err(InboundError::BadTarget(_))
    ));
    let a = c.proxy.reject_inbound(c.now, "rej-1", 486).unwrap();
    let s = sent(&a);
    assert_eq!(code(&s[0].1), 486);
    assert!(text(&s[0].1).starts_with("SIP/2.0 486 Busy Here\r\n"));
    assert!(observed(&a).is_empty());
    assert_eq!(c.inbound("rejected"), 1);
    assert_eq!(c.responses("airtel-mum", "486"), 1);
    assert_eq!(
        c.proxy.reject_inbound(c.now, "rej-1", 486).unwrap_err(),
        InboundError::NotHeld
    );
}

#[test]
fn concurrency_cap_counts_held_calls() {
    let mut c = core(None, |cfg| {
        cfg.calls.default = crate::config::TenantCaps {
            calls_per_second: 100,
            max_concurrent: 1,
        }
    });
    held(&mut c, "cap-1", DID);
    let a = c.feed(CARRIER, &carrier_invite("cap-2", DID, true));
    let r = &sent(&a)[0].1;
    assert_eq!(code(r), 503);
    assert!(r.header("Retry-After").is_some());
    assert_eq!(c.inbound("limited"), 1);
}

/// Responds to `req` as LiveKit would: its Vias and Record-Routes, To tag `lk`.
fn lk_response(req: &SipMsg, code: u16, reason: &str) -> String {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.headers_named("Via") {
        s.push_str(&format!("Via: {}\r\n", v.value));
    }
    for rr in req.headers_named("Record-Route") {
        s.push_str(&format!("Record-Route: {}\r\n", rr.value));
    }
    let to = req.header("To").unwrap_or_default();
    s.push_str(&format!(
        "From: {}\r\nTo: {to};tag=lk\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:lk@{LIVEKIT}>\r\nX-C2C-Call-Id: c2c-call-1\r\nContent-Length: 0\r\n\r\n",
        req.header("From").unwrap_or_default(),
        req.call_id,
        req.header("CSeq").unwrap_or_default()
    ));
    s
}

#[test]
fn the_outcome_labels_exist_from_the_start() {
    let c = core(None, |_| {});
    let names: Vec<String> = c
        .registry
        .gather()
        .iter()
        .filter(|f| f.get_name() == "c2c_sip_inbound_total")
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_label()[0].get_value().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names.len(), 11, "{names:?}");
}
