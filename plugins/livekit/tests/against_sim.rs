//! `LiveKitClient` against livekit-sim (real Twirp, real JWT auth).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use c2c_livekit::{
    CallDial, LiveKitClient, LiveKitError, LiveKitProject, CALL_ID_HEADER, SIP_PARTICIPANT_IDENTITY,
};
use livekit_api::access_token::TokenVerifier;
use livekit_sim::{Scenario, SimConfig, SimHandle, Simulator};

const KEY: &str = "APIadapter";
const SECRET: &str = "adapter-secret-0123456789abcdef0123456789";
const ROOM: &str = "c2c-0123456789abcdef0123456789abcdef";

async fn sim() -> SimHandle {
    Simulator::start(SimConfig::new(KEY, SECRET)).await.unwrap()
}

fn client(sim: &SimHandle) -> LiveKitClient {
    LiveKitClient::new(LiveKitProject::new(sim.url(), KEY, SECRET))
        .unwrap()
        .with_request_timeout(Duration::from_secs(2))
}

fn call(number: &str) -> CallDial {
    CallDial {
        trunk_id: "ST_trunk".into(),
        call_to: format!("9911{number}"),
        room: ROOM.into(),
        sip_number: "+911400000000".into(),
        ring_timeout: Duration::from_secs(20),
        max_duration: Duration::from_secs(1800),
        call_id: "c2c_0123456789abcdef0123456789abcdef".into(),
        tenant: Some("acme".into()),
        category: None,
    }
}

