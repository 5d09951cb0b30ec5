//! The validated, internal form of all policy files.
//!
//! Built once per (re)load by the loader (`load/`); immutable afterwards and shared
//! behind an `Arc`, so request code reads it without locks and a reload swaps it
//! atomically.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::keyring::KeyRing;
use crate::secret::Secret;

/// Everything the gateway knows from `policies/`.
#[derive(Debug)]
pub struct Policy {
    pub gateway: GatewayConfig,
    pub tenants: BTreeMap<String, Arc<Tenant>>,
    pub keys: KeyRing,
    /// Bring-your-own LiveKit API key -> tenant, for routing tokens by issuer.
    pub(crate) byo_livekit: std::collections::HashMap<String, Arc<Tenant>>,
    /// Inbound DID -> its tenant (DIDs are unique across tenants, checked at load).
    inbound_dids: std::collections::HashMap<String, Arc<Tenant>>,
}

impl Policy {
    pub fn tenant(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(id)
    }

    /// Assembles a policy and its derived indexes (used by the loader, and by tests that
    /// build a policy in code).
    pub fn new(
        gateway: GatewayConfig,
        tenants: BTreeMap<String, Arc<Tenant>>,
        keys: KeyRing,
    ) -> Self {
        let byo_livekit = tenants
            .values()
            .filter_map(|t| t.livekit.as_ref().map(|p| (p.api_key.clone(), t.clone())))
            .collect();
        let inbound_dids = tenants
            .values()
            .flat_map(|t| t.inbound.numbers.iter().map(|n| (n.did.clone(), t.clone())))
            .collect();
        Self {
            gateway,
            tenants,
            keys,
            byo_livekit,
            inbound_dids,
        }
    }

    /// The tenant a customer reaches by calling `did` (E.164), and that number's entry.
    pub fn inbound_number(&self, did: &str) -> Option<(&Arc<Tenant>, &InboundNumber)> {
        let t = self.inbound_dids.get(did)?;
        let n = t.inbound.numbers.iter().find(|n| n.did == did)?;
        Some((t, n))
    }

    /// The tenant whose own (bring-your-own) LiveKit project uses `api_key`.
    pub fn tenant_by_livekit_key(&self, api_key: &str) -> Option<&Arc<Tenant>> {
        self.byo_livekit.get(api_key)
    }

    /// The LiveKit project a tenant uses: its own (bring-your-own) or the platform's.
    pub fn livekit_for<'a>(&'a self, tenant: &'a Tenant) -> Option<&'a LiveKitProject> {
        tenant.livekit.as_ref().or(self.gateway.livekit.as_ref())
    }
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// What `ws_url` points at; the browser's LiveKit SDK connects here.
    pub public_url: String,
    pub threads: usize,
    pub grace_period: Duration,
    pub regions: Vec<Region>,
    pub livekit: Option<LiveKitProject>,
    pub answer_detection: AnswerDetection,
    pub calls: CallsPolicy,
    pub webhooks: WebhookPolicy,
    pub simulator: SimulatorConfig,
    /// Requests per second per source IP on unauthenticated paths (browser endpoints,
    /// LiveKit webhooks, signalling).
    pub per_ip_rps: u32,
    /// Active health-check period of LiveKit upstreams.
    pub health_check_interval: Duration,
    pub tls: Option<TlsListener>,
    pub sip: SipKnobs,
    /// The embedded store's page cache, in bytes: together with the open calls it sets
    /// the gateway's steady-state memory (see `docs/operations.md`).
    pub store_cache_bytes: u64,
    /// Which backend holds calls, webhooks, DLT flags and agents.
    pub store: StoreKind,
    /// Gateways sharing the store (`store.fleet_size`, default 1). Request-rate and SIP
    /// calls-per-second caps are per node: each node enforces its share, the cap
    /// divided by this.
    pub fleet_size: u32,
    pub presence: PresenceKnobs,
    pub billing: BillingPolicy,
    /// `[dlt]`: caller-ID series, default calling hours, list sizes.
    pub dlt: crate::DltRules,
}

/// `[billing]`: what managed tenants' calls cost and what a call needs to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingPolicy {
    /// Managed tenants' calls are paid from their wallets: checked at click2call, held
    /// at `/connect`, charged at the end, refused `402 insufficient_balance` when the
    /// wallet cannot pay. Off by default, so an upgrade does not refuse every call of
    /// tenants whose wallets were never topped up: turn it on once they are.
    pub charge_calls: bool,
    /// The platform's rate, for trunks without their own.
    pub default_rate: c2c_billing::Rate,
    /// A managed tenant's call is dialled only when its wallet can pay this many minutes.
    pub min_call_minutes: u32,
    /// How far below zero a call in progress may take a wallet before it is ended.
    pub overdraft_paise: u64,
    /// A managed wallet whose available balance is below this is low
    /// (`c2c_wallet_low_balance`, alert `C2CWalletLowBalance`); 0: never.
    pub low_balance_paise: u64,
}

