//! `livekit.SIP/CreateSIPParticipant`: validation as in livekit/protocol, the SIP
//! participant LiveKit SIP would create, and a script task that plays the chosen
//! [`Scenario`] on it.
//!
//! Observable behaviour mirrors livekit/sip's outbound call:
//! * the participant joins at once with `sip.callStatus = dialing` (so
//!   `participant_joined` fires at dial time, not at answer — livekit/sip#136);
//! * 18x -> `ringing`; 200 -> `active`; callee BYE -> `hangup`, then it leaves with
//!   `CLIENT_INITIATED`; `max_call_duration` ends the call the same way;
//! * a failed INVITE leaves with the reason from `classifyInviteError` (the status
//!   attribute is not changed); ringing timeout -> `USER_UNAVAILABLE`, no SIP code;
//! * with `wait_until_answered`, the request blocks until answer, or fails with the
//!   Twirp code for the SIP status and meta `sip_status_code`/`sip_status`
//!   (ringing timeout: `canceled`, "sip request timed out", no meta) — unless the
//!   `ignore_wait_until_answered` fault is on: then it returns at once, as an older
//!   server or a proxy timing out the long request does, and the outcome shows only in
//!   the participant's attributes and webhooks.
//!
//! With [`crate::SimConfig::sip_outbound`] set, no scenario is played: a real
//! INVITE goes to the trunk ([`crate::sip`]) and the same transitions follow the
//! SIP responses; an unanswered INVITE (timer B) leaves with `SIP_TRUNK_FAILURE`
//! and Twirp `canceled` without SIP meta, as livekit/sip's transaction timeout.

use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::{engine::general_purpose::STANDARD, Engine};
use livekit_protocol as proto;
use parking_lot::Mutex;
use proto::participant_info::{Kind, State};
use proto::DisconnectReason;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::core::{Core, DialRecord};
use crate::ids::{guid, PARTICIPANT_PREFIX, SIP_CALL_PREFIX};
use crate::rooms::{now, NewParticipant, Rooms};
use crate::scenario::{
    disconnect_reason_for_sip, sip_reason_phrase, twirp_code_for_sip, Outcome, Scenario,
};
use crate::sip;
use crate::twirp::{code, TwirpError};

pub const ATTR_CALL_STATUS: &str = "sip.callStatus";
pub const ATTR_CALL_ID: &str = "sip.callID";
pub const ATTR_TRUNK_ID: &str = "sip.trunkID";
pub const ATTR_PHONE_NUMBER: &str = "sip.phoneNumber";
pub const ATTR_TRUNK_PHONE_NUMBER: &str = "sip.trunkPhoneNumber";
/// The SIP Call-ID of the INVITE (only when dialling for real).
pub const ATTR_CALL_ID_FULL: &str = "sip.callIDFull";
/// NOT a LiveKit attribute: only set when `SimConfig::sip_disconnect_code_attribute`
/// is on. Real LiveKit exposes the SIP code only in the Twirp error of a
/// `wait_until_answered` dial.
pub const ATTR_DISCONNECT_CODE: &str = "sip.disconnectCode";

/// One step of a call script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Ring,
    Answer,
    Hangup,
    Fail(u16),
    RingTimeout,
}

/// Turns a scenario into timed steps (offsets from the INVITE).
pub(crate) fn plan(
    scenario: &Scenario,
    ringing_timeout: Duration,
    max_call_duration: Duration,
) -> Vec<(Duration, Step)> {
    let ms = Duration::from_millis;
    let (mut at, mut terminal) = match scenario.outcome {
        Outcome::Answer { after_ms, .. } => (ms(after_ms), Step::Answer),
        Outcome::Fail { sip_code, after_ms } => (ms(after_ms), Step::Fail(sip_code)),
        Outcome::NoAnswer => (ringing_timeout, Step::RingTimeout),
    };
    if at >= ringing_timeout {
        // Not answered (or rejected) before the ring window closed: LiveKit cancels.
        at = ringing_timeout;
        terminal = Step::RingTimeout;
    }
    let mut steps = Vec::with_capacity(4);
    if let Some(ring) = scenario.ring_after_ms.map(ms) {
        if ring < at {
            steps.push((ring, Step::Ring));
        }
    }
    steps.push((at, terminal));
    if terminal == Step::Answer {
        let cap = at.saturating_add(max_call_duration);
        let hangup = match scenario.outcome {
            Outcome::Answer {
                hangup_after_ms: Some(h),
                ..
            } => at.saturating_add(ms(h)).min(cap),
            _ => cap,
        };
        steps.push((hangup, Step::Hangup));
    }
    steps
}

