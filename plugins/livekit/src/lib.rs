//! # c2c-livekit — the gateway's adapter to LiveKit's server API (floor 3)
//!
//! **Owns:**
//! * [`LiveKitClient`]: one per LiveKit project, built once and shared, wrapping
//!   livekit-api's `RoomClient`/`SIPClient`: create/delete rooms, list/remove
//!   participants, agent join tokens, and outbound SIP dials that never leak the
//!   dialled number (fixed identity [`SIP_PARTICIPANT_IDENTITY`],
//!   `hide_phone_number`, call id in the `X-C2C-Call-Id` header); every API request
//!   is reported to an optional [`RequestObserver`] (the gateway's request counter);
//! * [`ParticipantSnapshot`]: the few participant facts answer detection needs
//!   (`sip.callStatus`, disconnect reason name, SIP code when known);
//! * [`WebhookVerifier`]: LiveKit webhook verification across many projects
//!   (key chosen by the token's `iss`), with typed rejections;
//! * [`LiveKitError`]: typed errors mapped from `livekit_api`'s `ServiceError`.
//!
//! **Must not:** import `c2c-callstate` or `c2c-crm-webhooks` (turning snapshots and
//! webhooks into call events is the gateway's job), depend on Pingora, build an HTTP
//! client per request, or log/format a phone number unmasked.

mod client;
mod error;
pub mod token;
mod webhook;

pub use client::{
    disconnect_reason_name, CallDial, DialedParticipant, LiveKitClient, LiveKitProject,
    ParticipantSnapshot, RequestObserver, RoomInfo, ATTR_CALL_STATUS, ATTR_DISCONNECT_CODE,
    CALL_ID_HEADER, CATEGORY_HEADER, SIP_PARTICIPANT_IDENTITY,
};
pub use error::LiveKitError;
pub use webhook::{
    VerifiedToken, WebhookError, WebhookEvent, WebhookParticipant, WebhookVerifier, DEFAULT_LEEWAY,
    MAX_WEBHOOK_BODY,
};