impl BillingPolicy {
    /// The rate of calls on `trunk`, and whether it is the trunk's own.
    pub fn rate_for(&self, trunk: &Trunk) -> (c2c_billing::Rate, RateSource) {
        match trunk.rate {
            Some(r) => (r, RateSource::Trunk),
            None => (self.default_rate, RateSource::Platform),
        }
    }
}

/// Where a trunk's rate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateSource {
    /// The trunk's own `paise_per_pulse` / `pulse_seconds`.
    Trunk,
    /// `[billing]` of gateway.toml.
    Platform,
}

impl GatewayConfig {
    /// This node's share of a fleet-wide rate cap (requests or SIP calls per second):
    /// the cap divided by `store.fleet_size`, rounded up, at least 1.
    pub fn node_share(&self, cap: u32) -> u32 {
        cap.div_ceil(self.fleet_size.max(1)).max(1)
    }
}

/// `[store] kind`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreKind {
    /// The embedded sled database in the data directory (the default; one gateway).
    Sled,
    /// PostgreSQL shared by a fleet of gateways.
    Postgres(PostgresStore),
}

/// `[store] kind = "postgres"`'s settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresStore {
    /// From `url_env` or `url_file`: it holds the password, so never inline.
    pub url: Secret,
    pub pool_size: usize,
    pub statement_timeout: Duration,
    /// Schema the tables live in (default: the connection's search path).
    pub schema: Option<String>,
    /// A node's lease on the calls it drives (default 5 s).
    pub lease: Duration,
    /// This node's name in the fleet's node table (default: the host name).
    pub node_name: Option<String>,
}

/// The SIP edge's caps (`[sip]` in gateway.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipKnobs {
    /// New calls per second per tenant (503 + Retry-After beyond).
    pub calls_per_second: u32,
    /// Calls (early or confirmed) at once per tenant.
    pub max_concurrent_calls: u32,
    /// Open transactions; a completed one lingers 64*T1 (32 s) for retransmissions.
    pub max_transactions: usize,
    /// Anchored trunks' media relay (`[sip.media]`).
    pub media: SipMediaKnobs,
}

/// `[sip.media]`: where anchored calls' RTP goes through the edge. Read at start (the
/// ports are bound per call from this range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipMediaKnobs {
    /// The address written into anchored SDP; `None`: the SIP edge's advertised address.
    pub address: Option<std::net::IpAddr>,
    /// RTP ports (even) and RTCP ports (the odd one above) come from this range.
    pub port_min: u16,
    pub port_max: u16,
    /// After the answer, this long without RTP from the carrier ends the call
    /// (`media_timeout`).
    pub media_timeout: Duration,
    /// After the answer, RTP one way only this long flags one-way audio.
    pub one_way_after: Duration,
    /// Where the relays run (`io`).
    pub io: RelayIo,
    /// How long the io_uring media thread may hold a packet to wake once for several
    /// (`batch_us`).
    pub batch: Duration,
}

/// `[sip.media] io`: where anchored calls' relays run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayIo {
    /// `"auto"`: io_uring where the kernel allows it, the runtime otherwise.
    Auto,
    /// `"io_uring"`: the media thread, or the gateway does not start.
    IoUring,
    /// `"runtime"`: a task per call on the SIP edge's runtime.
    Runtime,
}

/// An optional TLS listener (HTTP/1.1 and HTTP/2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    pub listen: SocketAddr,
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

/// The bundled LiveKit simulator (used by projects with `url = "sim"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatorConfig {
    pub listen: String,
    /// Put `sip.disconnectCode` on departed SIP participants, as the seed's LiveKit
    /// setup reports in `participant_left` webhooks.
    pub sip_disconnect_code_attribute: bool,
    /// Dial SIP for real through this proxy (`udp:127.0.0.1:5060`), as LiveKit SIP
    /// with an outbound trunk pointing at the gateway's SIP edge; else scripted calls.
    pub sip_outbound: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub upstreams: Vec<String>,
    /// Regions to try, in order, when every upstream here is down.
    pub fallback: Vec<String>,
    /// Addresses (IP or CIDR) of this region's LiveKit SIP nodes: the only sources the
    /// SIP edge accepts calls from.
    pub sip_sources: Vec<String>,
    /// This region's LiveKit SIP (`sip:host:port[;transport=tcp]`): where the SIP edge
    /// forwards an inbound call once an agent accepted it. `None` with the bundled
    /// simulator, whose SIP address is known only once it runs.
    pub livekit_sip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveKitProject {
    /// `https://...`, or `sim` for the bundled simulator.
    pub url: String,
    pub api_key: String,
    pub api_secret: Secret,
}

