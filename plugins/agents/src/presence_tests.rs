//! The presence rules, without sockets: each test opens sessions with channels and reads
//! what the hub queued.

use tokio::sync::mpsc;

use crate::presence::{close, Outbound, PresenceHub, SESSION_QUEUE};
use crate::{Availability, PresenceClaims, SetError};

fn claims(tenant: &str, agent: Option<&str>, supervisor: bool) -> PresenceClaims {
    PresenceClaims {
        tenant: tenant.into(),
        agent_id: agent.map(Into::into),
        supervisor,
        exp_ms: u64::MAX,
        nonce: String::new(),
    }
}

fn chan() -> (mpsc::Sender<Outbound>, mpsc::Receiver<Outbound>) {
    mpsc::channel(SESSION_QUEUE)
}

/// Every JSON frame queued so far, parsed; a close as `{"close": code}`.
fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Ok(o) = rx.try_recv() {
        out.push(match o {
            Outbound::Text(t) => serde_json::from_str(&t).unwrap(),
            Outbound::Close(code, _) => serde_json::json!({ "close": code }),
        });
    }
    out
}

fn availabilities(frames: &[serde_json::Value]) -> Vec<(String, String)> {
    frames
        .iter()
        .filter(|f| f["type"] == "availability")
        .map(|f| {
            (
                f["availability"].as_str().unwrap().to_owned(),
                f["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const MAX: usize = 100;

#[test]
fn a_new_session_starts_offline_and_sets_availability() {
    let hub = PresenceHub::new();
    let (tx, mut rx) = chan();
    let o = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    assert_eq!(o.presence.availability, Availability::Offline);
    hub.set(&o.session, Availability::Available, true, 2)
        .unwrap();
    assert_eq!(
        availabilities(&drain(&mut rx)),
        [("available".into(), "set".into())]
    );
    // Setting the same value again still confirms to the agent itself.
    hub.set(&o.session, Availability::Available, true, 3)
        .unwrap();
    assert_eq!(drain(&mut rx).len(), 1);
    assert_eq!(hub.counts("acme"), (1, 0));
    assert_eq!(hub.sessions(), 1);
}

#[test]
fn only_telephony_enabled_agents_leave_offline() {
    let hub = PresenceHub::new();
    let (tx, _rx) = chan();
    let o = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    assert_eq!(
        hub.set(&o.session, Availability::Available, false, 2),
        Err(SetError::AgentDisabled)
    );
    assert_eq!(
        hub.set(&o.session, Availability::Away, false, 2),
        Err(SetError::AgentDisabled)
    );
    hub.set(&o.session, Availability::Offline, false, 2)
        .unwrap();
    let (stx, _srx) = chan();
    let sup = hub
        .open(&claims("acme", None, true), None, stx, MAX, 1)
        .unwrap();
    assert_eq!(
        hub.set(&sup.session, Availability::Available, true, 2),
        Err(SetError::NoAgent)
    );
}

#[test]
fn supervisors_hear_their_tenant_only() {
    let hub = PresenceHub::new();
    let (stx, mut srx) = chan();
    hub.open(&claims("acme", None, true), None, stx, MAX, 1)
        .unwrap();
    let (otx, mut orx) = chan();
    hub.open(&claims("globex", None, true), None, otx, MAX, 1)
        .unwrap();
    let (tx, _rx) = chan();
    let a = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    hub.set(&a.session, Availability::Away, true, 2).unwrap();
    let seen = drain(&mut srx);
    assert_eq!(availabilities(&seen), [("away".into(), "set".into())]);
    assert_eq!(seen[0]["agent_id"], "a1");
    assert!(
        drain(&mut orx).is_empty(),
        "another tenant's supervisor hears nothing"
    );
}

#[test]
fn a_second_session_replaces_the_first_and_starts_offline() {
    let hub = PresenceHub::new();
    let (tx1, mut rx1) = chan();
    let s1 = hub
        .open(&claims("acme", Some("a1"), false), None, tx1, MAX, 1)
        .unwrap();
    hub.set(&s1.session, Availability::Available, true, 2)
        .unwrap();
    drain(&mut rx1);
    let (tx2, mut rx2) = chan();
    let s2 = hub
        .open(&claims("acme", Some("a1"), false), None, tx2, MAX, 3)
        .unwrap();
    assert_eq!(s2.presence.availability, Availability::Offline);
    let old = drain(&mut rx1);
    assert_eq!(old[0]["type"], "replaced");
    assert_eq!(old[1]["close"], close::REPLACED);
    assert_eq!(
        availabilities(&drain(&mut rx2)),
        [("offline".into(), "replaced".into())]
    );
    // The replaced session can no longer set, and its close changes nothing.
    assert_eq!(
        hub.set(&s1.session, Availability::Available, true, 4),
        Err(SetError::Replaced)
    );
    assert!(!hub.close(&s1.session, 20_000, 5));
    hub.set(&s2.session, Availability::Away, true, 6).unwrap();
    assert_eq!(hub.presence("acme", "a1").availability, Availability::Away);
    assert_eq!(hub.sessions(), 1);
}

#[test]
fn a_drop_keeps_availability_for_the_grace_then_goes_offline() {
    let hub = PresenceHub::new();
    let (stx, mut srx) = chan();
    hub.open(&claims("acme", None, true), None, stx, MAX, 1)
        .unwrap();
    let (tx, _rx) = chan();
    let s = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    hub.set(&s.session, Availability::Available, true, 2)
        .unwrap();
    assert!(hub.close(&s.session, 20_000, 3), "grace timer due");
    assert_eq!(
        hub.presence("acme", "a1").availability,
        Availability::Available
    );
    hub.expire(&s.session, 20_003);
    assert_eq!(
        hub.presence("acme", "a1").availability,
        Availability::Offline
    );
    assert_eq!(
        availabilities(&drain(&mut srx)),
        [
            ("available".into(), "set".into()),
            ("offline".into(), "disconnected".into())
        ]
    );
}

#[test]
fn a_reconnect_within_the_grace_resumes_availability() {
    let hub = PresenceHub::new();
    let (tx, _rx) = chan();
    let s = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    hub.set(&s.session, Availability::Away, true, 2).unwrap();
    assert!(hub.close(&s.session, 20_000, 3));
    let (tx2, _rx2) = chan();
    let r = hub
        .open(
            &claims("acme", Some("a1"), false),
            Some(s.session.resume_key()),
            tx2,
            MAX,
            4,
        )
        .unwrap();
    assert_eq!(r.presence.availability, Availability::Away);
    // The old grace timer fires later and must not touch the resumed session.
    hub.expire(&s.session, 20_003);
    assert_eq!(hub.presence("acme", "a1").availability, Availability::Away);
    // A wrong resume key is a new session: offline.
    let (tx3, _rx3) = chan();
    let n = hub
        .open(
            &claims("acme", Some("a1"), false),
            Some("guess"),
            tx3,
            MAX,
            5,
        )
        .unwrap();
    assert_eq!(n.presence.availability, Availability::Offline);
}

#[test]
fn a_reconnect_before_the_drop_is_noticed_resumes_too() {
    let hub = PresenceHub::new();
    let (tx, _rx) = chan();
    let s = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    hub.set(&s.session, Availability::Available, true, 2)
        .unwrap();
    let (tx2, _rx2) = chan();
    let r = hub
        .open(
            &claims("acme", Some("a1"), false),
            Some(s.session.resume_key()),
            tx2,
            MAX,
            3,
        )
        .unwrap();
    assert_eq!(r.presence.availability, Availability::Available);
}

#[test]
fn zero_grace_goes_offline_at_once() {
    let hub = PresenceHub::new();
    let (tx, _rx) = chan();
    let s = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    hub.set(&s.session, Availability::Available, true, 2)
        .unwrap();
    assert!(!hub.close(&s.session, 0, 3));
    assert_eq!(
        hub.presence("acme", "a1").availability,
        Availability::Offline
    );
    assert_eq!(hub.sessions(), 0);
}

#[test]
fn telephony_off_and_removal_force_offline() {
    let hub = PresenceHub::new();
    let (tx, mut rx) = chan();
    let s = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    hub.set(&s.session, Availability::Available, true, 2)
        .unwrap();
    hub.telephony_disabled("acme", "a1", 3);
    hub.removed("acme", "a1", 4);
    let frames = drain(&mut rx);
    assert_eq!(
        availabilities(&frames),
        [
            ("available".into(), "set".into()),
            ("offline".into(), "telephony_disabled".into())
        ]
    );
    assert_eq!(frames.last().unwrap()["close"], close::REMOVED);
}

#[test]
fn calls_make_an_agent_busy_until_released() {
    let hub = PresenceHub::new();
    let (stx, mut srx) = chan();
    hub.open(&claims("acme", None, true), None, stx, MAX, 1)
        .unwrap();
    hub.claim_call("acme", "a1", "c1", false, 2).unwrap();
    hub.claim_call("acme", "a1", "c1", false, 2).unwrap();
    assert_eq!(
        hub.claim_call("acme", "a1", "c2", false, 3)
            .unwrap_err()
            .call_id,
        "c1"
    );
    assert_eq!(hub.current_call("acme", "a1").as_deref(), Some("c1"));
    hub.claim_call("acme", "a1", "c2", true, 3).unwrap();
    hub.release_call("acme", "a1", "c1", 4);
    assert!(hub.presence("acme", "a1").on_call);
    hub.release_call("acme", "a1", "c2", 5);
    assert!(!hub.presence("acme", "a1").on_call);
    let frames = drain(&mut srx);
    let reasons: Vec<_> = frames
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["call_started", "call_ended"]);
    hub.reset_calls([("acme", "a1", "c9")]);
    assert_eq!(hub.current_call("acme", "a1").as_deref(), Some("c9"));
    hub.reset_calls([]);
    assert_eq!(hub.current_call("acme", "a1"), None);
}

#[test]
fn the_session_cap_holds() {
    let hub = PresenceHub::new();
    let (tx, _rx) = chan();
    let s = hub
        .open(&claims("acme", None, true), None, tx.clone(), 1, 1)
        .unwrap();
    assert!(hub
        .open(&claims("acme", None, true), None, tx.clone(), 1, 1)
        .is_err());
    hub.close(&s.session, 0, 2);
    assert!(hub
        .open(&claims("acme", None, true), None, tx, 1, 3)
        .is_ok());
}

#[test]
fn a_reader_that_stops_reading_is_dropped_not_waited_for() {
    let hub = PresenceHub::new();
    let (slow_tx, slow_rx) = mpsc::channel(1);
    hub.open(&claims("acme", None, true), None, slow_tx, MAX, 1)
        .unwrap();
    let (tx, _rx) = chan();
    let a = hub
        .open(&claims("acme", Some("a1"), false), None, tx, MAX, 1)
        .unwrap();
    for i in 0..5 {
        let to = if i % 2 == 0 {
            Availability::Away
        } else {
            Availability::Available
        };
        hub.set(&a.session, to, true, 2 + i).unwrap();
    }
    // The slow supervisor got one frame, then was dropped: its channel is closed.
    let mut slow_rx = slow_rx;
    assert!(slow_rx.try_recv().is_ok());
    assert!(matches!(
        slow_rx.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    ));
}
