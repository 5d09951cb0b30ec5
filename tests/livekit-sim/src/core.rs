//! State shared by the server, the handle and background tasks: rooms, scenarios,
//! fault switches, counters and bounded logs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use livekit_protocol as proto;

use crate::rooms::{self, SharedRooms};
use crate::rtc::RtcSessions;
use crate::scenario::{Scenario, ScenarioTable};
use crate::sip::carrier::Carrier;
use crate::sip::inbound::InboundCallRecord;
use crate::sip::Ua;
use crate::sip_rules::SipRules;
use crate::webhooks::WebhookLog;
use crate::{ids, jwt, webhooks, SimError};

/// Monotonic counters for tests and the `/sim/stats` hook.
#[derive(Default)]
pub(crate) struct Counters {
    rooms_created: AtomicU64,
    rooms_deleted: AtomicU64,
    rooms_closed_idle: AtomicU64,
    requests: AtomicU64,
    sip_dials: AtomicU64,
    webhooks_sent: AtomicU64,
    webhooks_failed: AtomicU64,
    webhooks_dropped: AtomicU64,
    rtc_connections: AtomicU64,
    rtc_upgrades: AtomicU64,
}

macro_rules! bump {
    ($($name:ident => $field:ident),* $(,)?) => {
        impl Counters {
            $(pub(crate) fn $name(&self) { self.$field.fetch_add(1, Ordering::Relaxed); })*
        }
    };
}

bump! {
    room_created => rooms_created,
    room_deleted => rooms_deleted,
    room_closed_idle => rooms_closed_idle,
    request => requests,
    sip_dial => sip_dials,
    webhook_sent => webhooks_sent,
    webhook_failed => webhooks_failed,
    webhook_dropped => webhooks_dropped,
    rtc_connection => rtc_connections,
    rtc_upgrade => rtc_upgrades,
}

/// A snapshot of the simulator's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SimStats {
    /// Rooms created (by CreateRoom or by a join/dial into a missing room).
    pub rooms_created: u64,
    /// Rooms removed by DeleteRoom.
    pub rooms_deleted: u64,
    /// Rooms closed by empty/departure timeout.
    pub rooms_closed_idle: u64,
    /// Rooms currently open.
    pub open_rooms: u64,
    /// LiveKit API requests (everything except `/sim/` hooks and `GET /`), `/rtc*` included.
    pub requests: u64,
    /// Accepted CreateSIPParticipant requests.
    pub sip_dials: u64,
    pub webhooks_sent: u64,
    pub webhooks_failed: u64,
    pub webhooks_dropped: u64,
    /// HTTP requests to `/rtc` or `/rtc/...`, rejected ones included (a proxy that
    /// refuses a forged token must leave this at zero).
    pub rtc_connections: u64,
    /// Signalling WebSocket sessions open now.
    pub rtc_sessions_open: u64,
    /// Signalling requests answered `101 Switching Protocols`.
    pub rtc_upgrades: u64,
    /// Real SIP calls tracked now, both directions (ended UDP calls linger 64*T1
    /// to absorb retransmissions).
    pub sip_calls: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self, open_rooms: usize) -> SimStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimStats {
            rooms_created: get(&self.rooms_created),
            rooms_deleted: get(&self.rooms_deleted),
            rooms_closed_idle: get(&self.rooms_closed_idle),
            open_rooms: u64::try_from(open_rooms).unwrap_or(u64::MAX),
            requests: get(&self.requests),
            sip_dials: get(&self.sip_dials),
            webhooks_sent: get(&self.webhooks_sent),
            webhooks_failed: get(&self.webhooks_failed),
            webhooks_dropped: get(&self.webhooks_dropped),
            rtc_connections: get(&self.rtc_connections),
            rtc_sessions_open: 0,
            rtc_upgrades: get(&self.rtc_upgrades),
            sip_calls: 0,
        }
    }
}

/// Fault injection switches.
pub(crate) struct Faults {
    unavailable: AtomicBool,
    latency_ms: AtomicU64,
    /// CreateSIPParticipant returns at once even when asked to wait until answered, as
    /// an older server or a proxy timing out the long request does.
    ignore_wait: AtomicBool,
    /// A watch so open keep-alive connections can be cut the moment it turns on.
    refuse: watch::Sender<bool>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            unavailable: AtomicBool::new(false),
            latency_ms: AtomicU64::new(0),
            ignore_wait: AtomicBool::new(false),
            refuse: watch::Sender::new(false),
        }
    }
}

