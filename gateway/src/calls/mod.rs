//! The call lifecycle inside the gateway: [`apply`] runs a [`CallEvent`] through the state
//! machine and the durable store, then [`run_effects`] — the one runner — carries out
//! every [`Effect`] the machine emitted (dial, LiveKit teardown, timers, metrics, the
//! webhook wake-up, the hangup resolver).
//!
//! - `signals/`: where the world becomes events (LiveKit webhooks, the poller, a look at a
//!   room, the SIP edge, timers, the browser, the start-up reconcile);
//! - [`runtime`]: what this process keeps in memory about its calls (one handle);
//! - [`dial`], [`hangup`]: the two effects that take a while (a dial and its outcome;
//!   whose hangup it was);
//! - [`livekit_pool`], [`outbox`], [`services`], [`replay`], [`detail`]: LiveKit clients,
//!   the CRM webhook outbox and its delivery service, webhook replay, a call's detail.

pub mod billing;
pub mod detail;
pub mod dial;
pub mod hangup;
pub mod livekit_pool;
pub mod low_balance;
pub mod media_payload;
pub mod outbox;
pub mod replay;
pub mod runtime;
pub mod services;
pub mod signals;
pub mod slots;
pub mod timers;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use c2c_callstate::{CallEvent, CallKnobs, CallRecord, CallStoreExt, Effect, StoreError};

use crate::app::App;
use crate::clock::now_ms;

/// The span of one call: every log line about a call carries its `call_id`. Inside a
/// call's span already (a task spawned while handling that call), that span, so the id is
/// not repeated.
pub fn span(call_id: &str) -> tracing::Span {
    let current = tracing::Span::current();
    if current.metadata().is_some_and(|m| m.name() == "call") {
        return current;
    }
    tracing::info_span!("call", call_id = %call_id)
}

/// The state machine's knobs from the policy in force.
pub fn knobs(app: &App) -> CallKnobs {
    let c = app.policy().get().gateway.calls;
    CallKnobs {
        ring_timeout_ms: c.ring_timeout.as_millis() as u64,
        agent_drop_grace_ms: c.agent_drop_grace.as_millis() as u64,
        max_duration_ms: c.max_duration.as_millis() as u64,
        unconnected_expiry_ms: c.unconnected_expiry.as_millis() as u64,
        hangup_settle_ms: hangup::SETTLE_LIMIT.as_millis() as u64,
        inbound_connect_ms: CallKnobs::default().inbound_connect_ms,
    }
}

/// Applies one event to a call durably, then runs its effects. Returns the stored record.
pub async fn apply(app: &Arc<App>, call_id: &str, ev: CallEvent) -> Result<CallRecord, StoreError> {
    let knobs = knobs(app);
    let now = now_ms();
    let applied = app
        .store()
        .apply_transition(call_id, |rec| {
            c2c_callstate::transition(rec, &ev, &knobs, now)
        })
        .await?;
    finish(app, &applied).await;
    Ok(applied.record)
}

/// [`apply`] with the event decided from the stored record itself, in the same step:
/// `decide` answers the event the record calls for, or `None` to leave the call as it
/// is. Saves the read a caller would make first to decide (the store writes from the
/// record it has, conditionally, and runs `decide` again if that was not the latest).
/// Returns the stored record when an event was applied, `None` when `decide` declined.
pub async fn apply_decided(
    app: &Arc<App>,
    call_id: &str,
    mut decide: impl FnMut(&CallRecord) -> Option<CallEvent> + Send,
) -> Result<Option<CallRecord>, StoreError> {
    let knobs = knobs(app);
    let now = now_ms();
    // The last run of the closure is the one the store kept.
    let mut decided = false;
    let applied = app
        .store()
        .apply_transition(call_id, |rec| {
            let ev = decide(rec);
            decided = ev.is_some();
            match ev {
                Some(ev) => c2c_callstate::transition(rec, &ev, &knobs, now),
                None => Ok(c2c_callstate::Transition {
                    from: rec.phase,
                    record: rec.clone(),
                    effects: Vec::new(),
                }),
            }
        })
        .await?;
    finish(app, &applied).await;
    Ok(decided.then_some(applied.record))
}

/// [`apply`] for what only the call's driver may do (its timers, its room samples): in a
/// fleet, `None` without touching the call when another node drives it (it took the
/// call over, or wrote to it last and drives it now; see `CallStore`'s "Fleet").
pub async fn apply_as_driver(
    app: &Arc<App>,
    call_id: &str,
    ev: CallEvent,
) -> Result<Option<CallRecord>, StoreError> {
    let knobs = knobs(app);
    let now = now_ms();
    let applied = app
        .store()
        .apply_transition_if_driver(call_id, |rec| {
            c2c_callstate::transition(rec, &ev, &knobs, now)
        })
        .await?;
    let Some(applied) = applied else {
        app.calls().forget(call_id);
        return Ok(None);
    };
    finish(app, &applied).await;
    Ok(Some(applied.record))
}

