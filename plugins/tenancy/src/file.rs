//! The on-disk shapes of `gateway.toml` and `tenants/<id>.toml`.
//!
//! These structs mirror the files one to one and reject unknown keys; nothing outside
//! the loader (`load/`) uses them. The rest of the gateway sees only the validated
//! internal [`crate::Policy`], so file formats can evolve without touching request code.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub owner_keys: Vec<KeyEntry>,
    #[serde(default)]
    pub regions: Vec<RegionEntry>,
    /// The platform's own LiveKit project, used by managed tenants without `[livekit]`.
    pub livekit: Option<LiveKitSection>,
    #[serde(default)]
    pub answer_detection: Option<String>,
    #[serde(default)]
    pub calls: CallsSection,
    #[serde(default)]
    pub webhooks: WebhooksSection,
    #[serde(default)]
    pub simulator: SimulatorSection,
    #[serde(default)]
    pub limits: GatewayLimitsSection,
    #[serde(default)]
    pub sip: SipSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub agents: GatewayAgentsSection,
    #[serde(default)]
    pub billing: BillingSection,
    #[serde(default)]
    pub dlt: GatewayDltSection,
}

/// `[dlt]` of gateway.toml: the platform's DLT rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayDltSection {
    /// `"HH:MM-HH:MM"` in IST; default `"09:00-21:00"`.
    pub calling_hours: Option<String>,
    /// National-number prefixes of each caller-ID series.
    pub promotional_series: Option<Vec<String>>,
    pub government_series: Option<Vec<String>>,
    pub financial_series: Option<Vec<String>>,
    pub max_list_numbers: Option<usize>,
}

/// `[billing]` of gateway.toml (managed tenants' calls).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSection {
    pub charge_calls: Option<bool>,
    pub paise_per_pulse: Option<u64>,
    pub pulse_seconds: Option<u32>,
    pub min_call_minutes: Option<u32>,
    pub overdraft_paise: Option<u64>,
    pub low_balance_paise: Option<u64>,
}

/// `[agents]` of gateway.toml: the presence channel's knobs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayAgentsSection {
    pub presence_grace_seconds: Option<u64>,
    pub presence_token_ttl_seconds: Option<u64>,
    pub heartbeat_seconds: Option<u64>,
    pub max_presence_sessions: Option<usize>,
}

/// `[agents]` of a tenant file: how click2call treats the `agent_id` it is sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantAgentsSection {
    pub require_registration: Option<bool>,
    pub allow_concurrent_calls: Option<bool>,
}

/// `[store]`: which backend holds calls, webhooks, DLT flags and agents, and its
/// settings (`cache_mb` for the embedded sled store; the rest for PostgreSQL).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    pub kind: Option<String>,
    pub cache_mb: Option<u64>,
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub pool_size: Option<usize>,
    pub statement_timeout_ms: Option<u64>,
    pub schema: Option<String>,
    pub lease_ms: Option<u64>,
    pub node_name: Option<String>,
    pub fleet_size: Option<u32>,
}

/// `[sip]`: the SIP edge's per-tenant call caps and transaction table size.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    pub calls_per_second: Option<u32>,
    pub max_concurrent_calls: Option<u32>,
    pub max_transactions: Option<usize>,
    #[serde(default)]
    pub media: SipMediaSection,
}

