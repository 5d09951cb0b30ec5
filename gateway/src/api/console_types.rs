//! Wire types of the web console's JSON endpoints (`/api/c2c/console/...`).
//!
//! The handlers in `console.rs` serialise these very types and the OpenAPI document
//! derives its schemas from them (`ToSchema`), so the published shapes cannot drift
//! from what `web/src/console/*.js` reads. Secrets appear only as [`Masked`].

use c2c_callstate::{Direction, OfferEntry};
use c2c_dlt::AuditEntry;
use c2c_tenancy::Secret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::contract::CallView;
use crate::api::owner::FlagSource;

/// A secret as the console shows it: whether it is set, never its value.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub(crate) enum Masked {
    #[serde(rename = "(empty)")]
    Empty,
    #[serde(rename = "•••••••• (set)")]
    Set,
}

impl Masked {
    /// How the console shows this secret.
    pub(crate) fn of(s: &Secret) -> Self {
        if s.expose().is_empty() {
            Masked::Empty
        } else {
            Masked::Set
        }
    }
}

/// `GET /api/c2c/console/session`: who signed in, and which tenants they may open.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleSession<'a> {
    pub(crate) role: ConsoleRole,
    /// The key's id from the policy (never the key).
    pub(crate) key_id: &'a str,
    /// The key's tenant; null for the owner key.
    pub(crate) tenant: Option<&'a str>,
    /// The tenants this key may open: its own, or all of them for the owner key.
    pub(crate) tenants: Vec<TenantRef<'a>>,
}

/// `tenant` for a tenant's `console` key, `owner` for a platform owner key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConsoleRole {
    Tenant,
    Owner,
}

/// A tenant as the tenant picker lists it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantRef<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
}

/// `GET /api/c2c/console/tenants/{tenant}`: the tenant's effective configuration.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleTenant<'a> {
    pub(crate) tenant: TenantInfo<'a>,
    pub(crate) trunks: Vec<ConsoleTrunk<'a>>,
    /// The numbers customers call (`[[inbound.numbers]]`); empty when none.
    pub(crate) inbound_numbers: Vec<ConsoleInboundNumber<'a>>,
    pub(crate) settings: ConsoleSettings<'a>,
    pub(crate) dlt: ConsoleDlt<'a>,
    pub(crate) guide: ConsoleGuide,
}

/// The tenant's identity and browser origins.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantInfo<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    /// The LiveKit region its calls use.
    pub(crate) region: &'a str,
    /// Origins whose browsers may call the browser endpoints (CORS).
    pub(crate) allowed_origins: &'a [String],
}

/// One configured trunk.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleTrunk<'a> {
    pub(crate) label: &'a str,
    pub(crate) livekit_trunk_id: &'a str,
    /// Dial prefix the trunk puts before the 10-digit number.
    pub(crate) prefix: &'a str,
    /// Caller ID presented when the CRM sends none.
    pub(crate) default_did: &'a str,
    pub(crate) carrier: &'a str,
    /// True for the trunk calls use.
    pub(crate) default: bool,
    pub(crate) enabled: bool,
    /// The DLT category of its calls: `promotional`, `service`, `transactional`.
    pub(crate) category: c2c_tenancy::CallCategory,
    /// `direct` or `anchor` (docs/media.md).
    pub(crate) media: &'static str,
}

/// One of the tenant's inbound numbers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleInboundNumber<'a> {
    /// The number (E.164).
    pub(crate) did: &'a str,
    /// The label of the carrier trunk it arrives on.
    pub(crate) trunk: &'a str,
}

/// Effective settings, secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleSettings<'a> {
    /// The LiveKit project the tenant's calls use; null when none is configured.
    pub(crate) livekit: Option<LiveKitSettings<'a>>,
    /// The CRM webhook; null when the tenant has none.
    pub(crate) crm_webhook: Option<CrmSettings<'a>>,
    /// How answers are detected: `poll` or `webhook`.
    pub(crate) answer_detection: &'static str,
    pub(crate) calls: CallTimings,
    pub(crate) limits: LimitSettings,
}

/// The effective LiveKit project.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LiveKitSettings<'a> {
    pub(crate) source: LiveKitSource,
    /// The project's URL, or a note that the bundled simulator answers.
    pub(crate) url: String,
    pub(crate) api_key: &'a str,
    pub(crate) api_secret: Masked,
}

