//! The presence rules, without sockets: each test opens sessions and reads what the hub
//! queued for them and whether it asked them to close.

use std::sync::Arc;

use crate::presence::{close, Opened, PresenceHub};
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

/// Every JSON frame queued so far, parsed.
fn drain(o: &mut Opened) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Ok(t) = o.events.try_recv() {
        out.push(serde_json::from_str(&t).unwrap());
    }
    out
}

/// The close the hub asked for, if any.
fn closed(o: &Opened) -> Option<u16> {
    let ctl: Arc<_> = o.ctl.clone();
    let fut = ctl.closed();
    futures_poll_once(fut).map(|(code, _)| code)
}

/// Polls a future once (the close flag is set synchronously or not at all).
fn futures_poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
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

fn agent(hub: &PresenceHub, tenant: &str, id: &str, resume: Option<&str>, now: u64) -> Opened {
    hub.open(&claims(tenant, Some(id), false), resume, MAX, now)
        .unwrap()
}

fn supervisor(hub: &PresenceHub, tenant: &str) -> Opened {
    hub.open(&claims(tenant, None, true), None, MAX, 1).unwrap()
}

#[test]
fn a_new_session_starts_offline_and_sets_availability() {
    let hub = PresenceHub::new();
    let mut a = agent(&hub, "acme", "a1", None, 1);
    assert_eq!(a.presence.availability, Availability::Offline);
    hub.set(&a.session, Availability::Available, true, 2)
        .unwrap();
    assert_eq!(
        availabilities(&drain(&mut a)),
        [("available".into(), "set".into())]
    );
    // Setting the same value again still confirms to the agent itself.
    hub.set(&a.session, Availability::Available, true, 3)
        .unwrap();
    assert_eq!(drain(&mut a).len(), 1);
    assert_eq!(hub.counts("acme"), (1, 0));
    assert_eq!(hub.sessions(), 1);
}

#[test]
fn only_telephony_enabled_agents_leave_offline() {
    let hub = PresenceHub::new();
    let a = agent(&hub, "acme", "a1", None, 1);
    assert_eq!(
        hub.set(&a.session, Availability::Available, false, 2),
        Err(SetError::AgentDisabled)
    );
    assert_eq!(
        hub.set(&a.session, Availability::Away, false, 2),
        Err(SetError::AgentDisabled)
    );
    hub.set(&a.session, Availability::Offline, false, 2)
        .unwrap();
    let sup = supervisor(&hub, "acme");
    assert_eq!(
        hub.set(&sup.session, Availability::Available, true, 2),
        Err(SetError::NoAgent)
    );
}

#[test]
fn supervisors_hear_their_tenant_only() {
    let hub = PresenceHub::new();
    let mut sup = supervisor(&hub, "acme");
    let mut other = supervisor(&hub, "globex");
    let a = agent(&hub, "acme", "a1", None, 1);
    hub.set(&a.session, Availability::Away, true, 2).unwrap();
    let seen = drain(&mut sup);
    assert_eq!(availabilities(&seen), [("away".into(), "set".into())]);
    assert_eq!(seen[0]["agent_id"], "a1");
    assert!(
        drain(&mut other).is_empty(),
        "another tenant's supervisor hears nothing"
    );
}

