//! The state machine's part of paying for calls: the end fixes a managed call's charge in
//! the same transition and asks for one settle; `BalanceExhausted` ends only an answered
//! call.

use super::*;

fn billed(mut r: CallRecord, pulse_seconds: u32) -> CallRecord {
    r.billing = Some(crate::CallBilling {
        rate: c2c_billing::Rate::new(100, pulse_seconds).unwrap(),
        hold_paise: 100,
        billed_ms: None,
        charge_paise: None,
    });
    r
}

#[test]
fn a_managed_calls_end_fixes_its_charge_and_settles_once() {
    // Answered at +5 s, hung up at +66.5 s: 61.5 s of talk.
    let active = billed(in_phase(Active), 60);
    let t = step(&active, &CallEvent::AgentHangup, T0 + 66_500);
    let b = t.record.billing.unwrap();
    assert_eq!(b.billed_ms, Some(61_500));
    assert_eq!(b.charge_paise, Some(200), "two started 60 s pulses");
    let settles = t
        .effects
        .iter()
        .filter(|e| **e == Effect::SettleWallet)
        .count();
    assert_eq!(settles, 1);
    let ended_at = t.effects.iter().position(|e| *e == Effect::Ended).unwrap();
    let settle_at = t
        .effects
        .iter()
        .position(|e| *e == Effect::SettleWallet)
        .unwrap();
    assert!(ended_at < settle_at, "{:?}", t.effects);
    // Ended is absorbing: nothing later settles or re-prices it.
    let again = step(&t.record, &CallEvent::AgentHangup, T0 + 900_000);
    assert_eq!(again.record.billing, t.record.billing);
    assert!(!again.effects.contains(&Effect::SettleWallet));
    // 1 s pulses: 62 pulses.
    let t = step(
        &billed(in_phase(Active), 1),
        &CallEvent::AgentHangup,
        T0 + 66_500,
    );
    assert_eq!(t.record.billing.unwrap().charge_paise, Some(6_200));
}

#[test]
fn an_unanswered_managed_call_costs_nothing_but_still_releases_its_hold() {
    let ringing = billed(in_phase(Ringing), 60);
    let t = step(
        &ringing,
        &CallEvent::Timer(TimerKind::RingTimeout),
        T0 + 60_000,
    );
    assert_eq!(t.record.phase, Ended);
    let b = t.record.billing.unwrap();
    assert_eq!((b.billed_ms, b.charge_paise), (Some(0), Some(0)));
    assert!(t.effects.contains(&Effect::SettleWallet));
    // A call without billing (BYOT, inbound) never settles.
    let t = step(&in_phase(Active), &CallEvent::AgentHangup, T0 + 66_500);
    assert!(!t.effects.contains(&Effect::SettleWallet));
    assert!(t.record.billing.is_none());
}

#[test]
fn balance_exhausted_ends_only_an_answered_call() {
    let active = billed(in_phase(Active), 1);
    let t = step(&active, &CallEvent::BalanceExhausted, ANSWER_AT + 3_500);
    assert_eq!(t.record.phase, Ended);
    assert_eq!(t.record.call_status, Some(CallStatus::Answered));
    assert_eq!(
        t.record.disconnect_reason.as_deref(),
        Some("balance_exhausted")
    );
    assert_eq!(
        t.record.billing.unwrap().charge_paise,
        Some(400),
        "4 started 1 s pulses"
    );
    assert!(t.effects.contains(&Effect::SettleWallet));
    for p in [Initiated, Dialing, Ringing, Ended] {
        assert_ignored(p, &CallEvent::BalanceExhausted);
    }
}
