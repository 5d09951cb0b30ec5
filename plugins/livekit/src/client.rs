//! `LiveKitClient`: one per LiveKit project, built once, wrapping livekit-api's
//! `RoomClient` and `SIPClient` (each owns one pooled HTTP client).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use livekit_api::services::room::{CreateRoomOptions, RoomClient};
use livekit_api::services::sip::{CreateSIPParticipantOptions, SIPClient};
use livekit_protocol as proto;

use crate::error::LiveKitError;
use crate::token;

/// Identity given to the dialled customer. Fixed and number-free: without it LiveKit
/// derives `"sip_" + sip_call_to`, leaking the internal dial string to the browser.
pub const SIP_PARTICIPANT_IDENTITY: &str = "sip-customer";
/// SIP header carrying our call id on the INVITE.
pub const CALL_ID_HEADER: &str = "X-C2C-Call-Id";
/// SIP header naming the tenant on our own dials (read by the SIP edge).
pub const TENANT_HEADER: &str = "X-C2C-Tenant";
/// The call's DLT category when its request named one (`promotional`, `service`,
/// `transactional`).
pub const CATEGORY_HEADER: &str = "X-C2C-Category";
/// Participant attribute LiveKit SIP keeps the call status in
/// (`dialing`, `ringing`, `automation`, `active`, `hangup`).
pub const ATTR_CALL_STATUS: &str = "sip.callStatus";
/// Not set by LiveKit; read if present (livekit-sim can add it on request).
pub const ATTR_DISCONNECT_CODE: &str = "sip.disconnectCode";

/// Told the operation name (`create_room`, `create_sip_participant`, `delete_room`,
/// `list_rooms`, `list_participants`, `remove_participant`) of every LiveKit API request
/// just before it is sent. The gateway counts them (`c2c_livekit_requests_total{op}`);
/// this crate stays free of any metrics library.
pub type RequestObserver = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Connection settings of one LiveKit project.
#[derive(Clone, PartialEq, Eq)]
pub struct LiveKitProject {
    /// `https://…`, `http://…`, `wss://…` or `ws://…` (ws schemes are mapped to http).
    pub url: String,
    pub api_key: String,
    pub api_secret: String,
}

impl LiveKitProject {
    pub fn new(
        url: impl Into<String>,
        api_key: impl Into<String>,
        api_secret: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }

    fn validate(&self) -> Result<(), LiveKitError> {
        let scheme_ok = ["http://", "https://", "ws://", "wss://"]
            .iter()
            .any(|s| self.url.starts_with(s));
        if !scheme_ok {
            return Err(LiveKitError::Config(format!(
                "url {:?} must start with http(s):// or ws(s)://",
                self.url
            )));
        }
        if self.api_key.is_empty() || self.api_secret.is_empty() {
            return Err(LiveKitError::Config(
                "api_key and api_secret are required".to_owned(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for LiveKitProject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveKitProject")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

/// The room as CreateRoom returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    pub sid: String,
    pub name: String,
    pub empty_timeout: Duration,
    pub creation_time_ms: i64,
}

/// An outbound call to place with CreateSIPParticipant.
#[derive(Clone, PartialEq, Eq)]
pub struct CallDial {
    /// LiveKit outbound trunk (`ST_…`).
    pub trunk_id: String,
    /// Internal dial string (trunk prefix + number). Never logged unmasked.
    pub call_to: String,
    pub room: String,
    /// Caller ID presented to the customer (E.164).
    pub sip_number: String,
    pub ring_timeout: Duration,
    pub max_duration: Duration,
    /// Sent as the `X-C2C-Call-Id` SIP header.
    pub call_id: String,
    /// Sent as the `X-C2C-Tenant` SIP header, so the gateway's SIP edge can pick the
    /// tenant and trunk without guessing from the dial prefix.
    pub tenant: Option<String>,
    /// Sent as the `X-C2C-Category` SIP header when the request named the call's DLT
    /// category, so the SIP edge checks the call as the API did (else: the trunk's).
    pub category: Option<String>,
}

impl fmt::Debug for CallDial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallDial")
            .field("trunk_id", &self.trunk_id)
            .field("call_to", &mask(&self.call_to))
            .field("room", &self.room)
            .field("sip_number", &self.sip_number)
            .field("ring_timeout", &self.ring_timeout)
            .field("max_duration", &self.max_duration)
            .field("call_id", &self.call_id)
            .field("tenant", &self.tenant)
            .field("category", &self.category)
            .finish()
    }
}

/// What CreateSIPParticipant returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialedParticipant {
    pub participant_id: String,
    pub participant_identity: String,
    pub room: String,
    pub sip_call_id: String,
}

/// The parts of a participant the call state machine cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantSnapshot {
    pub identity: String,
    /// `ParticipantInfo.kind == SIP`.
    pub kind_sip: bool,
    /// Attribute `sip.callStatus`.
    pub call_status: Option<String>,
    /// `DisconnectReason` name (e.g. `"USER_REJECTED"`); `None` for `UNKNOWN_REASON`.
    pub disconnect_reason: Option<String>,
    /// Attribute `sip.disconnectCode` when present (LiveKit itself never sets it).
    pub sip_code: Option<u16>,
    /// The participant publishes an audio track (an agent's microphone).
    pub publishes_audio: bool,
}

impl From<&proto::ParticipantInfo> for ParticipantSnapshot {
    fn from(p: &proto::ParticipantInfo) -> Self {
        Self {
            identity: p.identity.clone(),
            kind_sip: p.kind == proto::participant_info::Kind::Sip as i32,
            call_status: p.attributes.get(ATTR_CALL_STATUS).cloned(),
            disconnect_reason: disconnect_reason_name(p.disconnect_reason),
            sip_code: p
                .attributes
                .get(ATTR_DISCONNECT_CODE)
                .and_then(|v| v.parse().ok()),
            publishes_audio: p
                .tracks
                .iter()
                .any(|t| t.r#type == proto::TrackType::Audio as i32),
        }
    }
}

/// `DisconnectReason` enum name for a wire value; `None` for 0 (`UNKNOWN_REASON`).
pub fn disconnect_reason_name(value: i32) -> Option<String> {
    if value == 0 {
        return None;
    }
    Some(match proto::DisconnectReason::try_from(value) {
        Ok(reason) => reason.as_str_name().to_owned(),
        Err(_) => format!("DISCONNECT_REASON_{value}"),
    })
}

/// LiveKit server API for one project. Build once and share (`Arc`).
///
/// Every SDK call is boxed (`Box::pin(..).await`). The SDK's futures hold a whole reqwest
/// request (kilobytes each); unboxed, they made the gateway's request handlers 6-25 KiB
/// futures, copied in full each time a handler future is moved or boxed. Boxed, each SDK
/// future is copied once, into its box.
pub struct LiveKitClient {
    project: LiveKitProject,
    rooms: RoomClient,
    sip: SIPClient,
    observer: Option<RequestObserver>,
}

impl fmt::Debug for LiveKitClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveKitClient")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl LiveKitClient {
    /// Validates the project and builds the SDK clients (their HTTP pools live as
    /// long as this value).
    pub fn new(project: LiveKitProject) -> Result<Self, LiveKitError> {
        project.validate()?;
        let rooms = RoomClient::with_api_key(&project.url, &project.api_key, &project.api_secret);
        let sip = SIPClient::with_api_key(&project.url, &project.api_key, &project.api_secret);
        Ok(Self {
            project,
            rooms,
            sip,
            observer: None,
        })
    }

    /// Reports every API request to `observer` (see [`RequestObserver`]).
    pub fn with_request_observer(self, observer: RequestObserver) -> Self {
        Self {
            observer: Some(observer),
            ..self
        }
    }

    fn observe(&self, op: &'static str) {
        if let Some(o) = &self.observer {
            o(op);
        }
    }

    /// Per-request timeout for every call (the SDK default is 10 s).
    pub fn with_request_timeout(self, timeout: Duration) -> Self {
        Self {
            rooms: self.rooms.with_request_timeout(timeout),
            sip: self.sip.with_request_timeout(timeout),
            project: self.project,
            observer: self.observer,
        }
    }

