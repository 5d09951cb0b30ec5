//! One inbound call's ringing: stored RINGING, then offered to one agent at a time
//! (longest idle first) for `ring_agent_seconds` each, within
//! `inbound_ring_timeout_seconds` in all, with the CRM's lead raced against
//! `lead_wait`. Ends when an agent accepts (the call goes on in the state machine), or
//! the call ends MISSED: nobody there at all (`no_agent`, at once), the caller hung up
//! (`caller_hung_up`), or it rang out (`ring_timeout`).

use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::{new_call_id, CallEvent, CallRecord, NewInboundCall, OfferOutcome};
use c2c_sip::InboundCall;
use c2c_tenancy::Tenant;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

use super::accept::{self, missed};
use super::lookup::{self, LeadOutcome, Lookup};
use super::{frames, InboundRefusal, NotRegistered, Signal};
use crate::app::App;
use crate::clock::now_ms;

/// What the ringing task and the accept share about the call.
pub(super) struct RingCtx {
    pub call_id: String,
    pub room: String,
    pub tenant: Arc<Tenant>,
    pub sip_call_id: String,
    pub caller: String,
    pub did: String,
}

/// The lead as the race sees it: still being looked up, or settled (maybe none).
#[derive(Clone)]
enum Lead {
    Pending,
    Settled(Option<Arc<RawValue>>),
}

impl Lead {
    fn value(&self) -> Option<&RawValue> {
        match self {
            Lead::Settled(Some(v)) => Some(v),
            _ => None,
        }
    }
}

/// How one offer ended.
enum OfferEnd {
    /// Try the next agent.
    Next,
    /// The call is accepted or over: the task is done.
    Done,
}

pub(super) async fn run(app: Arc<App>, call: InboundCall, held_at: Instant) {
    let Some(c) = start(&app, &call).await else {
        return;
    };
    let span = crate::calls::span(&c.call_id);
    ring(app, c, held_at).instrument(span).await;
}

/// Stores the call and registers it; refuses the held INVITE when it cannot be taken.
async fn start(app: &Arc<App>, call: &InboundCall) -> Option<RingCtx> {
    let svc = app.inbound();
    let refuse = |reason: &str, code: u16| {
        svc.metrics.refused.with_label_values(&[reason]).inc();
        svc.reject_sip(call.sip_call_id.clone(), code);
    };
    // Draining for a stop: a call taken now could not ring out before the process
    // exits; a 503 lets the carrier try another gateway of the trunk group instead.
    if app.is_draining() {
        refuse("draining", 503);
        return None;
    }
    let policy = app.policy().get();
    let Some(tenant) = policy.tenant(&call.tenant).cloned() else {
        refuse("no_tenant", 404);
        return None;
    };
    if !app
        .calls()
        .slots()
        .reserve(&tenant.id, tenant.limits.max_concurrent_calls)
    {
        app.metrics()
            .limit_rejections
            .with_label_values(&[&tenant.id, "concurrent_calls"])
            .inc();
        refuse("concurrent_calls", 486);
        return None;
    }
    let (call_id, room) = new_call_id();
    let ring_ms = tenant.inbound.ring_timeout.as_millis() as u64;
    let new = NewInboundCall {
        call_id: call_id.clone(),
        room: room.clone(),
        tenant: tenant.id.clone(),
        caller: call.caller.clone(),
        did: call.did.clone(),
        trunk_label: call.trunk.clone(),
    };
    let (rec, effects) = CallRecord::new_inbound(new, ring_ms, &crate::calls::knobs(app), now_ms());
    if let Err(e) = app.store().create(&rec).await {
        tracing::error!(error = %e, "inbound call not stored; refused 503");
        app.calls().slots().unused(&tenant.id);
        refuse("store", 503);
        return None;
    }
    app.calls().slots().created(&tenant.id);
    svc.stored(&call.sip_call_id, &call_id);
    // Counted started (and its slot given back when it ends) like every call.
    crate::calls::run_effects(app, &rec, &effects).await;
    let c = RingCtx {
        call_id,
        room,
        tenant,
        sip_call_id: call.sip_call_id.clone(),
        caller: call.caller.clone(),
        did: call.did.clone(),
    };
    Some(c)
}