/// A protobuf Duration given as (seconds, nanos); zero or negative means unset.
fn duration_of(d: Option<(i64, i32)>) -> Option<Duration> {
    let (seconds, nanos) = d?;
    let total = Duration::new(u64::try_from(seconds).ok()?, u32::try_from(nanos).ok()?);
    (!total.is_zero()).then_some(total)
}

/// `CreateSIPParticipantRequest.ValidateResult` (the parts that apply here).
fn validate(req: &proto::CreateSipParticipantRequest) -> Result<(), TwirpError> {
    let invalid = |msg: &str| Err(TwirpError::new(code::INVALID_ARGUMENT, msg));
    if req.sip_trunk_id.is_empty() && req.trunk.is_none() && req.sip_number.is_empty() {
        return invalid("missing sip trunk id and sip number");
    }
    if req.sip_call_to.is_empty() {
        return invalid("missing sip callee number");
    }
    if req.sip_call_to.contains('@') {
        return invalid("SipCallTo should be a phone number or SIP user, not a full SIP URI");
    }
    if req.room_name.is_empty() {
        return invalid("missing room name");
    }
    Ok(())
}

/// Handles one CreateSIPParticipant request (grants already checked).
pub(crate) async fn create_sip_participant(
    core: &Arc<Core>,
    req: proto::CreateSipParticipantRequest,
) -> Result<proto::SipParticipantInfo, TwirpError> {
    validate(&req)?;
    // Real SIP: check the headers and take a Call-ID before the participant exists.
    // (A SIP socket that only answers inbound calls has no trunk to dial: scenarios.)
    let dialler = core
        .sip_ua
        .as_ref()
        .and_then(|ua| ua.proxy().map(|proxy| (ua, proxy)));
    let outbound = match dialler {
        Some((ua, proxy)) => {
            let headers = sip::extra_headers(&req.headers)?;
            Some((ua.clone(), proxy, ua.register()?, headers))
        }
        None => None,
    };
    let scenario = core.scenarios.lock().lookup(&req.sip_call_to);
    let requested_ring = duration_of(req.ringing_timeout.as_ref().map(|d| (d.seconds, d.nanos)));
    let requested_max = duration_of(req.max_call_duration.as_ref().map(|d| (d.seconds, d.nanos)));
    let ringing_timeout = requested_ring.unwrap_or(core.sip.ringing_timeout);
    let max_call_duration = requested_max.unwrap_or(core.sip.max_call_duration);

    let call_id = guid(SIP_CALL_PREFIX);
    let identity = if req.participant_identity.is_empty() {
        // LiveKit's default — which leaks the dialled string; callers should set one.
        format!("sip_{}", req.sip_call_to)
    } else {
        req.participant_identity.clone()
    };
    let sip_call_id = outbound
        .as_ref()
        .map(|(_, _, slot, _)| slot.call_id.as_str());
    let info = sip_participant(&req, &identity, &call_id, sip_call_id);
    let sid = info.sid.clone();

    let (alive_tx, alive_rx) = oneshot::channel();
    let wait = req.wait_until_answered && !core.faults.ignore_wait();
    let (waiter_tx, waiter_rx) = if wait {
        let (tx, rx) = oneshot::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    core.rooms.lock().add_participant(
        &req.room_name,
        NewParticipant {
            info,
            alive: Some(alive_tx),
            waiter: waiter_tx,
        },
    )?;
    core.counters.sip_dial();
    core.record_dial(DialRecord {
        room: req.room_name.clone(),
        participant_identity: identity.clone(),
        sip_trunk_id: req.sip_trunk_id.clone(),
        sip_call_to: req.sip_call_to.clone(),
        sip_number: req.sip_number.clone(),
        hide_phone_number: req.hide_phone_number,
        headers: req
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ringing_timeout: requested_ring,
        max_call_duration: requested_max,
        wait_until_answered: req.wait_until_answered,
        scenario: scenario.clone(),
    });

    let script = Script {
        rooms: Arc::downgrade(&core.rooms),
        room: req.room_name.clone(),
        sid: sid.clone(),
        disconnect_code_attribute: core.sip.disconnect_code_attribute,
    };
    match outbound {
        Some((ua, proxy, slot, headers)) => {
            let dial = sip::call::Dial {
                proxy,
                call_to: req.sip_call_to.clone(),
                from_user: req.sip_number.clone(),
                headers,
                ringing_timeout,
                max_call_duration,
            };
            tokio::spawn(sip::call::run(ua, slot, dial, script, alive_rx));
        }
        None => {
            let steps = plan(&scenario, ringing_timeout, max_call_duration);
            tokio::spawn(script.run(steps, alive_rx));
        }
    }

    if let Some(rx) = waiter_rx {
        // The script resolves the waiter at answer, failure or ring timeout.
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(TwirpError::new(code::CANCELED, "sip request canceled"));
            }
        }
    }
    Ok(proto::SipParticipantInfo {
        participant_id: sid,
        participant_identity: identity,
        room_name: req.room_name,
        sip_call_id: call_id,
    })
}

