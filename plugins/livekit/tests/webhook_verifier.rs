//! `WebhookVerifier` with two projects: right key by `iss`; forgeries rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use c2c_livekit::{LiveKitProject, WebhookError, WebhookVerifier};
use livekit_api::access_token::AccessToken;
use livekit_api::webhooks::WebhookReceiver;
use livekit_protocol as proto;
use livekit_sim::webhooks::{body_sha256, encode_event, forge_webhook, sign_webhook};
use livekit_sim::Forgery;

const A_KEY: &str = "APIprojectA";
const A_SECRET: &str = "secret-of-project-a-0123456789abcdef";
const B_KEY: &str = "APIprojectB";
const B_SECRET: &str = "secret-of-project-b-0123456789abcdef";

fn verifier() -> WebhookVerifier {
    let projects = [
        LiveKitProject::new("https://a.livekit.cloud", A_KEY, A_SECRET),
        LiveKitProject::new("https://b.livekit.cloud", B_KEY, B_SECRET),
    ];
    WebhookVerifier::from_projects(&projects)
}

fn body() -> Vec<u8> {
    let mut participant = proto::ParticipantInfo {
        identity: "sip-customer".into(),
        kind: proto::participant_info::Kind::Sip as i32,
        disconnect_reason: proto::DisconnectReason::UserUnavailable as i32,
        ..Default::default()
    };
    participant
        .attributes
        .insert("sip.callStatus".into(), "ringing".into());
    encode_event(&proto::WebhookEvent {
        event: "participant_left".into(),
        id: "EV_abcdefghijkl".into(),
        created_at: 1_750_000_000,
        room: Some(proto::Room {
            name: "c2c-room".into(),
            sid: "RM_room".into(),
            ..Default::default()
        }),
        participant: Some(participant),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn picks_the_secret_by_issuer() {
    let v = verifier();
    let a = sign_webhook(body(), A_KEY, A_SECRET).unwrap();
    let (key, ev) = v.verify(&a.authorization, &a.body).unwrap();
    assert_eq!(key, A_KEY);
    assert_eq!(ev.id, "EV_abcdefghijkl");
    assert_eq!(ev.event, "participant_left");
    assert_eq!(ev.room_name.as_deref(), Some("c2c-room"));
    assert_eq!(ev.room_sid.as_deref(), Some("RM_room"));
    assert_eq!(ev.created_at, 1_750_000_000);
    let p = ev.participant.unwrap();
    assert!(p.is_sip());
    assert_eq!(p.kind, "SIP");
    assert_eq!(p.call_status(), Some("ringing"));
    assert_eq!(p.disconnect_reason.as_deref(), Some("USER_UNAVAILABLE"));

    let b = sign_webhook(body(), B_KEY, B_SECRET).unwrap();
    assert_eq!(v.verify(&b.authorization, &b.body).unwrap().0, B_KEY);

    // Project A's key with project B's secret: signature fails.
    let crossed = sign_webhook(body(), A_KEY, B_SECRET).unwrap();
    assert_eq!(
        v.verify(&crossed.authorization, &crossed.body).unwrap_err(),
        WebhookError::BadSignature
    );
}

#[test]
fn agrees_with_the_sdk_receiver() {
    let signed = sign_webhook(body(), A_KEY, A_SECRET).unwrap();
    let sdk = WebhookReceiver::new(livekit_api::access_token::TokenVerifier::with_api_key(
        A_KEY, A_SECRET,
    ));
    let sdk_event = sdk
        .receive(&signed.body_text(), &signed.authorization)
        .unwrap();
    let (_, ours) = verifier()
        .verify(&signed.authorization, &signed.body)
        .unwrap();
    assert_eq!(ours.id, sdk_event.id);

    // A token minted by the Rust SDK (no iat) is accepted too, with a Bearer prefix.
    let token = AccessToken::with_api_key(B_KEY, B_SECRET)
        .with_ttl(Duration::from_secs(300))
        .with_sha256(&body_sha256(&body()))
        .to_jwt()
        .unwrap();
    let (key, _) = verifier()
        .verify(&format!("Bearer {token}"), &body())
        .unwrap();
    assert_eq!(key, B_KEY);
}

#[test]
fn forgeries_are_rejected_with_typed_errors() {
    let v = verifier();
    let cases = [
        (Forgery::WrongSecret, WebhookError::BadSignature),
        (Forgery::Expired, WebhookError::Expired),
        (Forgery::NotYetValid, WebhookError::NotYetValid),
        (Forgery::TamperedBody, WebhookError::BodyMismatch),
        (Forgery::MissingHash, WebhookError::MissingBodyHash),
        (
            Forgery::WrongIssuer,
            WebhookError::UnknownApiKey(format!("{A_KEY}-other")),
        ),
        (
            Forgery::Unsigned,
            WebhookError::UnsupportedAlgorithm("none".into()),
        ),
    ];
    for (forgery, expected) in cases {
        let forged = forge_webhook(body(), A_KEY, A_SECRET, forgery).unwrap();
        assert_eq!(
            v.verify(&forged.authorization, &forged.body).unwrap_err(),
            expected,
            "{forgery:?}"
        );
    }
}

#[test]
fn body_tampering_after_signing_is_detected() {
    let v = verifier();
    let signed = sign_webhook(body(), A_KEY, A_SECRET).unwrap();
    let mut tampered = signed.body.clone();
    let pos = tampered.iter().position(|b| *b == b'R').unwrap();
    tampered[pos] = b'X';
    assert_eq!(
        v.verify(&signed.authorization, &tampered).unwrap_err(),
        WebhookError::BodyMismatch
    );
    // Re-serialised JSON (same meaning, different bytes) is also a mismatch: the
    // hash covers the raw bytes.
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&signed.body).unwrap())
            .unwrap();
    if reserialised != signed.body {
        assert!(v.verify(&signed.authorization, &reserialised).is_err());
    }
}

#[test]
fn malformed_inputs() {
    let v = verifier();
    let signed = sign_webhook(body(), A_KEY, A_SECRET).unwrap();
    assert_eq!(
        v.verify("", &signed.body).unwrap_err(),
        WebhookError::MissingAuthorization
    );
    assert!(matches!(
        v.verify("a.b", &signed.body).unwrap_err(),
        WebhookError::MalformedToken(_)
    ));
    assert!(matches!(
        v.verify("!!.!!.!!", &signed.body).unwrap_err(),
        WebhookError::MalformedToken(_)
    ));
    let huge = vec![b' '; c2c_livekit::MAX_WEBHOOK_BODY + 1];
    assert_eq!(
        v.verify(&signed.authorization, &huge).unwrap_err(),
        WebhookError::BodyTooLarge
    );
    let not_event = sign_webhook(b"[1,2]".to_vec(), A_KEY, A_SECRET).unwrap();
    let err = v
        .verify(&not_event.authorization, &not_event.body)
        .unwrap_err();
    assert!(matches!(err, WebhookError::InvalidBody(_)));
    assert_eq!(err.reason(), "invalid_body");
}

#[test]
fn leeway_bounds_expiry() {
    let v = verifier().with_leeway(Duration::from_secs(30));
    let signed = sign_webhook(body(), A_KEY, A_SECRET).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = now + 300;
    assert!(v
        .verify_at(&signed.authorization, &signed.body, exp + 29)
        .is_ok());
    assert_eq!(
        v.verify_at(&signed.authorization, &signed.body, exp + 31)
            .unwrap_err(),
        WebhookError::Expired
    );
    assert_eq!(
        v.verify_at(&signed.authorization, &signed.body, now - 31)
            .unwrap_err(),
        WebhookError::NotYetValid
    );
}

#[test]
fn access_tokens_verify_by_issuer_and_expire() {
    let v = verifier();
    let t = c2c_livekit::token::agent_token(
        B_KEY,
        B_SECRET,
        "c2c-room",
        "agent-42",
        Duration::from_secs(60),
    )
    .unwrap();
    let ok = v.verify_access_token(&t).unwrap();
    assert_eq!(ok.api_key, B_KEY);
    assert_eq!(ok.identity, "agent-42");
    assert_eq!(ok.room.as_deref(), Some("c2c-room"));
    assert!(v.verify_access_token(&format!("Bearer {t}")).is_ok());
    // Signed with the wrong secret for that key.
    let forged = c2c_livekit::token::agent_token(
        B_KEY,
        A_SECRET,
        "c2c-room",
        "agent-42",
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(matches!(
        v.verify_access_token(&forged),
        Err(WebhookError::BadSignature)
    ));
    // Unknown key.
    let stranger =
        c2c_livekit::token::agent_token("APIstranger", A_SECRET, "r", "a", Duration::from_secs(60))
            .unwrap();
    assert!(matches!(
        v.verify_access_token(&stranger),
        Err(WebhookError::UnknownApiKey(_))
    ));
    // Expired (an hour later, beyond the leeway).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(matches!(
        v.verify_access_token_at(&t, now + 3600),
        Err(WebhookError::Expired)
    ));
    assert!(v.verify_access_token("").is_err());
    assert!(v.verify_access_token("a.b").is_err());
}
