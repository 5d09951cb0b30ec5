//! The [`CallStore`] contract as tests: each function states one group of promises the
//! trait documents and checks them on any backend. [`crate::call_store_contract!`] turns
//! them into `#[tokio::test]`s for one backend; this crate runs them on
//! [`super::SledCallStore`] (real sled in a temp dir) and [`super::MemCallStore`], and a
//! backend in another crate runs them through the `contract` feature.
//!
//! A case returns `Err` when the store fails where it must succeed, and panics (an
//! assertion) when the store answers but breaks a promise.

mod calls;
mod outbox;

pub use calls::*;
pub use outbox::*;

use std::sync::Arc;

use super::{Applied, CallStore, CallStoreExt};
use crate::error::StoreError;
use crate::machine::{transition, CallEvent, CallKnobs};
use crate::record::{new_call_id, CallRecord, NewCall};

/// A fresh backend for one case, and whatever must live as long as it (a temp dir).
pub type Fixture = (Box<dyn std::any::Any + Send>, Arc<dyn CallStore>);

/// Generates one `#[tokio::test]` per contract case in a module named `$backend`;
/// `$open` is an expression giving a fresh [`Fixture`] (evaluated once per case).
///
/// ```ignore
/// c2c_callstate::call_store_contract!(postgres, open_test_database());
/// ```
#[macro_export]
macro_rules! call_store_contract {
    ($backend:ident, $open:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $crate::call_store_contract!(@cases $open;
                create_stores_once_and_validates_ids,
                apply_is_conditional_on_the_version,
                apply_transition_skips_noops_and_reports_errors,
                concurrent_transitions_each_write_over_the_latest_record,
                racing_enders_enqueue_one_webhook,
                one_webhook_per_call_even_through_apply,
                open_calls_shrink_on_end_and_walk_in_chunks,
                list_by_tenant_pages_in_time_order,
                list_by_tenant_caps_a_page_at_max_page,
                day_tallies_follow_outcomes,
                outbox_due_progress_update_and_requeue,
                outbox_record_attempt_keeps_identity,
                outbox_due_admitted_asks_only_for_due_entries,
                outbox_seqs_grow_and_replay_scan_is_capped,
                outbox_bring_forward_moves_only_backoffs,
                outbox_backlog_per_tenant,
                tenant_events_enqueue_once,
                purge_removes_old_finished_calls_and_keeps_tallies,
                purge_resumes_at_its_cursor,
                durability_and_health_answer,
            );
        }
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() -> Result<(), $crate::StoreError> {
                let (_keep, store): $crate::store::contract::Fixture = $open;
                $crate::store::contract::$case(store).await
            }
        )*
    };
}

const DAY_MS: u64 = 86_400_000;
/// 2024-03-01T00:00:00Z.
const DAY1: u64 = 1_709_251_200_000;

fn knobs() -> CallKnobs {
    CallKnobs::default()
}

/// A new INITIATED call of `tenant` on trunk `airtel`.
pub fn call(tenant: &str, created_ms: u64) -> CallRecord {
    let (call_id, room) = new_call_id();
    let new = NewCall {
        call_id,
        room,
        tenant: tenant.into(),
        case_id: "case-1".into(),
        customer_crm_id: "cust-1".into(),
        agent_id: "agent-1".into(),
        customer_number: "9530251797".into(),
        phone_from: "+919999999999".into(),
        trunk_label: "airtel".into(),
    };
    CallRecord::new(new, &knobs(), created_ms).0
}

/// Applies `ev` at `now` through the store's serialised transition.
async fn event(
    s: &dyn CallStore,
    id: &str,
    ev: CallEvent,
    now: u64,
) -> Result<Applied, StoreError> {
    s.apply_transition(id, move |r| transition(r, &ev, &knobs(), now))
        .await
}

/// Creates a call and drives it to ENDED ANSWERED, ending 62 s after `t0`.
async fn finished_call(s: &dyn CallStore, tenant: &str, t0: u64) -> Result<CallRecord, StoreError> {
    let rec = call(tenant, t0);
    s.create(&rec).await?;
    event(s, &rec.call_id, CallEvent::Connect, t0 + 1_000).await?;
    event(s, &rec.call_id, CallEvent::Answered, t0 + 2_000).await?;
    Ok(event(s, &rec.call_id, CallEvent::AgentHangup, t0 + 62_000)
        .await?
        .record)
}

/// The seq of the call's webhook, which the case knows exists.
async fn webhook_of(s: &dyn CallStore, call_id: &str) -> Result<u64, StoreError> {
    let seq = s.outbox_seq_for_call(call_id).await?;
    assert!(seq.is_some(), "the call has no webhook");
    Ok(seq.unwrap_or_default())
}