async fn ring(app: Arc<App>, c: RingCtx, held_at: Instant) {
    let svc = app.inbound();
    let (tx, mut rx) = mpsc::channel(16);
    match svc.register(&c.call_id, &c.tenant.id, &c.sip_call_id, tx) {
        Ok(()) => {}
        Err(NotRegistered::CallerGone) => {
            missed(&app, &c.call_id, "caller_hung_up").await;
            return;
        }
        Err(NotRegistered::Full) => {
            // Not registered, so the end's RefuseCaller cannot find the INVITE: refused
            // here.
            svc.metrics.refused.with_label_values(&["full"]).inc();
            svc.reject_sip(c.sip_call_id.clone(), 503);
            missed(&app, &c.call_id, "gateway_full").await;
            return;
        }
    }
    tracing::info!(tenant = %c.tenant.id, did = %c.did, caller = %c2c_dialplan::mask(&c.caller), "inbound call ringing");
    let hub = app.agents().hub();
    if !hub.anyone_to_offer(&c.tenant.id) {
        svc.metrics.refused.with_label_values(&["no_agent"]).inc();
        missed(&app, &c.call_id, "no_agent").await;
        return;
    }
    let lead = start_lookup(&app, &c);
    let deadline = Instant::now() + c.tenant.inbound.ring_timeout;
    let mut rejected: Vec<String> = Vec::new();
    let mut timed_out: Vec<String> = Vec::new();
    let mut first = true;
    loop {
        // The next agent: nobody declined or let it ring yet first, then those who let
        // it ring once everyone had a turn; waits for an agent to free up, no polling.
        let agent = loop {
            let freed = hub.freed();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let skip: Vec<String> = rejected.iter().chain(&timed_out).cloned().collect();
            let pick = hub
                .reserve_for_offer(&c.tenant.id, &c.call_id, &skip)
                .or_else(|| hub.reserve_for_offer(&c.tenant.id, &c.call_id, &rejected));
            if let Some(a) = pick {
                timed_out.retain(|t| *t != a);
                break a;
            }
            tokio::select! {
                _ = freed => continue,
                _ = sleep_until(deadline) => {
                    missed(&app, &c.call_id, "ring_timeout").await;
                    return;
                }
                s = rx.recv() => match s {
                    Some(Signal::CallerGone) => {
                        missed(&app, &c.call_id, "caller_hung_up").await;
                        return;
                    }
                    Some(Signal::Accept { reply, .. }) => {
                        let _ = reply.send(Err(InboundRefusal::NotOffered));
                    }
                    Some(Signal::Reject { reply, .. }) => {
                        let _ = reply.send(Err(InboundRefusal::NotOffered));
                    }
                    Some(Signal::Ended) | None => return,
                },
            }
        };
        let end = offer(
            &app,
            &c,
            &agent,
            &mut rx,
            lead.clone(),
            deadline,
            first.then_some(held_at),
        )
        .await;
        first = false;
        hub.end_offer(&c.tenant.id, &agent, &c.call_id);
        match end {
            Ok(OfferEnd::Done) => return,
            Ok(OfferEnd::Next) => {}
            Err(outcome) => {
                if outcome == OfferOutcome::Rejected {
                    rejected.push(agent);
                } else {
                    timed_out.push(agent);
                }
            }
        }
        if Instant::now() >= deadline {
            missed(&app, &c.call_id, "ring_timeout").await;
            return;
        }
    }
}

