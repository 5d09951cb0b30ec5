//! # livekit-sim — a LiveKit server simulator for tests and local runs
//!
//! **Owns:** an HTTP server that speaks LiveKit's server API wire protocol the way
//! `livekit-server` does, so the official SDKs work against it unchanged:
//! * Twirp at `/twirp/livekit.RoomService/{CreateRoom, ListRooms, DeleteRoom,
//!   ListParticipants, GetParticipant, RemoveParticipant}` and
//!   `/twirp/livekit.SIP/CreateSIPParticipant` (+ the inbound methods below), with `application/protobuf` and
//!   `application/json` bodies ([`twirp`], proto-named JSON like Go twirp);
//! * Twirp errors `{"code","msg","meta"}` with twirp's HTTP status mapping;
//! * bearer JWT auth (HS256, `iss` = API key) with LiveKit's grant checks: `roomCreate`
//!   for Create/DeleteRoom, `roomList`, `roomAdmin` *for the same room* for
//!   participant calls, `sip.call` for dialing, `sip.admin` for trunks and
//!   rules. A present-but-bad token gets
//!   LiveKit's plain-text 401; a missing grant gets Twirp `unauthenticated` (401);
//! * rooms and participants in memory with LiveKit's lifecycle (empty/departure
//!   timeouts, duplicate identity, DeleteRoom);
//! * SIP participants driven by scripted [`Scenario`]s chosen by the dialled
//!   number's last 10 digits, following livekit/sip's status attribute and
//!   disconnect-reason rules — or, with [`SimConfig::sip_outbound`], by a real
//!   SIP call to a trunk (INVITE with the request's `headers` as SIP headers,
//!   CANCEL, ACK, BYE, UDP retransmissions; see `sip`);
//! * inbound SIP as LiveKit SIP answers it: Twirp `livekit.SIP/{Create,List}
//!   SIPInboundTrunk`, `DeleteSIPTrunk`, `{Create,List,Delete}SIPDispatchRule`
//!   (LiveKit's validation and conflict rules), and on the SIP socket
//!   ([`SimConfig::sip_inbound`], or shared with `sip_outbound`) a UAS that matches
//!   trunk and rule, rings, joins a SIP participant to the rule's room and answers
//!   once another participant publishes audio there ([`SimHandle::inbound_calls`]);
//!   [`SimConfig::inbound_auto_provision`] sets up c2c-gateway's trunk and rule;
//! * a carrier calling a SIP edge (a customer dialling a tenant's number): an INVITE
//!   for a DID from a UDP socket of its own, held once answered then BYE, final
//!   >= 300 ACKed ([`SimHandle::dial_inbound`], `POST /sim/sip/dial-inbound`);
//! * signed webhooks exactly as LiveKit sends them ([`webhooks`]);
//! * a signalling stub at `/rtc` and `/rtc/v1` (WebSocket: token checks and status
//!   codes as LiveKit's `rtcservice.go`, a protobuf `SignalResponse{join}` first
//!   frame, the participant joined for the session's life, text frames echoed) and
//!   `/rtc/validate`, `/rtc/v1/validate`; bounded by `SimLimits::max_rtc_sessions`
//!   and 64 KiB frames, counted in [`SimStats`] (`rtc_*`);
//! * test hooks: agent join/leave, fault injection, counters, forged/replayed
//!   webhooks — in-process via [`SimHandle`] and over HTTP under `/sim/`.
//!
//! **Must not:** carry media or WebRTC (agents are simulated by join/leave or an
//! `/rtc` session without SDP/ICE; a SIP call's SDP names a port nobody
//! listens on), dial SIP anywhere but the configured proxy (in-dialog requests of
//! an inbound call follow that caller's route set), persist anything, or
//! listen anywhere but where it is told (tests use 127.0.0.1). It is test
//! infrastructure: the `/sim/` hooks are unauthenticated.
//!
//! ```no_run
//! # async fn demo() -> Result<(), livekit_sim::SimError> {
//! use livekit_sim::{Scenario, SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::new("APIkey", "secret")).await?;
//! sim.set_scenario("9530251797", Scenario::busy())?;
//! let url = sim.url(); // give this to livekit_api::services::room::RoomClient
//! # let _ = url; sim.shutdown().await; Ok(()) }
//! ```