/// After a write: a call this node took over from another gets all its timers here
/// (the other node's copies are refused when they fire), then the effects run.
async fn finish(app: &Arc<App>, applied: &c2c_callstate::Applied) {
    if !applied.written {
        return;
    }
    if applied.adopted {
        for t in &applied.record.timers {
            app.calls()
                .arm_timer(&applied.record.call_id, t.kind, t.at_ms);
        }
    }
    run_effects(app, &applied.record, &applied.effects).await;
}

/// The one runner of the state machine's effects: everything the machine decides is
/// carried out here, and nothing here decides anything the machine did not say.
pub async fn run_effects(app: &Arc<App>, rec: &CallRecord, effects: &[Effect]) {
    for e in effects {
        match e {
            Effect::Created => {
                app.metrics()
                    .calls_started
                    .with_label_values(&[&rec.tenant, &rec.trunk_label])
                    .inc();
                app.metrics().open_calls.inc();
            }
            Effect::Dial => dial::start(app, rec),
            Effect::Answered => {
                if let (Some(c), Some(a)) = (rec.connected_ms, rec.answered_ms) {
                    app.metrics()
                        .call_setup
                        .with_label_values(&[&rec.tenant])
                        .observe(a.saturating_sub(c) as f64 / 1000.0);
                }
            }
            Effect::ArmTimer { kind, at_ms } => app.calls().arm_timer(&rec.call_id, *kind, *at_ms),
            Effect::CancelTimer(kind) => app.calls().cancel_timer(&rec.call_id, *kind),
            Effect::Ended => {
                let status = rec.call_status.map(|s| s.as_str()).unwrap_or("UNKNOWN");
                app.metrics()
                    .call_outcomes
                    .with_label_values(&[&rec.tenant, &rec.trunk_label, status])
                    .inc();
                app.metrics().open_calls.dec();
                app.calls().slots().ended(&rec.tenant);
                app.agents()
                    .release_call(&rec.tenant, &rec.agent_id, &rec.call_id);
                if rec.is_inbound() {
                    app.inbound().ended(&rec.call_id);
                }
            }
            Effect::RefuseCaller => app.inbound().refuse_caller(rec),
            Effect::SettleWallet => billing::spawn_settle(app, rec),
            // The outbox entry was written in the same batch as the terminal record.
            Effect::EnqueueWebhook => app.calls().kick_delivery(),
            Effect::DeleteRoom => spawn_delete_room(app, rec),
            Effect::ResolveHangup => hangup::spawn_resolve(app, rec),
            Effect::MediaRecorded => app.calls().media_waiters().recorded(&rec.call_id),
        }
    }
}

/// Teardown is owned by the gateway: delete the room (which ends every leg in it),
/// retrying a few times in the background so a LiveKit hiccup cannot leave a customer
/// ringing.
fn spawn_delete_room(app: &App, rec: &CallRecord) {
    let Some(client) = app
        .livekit()
        .client_for_tenant(&app.policy().get(), &rec.tenant)
    else {
        tracing::error!(tenant = %rec.tenant, "no LiveKit project for tenant; cannot delete room");
        return;
    };
    let room = rec.room.clone();
    let errors = app.metrics().livekit_errors.clone();
    let span = span(&rec.call_id);
    tokio::spawn(
        async move {
            let mut delay = Duration::from_millis(200);
            for attempt in 1..=5 {
                match client.delete_room(&room).await {
                    Ok(()) => return,
                    Err(e) => {
                        errors.with_label_values(&["delete_room"]).inc();
                        tracing::warn!(attempt, error = %e, "DeleteRoom failed");
                        tokio::time::sleep(delay).await;
                        delay *= 3;
                    }
                }
            }
        }
        .instrument(span),
    );
}

/// At start: re-arm the timers of every open call this node drives (on one process,
/// every open call; a fleet node starts with none and takes calls over in
/// `crate::fleet`).
pub async fn rearm_open_calls(app: &App) -> Result<usize, StoreError> {
    let open = app.store().driven_calls().await?;
    let mut per_tenant = std::collections::HashMap::new();
    for rec in &open {
        for t in &rec.timers {
            app.calls().arm_timer(&rec.call_id, t.kind, t.at_ms);
        }
        *per_tenant.entry(rec.tenant.clone()).or_insert(0u32) += 1;
    }
    app.calls().slots().reset(per_tenant);
    // Agents are on the calls they connected (and presence starts empty at every start).
    app.agents().hub().restore_calls(
        open.iter()
            .filter(|r| r.connected_ms.is_some())
            .map(|r| (r.tenant.as_str(), r.agent_id.as_str(), r.call_id.as_str())),
    );
    app.metrics().open_calls.set(open.len() as i64);
    Ok(open.len())
}
