//! The room side of an inbound call: the SIP participant LiveKit SIP joins for the
//! caller (`joinRoom` / `createLiveKitParticipant`), whether the room is ready to
//! answer (`waitSubscribe`), its `sip.callStatus`, and leaving.

use std::collections::{BTreeMap, HashMap};

use livekit_protocol as proto;
use proto::participant_info::{Kind, State};
use proto::DisconnectReason;
use tokio::sync::oneshot;

use super::super::message::Message;
use crate::ids::{guid, PARTICIPANT_PREFIX};
use crate::rooms::{now, NewParticipant, SharedRooms};
use crate::sip_dialer::{ATTR_CALL_ID_FULL, ATTR_CALL_STATUS};
use crate::sip_rules::matching::Dispatch;
use crate::twirp::TwirpError;

/// The From tag of the INVITE (`sip.callTag`).
pub(crate) const ATTR_CALL_TAG: &str = "sip.callTag";
/// Prefix of headers mapped by the trunk's `include_headers`.
const ATTR_HEADER_PREFIX: &str = "sip.h.";

/// The caller's participant in its room.
pub(super) struct Seat {
    rooms: SharedRooms,
    pub room: String,
    pub identity: String,
    sid: String,
    /// The attributes as last seen (for `attributes_to_headers` once it has left).
    attributes: HashMap<String, String>,
}

/// The attributes the participant joins with: the rule's and LiveKit's own, the
/// trunk's header mappings (values verbatim), the call tag and Call-ID, and
/// `sip.callStatus = ringing` — all before the join, so `participant_joined` has them.
pub(super) fn join_attributes(d: &Dispatch, invite: &Message) -> HashMap<String, String> {
    let mut attrs = d.attributes.clone();
    let x_only = d.include_headers == proto::SipHeaderOptions::SipXHeaders as i32;
    let all = d.include_headers == proto::SipHeaderOptions::SipAllHeaders as i32;
    if x_only || all {
        for (name, value) in invite.headers() {
            if all || name.starts_with("x-") {
                attrs.insert(format!("{ATTR_HEADER_PREFIX}{name}"), value.clone());
            }
        }
    }
    for (header, attr) in &d.headers_to_attributes {
        if let Some(value) = invite.header(header) {
            attrs.insert(attr.clone(), value.to_owned());
        }
    }
    if let Some(tag) = invite
        .header("from")
        .and_then(super::super::message::tag_of)
    {
        attrs.insert(ATTR_CALL_TAG.to_owned(), tag.to_owned());
    }
    if let Some(call_id) = invite.call_id() {
        attrs.insert(ATTR_CALL_ID_FULL.to_owned(), call_id.to_owned());
    }
    attrs.insert(ATTR_CALL_STATUS.to_owned(), "ringing".to_owned());
    attrs
}

impl Seat {
    /// Creates the room if missing (with the rule's `room_config` timeouts) and joins
    /// the SIP participant; `alive` resolves when it leaves for any reason.
    pub(super) fn join(
        rooms: SharedRooms,
        d: &Dispatch,
        attributes: HashMap<String, String>,
        alive: oneshot::Sender<()>,
    ) -> Result<Seat, TwirpError> {
        let (now_s, now_ms) = now();
        let info = proto::ParticipantInfo {
            sid: guid(PARTICIPANT_PREFIX),
            identity: d.identity.clone(),
            name: d.name.clone(),
            metadata: d.metadata.clone(),
            state: State::Active as i32,
            joined_at: now_s,
            joined_at_ms: now_ms,
            version: 1,
            kind: Kind::Sip as i32,
            attributes: attributes.clone(),
            is_publisher: true,
            permission: Some(proto::ParticipantPermission {
                can_subscribe: true,
                can_publish: true,
                can_publish_data: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let sid = info.sid.clone();
        {
            let mut guard = rooms.lock();
            if let Some(cfg) = &d.room_config {
                // CreateRoom is idempotent: an existing room keeps its settings.
                guard.create_room(&proto::CreateRoomRequest {
                    name: d.room.clone(),
                    empty_timeout: cfg.empty_timeout,
                    departure_timeout: cfg.departure_timeout,
                    max_participants: cfg.max_participants,
                    metadata: cfg.metadata.clone(),
                    ..Default::default()
                })?;
            }
            guard.add_participant(
                &d.room,
                NewParticipant {
                    info,
                    alive: Some(alive),
                    waiter: None,
                },
            )?;
        }
        Ok(Seat {
            rooms,
            room: d.room.clone(),
            identity: d.identity.clone(),
            sid,
            attributes,
        })
    }

    /// LiveKit SIP answers once it has subscribed to another participant's audio
    /// track, or a second SIP participant is in the room (`room.go subscribeTo`,
    /// `participantJoin`).
    pub(super) fn ready(&self) -> bool {
        self.rooms.lock().any_other(&self.room, &self.sid, |p| {
            p.kind == Kind::Sip as i32
                || p.tracks
                    .iter()
                    .any(|t| t.r#type == proto::TrackType::Audio as i32)
        })
    }

    pub(super) fn set_status(&mut self, status: &str) {
        self.rooms
            .lock()
            .set_attribute(&self.room, &self.sid, ATTR_CALL_STATUS, status);
        self.attributes
            .insert(ATTR_CALL_STATUS.to_owned(), status.to_owned());
    }

    /// The participant leaves by itself (`CLIENT_INITIATED`), after `status` if any.
    pub(super) fn leave(&mut self, status: Option<&str>) {
        if let Some(status) = status {
            self.set_status(status);
        }
        self.rooms.lock().remove_participant(
            &self.room,
            &self.identity,
            Some(&self.sid),
            DisconnectReason::ClientInitiated,
        );
    }

    /// `attributes_to_headers` over the current attributes (`AttrsToHeaders`; the
    /// last ones seen once the participant has left), after the trunk `headers` when
    /// `with_trunk_headers` (the 200 OK only). Values that cannot be a header line
    /// are skipped.
    pub(super) fn headers(
        &mut self,
        d: &Dispatch,
        with_trunk_headers: bool,
    ) -> Vec<(String, String)> {
        if let Some(p) = self.rooms.lock().participant(&self.room, &self.identity) {
            if p.sid == self.sid {
                self.attributes = p.attributes;
            }
        }
        let mut out = BTreeMap::new();
        if with_trunk_headers {
            out.extend(d.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for (attr, header) in &d.attributes_to_headers {
            if let Some(value) = self.attributes.get(attr) {
                out.insert(header.clone(), value.clone());
            }
        }
        out.into_iter()
            .filter(|(k, v)| {
                !k.is_empty()
                    && k.bytes().all(super::super::message::is_token_byte)
                    && !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
            })
            .collect()
    }
}
