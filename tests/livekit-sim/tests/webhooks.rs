//! Signed webhooks as LiveKit sends them, checked with livekit-api's receiver.

mod common;

use std::time::Duration;

use common::{next_event, webhook_sink, KEY, SECRET};
use livekit_api::access_token::{Claims, TokenVerifier};
use livekit_api::services::room::{CreateRoomOptions, RoomClient};
use livekit_api::services::sip::{CreateSIPParticipantOptions, SIPClient};
use livekit_api::webhooks::WebhookReceiver;
use livekit_sim::{Forgery, Scenario, Simulator};
use serde_json::Value;

fn receiver() -> WebhookReceiver {
    WebhookReceiver::new(TokenVerifier::with_api_key(KEY, SECRET))
}

#[tokio::test]
async fn call_lifecycle_webhooks_verify_with_sdk() {
    let (url, mut rx) = webhook_sink().await;
    let mut cfg = common::config();
    cfg.webhook_url = Some(url);
    cfg.scenarios.insert("9530251797".into(), Scenario::busy());
    let sim = Simulator::start(cfg).await.unwrap();
    let rooms = RoomClient::with_api_key(&sim.url(), KEY, SECRET);
    let sip = SIPClient::with_api_key(&sim.url(), KEY, SECRET);
    let room = "c2c-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    rooms
        .create_room(room, CreateRoomOptions::default())
        .await
        .unwrap();
    let (got, ev) = next_event(&mut rx, "room_started").await;
    assert_eq!(got.headers["content-type"], "application/webhook+json");
    let auth = &got.headers["authorization"];
    assert!(!auth.starts_with("Bearer"), "raw JWT, no scheme");
    let verified = receiver()
        .receive(std::str::from_utf8(&got.body).unwrap(), auth)
        .unwrap();
    assert_eq!(verified.room.unwrap().name, room);
    assert!(ev.id.starts_with("EV_"));
    assert!(ev.created_at > 0);

    // Token shape: iss, nbf, iat, exp (5 min), sha256.
    let claims: Value =
        serde_json::from_slice(&base64_url(auth.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["iss"], KEY);
    let (nbf, exp) = (
        claims["nbf"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - nbf, 300);
    assert!(claims["iat"].is_u64());
    assert_eq!(
        claims["sha256"],
        livekit_sim::webhooks::body_sha256(&got.body)
    );
    let sdk_claims = Claims::from_unverified(auth).unwrap();
    assert_eq!(sdk_claims.iss, KEY);

    sim.join(room, "agent-1").unwrap();
    let (_, ev) = next_event(&mut rx, "participant_joined").await;
    assert_eq!(ev.participant.unwrap().identity, "agent-1");

    sip.create_sip_participant(
        "ST_trunk".into(),
        "99119530251797".into(),
        room.into(),
        CreateSIPParticipantOptions {
            participant_identity: "sip-customer".into(),
            hide_phone_number: Some(true),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    // Joined at dial time, not at answer (livekit/sip#136).
    let (got, _) = next_event(&mut rx, "participant_joined").await;
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["participant"]["kind"], "SIP");
    assert_eq!(
        body["participant"]["attributes"]["sip.callStatus"],
        "dialing"
    );
    assert!(
        body["participant"]["joinedAt"].is_string(),
        "int64 as string"
    );
    assert!(body["createdAt"].is_string());
    assert!(!String::from_utf8_lossy(&got.body).contains("9530251797"));

    let (got, _) = next_event(&mut rx, "participant_left").await;
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["participant"]["identity"], "sip-customer");
    assert_eq!(body["participant"]["disconnectReason"], "USER_REJECTED");
    assert_eq!(body["participant"]["state"], "DISCONNECTED");
    receiver()
        .receive(
            std::str::from_utf8(&got.body).unwrap(),
            &got.headers["authorization"],
        )
        .unwrap();

    rooms.delete_room(room).await.unwrap();
    let (_, ev) = next_event(&mut rx, "participant_left").await;
    assert_eq!(
        ev.participant.unwrap().disconnect_reason,
        livekit_protocol::DisconnectReason::RoomDeleted as i32
    );
    let (got, _) = next_event(&mut rx, "room_finished").await;
    receiver()
        .receive(
            std::str::from_utf8(&got.body).unwrap(),
            &got.headers["authorization"],
        )
        .unwrap();
    // The counter moves when the sender sees the 200, just after the sink got the body.
    for _ in 0..100 {
        if sim.stats().webhooks_sent >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // room_started, 2x participant_joined, participant_left (busy),
    // participant_left (agent, ROOM_DELETED), room_finished.
    assert_eq!(sim.stats().webhooks_sent, 6, "{:?}", sim.stats());
    sim.shutdown().await;
}

#[tokio::test]
async fn forged_webhooks_are_rejected_by_sdk_receiver() {
    let sim = common::start().await;
    for forgery in [
        Forgery::WrongSecret,
        Forgery::Expired,
        Forgery::NotYetValid,
        Forgery::TamperedBody,
        Forgery::MissingHash,
        Forgery::WrongIssuer,
        Forgery::Unsigned,
    ] {
        let forged = sim.forge_webhook(forgery).unwrap();
        assert!(
            receiver()
                .receive(&forged.body_text(), &forged.authorization)
                .is_err(),
            "{forgery:?} accepted"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn forged_and_replayed_webhooks_are_sent() {
    let (url, mut rx) = webhook_sink().await;
    let mut cfg = common::config();
    cfg.webhook_url = Some(url);
    let sim = Simulator::start(cfg).await.unwrap();

    assert_eq!(
        sim.send_forged_webhook(Forgery::Expired).await.unwrap(),
        200
    );
    let got = rx.recv().await.unwrap();
    assert!(receiver()
        .receive(
            std::str::from_utf8(&got.body).unwrap(),
            &got.headers["authorization"]
        )
        .is_err());

    sim.join("replay-room", "agent").unwrap();
    let (original, _) = next_event(&mut rx, "participant_joined").await;
    assert_eq!(sim.replay_last_webhook().await.unwrap(), 200);
    let replayed = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replayed.body, original.body, "byte-identical replay");
    assert_eq!(
        replayed.headers["authorization"],
        original.headers["authorization"]
    );
    sim.shutdown().await;
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}
