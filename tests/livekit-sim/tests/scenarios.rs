//! Each scenario drives the SIP participant through LiveKit's status sequence and
//! leaves with the disconnect reason livekit/sip would report.

mod common;

use std::time::Duration;

use common::{left_event, start, status_sequence, KEY, SECRET};
use livekit_api::services::sip::{CreateSIPParticipantOptions, SIPClient};
use livekit_api::services::{ServerError, ServiceError, SipCallError};
use livekit_protocol::DisconnectReason;
use livekit_sim::{Scenario, SimHandle};

const ROOM: &str = "c2c-ffffffffffffffffffffffffffffffff";

async fn dial(
    sim: &SimHandle,
    number: &str,
    ring_timeout: Duration,
    wait: bool,
) -> Result<(), ServiceError> {
    let sip = SIPClient::with_api_key(&sim.url(), KEY, SECRET);
    sip.create_sip_participant(
        "ST_trunk".into(),
        format!("9911{number}"),
        ROOM.into(),
        CreateSIPParticipantOptions {
            participant_identity: "sip-customer".into(),
            hide_phone_number: Some(true),
            ringing_timeout: Some(ring_timeout),
            wait_until_answered: Some(wait),
            ..Default::default()
        },
        None,
    )
    .await
    .map(|_| ())
}

/// Dials, polls `sip.callStatus` until the participant is gone, and appends the
/// final status carried by `participant_left` (the last change and the leave
/// happen together, so polling alone cannot see `hangup`).
async fn run(scenario: Scenario, ring_timeout: Duration) -> (Vec<String>, DisconnectReason) {
    let sim = start().await;
    sim.set_scenario("9530251797", scenario).unwrap();
    dial(&sim, "9530251797", ring_timeout, false).await.unwrap();
    let seq = full_sequence(&sim).await;
    let ev = left_event(&sim, "sip-customer").await;
    let p = ev.participant.unwrap();
    let reason = DisconnectReason::try_from(p.disconnect_reason).unwrap();
    sim.shutdown().await;
    (seq, reason)
}

