//! The `/rtc` signalling stub: WebSocket join/echo/leave, LiveKit's refusals, `/rtc/validate`,
//! and the counters a proxy test relies on.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{config, left_event, start, KEY, SECRET};
use futures_util::{SinkExt, StreamExt};
use livekit_api::access_token::{AccessToken, Claims, VideoGrants};
use livekit_api::services::room::RoomClient;
use livekit_protocol as proto;
use livekit_sim::jwt::{now_unix, sign_hs256};
use livekit_sim::{SimHandle, Simulator};
use prost::Message as _;
use proto::{signal_request, signal_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ROOM: &str = "call-room";
const WAIT: Duration = Duration::from_secs(5);

fn join_token(identity: &str, room: &str) -> String {
    AccessToken::with_api_key(KEY, SECRET)
        .with_identity(identity)
        .with_name("Agent Name")
        .with_grants(VideoGrants {
            room_join: true,
            room: room.into(),
            ..Default::default()
        })
        .to_jwt()
        .unwrap()
}

fn ws_url(sim: &SimHandle, path_and_query: &str) -> String {
    format!("ws://{}{path_and_query}", sim.addr())
}

async fn connect(sim: &SimHandle, token: &str) -> Client {
    let (ws, resp) = connect_async(ws_url(sim, &format!("/rtc?access_token={token}")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// The upgrade is refused: returns the HTTP status and body.
async fn refused(url: impl IntoClientRequest + Unpin) -> (u16, String) {
    match connect_async(url).await {
        Err(WsError::Http(resp)) => (
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("upgrade should have been refused"),
    }
}

async fn next(ws: &mut Client) -> Message {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("no frame within 5 s")
        .expect("stream ended")
        .expect("websocket error")
}

async fn next_signal(ws: &mut Client) -> signal_response::Message {
    match next(ws).await {
        Message::Binary(b) => proto::SignalResponse::decode(b).unwrap().message.unwrap(),
        other => panic!("expected a binary SignalResponse, got {other:?}"),
    }
}

/// Reads until the server's close frame; returns its code.
async fn close_code(ws: &mut Client) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no close")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Plain HTTP/1.1 GET (connection closed after the answer): (status, head, body).
async fn http_get(sim: &SimHandle, path: &str, extra: &str) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(sim.addr()).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: sim\r\n{extra}Connection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn join_echo_ping_and_close() {
    let sim = start().await;
    let mut ws = connect(&sim, &join_token("agent-1", ROOM)).await;

    let signal_response::Message::Join(join) = next_signal(&mut ws).await else {
        panic!("first frame must be a join");
    };
    assert_eq!(join.room.as_ref().unwrap().name, ROOM);
    let me = join.participant.unwrap();
    assert_eq!(
        (me.identity.as_str(), me.name.as_str()),
        ("agent-1", "Agent Name")
    );
    assert!(me.sid.starts_with("PA_"));
    assert!(join.other_participants.is_empty());
    assert!(join.server_info.is_some());

    // Registered: ListParticipants (through the SDK) and the join webhook see it.
    let client = RoomClient::with_api_key(&sim.url(), KEY, SECRET);
    let listed = client.list_participants(ROOM).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sid, me.sid);
    let joined = sim.webhooks().into_iter().any(|w| {
        let ev: proto::WebhookEvent = serde_json::from_slice(&w.body).unwrap();
        ev.event == "participant_joined" && ev.participant.is_some_and(|p| p.identity == "agent-1")
    });
    assert!(joined, "no participant_joined");
    let stats = sim.stats();
    assert_eq!((stats.rtc_connections, stats.rtc_upgrades), (1, 1));
    assert_eq!(stats.rtc_sessions_open, 1);

    // Text frames come back verbatim, in order.
    for text in ["hello", "{\"json\":true}", "ünïcødé"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::text(text));
    }
    // WebSocket ping -> pong with the same payload.
    ws.send(Message::Ping(b"p1".to_vec().into())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::Pong(b"p1".to_vec().into()));
    // Signalling ping_req -> pong_resp.
    let ping = proto::SignalRequest {
        message: Some(signal_request::Message::PingReq(proto::Ping {
            timestamp: 77,
            rtt: 0,
        })),
    };
    ws.send(Message::Binary(ping.encode_to_vec().into()))
        .await
        .unwrap();
    let signal_response::Message::PongResp(pong) = next_signal(&mut ws).await else {
        panic!("expected pong_resp");
    };
    assert_eq!(pong.last_ping_timestamp, 77);

    // Publishing the microphone (AddTrackRequest): answered track_published, and the
    // track is on the participant as ListParticipants shows it.
    let add = proto::SignalRequest {
        message: Some(signal_request::Message::AddTrack(proto::AddTrackRequest {
            cid: "mic-cid".into(),
            name: "microphone".into(),
            r#type: proto::TrackType::Audio as i32,
            source: proto::TrackSource::Microphone as i32,
            ..Default::default()
        })),
    };
    ws.send(Message::Binary(add.encode_to_vec().into()))
        .await
        .unwrap();
    let signal_response::Message::TrackPublished(published) = next_signal(&mut ws).await else {
        panic!("expected track_published");
    };
    assert_eq!(published.cid, "mic-cid");
    let track = published.track.unwrap();
    assert!(track.sid.starts_with("TR_"));
    let listed = client.list_participants(ROOM).await.unwrap();
    assert_eq!(listed[0].tracks.len(), 1);
    assert_eq!(listed[0].tracks[0].r#type, proto::TrackType::Audio as i32);
    assert_eq!(listed[0].tracks[0].sid, track.sid);

    // Close: the participant leaves with CLIENT_INITIATED.
    ws.close(None).await.unwrap();
    eventually("participant gone", || sim.participants(ROOM).is_empty()).await;
    let left = left_event(&sim, "agent-1").await;
    assert_eq!(
        left.participant.unwrap().disconnect_reason,
        proto::DisconnectReason::ClientInitiated as i32
    );
    eventually("session closed", || sim.stats().rtc_sessions_open == 0).await;
    assert_eq!(sim.stats().rtc_upgrades, 1);
}

#[tokio::test]
async fn bearer_header_and_v1_path() {
    let sim = start().await;
    let mut req = ws_url(&sim, "/rtc").into_client_request().unwrap();
    let bearer = format!("Bearer {}", join_token("hdr", ROOM));
    req.headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let (mut ws, _) = connect_async(req).await.unwrap();
    assert!(matches!(
        next_signal(&mut ws).await,
        signal_response::Message::Join(j) if j.participant.as_ref().unwrap().identity == "hdr"
    ));

    // /rtc/v1 needs a join_request; with one it joins like /rtc.
    let token = join_token("v1", ROOM);
    let (status, body) = refused(ws_url(&sim, &format!("/rtc/v1?access_token={token}"))).await;
    assert_eq!((status, body.as_str()), (400, "join_request is required"));
    let wrapped = proto::WrappedJoinRequest {
        compression: 0,
        join_request: proto::JoinRequest {
            participant_sid: "PA_x".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    };
    let param = base64::engine::general_purpose::URL_SAFE.encode(wrapped.encode_to_vec());
    let url = ws_url(
        &sim,
        &format!("/rtc/v1?join_request={param}&access_token={token}"),
    );
    let (mut v1, _) = connect_async(url).await.unwrap();
    assert!(matches!(
        next_signal(&mut v1).await,
        signal_response::Message::Join(_)
    ));
    assert_eq!(sim.participants(ROOM).len(), 2);
}

#[tokio::test]
async fn bad_tokens_are_refused_without_upgrade() {
    let sim = start().await;
    let now = now_unix() as usize;
    let expired = sign_hs256(
        &Claims {
            iss: KEY.into(),
            sub: "late".into(),
            nbf: now - 7200,
            exp: now - 3600,
            video: VideoGrants {
                room_join: true,
                room: ROOM.into(),
                ..Default::default()
            },
            ..Default::default()
        },
        SECRET,
    )
    .unwrap();
    let wrong_secret = AccessToken::with_api_key(KEY, "forged-secret")
        .with_identity("forger")
        .with_grants(VideoGrants {
            room_join: true,
            room: ROOM.into(),
            ..Default::default()
        })
        .to_jwt()
        .unwrap();
    let no_join = AccessToken::with_api_key(KEY, SECRET)
        .with_identity("admin")
        .with_grants(VideoGrants {
            room_admin: true,
            room: ROOM.into(),
            ..Default::default()
        })
        .to_jwt()
        .unwrap();

    let cases = [
        (
            format!("access_token={wrong_secret}"),
            "invalid authorization token",
        ),
        (
            format!("access_token={expired}"),
            "invalid authorization token",
        ),
        (
            "access_token=not-a-jwt".to_owned(),
            "invalid authorization token",
        ),
        (String::new(), "no permissions to access the room"),
        (format!("access_token={no_join}"), "permissions denied"),
    ];
    for (query, body_prefix) in &cases {
        let (status, body) = refused(ws_url(&sim, &format!("/rtc?{query}"))).await;
        assert_eq!(status, 401, "{query}: {body}");
        assert!(body.starts_with(body_prefix), "{query}: {body}");
    }
    // A non-Bearer Authorization header is refused by the middleware too.
    let mut req = ws_url(&sim, "/rtc").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
    let (status, body) = refused(req).await;
    assert_eq!(status, 401);
    assert!(body.starts_with("invalid authorization header"), "{body}");

    // Raw check: a 401, never a 101, and the connection is not taken over.
    let upgrade_headers = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (status, head, _) = http_get(
        &sim,
        &format!("/rtc?access_token={wrong_secret}"),
        upgrade_headers,
    )
    .await;
    assert_eq!(status, 401);
    assert!(!head.contains("sec-websocket-accept"), "{head}");

    let stats = sim.stats();
    assert_eq!(stats.rtc_connections, cases.len() as u64 + 2);
    assert_eq!((stats.rtc_upgrades, stats.rtc_sessions_open), (0, 0));
    assert!(sim.rooms().is_empty(), "nobody joined");
}

#[tokio::test]
async fn validate_endpoint_and_plain_requests() {
    let sim = start().await;
    let token = join_token("v", ROOM);
    for path in ["/rtc/validate", "/rtc/v1/validate"] {
        let (status, head, body) =
            http_get(&sim, &format!("{path}?access_token=garbage"), "").await;
        assert_eq!(status, 401, "{path}");
        assert!(body.starts_with("invalid authorization token"), "{body}");
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
    }
    let (status, head, body) =
        http_get(&sim, &format!("/rtc/validate?access_token={token}"), "").await;
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, _, body) = http_get(&sim, "/rtc/validate", &auth).await;
    assert_eq!((status, body.as_str()), (200, "success"));
    let (status, _, body) = http_get(&sim, "/rtc/validate", "").await;
    assert_eq!(
        (status, body.as_str()),
        (401, "no permissions to access the room")
    );
    let (status, _, body) = http_get(&sim, "/rtc/v1/validate", &auth).await;
    assert_eq!((status, body.as_str()), (400, "join_request is required"));

    // A plain GET /rtc (no upgrade) is 404, as is an unknown /rtc/ path; / is the health check.
    let (status, _, body) = http_get(&sim, "/rtc", &auth).await;
    assert_eq!((status, body.as_str()), (404, ""));
    let (status, _, _) = http_get(&sim, "/rtc/nope", &auth).await;
    assert_eq!(status, 404);
    let (status, _, body) = http_get(&sim, "/", "").await;
    assert_eq!((status, body.as_str()), (200, "OK"));

    let stats = sim.stats();
    assert_eq!(stats.rtc_connections, 8);
    assert_eq!(stats.rtc_upgrades, 0);
    assert!(sim.rooms().is_empty(), "validate must not join");

    // Fault injection reaches signalling too (still counted).
    sim.set_unavailable(true);
    let (status, _, _) = http_get(&sim, "/rtc/validate", &auth).await;
    assert_eq!(status, 503);
    let (status, _) = refused(ws_url(&sim, &format!("/rtc?access_token={token}"))).await;
    assert_eq!(status, 503);
    assert_eq!(sim.stats().rtc_connections, 10);
}

#[tokio::test]
async fn server_side_removal_sends_leave_and_closes() {
    let sim = start().await;
    let mut ws = connect(&sim, &join_token("agent-r", ROOM)).await;
    next_signal(&mut ws).await;
    RoomClient::with_api_key(&sim.url(), KEY, SECRET)
        .remove_participant(ROOM, "agent-r")
        .await
        .unwrap();
    assert!(matches!(
        next_signal(&mut ws).await,
        signal_response::Message::Leave(_)
    ));
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Normal));
    eventually("session closed", || sim.stats().rtc_sessions_open == 0).await;
}

#[tokio::test]
async fn duplicate_identity_replaces_the_old_session() {
    let sim = start().await;
    let token = join_token("dup", ROOM);
    let mut first = connect(&sim, &token).await;
    next_signal(&mut first).await;
    let mut second = connect(&sim, &token).await;
    let signal_response::Message::Join(join) = next_signal(&mut second).await else {
        panic!("join");
    };
    let new_sid = join.participant.unwrap().sid;
    assert!(matches!(
        next_signal(&mut first).await,
        signal_response::Message::Leave(_)
    ));
    close_code(&mut first).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The old session's end must not remove the new participant.
    let now: Vec<_> = sim.participants(ROOM).into_iter().map(|p| p.sid).collect();
    assert_eq!(now, vec![new_sid]);
}

#[tokio::test]
async fn dropped_connection_leaves_and_limits_hold() {
    let mut cfg = config();
    cfg.limits.max_rtc_sessions = 1;
    let sim = Simulator::start(cfg).await.unwrap();
    let mut ws = connect(&sim, &join_token("one", ROOM)).await;
    next_signal(&mut ws).await;

    // Over the session bound: 503 before any join.
    let token = join_token("two", ROOM);
    let (status, body) = refused(ws_url(&sim, &format!("/rtc?access_token={token}"))).await;
    assert_eq!(
        (status, body.as_str()),
        (503, "node has exceeded its configured limit")
    );
    assert_eq!(sim.participants(ROOM).len(), 1);

    // TCP drop without a close frame: the participant still leaves.
    drop(ws);
    eventually("participant gone", || sim.participants(ROOM).is_empty()).await;
    eventually("session closed", || sim.stats().rtc_sessions_open == 0).await;
    let mut again = connect(&sim, &token).await;
    next_signal(&mut again).await;
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let sim = start().await;
    let mut ws = connect(&sim, &join_token("big", ROOM)).await;
    next_signal(&mut ws).await;
    ws.send(Message::text("x".repeat(64 * 1024 + 1)))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));
    eventually("participant gone", || sim.participants(ROOM).is_empty()).await;
}

#[tokio::test]
async fn shutdown_and_refuse_end_sessions() {
    let sim = start().await;
    let mut ws = connect(&sim, &join_token("s1", ROOM)).await;
    next_signal(&mut ws).await;
    sim.set_refuse_connections(true);
    // Cut without a close frame.
    let end = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(!matches!(end, Some(Ok(Message::Close(_)))), "{end:?}");
    eventually("participant gone", || sim.participants(ROOM).is_empty()).await;
    sim.set_refuse_connections(false);

    let mut ws = connect(&sim, &join_token("s2", ROOM)).await;
    next_signal(&mut ws).await;
    sim.shutdown().await;
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Away));
}