    pub fn url(&self) -> &str {
        &self.project.url
    }

    pub fn api_key(&self) -> &str {
        &self.project.api_key
    }

    /// CreateRoom (idempotent in LiveKit: an existing room is returned as is).
    /// `empty_timeout` is whole seconds; zero means the server default.
    pub async fn create_room(
        &self,
        name: &str,
        empty_timeout: Duration,
    ) -> Result<RoomInfo, LiveKitError> {
        self.observe("create_room");
        let room = Box::pin(self.rooms.create_room(
            name,
            CreateRoomOptions {
                empty_timeout: secs_u32(empty_timeout),
                ..Default::default()
            },
        ))
        .await?;
        Ok(RoomInfo {
            sid: room.sid,
            name: room.name,
            empty_timeout: Duration::from_secs(u64::from(room.empty_timeout)),
            creation_time_ms: room.creation_time_ms,
        })
    }

    /// A browser join token for an agent (see [`token::agent_token`]).
    pub fn agent_token(
        &self,
        room: &str,
        identity: &str,
        ttl: Duration,
    ) -> Result<String, LiveKitError> {
        token::agent_token(
            &self.project.api_key,
            &self.project.api_secret,
            room,
            identity,
            ttl,
        )
    }

    /// CreateSIPParticipant with identity [`SIP_PARTICIPANT_IDENTITY`],
    /// `hide_phone_number`, and the call id header. Returns once LiveKit accepted the
    /// dial (it does not wait for the answer: watch `sip.callStatus`).
    pub async fn dial(&self, call: &CallDial) -> Result<DialedParticipant, LiveKitError> {
        self.create_sip_participant(call, false).await
    }

    /// Like [`Self::dial`] but with `wait_until_answered`: returns when the customer
    /// answers, or fails with the carrier's SIP status in
    /// [`LiveKitError::sip_status_code`] (Twirp `canceled` when ringing timed out).
    pub async fn dial_and_wait(&self, call: &CallDial) -> Result<DialedParticipant, LiveKitError> {
        self.create_sip_participant(call, true).await
    }

    async fn create_sip_participant(
        &self,
        call: &CallDial,
        wait_until_answered: bool,
    ) -> Result<DialedParticipant, LiveKitError> {
        let headers: HashMap<String, String> = [(CALL_ID_HEADER.to_owned(), call.call_id.clone())]
            .into_iter()
            .chain(
                call.tenant
                    .iter()
                    .map(|t| (TENANT_HEADER.to_owned(), t.clone())),
            )
            .chain(
                call.category
                    .iter()
                    .map(|c| (CATEGORY_HEADER.to_owned(), c.clone())),
            )
            .collect();
        self.observe("create_sip_participant");
        let info = Box::pin(self.sip.create_sip_participant(
            call.trunk_id.clone(),
            call.call_to.clone(),
            call.room.clone(),
            CreateSIPParticipantOptions {
                participant_identity: SIP_PARTICIPANT_IDENTITY.to_owned(),
                sip_number: (!call.sip_number.is_empty()).then(|| call.sip_number.clone()),
                hide_phone_number: Some(true),
                ringing_timeout: nonzero(call.ring_timeout),
                max_call_duration: nonzero(call.max_duration),
                headers: Some(headers),
                wait_until_answered: Some(wait_until_answered),
                ..Default::default()
            },
            None,
        ))
        .await?;
        Ok(DialedParticipant {
            participant_id: info.participant_id,
            participant_identity: info.participant_identity,
            room: info.room_name,
            sip_call_id: info.sip_call_id,
        })
    }