fn sip_participant(
    req: &proto::CreateSipParticipantRequest,
    identity: &str,
    call_id: &str,
    sip_call_id: Option<&str>,
) -> proto::ParticipantInfo {
    let mut attributes = req.participant_attributes.clone();
    attributes.insert(ATTR_CALL_ID.to_owned(), call_id.to_owned());
    if let Some(full) = sip_call_id {
        attributes.insert(ATTR_CALL_ID_FULL.to_owned(), full.to_owned());
    }
    attributes.insert(ATTR_TRUNK_ID.to_owned(), req.sip_trunk_id.clone());
    if !req.hide_phone_number {
        attributes.insert(ATTR_PHONE_NUMBER.to_owned(), req.sip_call_to.clone());
        attributes.insert(ATTR_TRUNK_PHONE_NUMBER.to_owned(), req.sip_number.clone());
    }
    attributes.insert(ATTR_CALL_STATUS.to_owned(), "dialing".to_owned());
    let (now_s, now_ms) = now();
    proto::ParticipantInfo {
        sid: guid(PARTICIPANT_PREFIX),
        identity: identity.to_owned(),
        name: req.participant_name.clone(),
        metadata: req.participant_metadata.clone(),
        state: State::Active as i32,
        joined_at: now_s,
        joined_at_ms: now_ms,
        version: 1,
        kind: Kind::Sip as i32,
        attributes,
        is_publisher: true,
        permission: Some(proto::ParticipantPermission {
            can_subscribe: true,
            can_publish: true,
            can_publish_data: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Twirp error LiveKit returns for a failed `wait_until_answered` dial
/// (`phrase`: the far end's reason phrase, or the standard one).
fn sip_error_with_phrase(sip_code: u16, phrase: &str) -> TwirpError {
    let twirp_code = twirp_code_for_sip(sip_code);
    TwirpError::new(twirp_code, format!("sip status: {sip_code}: {phrase}"))
        .with_meta("sip_status_code", sip_code.to_string())
        .with_meta("sip_status", phrase)
        .with_meta("error_details", error_details(twirp_code, sip_code, phrase))
}

/// xtwirp's `error_details` meta: base64 of a `google.rpc.Status` whose details
/// hold the `livekit.SIPStatus`.
fn error_details(twirp_code: &str, sip_code: u16, phrase: &str) -> String {
    use prost::Message;
    let sip_status = proto::SipStatus {
        code: i32::from(sip_code),
        status: phrase.to_owned(),
    };
    let status = RpcStatus {
        code: grpc_code(twirp_code),
        message: format!("sip status {sip_code}: {phrase}"),
        details: vec![RpcAny {
            type_url: "type.googleapis.com/livekit.SIPStatus".to_owned(),
            value: sip_status.encode_to_vec(),
        }],
    };
    STANDARD.encode(status.encode_to_vec())
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<RpcAny>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RpcAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

fn grpc_code(twirp_code: &str) -> i32 {
    match twirp_code {
        code::CANCELED => 1,
        code::INVALID_ARGUMENT => 3,
        code::DEADLINE_EXCEEDED => 4,
        code::NOT_FOUND => 5,
        code::ALREADY_EXISTS => 6,
        code::PERMISSION_DENIED => 7,
        code::RESOURCE_EXHAUSTED => 8,
        code::FAILED_PRECONDITION => 9,
        code::ABORTED => 10,
        code::OUT_OF_RANGE => 11,
        code::UNIMPLEMENTED => 12,
        code::INTERNAL => 13,
        code::UNAVAILABLE => 14,
        code::DATA_LOSS => 15,
        code::UNAUTHENTICATED => 16,
        _ => 2,
    }
}

/// Drives one SIP participant: the scenario task, or the SIP call task through
/// the methods below. Holds only a weak reference to the rooms; every method is
/// a no-op once the participant is gone.
pub(crate) struct Script {
    rooms: Weak<Mutex<Rooms>>,
    room: String,
    sid: String,
    disconnect_code_attribute: bool,
}

/// Longest SIP reason phrase passed on to a Twirp error.
const MAX_PHRASE: usize = 128;

/// Events from a real SIP call.
impl Script {
    fn with_rooms<R>(&self, f: impl FnOnce(&mut Rooms) -> R) -> Option<R> {
        let rooms = self.rooms.upgrade()?;
        let mut rooms = rooms.lock();
        Some(f(&mut rooms))
    }

    /// First 18x: `ringing`.
    pub(crate) fn ring(&self) {
        self.with_rooms(|rooms| self.apply(rooms, Step::Ring));
    }

    /// 2xx (ACKed): `active`, waiter resolved. False if the participant is gone.
    pub(crate) fn answer(&self) -> bool {
        self.with_rooms(|rooms| self.apply(rooms, Step::Answer))
            .unwrap_or(false)
    }

    /// The callee's BYE, or the duration cap: `hangup`, `CLIENT_INITIATED`.
    pub(crate) fn hangup(&self) {
        self.with_rooms(|rooms| self.apply(rooms, Step::Hangup));
    }

    /// A 3xx-6xx final response with the far end's reason phrase.
    pub(crate) fn reject(&self, sip_code: u16, phrase: &str) {
        let phrase = if phrase.is_empty() {
            sip_reason_phrase(sip_code)
        } else {
            truncate(phrase, MAX_PHRASE)
        };
        self.with_rooms(|rooms| self.fail(rooms, sip_code, phrase));
    }

    /// Ringing timeout (the CANCEL follows): no answer.
    pub(crate) fn ring_timeout(&self) {
        self.with_rooms(|rooms| self.apply(rooms, Step::RingTimeout));
    }

    /// Timer B: no response at all. livekit/sip reports a transaction timeout as
    /// `SIP_TRUNK_FAILURE` and Twirp `canceled` with no SIP status; the optional
    /// code attribute says 408 (RFC 3261 §8.1.3.1).
    pub(crate) fn no_response(&self, provisional: usize) {
        self.with_rooms(|rooms| {
            if let Some(waiter) = rooms.take_waiter(&self.room, &self.sid) {
                let _ = waiter.send(Err(TwirpError::new(
                    code::CANCELED,
                    format!(
                        "transaction failed to complete ({provisional} intermediate responses)"
                    ),
                )));
            }
            if self.disconnect_code_attribute {
                rooms.set_attribute(&self.room, &self.sid, ATTR_DISCONNECT_CODE, "408");
            }
            self.leave(rooms, DisconnectReason::SipTrunkFailure);
        });
    }

    fn fail(&self, rooms: &mut Rooms, sip_code: u16, phrase: &str) {
        if let Some(waiter) = rooms.take_waiter(&self.room, &self.sid) {
            let _ = waiter.send(Err(sip_error_with_phrase(sip_code, phrase)));
        }
        if self.disconnect_code_attribute {
            rooms.set_attribute(
                &self.room,
                &self.sid,
                ATTR_DISCONNECT_CODE,
                &sip_code.to_string(),
            );
        }
        self.leave(rooms, disconnect_reason_for_sip(sip_code));
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Script {
    async fn run(self, steps: Vec<(Duration, Step)>, mut alive: oneshot::Receiver<()>) {
        let start = Instant::now();
        for (at, step) in steps {
            tokio::select! {
                // Resolves (Err) when the participant entry is dropped.
                _ = &mut alive => return,
                _ = tokio::time::sleep_until(start + at) => {}
            }
            let Some(rooms) = self.rooms.upgrade() else {
                return;
            };
            let mut rooms = rooms.lock();
            if !self.apply(&mut rooms, step) {
                return;
            }
        }
    }

    /// Applies one step; false when the call is over (or the participant is gone).
    fn apply(&self, rooms: &mut Rooms, step: Step) -> bool {
        match step {
            Step::Ring => rooms.set_attribute(&self.room, &self.sid, ATTR_CALL_STATUS, "ringing"),
            Step::Answer => {
                if !rooms.set_attribute(&self.room, &self.sid, ATTR_CALL_STATUS, "active") {
                    return false;
                }
                if let Some(waiter) = rooms.take_waiter(&self.room, &self.sid) {
                    let _ = waiter.send(Ok(()));
                }
                true
            }
            Step::Hangup => {
                rooms.set_attribute(&self.room, &self.sid, ATTR_CALL_STATUS, "hangup");
                self.leave(rooms, DisconnectReason::ClientInitiated);
                false
            }
            Step::Fail(sip_code) => {
                self.fail(rooms, sip_code, sip_reason_phrase(sip_code));
                false
            }
            Step::RingTimeout => {
                if let Some(waiter) = rooms.take_waiter(&self.room, &self.sid) {
                    let _ = waiter.send(Err(TwirpError::new(
                        code::CANCELED,
                        "sip request timed out",
                    )));
                }
                self.leave(rooms, DisconnectReason::UserUnavailable);
                false
            }
        }
    }

    fn leave(&self, rooms: &mut Rooms, reason: DisconnectReason) {
        if let Some(identity) = rooms.identity_of(&self.room, &self.sid) {
            rooms.remove_participant(&self.room, &identity, Some(&self.sid), reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn answer_then_hangup() {
        let steps = plan(&Scenario::answer(200, Some(500)), S(30_000), S(3_600_000));
        assert_eq!(
            steps,
            vec![
                (S(100), Step::Ring),
                (S(200), Step::Answer),
                (S(700), Step::Hangup)
            ]
        );
    }

    #[test]
    fn max_duration_caps_the_call() {
        let steps = plan(&Scenario::default(), S(30_000), S(1_000));
        assert_eq!(steps.last(), Some(&(S(1_200), Step::Hangup)));
    }

    #[test]
    fn late_answer_is_no_answer() {
        let steps = plan(&Scenario::answer(5_000, None), S(1_000), S(60_000));
        assert_eq!(steps, vec![(S(1_000), Step::RingTimeout)]);
        let steps = plan(&Scenario::no_answer(), S(1_000), S(60_000));
        assert_eq!(
            steps,
            vec![(S(100), Step::Ring), (S(1_000), Step::RingTimeout)]
        );
    }

    #[test]
    fn trunk_failure_never_rings() {
        let steps = plan(&Scenario::trunk_failure(), S(30_000), S(60_000));
        assert_eq!(steps, vec![(S(50), Step::Fail(503))]);
    }

    #[test]
    fn sip_error_shape() {
        let e = sip_error_with_phrase(486, sip_reason_phrase(486));
        assert_eq!(e.code, "resource_exhausted");
        assert_eq!(e.meta["sip_status_code"], "486");
        assert_eq!(e.meta["sip_status"], "Busy Here");
        assert!(e.meta.contains_key("error_details"));
    }
}