mod auth;
mod config;
mod core;
mod handle;
mod hooks;
pub mod http_client;
pub mod ids;
pub mod jwt;
mod protojson;
mod rooms;
mod rtc;
pub mod scenario;
mod server;
mod service;
mod sip;
pub mod sip_dialer;
mod sip_rules;
pub mod twirp;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::config::{
    InboundProvision, SimConfig, SimLimits, SipInbound, SipOutbound, SipTransport,
};
pub use crate::core::{DialRecord, SimStats};
pub use crate::handle::SimHandle;
pub use crate::scenario::{Outcome, Scenario, ScenarioFile};
pub use crate::sip::carrier::{InboundDialId, InboundDialRecord, InboundDialState};
pub use crate::sip::inbound::{InboundCallRecord, InboundState};
pub use crate::webhooks::{Forgery, SignedWebhook};

use crate::core::{Core, CoreParts, Counters, SipDefaults};
use crate::rooms::{RoomRules, Rooms};
use crate::rtc::RtcSessions;
use crate::scenario::ScenarioTable;
use crate::sip::{inbound, UaConfig};
use crate::sip_rules::SipRules;
use crate::webhooks::{WebhookLog, WorkerConfig};

/// Errors from the simulator's library API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("limit reached: {0}")]
    Limit(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("http error: {0}")]
    Http(String),
    #[error("no webhook url configured")]
    NoWebhookUrl,
    #[error("no webhook to replay yet")]
    NothingToReplay,
}

/// Entry point: starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` and serves on the caller's tokio runtime.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        if config.api_key.is_empty() || config.api_secret.is_empty() {
            return Err(SimError::Config(
                "api_key and api_secret are required".to_owned(),
            ));
        }
        if let Some(url) = &config.webhook_url {
            if !url.starts_with("http://") {
                return Err(SimError::Config("webhook_url must be http://".to_owned()));
            }
        }
        let listen: SocketAddr = config
            .listen
            .parse()
            .map_err(|e| SimError::Config(format!("listen address {:?}: {e}", config.listen)))?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let limits = config.limits.clone();

        let mut scenarios =
            ScenarioTable::new(config.default_scenario.clone(), limits.max_scenarios);
        for (number, scenario) in &config.scenarios {
            scenarios.set(number, scenario.clone())?;
        }

        let counters = Arc::new(Counters::default());
        let (sink, webhook_rx, dropped) = webhooks::channel(limits.webhook_queue, counters.clone());
        let rooms = Rooms::new_shared(
            RoomRules {
                max_rooms: limits.max_rooms,
                max_participants: limits.max_participants_per_room,
                default_empty_timeout: config.default_empty_timeout,
                default_departure_timeout: config.default_departure_timeout,
            },
            sink,
            counters.clone(),
        );
        let webhook_log = Arc::new(WebhookLog::new(limits.webhook_log));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let sip_rules = Arc::new(parking_lot::Mutex::new(SipRules::new(
            limits.max_sip_trunks,
            limits.max_dispatch_rules,
        )));
        if let Some(p) = &config.inbound_auto_provision {
            let (trunk, rule) = sip_rules::provision::provision(&mut sip_rules.lock(), p)?;
            tracing::info!(%trunk, %rule, "livekit-sim provisioned the inbound trunk and rule");
        }
        let sip_ua = match ua_config(&config) {
            Some(ua_config) => {
                let (ua, task) =
                    sip::Ua::start(ua_config, limits.max_sip_calls, shutdown_rx.clone()).await?;
                let inbound = config.sip_inbound.clone().unwrap_or_default();
                ua.set_inbound(Arc::new(inbound::Service::new(
                    rooms.clone(),
                    sip_rules.clone(),
                    inbound::Settings {
                        ring_interval: inbound.ring_interval,
                        no_trunk_404: inbound.no_trunk_404,
                        no_rule_404: inbound.no_rule_404,
                        max_call_duration: config.default_max_call_duration,
                        log_capacity: limits.inbound_log,
                        rejected_capacity: limits.rejected_invites,
                    },
                )));
                tracing::info!(local = %ua.local_addr(), proxy = ?ua.proxy(), "livekit-sim SIP socket");
                tasks.push(task);
                Some(ua)
            }
            None => None,
        };
        let carrier = match &sip_ua {
            Some(ua) => {
                let (carrier, task) = start_carrier(ua, &limits, shutdown_rx.clone()).await?;
                tasks.push(task);
                Some(carrier)
            }
            None => None,
        };
        let core = Arc::new(Core::new(CoreParts {
            api_key: config.api_key.clone(),
            api_secret: config.api_secret.clone(),
            webhook_url: config.webhook_url.clone(),
            rooms,
            scenarios,
            counters: counters.clone(),
            webhook_log: webhook_log.clone(),
            sip: SipDefaults {
                ringing_timeout: config.default_ringing_timeout,
                max_call_duration: config.default_max_call_duration,
                disconnect_code_attribute: config.sip_disconnect_code_attribute,
            },
            max_request_bytes: limits.max_request_bytes,
            dial_log_capacity: limits.dial_log,
            rtc: RtcSessions::new(limits.max_rtc_sessions),
            sip_ua,
            sip_rules,
            carrier,
        }));
        core.faults
            .set_ignore_wait(config.ignore_wait_until_answered);

        let worker = tokio::spawn(webhooks::run_worker(
            webhook_rx,
            WorkerConfig {
                url: config.webhook_url.clone(),
                api_key: config.api_key.clone(),
                api_secret: config.api_secret.clone(),
            },
            webhook_log,
            counters,
            dropped,
            shutdown_rx.clone(),
        ));
        let server = tokio::spawn(server::serve(
            listener,
            core.clone(),
            shutdown_rx,
            limits.max_connections,
        ));
        tracing::info!(%addr, "livekit-sim listening");
        tasks.push(server);
        tasks.push(worker);
        Ok(SimHandle::new(addr, core, shutdown_tx, tasks))
    }
}

