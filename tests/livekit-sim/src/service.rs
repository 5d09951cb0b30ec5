//! Twirp routing and the RoomService / SIP method handlers.
//!
//! Order of checks follows the generated Go server: method POST, service, prefix,
//! method name, Content-Type, body decode, then (inside the handler) the grant check,
//! then the operation.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use livekit_api::access_token::Claims;
use livekit_protocol as proto;
use proto::DisconnectReason;

use crate::auth;
use crate::core::Core;
use crate::protojson::Shape;
use crate::sip_dialer;
use crate::twirp::{code, parse_path, Codec, HttpResponse, TwirpError};

pub(crate) const TWIRP_PREFIX: &str = "/twirp";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    CreateRoom,
    ListRooms,
    DeleteRoom,
    ListParticipants,
    GetParticipant,
    RemoveParticipant,
    CreateSipParticipant,
    CreateSipInboundTrunk,
    ListSipInboundTrunk,
    DeleteSipTrunk,
    CreateSipDispatchRule,
    ListSipDispatchRule,
    DeleteSipDispatchRule,
    /// A real LiveKit method the simulator does not model.
    Unsupported,
}

fn route(service: &str, method: &str) -> Option<Rpc> {
    match (service, method) {
        ("livekit.RoomService", "CreateRoom") => Some(Rpc::CreateRoom),
        ("livekit.RoomService", "ListRooms") => Some(Rpc::ListRooms),
        ("livekit.RoomService", "DeleteRoom") => Some(Rpc::DeleteRoom),
        ("livekit.RoomService", "ListParticipants") => Some(Rpc::ListParticipants),
        ("livekit.RoomService", "GetParticipant") => Some(Rpc::GetParticipant),
        ("livekit.RoomService", "RemoveParticipant") => Some(Rpc::RemoveParticipant),
        (
            "livekit.RoomService",
            "MutePublishedTrack"
            | "UpdateParticipant"
            | "UpdateSubscriptions"
            | "SendData"
            | "UpdateRoomMetadata"
            | "ForwardParticipant"
            | "MoveParticipant"
            | "PerformRpc",
        ) => Some(Rpc::Unsupported),
        ("livekit.SIP", "CreateSIPParticipant") => Some(Rpc::CreateSipParticipant),
        ("livekit.SIP", "CreateSIPInboundTrunk") => Some(Rpc::CreateSipInboundTrunk),
        ("livekit.SIP", "ListSIPInboundTrunk") => Some(Rpc::ListSipInboundTrunk),
        ("livekit.SIP", "DeleteSIPTrunk") => Some(Rpc::DeleteSipTrunk),
        ("livekit.SIP", "CreateSIPDispatchRule") => Some(Rpc::CreateSipDispatchRule),
        ("livekit.SIP", "ListSIPDispatchRule") => Some(Rpc::ListSipDispatchRule),
        ("livekit.SIP", "DeleteSIPDispatchRule") => Some(Rpc::DeleteSipDispatchRule),
        ("livekit.SIP", _) if !method.is_empty() => Some(Rpc::Unsupported),
        _ => None,
    }
}