#[tokio::test]
async fn rooms_tokens_and_idempotent_deletes() {
    let sim = sim().await;
    let lk = client(&sim);
    let room = lk.create_room(ROOM, Duration::from_secs(90)).await.unwrap();
    assert!(room.sid.starts_with("RM_"));
    assert_eq!(room.name, ROOM);
    assert_eq!(room.empty_timeout, Duration::from_secs(90));
    assert!(room.creation_time_ms > 0);

    let token = lk
        .agent_token(ROOM, "agent-42", Duration::from_secs(300))
        .unwrap();
    let claims = TokenVerifier::with_api_key(KEY, SECRET)
        .verify(&token)
        .unwrap();
    assert_eq!(claims.video.room, ROOM);
    assert!(claims.video.room_join);

    sim.join(ROOM, "agent-42").unwrap();
    let listed = lk.list_participants(ROOM).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].kind_sip);
    assert_eq!(listed[0].call_status, None);

    lk.remove_participant(ROOM, "agent-42").await.unwrap();
    lk.remove_participant(ROOM, "agent-42").await.unwrap(); // already gone: fine
    lk.delete_room(ROOM).await.unwrap();
    lk.delete_room(ROOM).await.unwrap(); // NotFound is success
    assert!(lk.list_participants(ROOM).await.unwrap().is_empty());
    assert_eq!(sim.stats().rooms_deleted, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn dial_sets_identity_hidden_number_and_call_id_header() {
    let sim = sim().await;
    let lk = client(&sim);
    lk.create_room(ROOM, Duration::ZERO).await.unwrap();
    let dialed = lk.dial(&call("9530251797")).await.unwrap();
    assert_eq!(dialed.participant_identity, SIP_PARTICIPANT_IDENTITY);
    assert_eq!(dialed.room, ROOM);
    assert!(dialed.sip_call_id.starts_with("SCL_"));

    let record = &sim.dials()[0];
    assert_eq!(record.participant_identity, "sip-customer");
    assert!(record.hide_phone_number);
    assert_eq!(record.sip_call_to, "99119530251797");
    assert_eq!(record.sip_number, "+911400000000");
    assert_eq!(record.sip_trunk_id, "ST_trunk");
    assert_eq!(
        record.headers.get(CALL_ID_HEADER).map(String::as_str),
        Some("c2c_0123456789abcdef0123456789abcdef")
    );
    assert_eq!(record.ringing_timeout, Some(Duration::from_secs(20)));
    assert_eq!(record.max_call_duration, Some(Duration::from_secs(1800)));
    assert!(!record.wait_until_answered);

    let snap = &lk.list_participants(ROOM).await.unwrap()[0];
    assert!(snap.kind_sip);
    assert_eq!(snap.identity, "sip-customer");
    assert_eq!(snap.call_status.as_deref(), Some("dialing"));
    let raw = &sim.participants(ROOM)[0];
    assert!(
        !raw.attributes.values().any(|v| v.contains("9530251797")),
        "number visible to room members: {:?}",
        raw.attributes
    );

    // Default scenario answers at 200 ms.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let snap = &lk.list_participants(ROOM).await.unwrap()[0];
    assert_eq!(snap.call_status.as_deref(), Some("active"));
    sim.shutdown().await;
}

#[tokio::test]
async fn busy_call_disappears_and_reason_is_in_the_webhook() {
    let sim = sim().await;
    sim.set_scenario("9530251797", Scenario::busy()).unwrap();
    let lk = client(&sim);
    lk.dial(&call("9530251797")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..200 {
        let snaps = lk.list_participants(ROOM).await.unwrap();
        let Some(s) = snaps.into_iter().find(|s| s.kind_sip) else {
            break;
        };
        if seen.last() != s.call_status.as_ref() {
            seen.extend(s.call_status);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, vec!["dialing".to_owned(), "ringing".to_owned()]);

    let verifier = c2c_livekit::WebhookVerifier::new([(KEY, SECRET)]);
    let left = sim
        .webhooks()
        .into_iter()
        .filter_map(|w| verifier.verify(&w.authorization, &w.body).ok())
        .map(|(_, ev)| ev)
        .find(|ev| ev.event == "participant_left")
        .expect("participant_left webhook");
    let p = left.participant.unwrap();
    assert!(p.is_sip());
    assert_eq!(p.disconnect_reason.as_deref(), Some("USER_REJECTED"));
    assert_eq!(left.room_name.as_deref(), Some(ROOM));
    sim.shutdown().await;
}

#[tokio::test]
async fn sim_unavailable_maps_to_unavailable() {
    let sim = sim().await;
    let lk = client(&sim);

    sim.set_unavailable(true);
    let err = lk.create_room(ROOM, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, LiveKitError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    sim.set_unavailable(false);

    sim.set_refuse_connections(true);
    let err = lk.list_participants(ROOM).await.unwrap_err();
    assert!(matches!(err, LiveKitError::Unavailable(_)), "{err:?}");
    sim.set_refuse_connections(false);

    sim.set_latency(Duration::from_secs(5));
    let err = lk.delete_room(ROOM).await.unwrap_err(); // request timeout is 2 s
    assert!(matches!(err, LiveKitError::Unavailable(_)), "{err:?}");
    sim.set_latency(Duration::ZERO);

    let url = sim.url();
    sim.shutdown().await;
    let gone = LiveKitClient::new(LiveKitProject::new(url, KEY, SECRET)).unwrap();
    let err = gone.dial(&call("9530251797")).await.unwrap_err();
    assert!(matches!(err, LiveKitError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn wrong_secret_is_a_bad_response_not_unavailable() {
    let sim = sim().await;
    let lk = LiveKitClient::new(LiveKitProject::new(sim.url(), KEY, "wrong")).unwrap();
    let err = lk.create_room(ROOM, Duration::ZERO).await.unwrap_err();
    // LiveKit answers a bad token with a plain-text 401 the SDK cannot decode.
    assert!(matches!(err, LiveKitError::BadResponse(_)), "{err:?}");
    assert!(!err.is_retryable());
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_dial_is_rejected() {
    let sim = sim().await;
    let lk = client(&sim);
    let mut bad = call("9530251797");
    bad.trunk_id.clear();
    bad.sip_number.clear();
    let err = lk.dial(&bad).await.unwrap_err();
    assert_eq!(
        err,
        LiveKitError::Rejected {
            code: "invalid_argument".into(),
            msg: "missing sip trunk id and sip number".into(),
            sip_status_code: None
        }
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn dial_and_wait_returns_on_answer_or_with_the_exact_sip_code() {
    let sim = sim().await;
    let lk = client(&sim).with_request_timeout(Duration::from_secs(10));
    // Default scenario: answered.
    lk.dial_and_wait(&call("9000000001")).await.unwrap();
    assert!(sim.dials().iter().all(|d| d.wait_until_answered));
    // Busy: the carrier's 486 comes back in the Twirp meta.
    sim.set_scenario("9530251797", Scenario::busy()).unwrap();
    let e = lk.dial_and_wait(&call("9530251797")).await.unwrap_err();
    assert_eq!(e.sip_status_code(), Some(486), "{e:?}");
    // Trunk failure: a 503 from the carrier is a rejection with its code, not "LiveKit down".
    sim.set_scenario("9530251798", Scenario::trunk_failure())
        .unwrap();
    let e = lk.dial_and_wait(&call("9530251798")).await.unwrap_err();
    assert_eq!(e.sip_status_code(), Some(503), "{e:?}");
    assert!(!e.is_retryable());
    sim.shutdown().await;
}

#[tokio::test]
async fn every_api_request_is_reported_to_the_observer_by_operation() {
    use std::sync::{Arc, Mutex};
    let sim = sim().await;
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let log = seen.clone();
    let lk = client(&sim).with_request_observer(Arc::new(move |op| {
        log.lock().unwrap().push(op);
    }));
    lk.create_room(ROOM, Duration::from_secs(90)).await.unwrap();
    lk.list_rooms().await.unwrap();
    sim.join(ROOM, "agent-42").unwrap();
    lk.list_participants(ROOM).await.unwrap();
    lk.dial(&call("9530251797")).await.unwrap();
    lk.remove_participant(ROOM, "agent-42").await.unwrap();
    lk.delete_room(ROOM).await.unwrap();
    // A failed request is a request too (the error ratio's denominator).
    let _ = lk.list_participants("").await;
    let ops = seen.lock().unwrap().clone();
    assert_eq!(
        ops,
        [
            "create_room",
            "list_rooms",
            "list_participants",
            "create_sip_participant",
            "remove_participant",
            "delete_room",
            "list_participants",
        ]
    );
}