/// The carrier's own UDP socket, on the SIP socket's address (loopback when that is
/// unspecified) and with its T1.
async fn start_carrier(
    sip: &sip::Ua,
    limits: &SimLimits,
    shutdown: watch::Receiver<bool>,
) -> Result<(sip::carrier::Carrier, tokio::task::JoinHandle<()>), SimError> {
    let ip = match sip.local_addr().ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let config = UaConfig {
        transport: SipTransport::Udp,
        bind: SocketAddr::new(ip, 0),
        t1: sip.config().t1,
        proxy: None,
    };
    let (ua, task) = sip::Ua::start(config, limits.max_sip_calls, shutdown).await?;
    tracing::info!(local = %ua.local_addr(), "livekit-sim carrier SIP socket");
    let carrier = sip::carrier::Carrier::new(ua, tokio::runtime::Handle::current());
    Ok((carrier, task))
}

/// The SIP socket the configuration asks for: the outbound one (which answers
/// inbound calls too, as LiveKit SIP's single listener), else an inbound-only one
/// when inbound is configured or auto-provisioned.
fn ua_config(config: &SimConfig) -> Option<UaConfig> {
    let inbound = config.sip_inbound.clone().or_else(|| {
        config
            .inbound_auto_provision
            .as_ref()
            .map(|_| SipInbound::default())
    });
    if let Some(out) = &config.sip_outbound {
        let port = inbound.map_or(0, |i| i.listen.port());
        return Some(UaConfig {
            transport: out.transport,
            bind: SocketAddr::new(out.local_ip, port),
            t1: out.t1,
            proxy: Some(out.proxy),
        });
    }
    inbound.map(|i| UaConfig {
        transport: i.transport,
        bind: i.listen,
        t1: i.t1,
        proxy: None,
    })
}