impl Faults {
    pub(crate) fn set_unavailable(&self, on: bool) {
        self.unavailable.store(on, Ordering::Relaxed);
    }
    pub(crate) fn unavailable(&self) -> bool {
        self.unavailable.load(Ordering::Relaxed)
    }
    pub(crate) fn set_ignore_wait(&self, on: bool) {
        self.ignore_wait.store(on, Ordering::Relaxed);
    }
    pub(crate) fn ignore_wait(&self) -> bool {
        self.ignore_wait.load(Ordering::Relaxed)
    }
    pub(crate) fn set_refuse(&self, on: bool) {
        self.refuse.send_replace(on);
    }
    pub(crate) fn refuse(&self) -> bool {
        *self.refuse.borrow()
    }
    pub(crate) fn watch_refuse(&self) -> watch::Receiver<bool> {
        self.refuse.subscribe()
    }
    pub(crate) fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.latency_ms.store(ms, Ordering::Relaxed);
    }
    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }
}

/// What a CreateSIPParticipant request asked for (for assertions in tests).
/// Holds the dialled string: keep it out of logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DialRecord {
    pub room: String,
    pub participant_identity: String,
    pub sip_trunk_id: String,
    pub sip_call_to: String,
    pub sip_number: String,
    pub hide_phone_number: bool,
    pub headers: BTreeMap<String, String>,
    pub ringing_timeout: Option<Duration>,
    pub max_call_duration: Option<Duration>,
    pub wait_until_answered: bool,
    pub scenario: Scenario,
}

/// Timing defaults for SIP calls.
#[derive(Clone, Debug)]
pub(crate) struct SipDefaults {
    pub ringing_timeout: Duration,
    pub max_call_duration: Duration,
    pub disconnect_code_attribute: bool,
}

pub(crate) struct Core {
    pub api_key: String,
    pub api_secret: String,
    pub webhook_url: Option<String>,
    pub rooms: SharedRooms,
    pub scenarios: Mutex<ScenarioTable>,
    pub faults: Faults,
    pub counters: Arc<Counters>,
    pub webhook_log: Arc<WebhookLog>,
    pub sip: SipDefaults,
    pub max_request_bytes: usize,
    pub rtc: RtcSessions,
    /// The SIP socket: dials when [`crate::SimConfig::sip_outbound`] is set, answers
    /// inbound calls whenever it exists.
    pub sip_ua: Option<Arc<Ua>>,
    /// Inbound trunks and dispatch rules (Twirp `livekit.SIP` admin methods).
    pub sip_rules: Arc<Mutex<SipRules>>,
    /// The simulator as a carrier calling a SIP edge (whenever there is a SIP socket).
    pub carrier: Option<Carrier>,
    dials: Mutex<VecDeque<DialRecord>>,
    dial_log_capacity: usize,
}

/// Everything a [`Core`] starts from, built by [`crate::Simulator::start`].
pub(crate) struct CoreParts {
    pub api_key: String,
    pub api_secret: String,
    pub webhook_url: Option<String>,
    pub rooms: SharedRooms,
    pub scenarios: ScenarioTable,
    pub counters: Arc<Counters>,
    pub webhook_log: Arc<WebhookLog>,
    pub sip: SipDefaults,
    pub max_request_bytes: usize,
    /// How many CreateSIPParticipant requests [`Core::dials`] remembers.
    pub dial_log_capacity: usize,
    pub rtc: RtcSessions,
    pub sip_ua: Option<Arc<Ua>>,
    pub sip_rules: Arc<Mutex<SipRules>>,
    pub carrier: Option<Carrier>,
}

impl Core {
    pub(crate) fn new(p: CoreParts) -> Self {
        Self {
            api_key: p.api_key,
            api_secret: p.api_secret,
            webhook_url: p.webhook_url,
            rooms: p.rooms,
            scenarios: Mutex::new(p.scenarios),
            faults: Faults::default(),
            counters: p.counters,
            webhook_log: p.webhook_log,
            sip: p.sip,
            max_request_bytes: p.max_request_bytes,
            rtc: p.rtc,
            sip_ua: p.sip_ua,
            sip_rules: p.sip_rules,
            carrier: p.carrier,
            dials: Mutex::new(VecDeque::new()),
            dial_log_capacity: p.dial_log_capacity,
        }
    }

    pub(crate) fn record_dial(&self, record: DialRecord) {
        let mut dials = self.dials.lock();
        if dials.len() >= self.dial_log_capacity {
            dials.pop_front();
        }
        dials.push_back(record);
    }

    pub(crate) fn dials(&self) -> Vec<DialRecord> {
        self.dials.lock().iter().cloned().collect()
    }

    /// Recent inbound INVITEs (empty without a SIP socket).
    pub(crate) fn inbound_calls(&self) -> Vec<InboundCallRecord> {
        self.sip_ua
            .as_ref()
            .and_then(|ua| ua.inbound())
            .map(|svc| svc.calls())
            .unwrap_or_default()
    }

    /// The carrier side, or why there is none.
    pub(crate) fn carrier(&self) -> Result<&Carrier, SimError> {
        self.carrier.as_ref().ok_or_else(|| {
            SimError::Config(
                "the simulator has no SIP socket: configure sip_inbound or sip_outbound".to_owned(),
            )
        })
    }