/// Serves one request under `/twirp/` (authentication already done).
pub(crate) async fn handle(
    core: &Arc<Core>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    claims: Option<Claims>,
    body: Bytes,
) -> HttpResponse {
    match serve(core, method, path, headers, claims.as_ref(), body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn serve(
    core: &Arc<Core>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    claims: Option<&Claims>,
    body: Bytes,
) -> Result<HttpResponse, TwirpError> {
    if method != Method::POST {
        return Err(TwirpError::bad_route(
            format!(
                "unsupported method {:?} (only POST is allowed)",
                method.as_str()
            ),
            method.as_str(),
            path,
        ));
    }
    let (prefix, service, name) = parse_path(path);
    let Some(rpc) = route(service, name) else {
        return Err(TwirpError::bad_route(
            format!("no handler for path {path:?}"),
            method.as_str(),
            path,
        ));
    };
    if prefix != TWIRP_PREFIX {
        return Err(TwirpError::bad_route(
            format!("invalid path prefix {prefix:?}, expected {TWIRP_PREFIX:?}, on path {path:?}"),
            method.as_str(),
            path,
        ));
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(codec) = Codec::from_content_type(content_type) else {
        return Err(TwirpError::bad_route(
            format!("unexpected Content-Type: {:?}", content_type.unwrap_or("")),
            method.as_str(),
            path,
        ));
    };
    match rpc {
        Rpc::CreateRoom => {
            let req: proto::CreateRoomRequest = codec.decode(&body)?;
            auth::require_create(claims)?;
            let room = core.rooms.lock().create_room(&req)?;
            Ok(codec.respond(&room, Shape::Room))
        }
        Rpc::ListRooms => {
            let req: proto::ListRoomsRequest = codec.decode(&body)?;
            auth::require_list(claims)?;
            let rooms = core.rooms.lock().list_rooms(&req.names);
            Ok(codec.respond(&proto::ListRoomsResponse { rooms }, Shape::ListRooms))
        }
        Rpc::DeleteRoom => {
            let req: proto::DeleteRoomRequest = codec.decode(&body)?;
            auth::require_create(claims)?;
            core.rooms.lock().delete_room(&req.room)?;
            Ok(codec.respond(&proto::DeleteRoomResponse {}, Shape::Empty))
        }
        Rpc::ListParticipants => {
            let req: proto::ListParticipantsRequest = codec.decode(&body)?;
            auth::require_admin(claims, &req.room)?;
            let participants = core.rooms.lock().participants(&req.room);
            let resp = proto::ListParticipantsResponse { participants };
            Ok(codec.respond(&resp, Shape::ListParticipants))
        }
        Rpc::GetParticipant => {
            let req: proto::RoomParticipantIdentity = codec.decode(&body)?;
            auth::require_admin(claims, &req.room)?;
            let found = core.rooms.lock().participant(&req.room, &req.identity);
            let p = found.ok_or_else(participant_not_found)?;
            Ok(codec.respond(&p, Shape::Participant))
        }
        Rpc::RemoveParticipant => {
            let req: proto::RoomParticipantIdentity = codec.decode(&body)?;
            auth::require_admin(claims, &req.room)?;
            core.rooms
                .lock()
                .remove_participant(
                    &req.room,
                    &req.identity,
                    None,
                    DisconnectReason::ParticipantRemoved,
                )
                .ok_or_else(participant_not_found)?;
            Ok(codec.respond(&proto::RemoveParticipantResponse {}, Shape::Empty))
        }
        Rpc::CreateSipParticipant => {
            let req: proto::CreateSipParticipantRequest = codec.decode(&body)?;
            auth::require_sip_call(claims)?;
            let info = sip_dialer::create_sip_participant(core, req).await?;
            Ok(codec.respond(&info, Shape::SipParticipant))
        }
        Rpc::CreateSipInboundTrunk => {
            let req: proto::CreateSipInboundTrunkRequest = codec.decode(&body)?;
            auth::require_sip_admin(claims)?;
            let trunk = core.sip_rules.lock().create_trunk(req)?;
            Ok(codec.respond(&trunk, Shape::SipInboundTrunk))
        }
        Rpc::ListSipInboundTrunk => {
            let req: proto::ListSipInboundTrunkRequest = codec.decode(&body)?;
            auth::require_sip_admin(claims)?;
            let items = core.sip_rules.lock().list_trunks(&req);
            let resp = proto::ListSipInboundTrunkResponse { items };
            Ok(codec.respond(&resp, Shape::ListSipInboundTrunk))
        }
        Rpc::DeleteSipTrunk => {
            let req: proto::DeleteSipTrunkRequest = codec.decode(&body)?;
            auth::require_sip_admin(claims)?;
            let info = core.sip_rules.lock().delete_trunk(&req.sip_trunk_id)?;
            Ok(codec.respond(&info, Shape::SipTrunk))
        }
        Rpc::CreateSipDispatchRule => {
            let req: proto::CreateSipDispatchRuleRequest = codec.decode(&body)?;
            auth::require_sip_admin(claims)?;
            let rule = core.sip_rules.lock().create_rule(req)?;
            Ok(codec.respond(&rule, Shape::SipDispatchRule))
        }
        Rpc::ListSipDispatchRule => {
            let req: proto::ListSipDispatchRuleRequest = codec.decode(&body)?;
            auth::require_sip_admin(claims)?;
            let items = core.sip_rules.lock().list_rules(&req);
            let resp = proto::ListSipDispatchRuleResponse { items };
            Ok(codec.respond(&resp, Shape::ListSipDispatchRule))
        }
        Rpc::DeleteSipDispatchRule => {
            let req: proto::DeleteSipDispatchRuleRequest = codec.decode(&body)?;
            auth::require_sip_admin(claims)?;
            let rule = core
                .sip_rules
                .lock()
                .delete_rule(&req.sip_dispatch_rule_id)?;
            Ok(codec.respond(&rule, Shape::SipDispatchRule))
        }
        Rpc::Unsupported => Err(TwirpError::new(
            code::UNIMPLEMENTED,
            format!("{service}/{name} is not modelled by livekit-sim"),
        )),
    }
}

fn participant_not_found() -> TwirpError {
    TwirpError::new(code::NOT_FOUND, "participant does not exist")
}