#[test]
fn a_second_session_replaces_the_first_and_starts_offline() {
    let hub = PresenceHub::new();
    let mut s1 = agent(&hub, "acme", "a1", None, 1);
    hub.set(&s1.session, Availability::Available, true, 2)
        .unwrap();
    drain(&mut s1);
    let mut s2 = agent(&hub, "acme", "a1", None, 3);
    assert_eq!(s2.presence.availability, Availability::Offline);
    assert_eq!(drain(&mut s1)[0]["type"], "replaced");
    assert_eq!(closed(&s1), Some(close::REPLACED));
    assert_eq!(closed(&s2), None);
    assert_eq!(
        availabilities(&drain(&mut s2)),
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
fn a_replaced_session_is_closed_even_when_its_queue_is_full() {
    let hub = PresenceHub::new();
    // An agent that is also a supervisor, and reads nothing: exactly a full queue.
    let mut s1 = hub
        .open(&claims("acme", Some("a1"), true), None, MAX, 1)
        .unwrap();
    let mut other = agent(&hub, "acme", "a2", None, 1);
    for i in 0..crate::presence::SESSION_QUEUE {
        let to = if i % 2 == 0 {
            Availability::Away
        } else {
            Availability::Available
        };
        hub.set(&other.session, to, true, 2).unwrap();
        drain(&mut other);
    }
    assert_eq!(closed(&s1), None, "full, not yet over");
    // The replacement cannot queue `replaced`: the close still reaches the old session,
    // and it hears nothing more of the tenant.
    let _s2 = agent(&hub, "acme", "a1", None, 3);
    assert!(closed(&s1).is_some());
    drain(&mut s1);
    hub.set(&other.session, Availability::Offline, true, 4)
        .unwrap();
    assert!(drain(&mut s1).is_empty(), "no longer a watcher");
}

#[test]
fn a_drop_keeps_availability_for_the_grace_then_goes_offline() {
    let hub = PresenceHub::new();
    let mut sup = supervisor(&hub, "acme");
    let a = agent(&hub, "acme", "a1", None, 1);
    hub.set(&a.session, Availability::Available, true, 2)
        .unwrap();
    assert!(hub.close(&a.session, 20_000, 3), "grace timer due");
    assert_eq!(
        hub.presence("acme", "a1").availability,
        Availability::Available
    );
    hub.expire(&a.session, 20_003);
    assert_eq!(
        hub.presence("acme", "a1").availability,
        Availability::Offline
    );
    assert_eq!(
        availabilities(&drain(&mut sup)),
        [
            ("available".into(), "set".into()),
            ("offline".into(), "disconnected".into())
        ]
    );
}

#[test]
fn a_reconnect_within_the_grace_resumes_availability() {
    let hub = PresenceHub::new();
    let a = agent(&hub, "acme", "a1", None, 1);
    hub.set(&a.session, Availability::Away, true, 2).unwrap();
    assert!(hub.close(&a.session, 20_000, 3));
    let r = agent(&hub, "acme", "a1", Some(a.session.resume_key()), 4);
    assert_eq!(r.presence.availability, Availability::Away);
    // The old grace timer fires later and must not touch the resumed session.
    hub.expire(&a.session, 20_003);
    assert_eq!(hub.presence("acme", "a1").availability, Availability::Away);
    // A wrong resume key is a new session: offline.
    let n = agent(&hub, "acme", "a1", Some("guess"), 5);
    assert_eq!(n.presence.availability, Availability::Offline);
}

#[test]
fn a_reconnect_before_the_drop_is_noticed_resumes_too() {
    let hub = PresenceHub::new();
    let a = agent(&hub, "acme", "a1", None, 1);
    hub.set(&a.session, Availability::Available, true, 2)
        .unwrap();
    let r = agent(&hub, "acme", "a1", Some(a.session.resume_key()), 3);
    assert_eq!(r.presence.availability, Availability::Available);
}

#[test]
fn zero_grace_goes_offline_at_once() {
    let hub = PresenceHub::new();
    let a = agent(&hub, "acme", "a1", None, 1);
    hub.set(&a.session, Availability::Available, true, 2)
        .unwrap();
    assert!(!hub.close(&a.session, 0, 3));
    assert_eq!(
        hub.presence("acme", "a1").availability,
        Availability::Offline
    );
    assert_eq!(hub.sessions(), 0);
}

#[test]
fn telephony_changes_are_told_and_off_forces_offline_and_removal_closes() {
    let hub = PresenceHub::new();
    let mut a = agent(&hub, "acme", "a1", None, 1);
    hub.set(&a.session, Availability::Available, true, 2)
        .unwrap();
    hub.telephony_changed("acme", "a1", false, 3);
    let frames = drain(&mut a);
    assert_eq!(
        availabilities(&frames),
        [
            ("available".into(), "set".into()),
            ("offline".into(), "telephony_disabled".into())
        ]
    );
    assert_eq!(frames.last().unwrap()["type"], "telephony");
    assert_eq!(frames.last().unwrap()["telephony_enabled"], false);
    hub.telephony_changed("acme", "a1", true, 4);
    assert_eq!(
        drain(&mut a)[0]["telephony_enabled"],
        true,
        "turning on is told too"
    );
    hub.removed("acme", "a1", 5);
    assert_eq!(closed(&a), Some(close::REMOVED));
}

#[test]
fn calls_make_an_agent_busy_until_released() {
    let hub = PresenceHub::new();
    let mut sup = supervisor(&hub, "acme");
    hub.claim_call("acme", "a1", "c1", false, 2).unwrap();
    hub.claim_call("acme", "a1", "c1", false, 2).unwrap();
    assert_eq!(
        hub.claim_call("acme", "a1", "c2", false, 3)
            .unwrap_err()
            .call_id,
        "c1"
    );
    assert_eq!(hub.current_call("acme", "a1", None).as_deref(), Some("c1"));
    assert_eq!(
        hub.current_call("acme", "a1", Some("c1")),
        None,
        "its own call is not another"
    );
    hub.claim_call("acme", "a1", "c2", true, 3).unwrap();
    hub.release_call("acme", "a1", "c1", 4);
    assert!(hub.presence("acme", "a1").on_call);
    hub.release_call("acme", "a1", "c2", 5);
    assert!(!hub.presence("acme", "a1").on_call);
    let frames = drain(&mut sup);
    let reasons: Vec<_> = frames
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["call_started", "call_ended"]);
    // The rebuild at start only adds: a claim made meanwhile stays.
    hub.claim_call("acme", "a2", "c7", false, 6).unwrap();
    hub.restore_calls([("acme", "a1", "c9")]);
    assert_eq!(hub.current_call("acme", "a1", None).as_deref(), Some("c9"));
    assert_eq!(hub.current_call("acme", "a2", None).as_deref(), Some("c7"));
}

#[test]
fn the_session_cap_holds() {
    let hub = PresenceHub::new();
    let s = hub.open(&claims("acme", None, true), None, 1, 1).unwrap();
    assert!(hub.open(&claims("acme", None, true), None, 1, 1).is_err());
    hub.close(&s.session, 0, 2);
    assert!(hub.open(&claims("acme", None, true), None, 1, 3).is_ok());
}

#[test]
fn a_reader_that_stops_reading_is_closed_not_waited_for() {
    let hub = PresenceHub::new();
    let mut slow = supervisor(&hub, "acme");
    let mut a = agent(&hub, "acme", "a1", None, 1);
    for i in 0..100 {
        let to = if i % 2 == 0 {
            Availability::Away
        } else {
            Availability::Available
        };
        hub.set(&a.session, to, true, 2 + i).unwrap();
        drain(&mut a);
    }
    assert_eq!(closed(&slow), Some(close::TOO_SLOW));
    assert_eq!(drain(&mut slow).len(), crate::presence::SESSION_QUEUE);
    assert_eq!(closed(&a), None, "the agent that reads stays");
}

#[test]
fn close_all_closes_every_session() {
    let hub = PresenceHub::new();
    let a = agent(&hub, "acme", "a1", None, 1);
    let s = supervisor(&hub, "globex");
    hub.close_all();
    assert_eq!(closed(&a), Some(close::GOING_AWAY));
    assert_eq!(closed(&s), Some(close::GOING_AWAY));
}

#[test]
fn counts_follow_every_change() {
    let hub = PresenceHub::new();
    let a = agent(&hub, "acme", "a1", None, 1);
    let b = agent(&hub, "acme", "a2", None, 1);
    hub.set(&a.session, Availability::Available, true, 2)
        .unwrap();
    hub.set(&b.session, Availability::Away, true, 2).unwrap();
    assert_eq!(hub.counts("acme"), (1, 1));
    // Replaced: the new session starts offline.
    let a2 = agent(&hub, "acme", "a1", None, 3);
    assert_eq!(hub.counts("acme"), (0, 1));
    hub.set(&a2.session, Availability::Away, true, 4).unwrap();
    assert_eq!(hub.counts("acme"), (0, 2));
    // A drop keeps it for the grace; the expiry takes it away.
    assert!(hub.close(&b.session, 20_000, 5));
    assert_eq!(hub.counts("acme"), (0, 2));
    hub.expire(&b.session, 20_005);
    assert_eq!(hub.counts("acme"), (0, 1));
    hub.telephony_changed("acme", "a1", false, 6);
    assert_eq!(hub.counts("acme"), (0, 0));
    assert_eq!(hub.counts("globex"), (0, 0));
}

#[test]
fn offers_go_to_the_longest_idle_free_agent_one_offer_at_a_time() {
    let hub = PresenceHub::new();
    let mut a1 = agent(&hub, "t", "a1", None, 1);
    let mut a2 = agent(&hub, "t", "a2", None, 1);
    let mut a3 = agent(&hub, "t", "a3", None, 1);
    // Available in the order a2, a1, a3: a2 has waited longest.
    for o in [&a2, &a1, &a3] {
        hub.set(&o.session, Availability::Available, true, 2)
            .unwrap();
    }
    // a3 is on an outbound call: never offered.
    hub.claim_call("t", "a3", "c2c_out", false, 3).unwrap();
    assert_eq!(
        hub.reserve_for_offer("t", "call-1", &[]).as_deref(),
        Some("a2")
    );
    // a2 holds call-1's offer: the next call goes to a1, then nobody is left.
    assert_eq!(
        hub.reserve_for_offer("t", "call-2", &[]).as_deref(),
        Some("a1")
    );
    assert_eq!(hub.reserve_for_offer("t", "call-3", &[]), None);
    assert_eq!(hub.offered_call("t", "a2").as_deref(), Some("call-1"));
    // a2 rejects call-1: free again, but skipped for call-1 itself.
    hub.end_offer("t", "a2", "call-1");
    assert_eq!(hub.reserve_for_offer("t", "call-1", &["a2".into()]), None);
    assert_eq!(
        hub.reserve_for_offer("t", "call-3", &[]).as_deref(),
        Some("a2")
    );
    // Ending another call's offer changes nothing.
    hub.end_offer("t", "a1", "call-9");
    assert_eq!(hub.offered_call("t", "a1").as_deref(), Some("call-2"));
    // a3's call ends: it is free and the most recently freed, so offered last; an
    // offer (even a rejected one) does not make an agent any less idle.
    hub.end_offer("t", "a1", "call-2");
    hub.end_offer("t", "a2", "call-3");
    hub.release_call("t", "a3", "c2c_out", 4);
    assert_eq!(hub.reserve_for_offer("t", "c", &[]).as_deref(), Some("a2"));
    assert_eq!(hub.reserve_for_offer("t", "d", &[]).as_deref(), Some("a1"));
    assert_eq!(hub.reserve_for_offer("t", "e", &[]).as_deref(), Some("a3"));
    // Another tenant's agents are never picked.
    assert_eq!(hub.reserve_for_offer("other", "f", &[]), None);
    for o in [&mut a1, &mut a2, &mut a3] {
        drain(o);
    }
    assert!(hub.send_to_agent("t", "a1", &Arc::from(r#"{"type":"incoming"}"#)));
    assert_eq!(drain(&mut a1)[0]["type"], "incoming");
    assert!(!hub.send_to_agent("t", "nobody", &Arc::from("{}")));
}

#[test]
fn away_offline_and_dropped_agents_are_not_offered() {
    let hub = PresenceHub::new();
    let a1 = agent(&hub, "t", "a1", None, 1);
    let a2 = agent(&hub, "t", "a2", None, 1);
    hub.set(&a1.session, Availability::Away, true, 2).unwrap();
    assert!(!hub.anyone_to_offer("t"));
    hub.set(&a2.session, Availability::Available, true, 2)
        .unwrap();
    assert!(hub.anyone_to_offer("t"));
    // a2's socket drops: it keeps "available" for the grace, but an offer could not
    // reach it.
    assert!(hub.close(&a2.session, 20_000, 3));
    assert_eq!(hub.reserve_for_offer("t", "c", &[]), None);
    assert!(!hub.anyone_to_offer("t"));
}

#[tokio::test]
async fn a_freed_agent_wakes_the_calls_waiting_for_one() {
    let hub = Arc::new(PresenceHub::new());
    let a1 = agent(&hub, "t", "a1", None, 1);
    let waiter = {
        let hub = hub.clone();
        tokio::spawn(async move {
            loop {
                let freed = hub.freed();
                tokio::pin!(freed);
                freed.as_mut().enable();
                if let Some(a) = hub.reserve_for_offer("t", "c", &[]) {
                    return a;
                }
                freed.await;
            }
        })
    };
    tokio::task::yield_now().await;
    hub.set(&a1.session, Availability::Available, true, 2)
        .unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, "a1");
}
