//! Wire types of the web console's JSON endpoints (`/api/c2c/console/...`).
//!
//! The handlers in `console.rs` serialise these very types and the OpenAPI document
//! derives its schemas from them (`ToSchema`), so the published shapes cannot drift
//! from what `web/src/console/*.js` reads. Secrets appear only as [`Masked`].

use c2c_dlt::AuditEntry;
use c2c_tenancy::Secret;
use serde::Serialize;
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
    /// The CRM webhook the outcome produces; null until the call ended.
    pub(crate) webhook: Option<WebhookPreview<'a>>,
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
