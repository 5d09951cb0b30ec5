//! Taking an offered call: the accept is stored, the agent is on the call, the room
//! exists and the agent has its token — the answer `/click2call` would give — and only
//! then the edge forwards the held INVITE to LiveKit SIP, To user = the room, where the
//! Callee dispatch rule puts the caller into exactly that room (docs/inbound-design.md).

use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::{CallEvent, StoreError};
use c2c_sip::{InboundError, InboundForward};
use serde::Serialize;

use super::ring::RingCtx;
use super::InboundRefusal;
use crate::app::App;
use crate::calls::livekit_pool::LiveKitPool;

/// What the agent's browser gets for an accepted call: `/click2call`'s fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AcceptAnswer {
    pub call_id: String,
    /// The LiveKit room the caller is put into.
    pub room: String,
    /// Where the browser connects (the gateway, which proxies LiveKit).
    pub ws_url: String,
    /// The agent's LiveKit token for `room`.
    pub token: String,
}

/// The accept, durably, and everything the browser needs; the INVITE is not forwarded
/// yet ([`forward`]).
pub(super) async fn prepare(
    app: &Arc<App>,
    c: &RingCtx,
    agent_id: &str,
) -> Result<AcceptAnswer, InboundRefusal> {
    let ev = CallEvent::Accepted {
        agent_id: agent_id.to_owned(),
    };
    match crate::calls::apply(app, &c.call_id, ev).await {
        Ok(rec) if rec.agent_id == agent_id && !rec.is_ended() => {}
        Ok(_) | Err(StoreError::Transition(_)) => return Err(InboundRefusal::OfferGone),
        Err(e) => {
            tracing::error!(error = %e, "inbound accept not stored");
            return Err(InboundRefusal::Unavailable("the call store failed".into()));
        }
    }
    app.inbound()
        .metrics()
        .offers
        .with_label_values(&[&c.tenant.id, "accepted"])
        .inc();
    // The agent is on this call from now (its presence shows it; no other offer or
    // click2call reaches it).
    if let Err(r) = app
        .agents()
        .claim_call(&c.tenant.id, c.tenant.agents, agent_id, &c.call_id)
    {
        tracing::warn!(refusal = ?r, "accepting agent was already on a call");
    }
    match room_and_token(app, c, agent_id).await {
        Ok(a) => Ok(a),
        Err(e) => {
            missed(app, &c.call_id, "livekit_unavailable").await;
            Err(e)
        }
    }
}

async fn room_and_token(
    app: &Arc<App>,
    c: &RingCtx,
    agent_id: &str,
) -> Result<AcceptAnswer, InboundRefusal> {
    let policy = app.policy().get();
    let client = app
        .livekit()
        .client_for_tenant(&policy, &c.tenant.id)
        .ok_or_else(|| InboundRefusal::Unavailable("tenant has no LiveKit project".into()))?;
    // An empty room closes after the connect allowance: an agent that never joins
    // ends the call (room_finished) rather than leaving it open.
    let empty = Duration::from_millis(crate::calls::knobs(app).inbound_connect_ms);
    client.create_room(&c.room, empty).await.map_err(|e| {
        app.metrics()
            .livekit_errors
            .with_label_values(&["create_room"])
            .inc();
        InboundRefusal::Unavailable(format!("create_room: {e}"))
    })?;
    let token = client
        .agent_token(&c.room, agent_id, policy.gateway.calls.token_ttl)
        .map_err(|e| InboundRefusal::Unavailable(format!("token: {e}")))?;
    Ok(AcceptAnswer {
        call_id: c.call_id.clone(),
        room: c.room.clone(),
        ws_url: LiveKitPool::ws_url(&policy.gateway.public_url),
        token,
    })
}

/// Forwards the held INVITE into the call's room. A caller that hung up meanwhile, or
/// an edge that cannot forward, ends the call MISSED (the agent's room is deleted).
pub(super) async fn forward(app: &Arc<App>, c: &RingCtx) {
    let Some(edge) = app.inbound().edge().cloned() else {
        missed(app, &c.call_id, "no_sip_edge").await;
        return;
    };
    let Some(target) = livekit_sip(app, &c.tenant.region) else {
        tracing::error!(region = %c.tenant.region, "no LiveKit SIP address for the region (regions.livekit_sip)");
        missed(app, &c.call_id, "no_livekit_sip").await;
        return;
    };
    let f = InboundForward {
        target,
        room: c.room.clone(),
        call_id: c.call_id.clone(),
        tenant: c.tenant.id.clone(),
    };
    match edge.forward(&c.sip_call_id, f).await {
        Ok(()) => tracing::info!("inbound call forwarded to LiveKit"),
        Err(InboundError::NotHeld) => missed(app, &c.call_id, "caller_hung_up").await,
        Err(e) => {
            tracing::error!(error = %e, "inbound call not forwarded");
            missed(app, &c.call_id, "forward_failed").await;
        }
    }
}

/// The region's LiveKit SIP (`regions.livekit_sip`), or the bundled simulator's SIP
/// address when the gateway runs one.
pub fn livekit_sip(app: &App, region: &str) -> Option<String> {
    let policy = app.policy().get();
    if let Some(u) = policy
        .gateway
        .regions
        .iter()
        .find(|r| r.name == region)
        .and_then(|r| r.livekit_sip.clone())
    {
        return Some(u);
    }
    app.livekit().sim_sip_uri()
}

pub(super) async fn missed(app: &Arc<App>, call_id: &str, reason: &str) {
    let ev = CallEvent::Missed {
        reason: reason.to_owned(),
    };
    if let Err(e) = crate::calls::apply(app, call_id, ev).await {
        tracing::warn!(error = %e, reason, "inbound call not ended");
    }
}