impl LiveKitProject {
    pub fn is_sim(&self) -> bool {
        self.url == "sim"
    }
}

/// How the gateway learns that a call was answered or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerDetection {
    /// Sample LiveKit's ListParticipants for open calls.
    Poll,
    /// LiveKit webhooks plus the browser's ANSWERED report.
    Webhook,
    /// Responses seen by the gateway's own SIP edge.
    Sip,
}

impl AnswerDetection {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerDetection::Poll => "poll",
            AnswerDetection::Webhook => "webhook",
            AnswerDetection::Sip => "sip",
        }
    }
}

/// The `[calls]` section: call timing as the platform owner sets it. The gateway derives
/// the call state machine's own knobs (`c2c_callstate::CallKnobs`) from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallsPolicy {
    pub ring_timeout: Duration,
    pub agent_drop_grace: Duration,
    pub max_duration: Duration,
    pub unconnected_expiry: Duration,
    pub poll_interval: Duration,
    pub token_ttl: Duration,
    /// Ended calls older than this are purged from the store (records, indexes, finished
    /// webhooks; the per-day tallies stay). `None` keeps them forever.
    pub retention: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookPolicy {
    pub timeout: Duration,
    /// How long a webhook is retried before it is given up.
    pub max_age: Duration,
    pub per_tenant_concurrency: usize,
    /// Allow CRM webhook URLs on loopback/private addresses (development only; the
    /// default refuses them as an SSRF guard).
    pub allow_private_targets: bool,
}

#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub region: String,
    pub allowed_origins: Vec<String>,
    pub livekit: Option<LiveKitProject>,
    pub crm_webhook: Option<CrmWebhook>,
    pub dlt: DltPolicy,
    pub limits: TenantLimits,
    pub agents: TenantAgentsPolicy,
    pub trunks: Vec<Trunk>,
    pub inbound: TenantInbound,
}

/// A tenant's `[inbound]`: its numbers, the CRM's lead lookup and the ring timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInbound {
    /// The CRM endpoint asked for the caller's lead (with the tenant's outbound key).
    pub lookup_url: Option<String>,
    /// How long a lookup may take before the call rings on without a lead.
    pub lookup_timeout: Duration,
    /// How long the `incoming` event waits for the lead after the offer (the seed's
    /// 1500 ms race); a later lead is pushed as `incoming_update`.
    pub lead_wait: Duration,
    /// How long one agent is offered the call before the next one is.
    pub ring_agent: Duration,
    /// How long the caller rings in all before the call ends MISSED.
    pub ring_timeout: Duration,
    pub numbers: Vec<InboundNumber>,
}

impl Default for TenantInbound {
    fn default() -> Self {
        Self {
            lookup_url: None,
            lookup_timeout: Duration::from_millis(3000),
            lead_wait: Duration::from_millis(1500),
            ring_agent: Duration::from_secs(20),
            ring_timeout: Duration::from_secs(60),
            numbers: Vec::new(),
        }
    }
}

/// One inbound number (DID, E.164) and the label of the carrier trunk it arrives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundNumber {
    pub did: String,
    pub trunk: String,
}

/// A tenant's `[agents]`: both off by default, so a CRM that sends any `agent_id`
/// string keeps working unmodified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantAgentsPolicy {
    /// click2call refuses an `agent_id` that is not registered (`403 agent_not_registered`).
    pub require_registration: bool,
    /// An agent may have more than one connected call at once (no `409 agent_busy`).
    pub allow_concurrent_calls: bool,
}

/// The presence channel's knobs (`[agents]` in gateway.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceKnobs {
    /// How long a dropped socket's availability is kept for a reconnect.
    pub grace: Duration,
    /// Lifetime of a presence token minted for a browser.
    pub token_ttl: Duration,
    /// WebSocket ping period; a socket silent for two periods is closed.
    pub heartbeat: Duration,
    /// Presence sockets this process holds at most (one more is refused `503`).
    pub max_sessions: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// Authenticated API requests per second.
    pub requests_per_second: u32,
    /// Calls not yet ended at once.
    pub max_concurrent_calls: u32,
}