/// `tenant` when the tenant has its own LiveKit project, else `platform`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LiveKitSource {
    Tenant,
    Platform,
}

/// The CRM webhook's target and whether its secrets are set.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CrmSettings<'a> {
    pub(crate) url: &'a str,
    pub(crate) outbound_key: Masked,
    /// Null when webhooks are not signed.
    pub(crate) signing_secret: Option<Masked>,
}

/// The gateway's call timers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CallTimings {
    pub(crate) ring_timeout_seconds: u64,
    pub(crate) agent_drop_grace_seconds: u64,
    pub(crate) max_duration_seconds: u64,
    pub(crate) unconnected_expiry_seconds: u64,
    pub(crate) poll_interval_ms: u64,
}

/// The tenant's limits.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LimitSettings {
    pub(crate) requests_per_second: u32,
    pub(crate) max_concurrent_calls: u32,
}

/// DLT outbound state, as the owner endpoint reports it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleDlt<'a> {
    pub(crate) principal_entity_id: &'a str,
    /// Whether the tenant may place calls now.
    pub(crate) outbound_enabled: bool,
    pub(crate) source: FlagSource,
    /// The policy file's `dlt.outbound_enabled`.
    pub(crate) policy_initial: bool,
    /// Past changes, oldest first.
    pub(crate) audit: Vec<AuditEntry>,
    /// The per-call rules in force for the tenant (docs/dlt.md).
    pub(crate) rules: ConsoleDltRules,
}

/// A tenant's DLT rules as the console shows them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleDltRules {
    pub(crate) entity_class: c2c_tenancy::EntityClass,
    /// Numbers its service and transactional calls may present (commercial entities).
    pub(crate) registered_numbers: Vec<String>,
    /// The promotional window, IST (`"09:00-21:00"`).
    pub(crate) calling_hours: String,
    /// `tenant` (its own `[dlt] calling_hours`) or `platform`.
    pub(crate) calling_hours_source: &'static str,
    /// National-number prefixes of the caller-ID series.
    pub(crate) promotional_series: Vec<String>,
    pub(crate) government_series: Vec<String>,
    pub(crate) financial_series: Vec<String>,
    /// The DND list, when the tenant has one.
    pub(crate) dnd: Option<ConsoleDltList>,
    pub(crate) consent: Option<ConsoleDltList>,
    /// This node's latest refusals, newest first (numbers masked).
    pub(crate) recent_refusals: Vec<ConsoleRefusal>,
}

/// A DND or consent list as read.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleDltList {
    /// Numbers in force; `None`: never read (promotional calls are refused).
    pub(crate) numbers: Option<usize>,
    /// The file's modification time when read (Unix ms): the list's age.
    pub(crate) modified_ms: Option<u64>,
    /// When it was read (Unix ms).
    pub(crate) loaded_at_ms: Option<u64>,
    /// Why the last read failed (the copy before stays in force).
    pub(crate) error: Option<String>,
}

/// One refused call.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleRefusal {
    pub(crate) at_ms: u64,
    pub(crate) rule: String,
    pub(crate) category: String,
    pub(crate) trunk: String,
    pub(crate) caller_id: String,
    /// Masked: the last four digits.
    pub(crate) number: String,
    /// `api` or `sip`.
    pub(crate) at: String,
    pub(crate) message: String,
}

/// What the integration guide page fills in.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleGuide {
    /// The gateway's public URL (no trailing slash).
    pub(crate) base_url: String,
    /// What `/click2call` returns as `ws_url`.
    pub(crate) ws_url: String,
    /// Where agent UIs load the client script.
    pub(crate) client_js: String,
}