    /// DeleteRoom; a room that is already gone counts as deleted.
    pub async fn delete_room(&self, name: &str) -> Result<(), LiveKitError> {
        self.observe("delete_room");
        match Box::pin(self.rooms.delete_room(name))
            .await
            .map_err(LiveKitError::from)
        {
            Ok(()) | Err(LiveKitError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// ListRooms: the names of the project's open rooms. The console's "Validate LiveKit
    /// credentials" uses it as a cheap, read-only proof that URL, key and secret work.
    pub async fn list_rooms(&self) -> Result<Vec<String>, LiveKitError> {
        self.observe("list_rooms");
        let rooms = Box::pin(self.rooms.list_rooms(Vec::new())).await?;
        Ok(rooms.into_iter().map(|r| r.name).collect())
    }

    /// ListParticipants (a missing room lists as empty, as in LiveKit).
    pub async fn list_participants(
        &self,
        room: &str,
    ) -> Result<Vec<ParticipantSnapshot>, LiveKitError> {
        self.observe("list_participants");
        let participants = Box::pin(self.rooms.list_participants(room)).await?;
        Ok(participants.iter().map(ParticipantSnapshot::from).collect())
    }

    /// RemoveParticipant (hangs up a SIP participant); already gone counts as removed.
    pub async fn remove_participant(&self, room: &str, identity: &str) -> Result<(), LiveKitError> {
        self.observe("remove_participant");
        match Box::pin(self.rooms.remove_participant(room, identity))
            .await
            .map_err(LiveKitError::from)
        {
            Ok(()) | Err(LiveKitError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Keeps the last 4 characters: enough to tell calls apart in a debug dump.
fn mask(number: &str) -> String {
    let n = number.chars().count();
    number
        .chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < n { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_number_and_secret() {
        let dial = CallDial {
            trunk_id: "ST_1".into(),
            call_to: "99119530251797".into(),
            room: "c2c-x".into(),
            sip_number: "+911400000000".into(),
            ring_timeout: Duration::from_secs(30),
            max_duration: Duration::from_secs(3600),
            call_id: "c2c_x".into(),
            tenant: Some("acme".into()),
            category: None,
        };
        let text = format!("{dial:?}");
        assert!(!text.contains("9530251797"), "{text}");
        assert!(text.contains("**********1797"));
        let project = LiveKitProject::new("https://lk", "APIk", "topsecret");
        assert!(!format!("{project:?}").contains("topsecret"));
    }

    #[test]
    fn snapshot_from_participant() {
        let mut p = proto::ParticipantInfo {
            identity: SIP_PARTICIPANT_IDENTITY.into(),
            kind: proto::participant_info::Kind::Sip as i32,
            disconnect_reason: proto::DisconnectReason::UserRejected as i32,
            ..Default::default()
        };
        p.attributes
            .insert(ATTR_CALL_STATUS.into(), "ringing".into());
        p.attributes
            .insert(ATTR_DISCONNECT_CODE.into(), "486".into());
        let s = ParticipantSnapshot::from(&p);
        assert!(s.kind_sip);
        assert_eq!(s.call_status.as_deref(), Some("ringing"));
        assert_eq!(s.disconnect_reason.as_deref(), Some("USER_REJECTED"));
        assert_eq!(s.sip_code, Some(486));
        assert!(!s.publishes_audio);
        p.tracks.push(proto::TrackInfo {
            r#type: proto::TrackType::Video as i32,
            ..Default::default()
        });
        assert!(!ParticipantSnapshot::from(&p).publishes_audio);
        p.tracks.push(proto::TrackInfo {
            r#type: proto::TrackType::Audio as i32,
            source: proto::TrackSource::Microphone as i32,
            ..Default::default()
        });
        assert!(ParticipantSnapshot::from(&p).publishes_audio);
        assert_eq!(disconnect_reason_name(0), None);
        assert_eq!(
            disconnect_reason_name(13).as_deref(),
            Some("SIP_TRUNK_FAILURE")
        );
        assert_eq!(
            disconnect_reason_name(999).as_deref(),
            Some("DISCONNECT_REASON_999")
        );
    }

    #[test]
    fn bad_project_is_config_error() {
        let err = LiveKitClient::new(LiveKitProject::new("lk.example.com", "k", "s")).unwrap_err();
        assert!(matches!(err, LiveKitError::Config(_)));
        let err = LiveKitClient::new(LiveKitProject::new("https://lk", "", "s")).unwrap_err();
        assert!(matches!(err, LiveKitError::Config(_)));
    }
}