/// `[sip.media]`: the anchored trunks' relay.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipMediaSection {
    pub address: Option<String>,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub media_timeout_seconds: Option<u64>,
    pub one_way_seconds: Option<u64>,
    pub io: Option<String>,
    pub batch_us: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayLimitsSection {
    pub per_ip_requests_per_second: Option<u32>,
    pub health_check_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitsSection {
    pub requests_per_second: Option<u32>,
    pub max_concurrent_calls: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub listen: String,
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorSection {
    pub listen: Option<String>,
    pub sip_disconnect_code_attribute: Option<bool>,
    pub sip_outbound: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub threads: Option<usize>,
    pub grace_period_seconds: Option<u64>,
    pub tls: Option<TlsSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: String,
    pub sha256: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEntry {
    pub name: String,
    pub upstreams: Vec<String>,
    #[serde(default)]
    pub fallback: Vec<String>,
    /// LiveKit SIP nodes of this region (IPs or CIDRs) allowed to send calls to the
    /// SIP edge.
    #[serde(default)]
    pub sip_sources: Vec<String>,
    /// Where the SIP edge forwards accepted inbound calls: this region's LiveKit SIP
    /// (`sip:host:port[;transport=tcp]`).
    pub livekit_sip: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveKitSection {
    pub url: String,
    pub api_key: String,
    pub api_secret_env: Option<String>,
    pub api_secret_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsSection {
    pub ring_timeout_seconds: Option<u64>,
    pub agent_drop_grace_seconds: Option<u64>,
    pub max_duration_seconds: Option<u64>,
    pub unconnected_expiry_seconds: Option<u64>,
    pub poll_interval_ms: Option<u64>,
    pub token_ttl_seconds: Option<u64>,
    pub retention_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksSection {
    pub timeout_seconds: Option<u64>,
    pub max_age_hours: Option<u64>,
    pub per_tenant_concurrency: Option<usize>,
    pub allow_private_targets: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    pub id: String,
    pub name: String,
    pub region: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub api_keys: Vec<KeyEntry>,
    pub livekit: Option<LiveKitSection>,
    pub crm_webhook: Option<CrmWebhookSection>,
    pub dlt: DltSection,
    #[serde(default)]
    pub limits: TenantLimitsSection,
    #[serde(default)]
    pub agents: TenantAgentsSection,
    #[serde(default)]
    pub trunks: Vec<TrunkEntry>,
    #[serde(default)]
    pub inbound: TenantInboundSection,
}

/// `[inbound]` of a tenant file: the numbers customers call and how they ring.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantInboundSection {
    pub lookup_url: Option<String>,
    pub lookup_timeout_ms: Option<u64>,
    pub lead_wait_ms: Option<u64>,
    pub ring_agent_seconds: Option<u64>,
    pub inbound_ring_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub numbers: Vec<InboundNumberEntry>,
}

/// `[[inbound.numbers]]`: one DID and the carrier trunk it arrives on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundNumberEntry {
    pub did: String,
    pub trunk: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmWebhookSection {
    pub url: String,
    pub outbound_key_env: Option<String>,
    pub outbound_key_file: Option<String>,
    pub signing_secret_env: Option<String>,
    pub signing_secret_file: Option<String>,
    /// Opt-in: also POST `wallet.low_balance` events (managed tenants).
    pub low_balance_webhook: Option<bool>,
    /// Opt-in: call webhooks carry a `media` object after the contract's fields.
    pub media_in_payload: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DltSection {
    pub principal_entity_id: String,
    #[serde(default)]
    pub outbound_enabled: bool,
    /// `commercial` (default), `government` or `financial`.
    pub entity_class: Option<String>,
    pub registered_numbers: Option<Vec<String>>,
    /// `"HH:MM-HH:MM"` in IST for promotional calls.
    pub calling_hours: Option<String>,
    /// Paths relative to the policy directory.
    pub dnd_file: Option<String>,
    pub consent_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkEntry {
    pub label: String,
    pub livekit_trunk_id: String,
    #[serde(default)]
    pub prefix: String,
    pub default_did: String,
    pub carrier: String,
    #[serde(default)]
    pub default: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Addresses (IP or CIDR) the carrier sends inbound calls from; empty: the
    /// carrier's own address.
    #[serde(default)]
    pub sources: Vec<String>,
    /// This trunk's rate for managed tenants (both or neither; default: `[billing]`'s).
    pub paise_per_pulse: Option<u64>,
    pub pulse_seconds: Option<u32>,
    /// `direct` (default) or `anchor`: whether the SIP edge relays this trunk's RTP.
    pub media: Option<String>,
    /// `promotional`, `service` (default) or `transactional`.
    pub category: Option<String>,
}

fn yes() -> bool {
    true
}
