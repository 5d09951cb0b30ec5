//! One signalling WebSocket session after a validated `/rtc` request.
//!
//! The participant joins the room *before* the 101 (as LiveKit's `startConnection`
//! does), so a room-full refusal is still an HTTP status. Then:
//! * the first frame is a binary `SignalResponse{join}` (room, participant, others);
//! * text frames are echoed verbatim (the simulator's stand-in for signalling);
//! * binary `SignalRequest`s: `ping` -> `pong`, `ping_req` -> `pong_resp`,
//!   `add_track` -> the track is published at once (no media negotiation here; LiveKit
//!   publishes it when the media arrives) and answered `track_published`,
//!   `leave` -> the session ends; anything else is ignored;
//! * WebSocket pings are answered with pongs (by tungstenite), frames over 64 KiB
//!   close the session with 1009;
//! * close, connection drop or client `leave` -> the participant leaves
//!   (`CLIENT_INITIATED`, removed by sid so a newer session with the same identity
//!   stays); removal from the room (RemoveParticipant, DeleteRoom, duplicate
//!   identity) -> a `SignalResponse{leave}` then a normal close; `refuse_connections`
//!   -> the TCP connection is cut; simulator shutdown -> close 1001, no webhook.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use livekit_api::access_token::Claims;
use livekit_protocol as proto;
use prost::Message as _;
use proto::participant_info::Kind;
use proto::{signal_request, signal_response};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::JoinGrant;
use crate::core::Core;
use crate::rooms::{self, NewParticipant, SharedRooms};
use crate::twirp;

/// Largest frame or message accepted from a client.
pub(crate) const MAX_FRAME_BYTES: usize = 64 * 1024;
/// How long a server-initiated close waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// `JoinResponse.server_info` (a semver: SDKs gate features on it).
const SERVER_VERSION: &str = "1.9.0";
const SERVER_PROTOCOL: i32 = 16;
const NODE_ID: &str = "ND_livekitsim";
/// LiveKit's defaults (`rtc.ping_interval` 5 s, `ping_timeout` 15 s).
const PING_INTERVAL_S: i32 = 5;
const PING_TIMEOUT_S: i32 = 15;

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// The bound on, and the registry of, open signalling sessions.
pub(crate) struct RtcSessions {
    permits: Arc<Semaphore>,
    open: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
}

impl RtcSessions {
    pub(crate) fn new(max_sessions: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_sessions.max(1))),
            open: Arc::new(AtomicU64::new(0)),
            stop: watch::Sender::new(false),
        }
    }

    /// Sessions with a live WebSocket.
    pub(crate) fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Simulator shutdown: every session closes (1001) without leave webhooks.
    pub(crate) fn stop_all(&self) {
        self.stop.send_replace(true);
    }
}

/// Counts a session as open while alive.
struct OpenGuard(Arc<AtomicU64>);

