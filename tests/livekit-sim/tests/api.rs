//! The simulator against the real `livekit-api` client (protobuf Twirp) and raw JSON.

mod common;

use std::time::Duration;

use common::{start, KEY, SECRET};
use livekit_api::services::room::{CreateRoomOptions, RoomClient};
use livekit_api::services::sip::{CreateSIPParticipantOptions, SIPClient};
use livekit_api::services::{ServerError, ServiceError};
use livekit_protocol as proto;
use serde_json::{json, Value};

fn twirp_code(err: &ServiceError) -> String {
    match err {
        ServiceError::Twirp(ServerError::Twirp(code)) => code.code.clone(),
        other => panic!("not a twirp error: {other:?}"),
    }
}

#[tokio::test]
async fn room_service_round_trip_with_sdk() {
    let sim = start().await;
    let rooms = RoomClient::with_api_key(&sim.url(), KEY, SECRET);

    let room = rooms
        .create_room(
            "c2c-0123456789abcdef0123456789abcdef",
            CreateRoomOptions {
                empty_timeout: 120,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(room.sid.starts_with("RM_"));
    assert_eq!(room.empty_timeout, 120);
    assert_eq!(room.departure_timeout, 20, "server default filled in");

    // CreateRoom is idempotent: same sid back.
    let again = rooms
        .create_room(&room.name, CreateRoomOptions::default())
        .await
        .unwrap();
    assert_eq!(again.sid, room.sid);

    let listed = rooms.list_rooms(vec![]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(rooms
        .list_participants(&room.name)
        .await
        .unwrap()
        .is_empty());

    sim.join(&room.name, "agent-7").unwrap();
    let participants = rooms.list_participants(&room.name).await.unwrap();
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].identity, "agent-7");
    let agent = rooms.get_participant(&room.name, "agent-7").await.unwrap();
    assert_eq!(agent.kind, proto::participant_info::Kind::Standard as i32);

    let missing = rooms
        .get_participant(&room.name, "nobody")
        .await
        .unwrap_err();
    assert_eq!(twirp_code(&missing), "not_found");

    rooms
        .remove_participant(&room.name, "agent-7")
        .await
        .unwrap();
    assert!(sim.participants(&room.name).is_empty());

    rooms.delete_room(&room.name).await.unwrap();
    assert!(sim.rooms().is_empty());
    let gone = rooms.delete_room(&room.name).await.unwrap_err();
    assert_eq!(twirp_code(&gone), "not_found");

    let stats = sim.stats();
    assert_eq!(stats.rooms_created, 1);
    assert_eq!(stats.rooms_deleted, 1);
    assert_eq!(stats.open_rooms, 0);
    assert!(stats.requests >= 9);
    sim.shutdown().await;
}

#[tokio::test]
async fn create_sip_participant_with_sdk() {
    let sim = start().await;
    let sip = SIPClient::with_api_key(&sim.url(), KEY, SECRET);
    let rooms = RoomClient::with_api_key(&sim.url(), KEY, SECRET);
    let room = "c2c-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    rooms
        .create_room(room, CreateRoomOptions::default())
        .await
        .unwrap();

    let info = sip
        .create_sip_participant(
            "ST_trunk".into(),
            "99119530251797".into(),
            room.into(),
            CreateSIPParticipantOptions {
                participant_identity: "sip-customer".into(),
                sip_number: Some("+911400000000".into()),
                hide_phone_number: Some(true),
                ringing_timeout: Some(Duration::from_secs(20)),
                max_call_duration: Some(Duration::from_secs(600)),
                headers: Some([("X-C2C-Call-Id".to_owned(), "c2c_0123".to_owned())].into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(info.participant_identity, "sip-customer");
    assert_eq!(info.room_name, room);
    assert!(info.participant_id.starts_with("PA_"));
    assert!(info.sip_call_id.starts_with("SCL_"));

    let p = rooms.get_participant(room, "sip-customer").await.unwrap();
    assert_eq!(p.kind, proto::participant_info::Kind::Sip as i32);
    assert_eq!(p.attributes["sip.callStatus"], "dialing");
    assert_eq!(p.attributes["sip.trunkID"], "ST_trunk");
    assert_eq!(p.attributes["sip.callID"], info.sip_call_id);
    assert!(
        !p.attributes.contains_key("sip.phoneNumber"),
        "hidden number leaked"
    );
    assert!(!p.attributes.values().any(|v| v.contains("9530251797")));

    let dial = &sim.dials()[0];
    assert_eq!(dial.headers["X-C2C-Call-Id"], "c2c_0123");
    assert_eq!(dial.ringing_timeout, Some(Duration::from_secs(20)));
    assert_eq!(dial.max_call_duration, Some(Duration::from_secs(600)));
    assert!(dial.hide_phone_number);

    // Validation mirrors livekit/protocol.
    let err = sip
        .create_sip_participant(
            String::new(),
            "9530251797".into(),
            room.into(),
            CreateSIPParticipantOptions::default(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(twirp_code(&err), "invalid_argument");
    sim.shutdown().await;
}

#[tokio::test]
async fn sip_participant_without_identity_gets_livekit_default() {
    let sim = start().await;
    let sip = SIPClient::with_api_key(&sim.url(), KEY, SECRET);
    let info = sip
        .create_sip_participant(
            "ST_x".into(),
            "9530251797".into(),
            "auto-created".into(),
            CreateSIPParticipantOptions::default(),
            None,
        )
        .await
        .unwrap();
    // What the REFERENCE warns about: the dialled string becomes the identity.
    assert_eq!(info.participant_identity, "sip_9530251797");
    assert_eq!(
        sim.rooms().len(),
        1,
        "dialing into a missing room creates it"
    );
    sim.shutdown().await;
}

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn token(grants: livekit_api::access_token::VideoGrants) -> String {
    livekit_api::access_token::AccessToken::with_api_key(KEY, SECRET)
        .with_grants(grants)
        .to_jwt()
        .unwrap()
}

#[tokio::test]
async fn raw_json_twirp_requests() {
    install_crypto();
    let sim = start().await;
    let http = reqwest::Client::new();
    let create = token(livekit_api::access_token::VideoGrants {
        room_create: true,
        ..Default::default()
    });

    // Node SDK style: camelCase body, charset parameter on the content type.
    let resp = http
        .post(format!(
            "{}/twirp/livekit.RoomService/CreateRoom",
            sim.url()
        ))
        .header("Authorization", format!("Bearer {create}"))
        .header("Content-Type", "application/json;charset=UTF-8")
        .body(json!({"name": "json-room", "emptyTimeout": 60}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    // Go twirp's default JSON: proto field names, unpopulated fields present.
    assert_eq!(v["name"], "json-room");
    assert_eq!(v["empty_timeout"], 60);
    assert_eq!(v["num_participants"], 0);
    assert!(v["creation_time"].is_string(), "int64 as string: {v}");
    assert!(v.get("emptyTimeout").is_none());

    // snake_case request bodies are accepted as well (protojson accepts both).
    sim.join("json-room", "agent-1").unwrap();
    let admin = token(livekit_api::access_token::VideoGrants {
        room_admin: true,
        room: "json-room".into(),
        ..Default::default()
    });
    let resp = http
        .post(format!(
            "{}/twirp/livekit.RoomService/ListParticipants",
            sim.url()
        ))
        .header("Authorization", format!("Bearer {admin}"))
        .header("Content-Type", "application/json")
        .body(r#"{"room":"json-room"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["participants"][0]["identity"], "agent-1");
    assert_eq!(v["participants"][0]["state"], "ACTIVE");
    assert_eq!(v["participants"][0]["kind"], "STANDARD");
    assert_eq!(v["participants"][0]["disconnect_reason"], "UNKNOWN_REASON");

    // Twirp errors: JSON {code,msg[,meta]} with twirp's status mapping.
    let resp = http
        .post(format!(
            "{}/twirp/livekit.RoomService/DeleteRoom",
            sim.url()
        ))
        .header("Authorization", format!("Bearer {create}"))
        .header("Content-Type", "application/json")
        .body(r#"{"room":"nope"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"code": "not_found", "msg": "requested room does not exist"})
    );

    let resp = http
        .post(format!(
            "{}/twirp/livekit.RoomService/CreateRoom",
            sim.url()
        ))
        .header("Authorization", format!("Bearer {create}"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "malformed");

    let resp = http
        .post(format!(
            "{}/twirp/livekit.RoomService/CreateRoom",
            sim.url()
        ))
        .header("Authorization", format!("Bearer {create}"))
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "bad_route");
    assert_eq!(v["msg"], r#"unexpected Content-Type: "text/plain""#);

    let resp = http
        .get(format!("{}/twirp/livekit.RoomService/ListRooms", sim.url()))
        .header("Authorization", format!("Bearer {create}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "bad_route");
    assert_eq!(
        v["meta"]["twirp_invalid_route"],
        "GET /twirp/livekit.RoomService/ListRooms"
    );

    let resp = http
        .post(format!(
            "{}/twirp/livekit.RoomService/NoSuchMethod",
            sim.url()
        ))
        .header("Authorization", format!("Bearer {create}"))
        .header("Content-Type", "application/protobuf")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn fault_injection_unavailable_and_latency() {
    let sim = start().await;
    let rooms = RoomClient::with_api_key(&sim.url(), KEY, SECRET);
    sim.set_unavailable(true);
    let err = rooms.list_rooms(vec![]).await.unwrap_err();
    assert_eq!(twirp_code(&err), "unavailable");
    sim.set_unavailable(false);
    sim.set_latency(Duration::from_millis(150));
    let started = std::time::Instant::now();
    rooms.list_rooms(vec![]).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.set_latency(Duration::ZERO);

    sim.set_refuse_connections(true);
    let err = rooms.list_rooms(vec![]).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::Twirp(ServerError::Request(_))),
        "{err:?}"
    );
    sim.set_refuse_connections(false);
    rooms.list_rooms(vec![]).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn http_hooks_join_leave_and_stats() {
    let sim = start().await;
    let post = |path: &str, body: &str| {
        let url = format!("{}{path}", sim.url());
        let body = bytes::Bytes::from(body.to_owned());
        async move {
            livekit_sim::http_client::post(
                &url,
                &[("content-type", "application/json")],
                body,
                Duration::from_secs(5),
            )
            .await
            .unwrap()
        }
    };
    let r = post("/sim/rooms/hook-room/join", r#"{"identity":"agent-9"}"#).await;
    assert_eq!(r.status, 200);
    let joined = sim.participants("hook-room");
    assert_eq!(joined.len(), 1);
    // A joined agent has published its microphone, as the contract's snippet does.
    assert_eq!(joined[0].tracks.len(), 1);
    assert_eq!(
        joined[0].tracks[0].r#type,
        livekit_protocol::TrackType::Audio as i32
    );
    let r = post(
        "/sim/rooms/mute-room/join",
        r#"{"identity":"agent-8","publish_audio":false}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(sim.participants("mute-room")[0].tracks.is_empty());
    let r = post("/sim/rooms/mute-room/publish", r#"{"identity":"agent-8"}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.participants("mute-room")[0].tracks.len(), 1);
    let r = post("/sim/rooms/mute-room/publish", r#"{"identity":"nobody"}"#).await;
    assert_eq!(r.status, 404);
    let r = post("/sim/fault", r#"{"ignore_wait_until_answered":true}"#).await;
    assert_eq!(r.status, 200);
    let r = post("/sim/rooms/hook-room/leave", r#"{"identity":"agent-9"}"#).await;
    assert_eq!(r.status, 200);
    assert!(sim.participants("hook-room").is_empty());
    let r = post("/sim/rooms/hook-room/leave", r#"{"identity":"agent-9"}"#).await;
    assert_eq!(r.status, 404);
    let r = post(
        "/sim/scenarios",
        r#"{"number":"9530251797","scenario":{"outcome":{"kind":"no_answer"}}}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post("/sim/fault", r#"{"unavailable":true}"#).await;
    assert_eq!(r.status, 200);
    let rooms = RoomClient::with_api_key(&sim.url(), KEY, SECRET);
    assert!(rooms.list_rooms(vec![]).await.is_err());
    post("/sim/fault", r#"{"unavailable":false}"#).await;
    assert!(rooms.list_rooms(vec![]).await.is_ok());
    sim.shutdown().await;
}

#[tokio::test]
async fn empty_and_departure_timeouts_close_rooms() {
    let mut cfg = common::config();
    cfg.default_departure_timeout = Duration::from_millis(1000);
    let sim = livekit_sim::Simulator::start(cfg).await.unwrap();
    let rooms = RoomClient::with_api_key(&sim.url(), KEY, SECRET);
    rooms
        .create_room(
            "short",
            CreateRoomOptions {
                empty_timeout: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    sim.join("kept", "agent").unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let names: Vec<String> = sim.rooms().into_iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        vec!["kept".to_owned()],
        "empty_timeout closed 'short' only"
    );
    sim.leave("kept", "agent").unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(sim.rooms().is_empty(), "departure_timeout closed 'kept'");
    assert_eq!(sim.stats().rooms_closed_idle, 2);
    sim.shutdown().await;
}
