//! Helpers the gateway's tests, the plugins' tests and the benchmarks share: an HTTP
//! receiver standing in for a tenant's CRM ([`receiver`]) and calls ended through the
//! call store so their webhooks are enqueued ([`ended_call`]).
//!
//! A dependency of tests and benchmarks only, never of the gateway itself.

pub mod pg;
pub mod receiver;

use c2c_callstate::{transition, CallEvent, CallKnobs, SledCallStore, StoreError};

/// Ends a call of `tenant` in the store (connect, answer, agent hangup, 1 ms apart from
/// `t0`): its webhook is enqueued. Returns the outbox seq, or `None` if none was enqueued.
pub async fn ended_call(
    s: &SledCallStore,
    tenant: &str,
    t0: u64,
) -> Result<Option<u64>, StoreError> {
    let knobs = CallKnobs::default();
    let rec = c2c_callstate::store::contract::call(tenant, t0);
    let call_id = rec.call_id.clone();
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