impl OpenGuard {
    fn new(open: &Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The session's participant; leaves the room (`CLIENT_INITIATED`) when dropped,
/// whatever ended the session, unless disarmed.
struct Membership {
    rooms: SharedRooms,
    room: String,
    identity: String,
    sid: String,
    armed: bool,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if self.armed {
            // By sid: a newer session with this identity has replaced us.
            self.rooms.lock().remove_participant(
                &self.room,
                &self.identity,
                Some(&self.sid),
                proto::DisconnectReason::ClientInitiated,
            );
        }
    }
}

/// Joins the participant and spawns the session that takes over the connection
/// once hyper has sent the 101. On `Err` nothing was joined and no 101 may be sent.
pub(super) fn start(
    core: &Arc<Core>,
    on_upgrade: OnUpgrade,
    grant: JoinGrant,
) -> Result<(), (StatusCode, String)> {
    let permit = core.rtc.permits.clone().try_acquire_owned().map_err(|_| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "node has exceeded its configured limit".to_owned(),
        )
    })?;
    let (alive, removed) = oneshot::channel();
    let (participant, room, others) = {
        let mut rooms = core.rooms.lock();
        let participant = rooms
            .add_participant(
                &grant.room,
                NewParticipant {
                    info: participant_info(&grant.claims),
                    alive: Some(alive),
                    waiter: None,
                },
            )
            .map_err(|e| (twirp::http_status(&e.code), e.msg))?;
        let room = rooms.list_rooms(std::slice::from_ref(&grant.room));
        let others: Vec<_> = rooms
            .participants(&grant.room)
            .into_iter()
            .filter(|p| p.sid != participant.sid)
            .collect();
        (participant, room.into_iter().next(), others)
    };
    let membership = Membership {
        rooms: core.rooms.clone(),
        room: grant.room.clone(),
        identity: participant.identity.clone(),
        sid: participant.sid.clone(),
        armed: true,
    };
    let join = signal(signal_response::Message::Join(proto::JoinResponse {
        room,
        participant: Some(participant),
        other_participants: others,
        server_version: SERVER_VERSION.to_owned(),
        ping_interval: PING_INTERVAL_S,
        ping_timeout: PING_TIMEOUT_S,
        server_info: Some(proto::ServerInfo {
            edition: proto::server_info::Edition::Standard as i32,
            version: SERVER_VERSION.to_owned(),
            protocol: SERVER_PROTOCOL,
            node_id: NODE_ID.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }));
    core.counters.rtc_upgrade();
    tracing::debug!(room = %grant.room, v1 = grant.v1, "livekit-sim: rtc session starting");
    tokio::spawn(run(
        core.clone(),
        on_upgrade,
        membership,
        permit,
        removed,
        join,
    ));
    Ok(())
}

/// The participant as LiveKit builds it from the token's claims.
fn participant_info(claims: &Claims) -> proto::ParticipantInfo {
    let mut info = rooms::standard_participant(&claims.sub, &claims.name);
    let video = &claims.video;
    info.metadata = claims.metadata.clone();
    info.attributes = claims.attributes.clone();
    info.kind = match claims.kind.as_str() {
        "ingress" => Kind::Ingress,
        "egress" => Kind::Egress,
        "sip" => Kind::Sip,
        "agent" => Kind::Agent,
        _ => Kind::Standard,
    } as i32;
    info.permission = Some(proto::ParticipantPermission {
        can_subscribe: video.can_subscribe(),
        can_publish: video.can_publish(),
        can_publish_data: video.can_publish_data(),
        can_update_metadata: video.can_update_own_metadata(),
        hidden: video.hidden,
        ..Default::default()
    });
    info
}

fn signal(message: signal_response::Message) -> Message {
    let resp = proto::SignalResponse {
        message: Some(message),
    };
    Message::Binary(Bytes::from(resp.encode_to_vec()))
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Close frame, `leave` request, error or connection drop.
    Client,
    /// The participant was removed from the room by the server side.
    Removed,
    /// `refuse_connections` fault: the TCP connection is cut.
    Refused,
    /// Simulator shutdown.
    Shutdown,
}

async fn run(
    core: Arc<Core>,
    on_upgrade: OnUpgrade,
    mut membership: Membership,
    _permit: OwnedSemaphorePermit,
    removed: oneshot::Receiver<()>,
    join: Message,
) {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "livekit-sim: rtc upgrade failed");
            return; // `membership` leaves
        }
    };
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_write_buffer_size(4 * MAX_FRAME_BYTES);
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    let _open = OpenGuard::new(&core.rtc.open);
    let end = drive(&core, &mut ws, join, removed, &membership).await;
    tracing::debug!(?end, room = %membership.room, "livekit-sim: rtc session ended");
    if end == End::Shutdown {
        membership.armed = false; // rooms are being dropped without webhooks
    }
}

async fn drive(
    core: &Core,
    ws: &mut Ws,
    join: Message,
    mut removed: oneshot::Receiver<()>,
    me: &Membership,
) -> End {
    let mut stop = core.rtc.stop.subscribe();
    let mut refuse = core.faults.watch_refuse();
    if ws.send(join).await.is_err() {
        return End::Client;
    }
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                // After a close frame tungstenite sends the reply, then yields None.
                None => return End::Client,
                Some(Err(WsError::Capacity(_))) => {
                    close(ws, CloseCode::Size, "message too big").await;
                    return End::Client;
                }
                Some(Err(_)) => return End::Client,
                Some(Ok(msg)) => match answer(msg) {
                    Action::Reply(reply) => {
                        if ws.send(reply).await.is_err() {
                            return End::Client;
                        }
                    }
                    // tungstenite queued the pong; push it out now.
                    Action::Flush => {
                        if ws.flush().await.is_err() {
                            return End::Client;
                        }
                    }
                    Action::Leave => {
                        close(ws, CloseCode::Normal, "").await;
                        return End::Client;
                    }
                    Action::Publish(req) => {
                        let track = publish(core, me, &req);
                        let reply = signal(signal_response::Message::TrackPublished(
                            proto::TrackPublishedResponse { cid: req.cid, track },
                        ));
                        if ws.send(reply).await.is_err() {
                            return End::Client;
                        }
                    }
                    Action::Nothing => {}
                },
            },
            _ = &mut removed => {
                let leave = proto::LeaveRequest {
                    reason: proto::DisconnectReason::UnknownReason as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                };
                let _ = ws.send(signal(signal_response::Message::Leave(leave))).await;
                close(ws, CloseCode::Normal, "").await;
                return End::Removed;
            }
            _ = flipped(&mut stop) => {
                close(ws, CloseCode::Away, "server shutting down").await;
                return End::Shutdown;
            }
            _ = flipped(&mut refuse) => return End::Refused,
        }
    }
}