/// `POST /api/c2c/console/tenants/{tenant}/livekit-validate`: the verdict of a live
/// ListRooms with the tenant's effective credentials.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LiveKitCheck {
    pub(crate) tenant: String,
    /// True when LiveKit accepted the credentials.
    pub(crate) ok: bool,
    /// Rooms listed (only when `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rooms: Option<usize>,
    /// How long LiveKit took (absent when no project is configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) latency_ms: Option<u64>,
    /// Why the check failed (only when not `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// `GET /api/c2c/console/calls/{call_id}`: the sandbox's view of one call.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsoleCall<'a> {
    /// The call as polling UIs see it.
    pub(crate) call: CallView<'a>,
    pub(crate) tenant: &'a str,
    pub(crate) room: &'a str,
    /// What hit the trunk; null when the trunk is gone from the policy.
    pub(crate) trunk: Option<TrunkDial<'a>>,
    /// The SIP final response code of the customer leg, when known.
    pub(crate) sip_disconnect_code: Option<u16>,
    /// `outbound` (`/click2call`) or `inbound` (a customer called one of the
    /// tenant's numbers; `call.customer_number` is then the caller).
    pub(crate) direction: Direction,
    /// Inbound: the number the customer called (E.164); null for an outbound call.
    pub(crate) did: Option<&'a str>,
    /// Inbound: every offer to an agent, in order (agent, when, how it ended); empty
    /// for an outbound call.
    pub(crate) offers: &'a [OfferEntry],
    /// Inbound: the lead the CRM's lookup named; null without one.
    pub(crate) lead_id: Option<&'a str>,
    /// The CRM webhook the outcome produces; null until the call ended.
    pub(crate) webhook: Option<WebhookPreview<'a>>,
}

/// `POST /api/c2c/console/tenants/{tenant}/sandbox/inbound`: a test inbound call.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"did": "+918045678901", "from": "+919812345678", "hold_seconds": 10}))]
pub(crate) struct SandboxInboundRequest {
    /// One of the tenant's inbound numbers (`[[inbound.numbers]]`), as E.164 or any
    /// Indian shape (`91…`, `0…`, 10 digits); anything else is `422 unknown_did`.
    pub(crate) did: String,
    /// The caller: `+` and 6-15 digits (else `422 invalid_number`); default
    /// `+919812345678`.
    #[serde(default)]
    pub(crate) from: Option<String>,
    /// Seconds the simulated caller stays on once answered before it hangs up (BYE);
    /// default 10. (Read as a JSON number: `7.0` is the integer 7, as JSON Schema says.)
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 30)]
    pub(crate) hold_seconds: Option<f64>,
}

/// The test inbound call the gateway stored.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "call_id": "c2c_ab12cd34ab12cd34ab12cd34ab12cd34",
    "sip_call_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "did": "+918045678901",
    "from": "+919812345678",
    "hold_seconds": 10
}))]
pub(crate) struct SandboxInboundCall {
    /// The call: follow it at `GET /api/c2c/console/calls/{call_id}`.
    pub(crate) call_id: String,
    /// The simulated carrier's SIP Call-ID.
    pub(crate) sip_call_id: String,
    /// The number called (E.164).
    pub(crate) did: String,
    /// The caller.
    pub(crate) from: String,
    pub(crate) hold_seconds: u64,
}

/// `POST /api/c2c/console/calls/{call_id}/sandbox-join`: the simulator's stand-in for
/// the agent is in the call's room with its microphone published.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SandboxJoined<'a> {
    pub(crate) call_id: &'a str,
    pub(crate) room: &'a str,
    /// The participant identity: the call's agent.
    pub(crate) identity: &'a str,
}

/// How the call was dialled (the internal dial string included).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrunkDial<'a> {
    pub(crate) label: &'a str,
    pub(crate) livekit_trunk_id: &'a str,
    /// Trunk prefix + number: what LiveKit SIP dialled.
    pub(crate) dialed: &'a str,
    pub(crate) caller_id: &'a str,
    pub(crate) customer_number: &'a str,
    /// `direct` or `anchor`: an anchored call's media report comes after its end.
    pub(crate) media: &'static str,
}

/// The exact CRM webhook request, secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookPreview<'a> {
    /// Null when the tenant has no CRM webhook.
    pub(crate) url: Option<&'a str>,
    pub(crate) headers: WebhookHeaders,
    /// The body as sent, a string so it keeps the contract's field order.
    pub(crate) body_json: String,
}

/// The webhook's headers as the CRM receives them (values masked).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookHeaders {
    #[serde(rename = "Content-Type")]
    pub(crate) content_type: &'static str,
    /// Null when the tenant has no CRM webhook.
    #[serde(rename = "X-api-key")]
    pub(crate) api_key: Option<Masked>,
    /// The signature's form; null when webhooks are not signed.
    #[serde(rename = "webhook-signature")]
    pub(crate) signature: Option<&'static str>,
}