/// One offer to `agent`: stored, then `incoming` once the lead is settled or
/// `lead_wait` passed, then whatever comes first. `Err(outcome)`: this agent let the
/// offer go (rejected, timed out, unreachable).
async fn offer(
    app: &Arc<App>,
    c: &RingCtx,
    agent: &str,
    rx: &mut mpsc::Receiver<Signal>,
    mut lead: watch::Receiver<Lead>,
    deadline: Instant,
    held_at: Option<Instant>,
) -> Result<OfferEnd, OfferOutcome> {
    let svc = app.inbound();
    let hub = app.agents().hub();
    let tenant = &c.tenant.id;
    let count = |outcome: &str| {
        svc.metrics
            .offers
            .with_label_values(&[tenant, outcome])
            .inc()
    };
    let ev = CallEvent::Offered {
        agent_id: agent.to_owned(),
    };
    if let Err(e) = crate::calls::apply(app, &c.call_id, ev).await {
        tracing::warn!(error = %e, "offer not stored");
    }
    let offered_at = Instant::now();
    let offer_end = (offered_at + c.tenant.inbound.ring_agent).min(deadline);
    // The race: the lead (if one is being looked up) or lead_wait, whichever first.
    let lead_deadline = offered_at + c.tenant.inbound.lead_wait;
    loop {
        if !matches!(*lead.borrow(), Lead::Pending) {
            break;
        }
        tokio::select! {
            r = lead.changed() => if r.is_err() { break },
            _ = sleep_until(lead_deadline) => break,
            // The caller may hang up while the lead is awaited: the agent was not told
            // yet, so there is no card to close.
            sig = rx.recv() => match sig {
                Some(Signal::CallerGone) => {
                    count("cancelled");
                    end_offer(app, c, agent, OfferOutcome::Cancelled).await;
                    missed(app, &c.call_id, "caller_hung_up").await;
                    return Ok(OfferEnd::Done);
                }
                Some(Signal::Ended) | None => return Ok(OfferEnd::Done),
                // Nobody can know the call before `incoming`: not offered to them.
                Some(Signal::Accept { reply, .. }) => {
                    let _ = reply.send(Err(InboundRefusal::NotOffered));
                }
                Some(Signal::Reject { reply, .. }) => {
                    let _ = reply.send(Err(InboundRefusal::NotOffered));
                }
            },
        }
    }
    let settled = lead.borrow_and_update().clone();
    let ring_ms = offer_end
        .saturating_duration_since(Instant::now())
        .as_millis() as u64;
    let text = frames::incoming(
        &c.call_id,
        &c.caller,
        &c.did,
        settled.value(),
        ring_ms,
        now_ms(),
    );
    if !hub.send_to_agent(tenant, agent, &text) {
        count("failed");
        end_offer(app, c, agent, OfferOutcome::Failed).await;
        return Err(OfferOutcome::Failed);
    }
    if let Some(at) = held_at {
        svc.metrics
            .incoming_delay
            .observe(at.elapsed().as_secs_f64());
    }
    let mut lead_sent = !matches!(settled, Lead::Pending);
    loop {
        tokio::select! {
            s = rx.recv() => match s {
                Some(Signal::Accept { agent_id, reply }) if agent_id == agent => {
                    match accept::prepare(app, c, agent).await {
                        Ok(answer) => {
                            svc.remember_answer(&c.call_id, agent, &answer);
                            let _ = reply.send(Ok(answer));
                            accept::forward(app, c).await;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                    return Ok(OfferEnd::Done);
                }
                Some(Signal::Reject { agent_id, reply }) if agent_id == agent => {
                    let _ = reply.send(Ok(()));
                    count("rejected");
                    end_offer(app, c, agent, OfferOutcome::Rejected).await;
                    return Err(OfferOutcome::Rejected);
                }
                Some(Signal::Accept { reply, .. }) => {
                    let _ = reply.send(Err(InboundRefusal::NotOffered));
                }
                Some(Signal::Reject { reply, .. }) => {
                    let _ = reply.send(Err(InboundRefusal::NotOffered));
                }
                Some(Signal::CallerGone) => {
                    count("cancelled");
                    hub.send_to_agent(tenant, agent, &frames::incoming_cancelled(&c.call_id, "caller_hung_up"));
                    missed(app, &c.call_id, "caller_hung_up").await;
                    return Ok(OfferEnd::Done);
                }
                Some(Signal::Ended) | None => {
                    count("cancelled");
                    hub.send_to_agent(tenant, agent, &frames::incoming_cancelled(&c.call_id, "failed"));
                    return Ok(OfferEnd::Done);
                }
            },
            r = lead.changed(), if !lead_sent => {
                if r.is_err() {
                    lead_sent = true;
                    continue;
                }
                let now = lead.borrow_and_update().clone();
                if let Some(v) = now.value() {
                    hub.send_to_agent(tenant, agent, &frames::incoming_update(&c.call_id, v));
                }
                lead_sent = !matches!(now, Lead::Pending);
            }
            _ = sleep_until(offer_end) => {
                count("timeout");
                hub.send_to_agent(tenant, agent, &frames::incoming_cancelled(&c.call_id, "offer_timeout"));
                end_offer(app, c, agent, OfferOutcome::Timeout).await;
                return if Instant::now() >= deadline {
                    Ok(OfferEnd::Next)
                } else {
                    Err(OfferOutcome::Timeout)
                };
            }
        }
    }
}

async fn end_offer(app: &Arc<App>, c: &RingCtx, agent: &str, outcome: OfferOutcome) {
    let ev = CallEvent::OfferEnded {
        agent_id: agent.to_owned(),
        outcome,
    };
    if let Err(e) = crate::calls::apply(app, &c.call_id, ev).await {
        tracing::warn!(error = %e, "offer outcome not stored");
    }
}

/// Starts the CRM lookup when the tenant has one; the receiver settles when it ends.
fn start_lookup(app: &Arc<App>, c: &RingCtx) -> watch::Receiver<Lead> {
    let hook = c.tenant.crm_webhook.as_ref();
    let (Some(url), Some(hook)) = (c.tenant.inbound.lookup_url.clone(), hook) else {
        return watch::channel(Lead::Settled(None)).1;
    };
    let (tx, rx) = watch::channel(Lead::Pending);
    let key = hook.outbound_key.expose().to_owned();
    let allow_private = app.policy().get().gateway.webhooks.allow_private_targets;
    let timeout: Duration = c.tenant.inbound.lookup_timeout;
    let (app, call_id, caller, did, tenant) = (
        app.clone(),
        c.call_id.clone(),
        c.caller.clone(),
        c.did.clone(),
        c.tenant.id.clone(),
    );
    tokio::spawn(
        async move {
            let svc = app.inbound();
            let got = lookup::lookup(
                &svc.http,
                Lookup {
                    url: &url,
                    outbound_key: &key,
                    allow_private,
                    timeout,
                    call_id: &call_id,
                    caller: &caller,
                    did: &did,
                },
            )
            .await;
            svc.metrics
                .lookups
                .with_label_values(&[&tenant, got.label()])
                .inc();
            let lead = match got {
                LeadOutcome::Found { lead, lead_id } => {
                    if let Some(lead_id) = lead_id {
                        let ev = CallEvent::LeadFound { lead_id };
                        if let Err(e) = crate::calls::apply(&app, &call_id, ev).await {
                            tracing::warn!(error = %e, "lead not stored");
                        }
                    }
                    Some(Arc::from(lead))
                }
                LeadOutcome::Error(e) => {
                    tracing::warn!(error = %e, "lead lookup failed; the call rings without a lead");
                    None
                }
                LeadOutcome::Timeout => {
                    tracing::warn!("lead lookup timed out; the call rings without a lead");
                    None
                }
                LeadOutcome::None => None,
            };
            let _ = tx.send(Lead::Settled(lead));
        }
        .in_current_span(),
    );
    rx
}
