//! Helpers the gateway's tests, the plugins' tests and the benchmarks share: an HTTP
//! receiver standing in for a tenant's CRM ([`receiver`]) and calls ended through the
//! call store so their webhooks are enqueued ([`ended_call`]).
//!
//! A dependency of tests and benchmarks only, never of the gateway itself.

pub mod receiver;

use c2c_callstate::{
    new_call_id, transition, CallEvent, CallKnobs, CallRecord, NewCall, SledCallStore, StoreError,
};

/// Ends a call of `tenant` in the store (connect, answer, agent hangup, 1 ms apart from
/// `t0`): its webhook is enqueued. Returns the outbox seq, or `None` if none was enqueued.
pub async fn ended_call(
    s: &SledCallStore,
    tenant: &str,
    t0: u64,
) -> Result<Option<u64>, StoreError> {
    let knobs = CallKnobs::default();
    let (call_id, room) = new_call_id();
    let rec = CallRecord::new(
        NewCall {
            call_id: call_id.clone(),
            room,
            tenant: tenant.into(),
            case_id: "case-1".into(),
            customer_crm_id: "cust-1".into(),
            agent_id: "agent-1".into(),
            customer_number: "9530251797".into(),
            phone_from: "+919999999999".into(),
            trunk_label: "airtel".into(),
        },
        &knobs,
        t0,
    )
    .0;
    s.create(&rec).await?;
    for (ev, at) in [
        (CallEvent::Connect, t0 + 1),
        (CallEvent::Answered, t0 + 2),
        (CallEvent::AgentHangup, t0 + 3),
    ] {
        s.apply_transition(&call_id, |r| transition(r, &ev, &knobs, at))
            .await?;
    }
    s.outbox_seq_for_call(&call_id)
}
