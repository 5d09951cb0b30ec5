//! LiveKit's webhooks: which call an event is about and what it means for it. The HTTP
//! handler (`api::livekit_webhook`) verifies the signature and de-duplicates first.

use c2c_callstate::{CallEvent, CallRecord};
use c2c_livekit::WebhookEvent;

/// The call id an event's room names, if it is one of ours (`c2c-<32 hex>`).
pub fn call_id_of(ev: &WebhookEvent) -> Option<String> {
    let hex = ev.room_name.as_deref()?.strip_prefix("c2c-")?;
    let call_id = format!("c2c_{hex}");
    c2c_callstate::is_valid_call_id(&call_id).then_some(call_id)
}

/// What `ev` means for the call `rec`, if anything. `participant_joined` of the customer's
/// leg is not an answer (LiveKit adds it when it starts dialling) and LiveKit has no
/// event for `sip.callStatus` turning `active`: the answer comes from elsewhere.
pub fn event_for(rec: &CallRecord, ev: &WebhookEvent) -> Option<CallEvent> {
    let is_agent = |identity: &str| identity == rec.agent_id;
    match (ev.event.as_str(), &ev.participant) {
        ("room_finished", _) => Some(CallEvent::RoomFinished),
        ("participant_joined", Some(p)) if is_agent(&p.identity) => Some(CallEvent::AgentJoined),
        ("participant_left" | "participant_connection_aborted", Some(p))
            if is_agent(&p.identity) =>
        {
            Some(CallEvent::AgentLeft)
        }
        ("participant_left", Some(p)) if p.is_sip() => Some(CallEvent::CustomerLeft {
            // `sip.disconnectCode` when LiveKit reports it (the exact carrier code),
            // else the call is classified from `disconnect_reason`.
            sip_code: p
                .attributes
                .get("sip.disconnectCode")
                .and_then(|c| c.parse().ok()),
            disconnect_reason: p.disconnect_reason.clone(),
        }),
        _ => None,
    }
}
