//! [`SimHandle`]: the in-process control surface of a running simulator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::core::{Core, DialRecord, SimStats};
use crate::scenario::Scenario;
use crate::sip::carrier::{DialInbound, InboundDialId, InboundDialRecord};
use crate::sip::inbound::InboundCallRecord;
use crate::webhooks::{Forgery, SignedWebhook};
use crate::SimError;

/// Handle to a running simulator. Cheap to clone; the simulator stops on
/// [`SimHandle::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    core: Arc<Core>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        self.core.rtc.stop_all();
        self.core.rooms.lock().clear();
    }
}

impl SimHandle {
    pub(crate) fn new(
        addr: SocketAddr,
        core: Arc<Core>,
        shutdown: watch::Sender<bool>,
        tasks: Vec<JoinHandle<()>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                addr,
                core,
                shutdown,
                tasks: Mutex::new(tasks),
            }),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Base URL for LiveKit clients, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The simulator's SIP address: where it dials from (Via/Contact) with
    /// [`crate::SimConfig::sip_outbound`], and where inbound INVITEs go (LiveKit's
    /// SIP address). For TCP, the listener's address. `None` without SIP.
    pub fn sip_local_addr(&self) -> Option<SocketAddr> {
        self.inner.core.sip_ua.as_ref().map(|ua| ua.local_addr())
    }

    /// Recent inbound INVITEs (trunk, rule, room, final response, headers seen),
    /// oldest first, at most `SimLimits::inbound_log`.
    pub fn inbound_calls(&self) -> Vec<InboundCallRecord> {
        self.inner.core.inbound_calls()
    }

    /// Calls `did` at the SIP edge `edge` as a carrier would, from `from` (a customer
    /// dialling a tenant's number): INVITE with an SDP offer from the simulator's
    /// carrier socket ([`Self::carrier_addr`]), rings, and once answered holds the call
    /// `hold`, then BYE; a final >= 300 is ACKed and ends it. Returns at once; follow
    /// the call with [`Self::inbound_dial`]. Needs a SIP socket (`sip_inbound` or
    /// `sip_outbound`); at most `carrier::MAX_DIALS` calls at once, `hold` at most 1 h.
    pub fn dial_inbound(
        &self,
        edge: SocketAddr,
        did: &str,
        from: &str,
        hold: Duration,
    ) -> Result<InboundDialId, SimError> {
        self.inner.core.carrier()?.dial(&DialInbound {
            edge,
            did,
            from,
            hold,
        })
    }

    /// A carrier call's record (the last `carrier::MAX_DIALS` are kept).
    pub fn inbound_dial(&self, id: &InboundDialId) -> Option<InboundDialRecord> {
        self.inner.core.carrier.as_ref()?.get(id.as_str())
    }

    /// The remembered carrier calls, oldest first.
    pub fn inbound_dials(&self) -> Vec<InboundDialRecord> {
        self.inner
            .core
            .carrier
            .as_ref()
            .map(|c| c.list())
            .unwrap_or_default()
    }

    /// The carrier hangs up `id`: CANCEL while ringing, BYE once answered. False for
    /// an unknown or ended call.
    pub fn hangup_inbound_dial(&self, id: &InboundDialId) -> bool {
        self.inner
            .core
            .carrier
            .as_ref()
            .is_some_and(|c| c.hangup(id.as_str()))
    }

    /// Where carrier calls come from (a trunk's `carrier` or `sources` must admit it).
    pub fn carrier_addr(&self) -> Option<SocketAddr> {
        self.inner.core.carrier.as_ref().map(|c| c.local_addr())
    }

    /// The inbound trunks, as `ListSIPInboundTrunk` returns them.
    pub fn sip_inbound_trunks(&self) -> Vec<proto::SipInboundTrunkInfo> {
        self.inner
            .core
            .sip_rules
            .lock()
            .list_trunks(&Default::default())
    }

    /// The dispatch rules, as `ListSIPDispatchRule` returns them.
    pub fn sip_dispatch_rules(&self) -> Vec<proto::SipDispatchRuleInfo> {
        self.inner
            .core
            .sip_rules
            .lock()
            .list_rules(&Default::default())
    }

    /// An INVITE matching no trunk gets `404 No trunk found` (LiveKit Cloud) instead
    /// of going on with wildcard rules (OSS). No-op without a SIP socket.
    pub fn set_inbound_no_trunk_404(&self, on: bool) {
        self.inner.core.set_inbound_404(Some(on), None);
    }

    /// An INVITE matching no dispatch rule gets `404` instead of OSS's silence after
    /// 100/180. No-op without a SIP socket.
    pub fn set_inbound_no_rule_404(&self, on: bool) {
        self.inner.core.set_inbound_404(None, Some(on));
    }

    pub fn api_key(&self) -> &str {
        &self.inner.core.api_key
    }

    pub fn api_secret(&self) -> &str {
        &self.inner.core.api_secret
    }

    /// Sets the call script for `number` (keyed by its last 10 digits).
    pub fn set_scenario(&self, number: &str, scenario: Scenario) -> Result<(), SimError> {
        self.inner.core.scenarios.lock().set(number, scenario)
    }

    /// Replaces the script used for numbers without one.
    pub fn set_default_scenario(&self, scenario: Scenario) {
        self.inner.core.scenarios.lock().set_default(scenario);
    }

    /// Open rooms, oldest first.
    pub fn rooms(&self) -> Vec<proto::Room> {
        self.inner.core.rooms.lock().list_rooms(&[])
    }

    /// Participants of `room` (empty if the room does not exist).
    pub fn participants(&self, room: &str) -> Vec<proto::ParticipantInfo> {
        self.inner.core.rooms.lock().participants(room)
    }

    /// Marks `identity` as joined to `room` (auto-creates the room, emits
    /// `participant_joined`). Stands in for a browser agent.
    pub fn join(&self, room: &str, identity: &str) -> Result<proto::ParticipantInfo, SimError> {
        self.inner.core.join(room, identity, "", true)
    }

    /// Like [`Self::join`], but without publishing a microphone track.
    pub fn join_without_audio(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<proto::ParticipantInfo, SimError> {
        self.inner.core.join(room, identity, "", false)
    }

    /// Publishes a microphone track for `identity`, already in `room` (an agent's
    /// `setMicrophoneEnabled(true)`; what an inbound call waits for before its 200).
    pub fn publish_audio(&self, room: &str, identity: &str) -> Result<(), SimError> {
        self.inner.core.publish_microphone(room, identity)
    }

    /// Marks `identity` as gone (`participant_left`, `CLIENT_INITIATED`), e.g. a closed tab.
    pub fn leave(&self, room: &str, identity: &str) -> Result<(), SimError> {
        self.inner.core.leave(room, identity)
    }

    /// Makes every LiveKit API call answer 503 Twirp `unavailable` (`/rtc*`: plain-text 503).
    pub fn set_unavailable(&self, on: bool) {
        self.inner.core.faults.set_unavailable(on);
    }

    /// Closes new and open connections at once (LiveKit unreachable).
    pub fn set_refuse_connections(&self, on: bool) {
        self.inner.core.faults.set_refuse(on);
    }

    /// Adds `latency` before every LiveKit API call is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.inner.core.faults.set_latency(latency);
    }

    /// Makes CreateSIPParticipant return at once even when asked to wait until answered
    /// (an older server, or a proxy timing out the long request).
    pub fn set_ignore_wait_until_answered(&self, on: bool) {
        self.inner.core.faults.set_ignore_wait(on);
    }

    pub fn stats(&self) -> SimStats {
        self.inner.core.stats()
    }

    /// Recent CreateSIPParticipant requests, oldest first.
    pub fn dials(&self) -> Vec<DialRecord> {
        self.inner.core.dials()
    }

    /// Recent signed webhooks (sent or, without a URL, only signed), oldest first.
    pub fn webhooks(&self) -> Vec<SignedWebhook> {
        self.inner.core.webhook_log.snapshot()
    }

    /// A `participant_left` webhook spoiled by `forgery` (not sent).
    pub fn forge_webhook(&self, forgery: Forgery) -> Result<SignedWebhook, SimError> {
        self.inner.core.forge_webhook(forgery)
    }

    /// Sends a forged webhook to the configured URL; returns the HTTP status.
    pub async fn send_forged_webhook(&self, forgery: Forgery) -> Result<u16, SimError> {
        let forged = self.inner.core.forge_webhook(forgery)?;
        self.inner.core.send_webhook(&forged).await
    }

    /// Sends these exact bytes to the configured URL (e.g. a replay); returns the status.
    pub async fn send_webhook(&self, webhook: &SignedWebhook) -> Result<u16, SimError> {
        self.inner.core.send_webhook(webhook).await
    }

    /// Re-sends the most recent webhook unchanged.
    pub async fn replay_last_webhook(&self) -> Result<u16, SimError> {
        self.inner.core.replay_last_webhook().await
    }

    /// Stops accepting, closes connections, ends all timers and scripts.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.core.rtc.stop_all();
        let tasks = std::mem::take(&mut *self.inner.tasks.lock());
        for task in tasks {
            // Abort rather than wait: the webhook worker may be retrying a dead URL.
            task.abort();
            let _ = task.await;
        }
        // Dropping rooms drops the senders that call scripts and idle timers wait on.
        self.inner.core.rooms.lock().clear();
    }
}