    /// Inbound fault switches (no-ops without a SIP socket).
    pub(crate) fn set_inbound_404(&self, no_trunk: Option<bool>, no_rule: Option<bool>) {
        if let Some(svc) = self.sip_ua.as_ref().and_then(|ua| ua.inbound()) {
            if let Some(on) = no_trunk {
                svc.set_no_trunk_404(on);
            }
            if let Some(on) = no_rule {
                svc.set_no_rule_404(on);
            }
        }
    }

    pub(crate) fn stats(&self) -> SimStats {
        let open = self.rooms.lock().len();
        let mut stats = self.counters.snapshot(open);
        stats.rtc_sessions_open = self.rtc.open();
        if let Some(ua) = &self.sip_ua {
            stats.sip_calls = u64::try_from(ua.calls()).unwrap_or(u64::MAX);
        }
        stats
    }
}

/// Test-hook operations shared by [`crate::SimHandle`] and the `/sim/...` endpoints.
impl Core {
    /// Marks `identity` as joined (a browser agent the simulator cannot carry), with its
    /// microphone published when `publish_audio` (as the contract's snippet does before
    /// `/connect`).
    pub(crate) fn join(
        &self,
        room: &str,
        identity: &str,
        name: &str,
        publish_audio: bool,
    ) -> Result<proto::ParticipantInfo, SimError> {
        if identity.is_empty() {
            return Err(SimError::Config("identity must not be empty".to_owned()));
        }
        let mut info = rooms::standard_participant(identity, name);
        if publish_audio {
            info.tracks.push(rooms::microphone_track(""));
        }
        self.rooms
            .lock()
            .add_participant(
                room,
                rooms::NewParticipant {
                    info,
                    alive: None,
                    waiter: None,
                },
            )
            .map_err(|e| SimError::Rejected(e.msg))
    }

    /// Publishes a microphone track for `identity`, already in `room` (an agent's
    /// `setMicrophoneEnabled(true)`).
    pub(crate) fn publish_microphone(&self, room: &str, identity: &str) -> Result<(), SimError> {
        let mut rooms = self.rooms.lock();
        let sid = rooms
            .participant(room, identity)
            .map(|p| p.sid)
            .ok_or_else(|| SimError::NotFound(format!("{identity} in {room}")))?;
        rooms.publish_track(room, &sid, rooms::microphone_track(""));
        Ok(())
    }

    /// Marks `identity` as gone (tab closed / hung up): `CLIENT_INITIATED`.
    pub(crate) fn leave(&self, room: &str, identity: &str) -> Result<(), SimError> {
        self.rooms
            .lock()
            .remove_participant(
                room,
                identity,
                None,
                proto::DisconnectReason::ClientInitiated,
            )
            .map(|_| ())
            .ok_or_else(|| SimError::NotFound(format!("{identity} in {room}")))
    }

    /// A plausible `participant_left` webhook spoiled by `forgery`.
    pub(crate) fn forge_webhook(
        &self,
        forgery: webhooks::Forgery,
    ) -> Result<webhooks::SignedWebhook, SimError> {
        let mut participant = proto::ParticipantInfo {
            sid: ids::guid(ids::PARTICIPANT_PREFIX),
            identity: "sip-customer".to_owned(),
            kind: proto::participant_info::Kind::Sip as i32,
            state: proto::participant_info::State::Disconnected as i32,
            disconnect_reason: proto::DisconnectReason::ClientInitiated as i32,
            ..Default::default()
        };
        participant
            .attributes
            .insert("sip.callStatus".to_owned(), "hangup".to_owned());
        let room = proto::Room {
            sid: ids::guid(ids::ROOM_PREFIX),
            name: "forged-room".to_owned(),
            ..Default::default()
        };
        let mut ev = webhooks::event(webhooks::event::PARTICIPANT_LEFT, &room, Some(participant));
        ev.id = ids::guid(ids::WEBHOOK_EVENT_PREFIX);
        ev.created_at = i64::try_from(jwt::now_unix()).unwrap_or(i64::MAX);
        let body = webhooks::encode_event(&ev)?;
        webhooks::forge_webhook(body, &self.api_key, &self.api_secret, forgery)
    }

    /// Sends exactly these bytes to the configured webhook URL; returns the status.
    pub(crate) async fn send_webhook(
        &self,
        webhook: &webhooks::SignedWebhook,
    ) -> Result<u16, SimError> {
        let url = self.webhook_url.as_deref().ok_or(SimError::NoWebhookUrl)?;
        webhooks::deliver(url, webhook).await
    }

    /// Re-sends the most recent webhook unchanged (a replay).
    pub(crate) async fn replay_last_webhook(&self) -> Result<u16, SimError> {
        let last = self.webhook_log.last().ok_or(SimError::NothingToReplay)?;
        self.send_webhook(&last).await
    }
}