/// Resolves once the switch is on (or its sender is gone).
async fn flipped(rx: &mut watch::Receiver<bool>) {
    // The `Ref` is dropped here: it is not `Send`.
    let _ = rx.wait_for(|on| *on).await.is_ok();
}

enum Action {
    Reply(Message),
    Flush,
    Leave,
    Publish(proto::AddTrackRequest),
    Nothing,
}

/// Publishes the track an `AddTrackRequest` announces on the session's participant.
fn publish(core: &Core, me: &Membership, req: &proto::AddTrackRequest) -> Option<proto::TrackInfo> {
    let track = proto::TrackInfo {
        sid: crate::ids::guid(crate::ids::TRACK_PREFIX),
        r#type: req.r#type,
        name: req.name.clone(),
        source: req.source,
        muted: req.muted,
        width: req.width,
        height: req.height,
        ..Default::default()
    };
    core.rooms
        .lock()
        .publish_track(&me.room, &me.sid, track.clone())
        .then_some(track)
}

fn answer(msg: Message) -> Action {
    match msg {
        Message::Text(text) => Action::Reply(Message::Text(text)),
        Message::Binary(bytes) => match proto::SignalRequest::decode(bytes).map(|r| r.message) {
            Ok(Some(signal_request::Message::Ping(_))) => {
                Action::Reply(signal(signal_response::Message::Pong(now_ms())))
            }
            Ok(Some(signal_request::Message::PingReq(ping))) => {
                Action::Reply(signal(signal_response::Message::PongResp(proto::Pong {
                    last_ping_timestamp: ping.timestamp,
                    timestamp: now_ms(),
                })))
            }
            Ok(Some(signal_request::Message::Leave(_))) => Action::Leave,
            Ok(Some(signal_request::Message::AddTrack(req))) => Action::Publish(req),
            _ => Action::Nothing,
        },
        Message::Ping(_) => Action::Flush,
        Message::Pong(_) | Message::Close(_) | Message::Frame(_) => Action::Nothing,
    }
}

/// Sends a close frame and waits briefly for the client's, so the TCP close is clean.
async fn close(ws: &mut Ws, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    if ws.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

fn now_ms() -> i64 {
    rooms::now().1
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::access_token::VideoGrants;

    #[test]
    fn participant_from_claims() {
        let mut claims = Claims {
            sub: "agent-7".into(),
            name: "Asha".into(),
            kind: "agent".into(),
            metadata: "m".into(),
            video: VideoGrants {
                room_join: true,
                room: "r".into(),
                can_publish: Some(false),
                ..Default::default()
            },
            ..Default::default()
        };
        claims.attributes.insert("team".into(), "blue".into());
        let p = participant_info(&claims);
        assert_eq!((p.identity.as_str(), p.name.as_str()), ("agent-7", "Asha"));
        assert_eq!(p.kind, Kind::Agent as i32);
        assert_eq!(p.attributes.get("team").map(String::as_str), Some("blue"));
        let perm = p.permission.unwrap();
        assert!(!perm.can_publish && !perm.can_publish_data && perm.can_subscribe);
    }

    #[test]
    fn answers() {
        let ping = proto::SignalRequest {
            message: Some(signal_request::Message::PingReq(proto::Ping {
                timestamp: 42,
                rtt: 0,
            })),
        };
        let Action::Reply(Message::Binary(b)) =
            answer(Message::Binary(ping.encode_to_vec().into()))
        else {
            panic!("no pong");
        };
        let resp = proto::SignalResponse::decode(b).unwrap();
        assert!(matches!(
            resp.message,
            Some(signal_response::Message::PongResp(proto::Pong {
                last_ping_timestamp: 42,
                ..
            }))
        ));
        let leave = proto::SignalRequest {
            message: Some(signal_request::Message::Leave(Default::default())),
        };
        assert!(matches!(
            answer(Message::Binary(leave.encode_to_vec().into())),
            Action::Leave
        ));
        assert!(matches!(
            answer(Message::Binary(Bytes::from_static(b"\xff\xff"))),
            Action::Nothing
        ));
        assert!(
            matches!(answer(Message::text("hi")), Action::Reply(Message::Text(t)) if t == "hi")
        );
    }
}
