//! The Click2Call contract's wire types: the request and response bodies of
//! `/api/c2c/click2call` and the browser endpoints, exactly as the integration guide
//! spells them. Handlers serialise these very types and the OpenAPI document derives its
//! schemas from them (`ToSchema`), so the published contract cannot drift from the code.

use c2c_callstate::{CallMedia, CallRecord, CallStatus, MediaStream, Phase};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/c2c/click2call`. Legacy fields (`agen_number`, `trunk_id`, `user_id`,
/// `number`) are accepted and ignored: the gateway picks the trunk, never the CRM.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "case_id": "abc123",
    "customer_number": "9530251797",
    "agent_id": "agent-42",
    "customer_crm_id": "cust-99"
}))]
pub(crate) struct Click2CallRequest {
    /// The CRM's case; echoed in the webhook. 1-128 printable characters.
    pub(crate) case_id: String,
    /// The customer's number: exactly 10 digits, the first one 1-9 (`9530251797`);
    /// whitespace around it is ignored. Anything else is `422 invalid_number` with a
    /// sentence saying what to send: a country prefix (`+919530251797`, `919530251797`),
    /// a leading 0 (`09530251797`), separators (`95302 51797`, `95302-51797`), or any
    /// other length (`953025179`).
    pub(crate) customer_number: String,
    /// The agent placing the call; the agent's LiveKit identity. 1-128 printable characters.
    pub(crate) agent_id: String,
    /// The CRM's customer id; echoed in the webhook. 1-128 printable characters.
    pub(crate) customer_crm_id: String,
    /// Caller ID to present; defaults to the trunk's DID, normalised to `+91...`.
    #[serde(default)]
    pub(crate) did: Option<String>,
    /// Optional: the call's DLT category, `promotional`, `service` or `transactional`
    /// (docs/dlt.md); left out, the trunk's. Promotional calls present a 140-series
    /// caller ID, are scrubbed against the tenant's DND list and go out within its
    /// calling hours only.
    #[serde(default)]
    pub(crate) call_category: Option<String>,
}

/// What `/click2call` returns: hand `ws_url`, `token` and `call_id` to the agent's browser.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "call_id": "c2c_ab12cd34ab12cd34ab12cd34ab12cd34",
    "room": "c2c-ab12cd34ab12cd34ab12cd34ab12cd34",
    "ws_url": "wss://c2c.example.com",
    "token": "<agent JWT>",
    "customer_number": "9530251797"
}))]
pub(crate) struct Click2CallResponse<'a> {
    /// Opaque id of the call (128 random bits); the only credential of the browser endpoints.
    pub(crate) call_id: &'a str,
    /// The LiveKit room the agent joins.
    pub(crate) room: &'a str,
    /// Where the browser connects (this gateway's `/rtc`).
    pub(crate) ws_url: &'a str,
    /// The agent's LiveKit access token for the room.
    pub(crate) token: &'a str,
    /// The clean 10-digit number that will be dialled.
    pub(crate) customer_number: &'a str,
}

/// `POST /api/c2c/calls/{call_id}/token`: a fresh agent token for the call's room.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenResponse<'a> {
    pub token: &'a str,
    /// When `token` expires (Unix ms): the client refreshes 30 s before.
    pub expires_at_ms: u64,
}

/// What `/connect` answers: the dial has started.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConnectResponse {
    pub(crate) status: ConnectStatus,
}

/// Always `ringing`: the outcome arrives later (poll `GET /api/c2c/calls/{call_id}` or
/// wait for the CRM webhook).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConnectStatus {
    Ringing,
}

/// A browser's report from LiveKit room events: `ANSWERED` (or `active`) when the SIP
/// participant's `sip.callStatus` turns active, `RINGING`; anything else is accepted and
/// ignored. Sent with `keepalive`/`sendBeacon`, so any content type is read as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"status": "ANSWERED"}))]
pub(crate) struct StatusReport {
    pub(crate) status: String,
}

/// The call as polling UIs see it (`GET /api/c2c/calls/{call_id}` and the browser
/// endpoints).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CallView<'a> {
    pub(crate) call_id: &'a str,
    /// Lifecycle phase.
    pub(crate) status: Phase,
    /// The terminal outcome once ENDED, else null.
    pub(crate) call_status: Option<CallStatus>,
    /// True once the customer answered.
    pub(crate) connected: bool,
    /// Whole seconds from answer to end (0 until then); same as `duration_seconds`.
    pub(crate) duration: u64,
    pub(crate) duration_seconds: u64,
    /// LiveKit's disconnect reason of the customer leg, when known.
    pub(crate) disconnect_reason: Option<&'a str>,
    /// The SIP final response code of the customer leg, when known.
    pub(crate) sip_disconnect_code: Option<u16>,
    /// The clean 10-digit number.
    pub(crate) customer_number: &'a str,
    pub(crate) agent_id: &'a str,
    /// True once the call has ENDED.
    pub(crate) ended: bool,
    /// An anchored call's media (trunks with `media = "anchor"`), once the SIP edge's
    /// relay reported it (at the end of the call). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) media: Option<MediaView>,
}

/// What the SIP edge measured of an anchored call's RTP (docs/media.md).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MediaView {
    /// RTP from the carrier (the customer's side).
    pub(crate) from_carrier: StreamView,
    /// RTP from LiveKit (the agent's side).
    pub(crate) from_livekit: StreamView,
    /// The carrier sent audio before the answer (an announcement, a caller tune).
    pub(crate) early_media: bool,
    /// How long early media ran until the answer, ms (null: none, or no answer).
    pub(crate) early_media_ms: Option<u64>,
    /// `carrier` or `livekit`: the side silent while the other spoke after the answer.
    pub(crate) one_way_audio: Option<String>,
    /// No audio from the carrier for the dead-air timeout after the answer.
    pub(crate) media_timeout: bool,
    /// Packets from third parties on the call's ports, dropped.
    pub(crate) dropped_strangers: u64,
}

/// One direction's RTP (RFC 3550 loss and interarrival jitter).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StreamView {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) lost: u64,
    pub(crate) loss_percent: f64,
    pub(crate) jitter_ms: f64,
    pub(crate) max_gap_ms: u64,
}

fn media_view(m: &CallMedia) -> MediaView {
    let stream = |s: &MediaStream| StreamView {
        packets: s.packets,
        bytes: s.bytes,
        lost: s.lost,
        loss_percent: (s.loss_percent() * 100.0).round() / 100.0,
        jitter_ms: s.jitter_us as f64 / 1000.0,
        max_gap_ms: s.max_gap_ms,
    };
    MediaView {
        from_carrier: stream(&m.from_carrier),
        from_livekit: stream(&m.from_livekit),
        early_media: m.early_media,
        early_media_ms: m.early_media_ms,
        one_way_audio: m.one_way_silent.clone(),
        media_timeout: m.media_timeout,
        dropped_strangers: m.strangers,
    }
}

/// The extended call webhook's body (`media_in_payload`, `calls::media_payload`): the
/// contract's payload `contract_json` byte for byte, then `"media"` — the call's media
/// as `GET /api/c2c/calls/{id}` shows it, or `null`. `None` when `contract_json` is not
/// a JSON object's text (then the contract's payload goes as it is).
pub(crate) fn extended_webhook_body(
    contract_json: &str,
    media: Option<&CallMedia>,
) -> Option<String> {
    let head = contract_json.trim_end().strip_suffix('}')?.trim_end();
    let media = serde_json::to_string(&media.map(media_view)).ok()?;
    // `{}` would need no comma; a call's payload always has fields.
    let comma = if head.ends_with('{') { "" } else { "," };
    Some(format!("{head}{comma}\"media\":{media}}}"))
}

/// The call as polling UIs see it.
pub(crate) fn view(rec: &CallRecord) -> CallView<'_> {
    let duration = rec.duration_seconds();
    CallView {
        call_id: &rec.call_id,
        status: rec.phase,
        call_status: rec.call_status,
        connected: rec.answered_ms.is_some(),
        duration,
        duration_seconds: duration,
        disconnect_reason: rec.disconnect_reason.as_deref(),
        sip_disconnect_code: rec.sip_disconnect_code,
        customer_number: &rec.customer_number,
        agent_id: &rec.agent_id,
        ended: rec.phase == Phase::Ended,
        media: rec.media.as_ref().map(media_view),
    }
}
