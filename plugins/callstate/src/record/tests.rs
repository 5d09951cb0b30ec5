use super::*;
use crate::machine::{transition, CallEvent, CallKnobs, Effect};

fn knobs() -> CallKnobs {
    CallKnobs::default()
}

fn new_call() -> NewCall {
    let (call_id, room) = new_call_id();
    NewCall {
        call_id,
        room,
        tenant: "acme".into(),
        case_id: "abc123".into(),
        customer_crm_id: "cust-99".into(),
        agent_id: "agent-42".into(),
        customer_number: "9530251797".into(),
        phone_from: "+919999999999".into(),
        trunk_label: "airtel-mum".into(),
    }
}

fn ended_answered() -> CallRecord {
    let k = knobs();
    let (r, _) = CallRecord::new(new_call(), &k, 1_000);
    let r = transition(&r, &CallEvent::Connect, &k, 2_000)
        .unwrap()
        .record;
    let r = transition(&r, &CallEvent::Answered, &k, 10_000)
        .unwrap()
        .record;
    transition(&r, &CallEvent::AgentHangup, &k, 100_999)
        .unwrap()
        .record
}

#[test]
fn call_ids_are_128_bit_hex_and_match_room() {
    let (id, room) = new_call_id();
    assert!(is_valid_call_id(&id), "{id}");
    assert_eq!(id.len(), 4 + 32);
    assert_eq!(room_for_call_id(&id).as_deref(), Some(room.as_str()));
    assert_eq!(&id[4..], &room[4..]);
    let (id2, _) = new_call_id();
    assert_ne!(id, id2);
}

#[test]
fn call_id_validation_rejects_malformed() {
    assert!(!is_valid_call_id("c2c_ab12cd34"));
    assert!(!is_valid_call_id("c2c_0123456789ABCDEF0123456789abcdef"));
    assert!(!is_valid_call_id("c2c-0123456789abcdef0123456789abcdef"));
    assert!(is_valid_call_id("c2c_0123456789abcdef0123456789abcdef"));
    assert_eq!(room_for_call_id("nope"), None);
}

#[test]
fn new_record_is_initiated_with_unconnected_expiry() {
    let k = knobs();
    let (r, fx) = CallRecord::new(new_call(), &k, 5_000);
    let at = 5_000 + k.unconnected_expiry_ms;
    assert_eq!(r.phase, Phase::Initiated);
    assert_eq!(r.version, 1);
    assert_eq!(r.created_ms, 5_000);
    assert!(!r.agent_present);
    assert_eq!(r.call_status, None);
    assert_eq!(r.timer(TimerKind::UnconnectedExpiry), Some(at));
    assert_eq!(
        fx,
        vec![
            Effect::Created,
            Effect::ArmTimer {
                kind: TimerKind::UnconnectedExpiry,
                at_ms: at
            }
        ]
    );
}

#[test]
fn record_json_round_trip_and_wire_names() {
    let k = knobs();
    let (r, _) = CallRecord::new(new_call(), &k, 1_000);
    let active = transition(&r, &CallEvent::Connect, &k, 2_000)
        .unwrap()
        .record;
    let active = transition(&active, &CallEvent::Answered, &k, 3_000)
        .unwrap()
        .record;
    for rec in [r, active.clone(), ended_answered()] {
        let json = serde_json::to_string(&rec).unwrap();
        let back: CallRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
    }
    let v = serde_json::to_value(&active).unwrap();
    assert_eq!(v["phase"], "ACTIVE");
    assert_eq!(v["timers"][0]["kind"], "max_duration");
    assert_eq!(v["agent_present"], true);
    let v = serde_json::to_value(ended_answered()).unwrap();
    assert_eq!(v["call_status"], "ANSWERED");
    assert_eq!(v["phase"], "ENDED");
    assert_eq!(
        serde_json::to_value(CallStatus::NotAnswered).unwrap(),
        "NOT_ANSWERED"
    );
}

#[test]
fn webhook_payload_only_when_ended_with_exact_fields_in_order() {
    let k = knobs();
    let (r, _) = CallRecord::new(new_call(), &k, 1_000);
    assert_eq!(r.webhook_payload(), None);
    let ended = ended_answered();
    let p = ended.webhook_payload().unwrap();
    assert_eq!(p.duration_seconds(), 90); // 100_999 - 10_000 = 90.999 s, rounded down
    let json = serde_json::to_string(&p).unwrap();
    let expected = format!(
        concat!(
            r#"{{"call_id":"{}","case_id":"abc123","customer_crm_id":"cust-99","#,
            r#""phone_to":"9530251797","phone_from":"+919999999999","#,
            r#""call_status":"ANSWERED","duration_seconds":90,"agent_id":"agent-42"}}"#
        ),
        ended.call_id
    );
    assert_eq!(json, expected);
}

#[test]
fn debug_output_masks_the_customer_number() {
    let rec = ended_answered();
    for s in [
        format!("{rec:?}"),
        format!("{:?}", rec.webhook_payload().unwrap()),
        format!("{:?}", new_call()),
    ] {
        assert!(!s.contains("9530251797"), "{s}");
        assert!(s.contains("******1797"), "{s}");
    }
    assert_eq!(mask_number("+919530251797"), "*********1797");
    assert_eq!(mask_number("12"), "12");
}