impl Tenant {
    /// The trunk calls go out on: the default one, if it is enabled.
    pub fn default_trunk(&self) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.default && t.enabled)
    }

    pub fn trunk(&self, label: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.label == label)
    }

    /// How the platform bills this tenant, inferred from its credentials and never
    /// configured (seed 000: an explicit mode field got stripped on the way and turned
    /// paying customers into free ones). A tenant with its own LiveKit project dials
    /// through its own SIP trunks: bring-your-own-telephony. Without one it uses the
    /// platform's project and trunks, paid from its wallet.
    pub fn billing_mode(&self) -> BillingMode {
        if self.livekit.is_some() {
            BillingMode::Byot
        } else {
            BillingMode::Managed
        }
    }
}

/// [`Tenant::billing_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BillingMode {
    /// The platform's telephony, paid from a pre-loaded wallet in paise.
    Managed,
    /// The tenant's own LiveKit project and trunks; metered, never blocked by a wallet.
    Byot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmWebhook {
    pub url: String,
    pub outbound_key: Secret,
    pub signing_secret: Option<Secret>,
    /// The CRM also receives `wallet.low_balance` events (opt-in: a receiver that reads
    /// the call-outcome contract to the letter never sees another shape unasked).
    pub low_balance_webhook: bool,
    /// Call webhooks carry `media` (what the SIP edge measured on an anchored trunk, or
    /// `null`) after the contract's fields. Opt-in for the same reason.
    pub media_in_payload: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DltPolicy {
    pub principal_entity_id: String,
    /// Initial value only: the owner's toggle (persisted by the DLT registry) wins.
    pub outbound_enabled: bool,
    /// Decides the caller-ID series of its service and transactional calls.
    pub entity_class: crate::EntityClass,
    /// Numbers (E.164) the tenant registered for its service and transactional calls;
    /// when the file declares none, its trunks' default DIDs.
    pub registered_numbers: Vec<String>,
    /// Promotional calls' window; `None`: the platform's (`[dlt]` of gateway.toml).
    pub calling_hours: Option<crate::CallingHours>,
    /// The do-not-disturb list promotional calls are scrubbed against (absolute path).
    pub dnd_file: Option<std::path::PathBuf>,
    /// Numbers that consented to promotional calls despite DND (absolute path).
    pub consent_file: Option<std::path::PathBuf>,
}

impl DltPolicy {
    /// A commercial entity's `[dlt]` with no calling-hours override and no lists (tests
    /// and tools that build tenants by hand).
    pub fn commercial(
        principal_entity_id: impl Into<String>,
        outbound_enabled: bool,
        registered_numbers: Vec<String>,
    ) -> Self {
        Self {
            principal_entity_id: principal_entity_id.into(),
            outbound_enabled,
            entity_class: crate::EntityClass::Commercial,
            registered_numbers,
            calling_hours: None,
            dnd_file: None,
            consent_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub label: String,
    pub livekit_trunk_id: String,
    /// Internal dial prefix; never shown to CRMs or browsers.
    pub prefix: String,
    /// Caller ID in E.164.
    pub default_did: String,
    /// `sip:host:port` the SIP edge forwards to.
    pub carrier: String,
    pub default: bool,
    pub enabled: bool,
    /// Where the carrier's inbound INVITEs may come from (IP or CIDR); empty: the
    /// carrier's own address.
    pub sources: Vec<String>,
    /// This trunk's rate for managed tenants; `None`: the platform's (`[billing]`).
    pub rate: Option<c2c_billing::Rate>,
    /// Whether the SIP edge relays this trunk's RTP itself (`media`, default direct).
    pub media: MediaMode,
    /// What its calls are for TCCCPR (`category`, default service).
    pub category: crate::CallCategory,
}

/// A trunk's media path (`media = "direct" | "anchor"` in its `[[trunks]]` entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MediaMode {
    /// RTP flows between the carrier and LiveKit SIP; the edge carries signalling only.
    #[default]
    Direct,
    /// The edge rewrites the SDP to its own media address and relays RTP and RTCP both
    /// ways, measuring it (docs/media.md): one fixed address for the carrier, NAT
    /// latching, early media, dead air and one-way audio seen per call.
    Anchor,
}

impl MediaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaMode::Direct => "direct",
            MediaMode::Anchor => "anchor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(MediaMode::Direct),
            "anchor" => Some(MediaMode::Anchor),
            _ => None,
        }
    }
}