async fn full_sequence(sim: &SimHandle) -> Vec<String> {
    let mut seq = status_sequence(sim, ROOM, "sip-customer", Duration::from_secs(10)).await;
    let ev = left_event(sim, "sip-customer").await;
    let last = ev.participant.unwrap().attributes["sip.callStatus"].clone();
    if seq.last() != Some(&last) {
        seq.push(last);
    }
    seq
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn answer_then_callee_hangs_up() {
    let (seq, reason) = run(Scenario::answer(200, Some(300)), Duration::from_secs(5)).await;
    assert_eq!(seq, strings(&["dialing", "ringing", "active", "hangup"]));
    assert_eq!(reason, DisconnectReason::ClientInitiated);
}

#[tokio::test]
async fn busy_486_is_user_rejected() {
    let (seq, reason) = run(Scenario::busy(), Duration::from_secs(5)).await;
    assert_eq!(seq, strings(&["dialing", "ringing"]));
    assert_eq!(reason, DisconnectReason::UserRejected);
}

#[tokio::test]
async fn decline_603_is_user_rejected() {
    let (seq, reason) = run(Scenario::decline(), Duration::from_secs(5)).await;
    assert_eq!(seq, strings(&["dialing", "ringing"]));
    assert_eq!(reason, DisconnectReason::UserRejected);
}

#[tokio::test]
async fn unavailable_480_is_user_unavailable() {
    let (seq, reason) = run(Scenario::unavailable(), Duration::from_secs(5)).await;
    assert_eq!(seq, strings(&["dialing", "ringing"]));
    assert_eq!(reason, DisconnectReason::UserUnavailable);
}

#[tokio::test]
async fn trunk_failure_503_never_rings() {
    let (seq, reason) = run(Scenario::trunk_failure(), Duration::from_secs(5)).await;
    assert_eq!(seq, strings(&["dialing"]));
    assert_eq!(reason, DisconnectReason::SipTrunkFailure);
}

#[tokio::test]
async fn no_answer_rings_until_ringing_timeout() {
    let started = std::time::Instant::now();
    let (seq, reason) = run(Scenario::no_answer(), Duration::from_millis(700)).await;
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(seq, strings(&["dialing", "ringing"]));
    assert_eq!(reason, DisconnectReason::UserUnavailable);
}

#[tokio::test]
async fn default_scenario_answers_and_stays_up() {
    let sim = start().await;
    dial(&sim, "9000000000", Duration::from_secs(5), false)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let p = &sim.participants(ROOM)[0];
    assert_eq!(p.attributes["sip.callStatus"], "active");
    // Deleting the room ends the call (ROOM_DELETED) and the script with it.
    let rooms = livekit_api::services::room::RoomClient::with_api_key(&sim.url(), KEY, SECRET);
    rooms.delete_room(ROOM).await.unwrap();
    let ev = left_event(&sim, "sip-customer").await;
    assert_eq!(
        ev.participant.unwrap().disconnect_reason,
        DisconnectReason::RoomDeleted as i32
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn max_call_duration_hangs_up() {
    let sim = start().await;
    let sip = SIPClient::with_api_key(&sim.url(), KEY, SECRET);
    sip.create_sip_participant(
        "ST_trunk".into(),
        "9000000001".into(),
        ROOM.into(),
        CreateSIPParticipantOptions {
            participant_identity: "sip-customer".into(),
            max_call_duration: Some(Duration::from_millis(500)),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    let seq = full_sequence(&sim).await;
    assert_eq!(seq, strings(&["dialing", "ringing", "active", "hangup"]));
    sim.shutdown().await;
}

#[tokio::test]
async fn wait_until_answered_reports_sip_status() {
    let sim = start().await;
    sim.set_scenario("9530251797", Scenario::busy()).unwrap();
    sim.set_scenario("9530251798", Scenario::no_answer())
        .unwrap();
    sim.set_scenario("9530251799", Scenario::answer(150, None))
        .unwrap();

    let err = dial(&sim, "9530251797", Duration::from_secs(5), true)
        .await
        .unwrap_err();
    let sip_err = SipCallError::from_error(&err).expect("sip status in meta");
    assert_eq!(sip_err.sip_status_code(), Some(486));
    assert_eq!(sip_err.sip_status(), Some("Busy Here"));
    assert_eq!(sip_err.code(), "resource_exhausted");

    let err = dial(&sim, "9530251798", Duration::from_millis(400), true)
        .await
        .unwrap_err();
    match &err {
        ServiceError::Twirp(ServerError::Twirp(code)) => {
            assert_eq!(code.code, "canceled");
            assert!(!code.meta.contains_key("sip_status_code"));
        }
        other => panic!("{other:?}"),
    }

    let started = std::time::Instant::now();
    dial(&sim, "9530251799", Duration::from_secs(5), true)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "returned before answer"
    );
    let p = &sim.participants(ROOM)[0];
    assert_eq!(p.attributes["sip.callStatus"], "active");
    sim.shutdown().await;
}

/// The `ignore_wait_until_answered` switch: an older LiveKit, or a proxy timing out the
/// long request, returns the dial at once. A busy callee then shows only as the leg
/// leaving with `USER_REJECTED` — the dial itself succeeded.
#[tokio::test]
async fn ignoring_wait_until_answered_returns_the_dial_at_once() {
    let sim = start().await;
    sim.set_scenario("9530251797", Scenario::fail(486, 400))
        .unwrap();
    sim.set_ignore_wait_until_answered(true);
    let started = std::time::Instant::now();
    dial(&sim, "9530251797", Duration::from_secs(5), true)
        .await
        .expect("the dial returns without error although the callee will be busy");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "did not return at once"
    );
    assert!(
        sim.dials()[0].wait_until_answered,
        "the request asked to wait"
    );
    let p = &sim.participants(ROOM)[0];
    assert_eq!(p.attributes["sip.callStatus"], "dialing");
    let ev = left_event(&sim, "sip-customer").await;
    assert_eq!(
        ev.participant.unwrap().disconnect_reason,
        DisconnectReason::UserRejected as i32
    );
    // Switched off again, the next dial waits as asked.
    sim.set_ignore_wait_until_answered(false);
    sim.set_scenario("9530251799", Scenario::answer(150, None))
        .unwrap();
    let started = std::time::Instant::now();
    dial(&sim, "9530251799", Duration::from_secs(5), true)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.shutdown().await;
}

#[tokio::test]
async fn nonstandard_disconnect_code_attribute_is_opt_in() {
    let mut cfg = common::config();
    cfg.sip_disconnect_code_attribute = true;
    cfg.scenarios.insert("9530251797".into(), Scenario::busy());
    let sim = livekit_sim::Simulator::start(cfg).await.unwrap();
    dial(&sim, "9530251797", Duration::from_secs(5), false)
        .await
        .unwrap();
    let ev = left_event(&sim, "sip-customer").await;
    assert_eq!(
        ev.participant.unwrap().attributes["sip.disconnectCode"],
        "486"
    );
    sim.shutdown().await;

    let sim = start().await;
    sim.set_scenario("9530251797", Scenario::busy()).unwrap();
    dial(&sim, "9530251797", Duration::from_secs(5), false)
        .await
        .unwrap();
    let ev = left_event(&sim, "sip-customer").await;
    assert!(!ev
        .participant
        .unwrap()
        .attributes
        .contains_key("sip.disconnectCode"));
    sim.shutdown().await;
}
