//! The Click2Call contract: `/api/c2c/click2call` and the browser endpoints under
//! `/api/c2c/calls/{call_id}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use c2c_callstate::{new_call_id, CallEvent, CallRecord, DialResult, NewCall};
use c2c_dialplan::DialPlan;
use c2c_livekit::LiveKitClient;
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx, RequestHead, X_API_KEY};
use c2c_tenancy::CallCategory;
use http::StatusCode;

use crate::agents::ClaimError;
use crate::api::contract::{
    view, Click2CallRequest, Click2CallResponse, ConnectResponse, ConnectStatus, StatusReport,
    TokenResponse,
};
use crate::api::{dlt_rules, errors};
use crate::app::App;
use crate::body::parse_json;
use crate::calls;
use crate::calls::dial::DialWait;
use crate::calls::livekit_pool::LiveKitPool;
use crate::clock::now_ms;

const MAX_FIELD: usize = 128;

fn check_field(name: &str, v: &str) -> Result<(), ApiError> {
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_FIELD || v.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{name} must be 1-{MAX_FIELD} printable characters"),
        ));
    }
    Ok(())
}

pub async fn click2call(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    body: &Bytes,
) -> Result<JsonResponse, ApiError> {
    let req: Click2CallRequest = parse_json(body)?;
    check_field("case_id", &req.case_id)?;
    check_field("agent_id", &req.agent_id)?;
    check_field("customer_crm_id", &req.customer_crm_id)?;
    let policy = app.policy().get();
    let tenant = ctx
        .tenant()
        .and_then(|t| policy.tenant(t))
        .ok_or_else(|| ApiError::forbidden("the tenant of this key no longer exists"))?;
    let n = DialPlan::new(tenant)
        .normalize(&req.customer_number, req.did.as_deref())
        .map_err(errors::dial_plan)?;
    // DLT beyond the switch (docs/dlt.md): before anything is created or held.
    let category = dlt_rules::requested_category(req.call_category.as_deref())?;
    dlt_rules::check(
        app,
        &policy,
        tenant,
        &n.trunk,
        category,
        &n.caller_id,
        &n.customer_number,
    )?;
    // Registered agents: telephony on, one call at a time (docs/agents.md).
    gate_agent(app, tenant, req.agent_id.trim()).await?;
    // A managed tenant's wallet must cover the call's minimum (docs/billing.md).
    let billing = calls::billing::plan(&policy, tenant, &n.trunk);
    if let Some(b) = &billing {
        calls::billing::check_available(app, &tenant.id, b).await?;
    }
    let client = app
        .livekit()
        .client_for_tenant(&policy, &tenant.id)
        .ok_or_else(|| ApiError::internal("tenant has no LiveKit project"))?;
    let ws_url = LiveKitPool::ws_url(&policy.gateway.public_url);
    // The concurrent-call cap: a slot is taken now and given back when the call ends
    // (or right here if creating it fails).
    if !app
        .calls()
        .slots()
        .reserve(&tenant.id, tenant.limits.max_concurrent_calls)
    {
        app.metrics()
            .limit_rejections
            .with_label_values(&[&tenant.id, "concurrent_calls"])
            .inc();
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "concurrent_call_limit",
            format!(
                "tenant has {} calls in progress, its limit; retry when one ends",
                tenant.limits.max_concurrent_calls
            ),
        )
        .with_retry_after(5));
    }
    let created = create_call(
        app,
        &client,
        tenant,
        (&req, &n, billing, category),
        &ws_url,
        &mut ctx.livekit_wait,
    )
    .await;
    match &created {
        Ok(_) => app.calls().slots().created(&tenant.id),
        Err(_) => app.calls().slots().unused(&tenant.id),
    }
    ctx.resource_tenant = Some(tenant.id.clone());
    created
}

/// The agent rules (registered, telephony on, one call at a time). The call an agent is
/// on is what this node saw: in a fleet that call may have ended on another node, so a
/// `busy` refusal is checked against the store before it stands.
async fn gate_agent(
    app: &Arc<App>,
    tenant: &c2c_tenancy::Tenant,
    agent_id: &str,
) -> Result<(), ApiError> {
    let refusal = match app.agents().gate(&tenant.id, tenant.agents, agent_id, None) {
        Ok(()) => return Ok(()),
        Err(r) => r,
    };
    if let c2c_agents::OutboundRefusal::Busy { call_id, .. } = &refusal {
        let over = match app.store().get(call_id).await {
            Ok(None) => true,
            Ok(Some(r)) => r.is_ended(),
            Err(_) => false,
        };
        if over {
            app.agents().release_call(&tenant.id, agent_id, call_id);
            return app
                .agents()
                .gate(&tenant.id, tenant.agents, agent_id, None)
                .map_err(|r| errors::agent_refused(&r));
        }
    }
    Err(errors::agent_refused(&refusal))
}

async fn create_call(
    app: &Arc<App>,
    client: &c2c_livekit::LiveKitClient,
    tenant: &c2c_tenancy::Tenant,
    (req, n, billing, category): (
        &Click2CallRequest,
        &c2c_dialplan::Normalized,
        Option<c2c_callstate::CallBilling>,
        Option<CallCategory>,
    ),
    ws_url: &str,
    livekit_wait: &mut Duration,
) -> Result<JsonResponse, ApiError> {
    let knobs = app.policy().get().gateway.calls;
    let (call_id, room) = new_call_id();
    // The request runs in a `call` span opened without an id (api::Api::on_body).
    tracing::Span::current().record("call_id", call_id.as_str());
    // Room first: if LiveKit is down nothing is stored and the CRM may simply retry.
    timed(
        livekit_wait,
        client.create_room(&room, knobs.unconnected_expiry),
    )
    .await
    .map_err(|e| errors::livekit("create_room", app.metrics(), &e))?;
    let token = match client.agent_token(&room, req.agent_id.trim(), knobs.token_ttl) {
        Ok(t) => t,
        Err(e) => {
            timed(livekit_wait, delete_room_quietly(client, &room)).await;
            return Err(ApiError::internal(format!(
                "cannot mint the agent token: {e}"
            )));
        }
    };
    let (mut rec, effects) = CallRecord::new(
        NewCall {
            call_id: call_id.clone(),
            room: room.clone(),
            tenant: tenant.id.clone(),
            case_id: req.case_id.trim().to_string(),
            customer_crm_id: req.customer_crm_id.trim().to_string(),
            agent_id: req.agent_id.trim().to_string(),
            customer_number: n.customer_number.clone(),
            phone_from: n.caller_id.clone(),
            trunk_label: n.trunk.clone(),
        },
        &calls::knobs(app),
        now_ms(),
    );
    rec.billing = billing;
    rec.call_category = category.map(|c| c.as_str().to_string());
    if let Err(e) = app.store().create(&rec).await {
        // Acknowledge nothing we could not persist, and leave no orphan room behind.
        timed(livekit_wait, delete_room_quietly(client, &room)).await;
        return Err(errors::call_store(e));
    }
    calls::run_effects(app, &rec, &effects).await;
    tracing::info!(
        tenant = %tenant.id,
        trunk = %n.trunk,
        customer = %c2c_dialplan::mask(&n.customer_number),
        "call created"
    );
    Ok(JsonResponse::json(
        StatusCode::OK,
        &Click2CallResponse {
            call_id: &call_id,
            room: &room,
            ws_url,
            token: &token,
            customer_number: &n.customer_number,
        },
    ))
}

/// Awaits a LiveKit request, adding its duration to the request's LiveKit time
/// ([`RequestCtx::livekit_wait`]).
async fn timed<T>(wait: &mut Duration, request: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = request.await;
    *wait += started.elapsed();
    out
}

async fn delete_room_quietly(client: &c2c_livekit::LiveKitClient, room: &str) {
    if let Err(e) = client.delete_room(room).await {
        tracing::warn!(error = %e, "could not delete a room after a failed click2call");
    }
}

/// How fresh a loaded call must be.
#[derive(Clone, Copy)]
enum Read {
    /// The stored record (`CallStore::get`).
    Latest,
    /// The record this node wrote last when the store remembers it
    /// (`CallStore::get_recent`: no read of a shared store). Only for `/connect` and
    /// `/hangup`: what they take from it before their transition never changes (tenant,
    /// numbers, trunk, agent, billing plan), and the transition itself decides on the
    /// latest record, so a phase seen stale (another node moved the call) ends in the
    /// transition's 409, as a concurrent request would.
    Recent,
}

/// The stored call `id` names, or [`errors::unknown_call`] (a malformed id is never
/// looked up). The caller still checks that the call is the caller's tenant's.
pub(crate) async fn stored_call(app: &App, id: &str) -> Result<CallRecord, ApiError> {
    read_call(app, id, Read::Latest).await
}

async fn read_call(app: &App, id: &str, read: Read) -> Result<CallRecord, ApiError> {
    if !c2c_callstate::is_valid_call_id(id) {
        return Err(errors::unknown_call());
    }
    let store = app.store();
    match read {
        Read::Latest => store.get(id).await,
        Read::Recent => store.get_recent(id).await,
    }
    .map_err(errors::call_store)?
    .ok_or_else(errors::unknown_call)
}

/// Loads the call a browser endpoint addresses. Unknown, malformed and other tenants'
/// ids all look the same: 404.
async fn load_call(
    app: &App,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<CallRecord, ApiError> {
    load_call_as(app, ctx, head, Read::Latest).await
}

/// [`load_call`] read as `read` says.
async fn load_call_as(
    app: &App,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
    read: Read,
) -> Result<CallRecord, ApiError> {
    let rec = read_call(app, ctx.param(0).unwrap_or_default(), read).await?;
    // Browser endpoints need no secret, but a server that does send its key must not
    // reach another tenant's call with it. Two keys were refused by the auth plugin;
    // reading the single value here keeps this check from ever taking the first of two.
    let key = head
        .single_header(&X_API_KEY)
        .map_err(|_| ApiError::ambiguous_credential("X-api-key header"))?;
    if key.is_some() {
        let p = app.policy().get();
        match p.keys.authenticate(key) {
            Ok(who)
                if who.tenant.as_deref() == Some(rec.tenant.as_str()) || who.tenant.is_none() => {}
            _ => return Err(errors::unknown_call()),
        }
    }
    ctx.resource_tenant = Some(rec.tenant.clone());
    Ok(rec)
}

/// The contract's hard rule: the agent's browser joins the room and publishes its mic
/// before the customer is dialled. One look at the room proves it (a client that calls
/// `/connect` early would otherwise dial a customer into dead air).
async fn check_agent_ready(
    app: &App,
    client: &LiveKitClient,
    rec: &CallRecord,
    livekit_wait: &mut Duration,
) -> Result<(), ApiError> {
    let parts = timed(livekit_wait, client.list_participants(&rec.room))
        .await
        .map_err(|e| errors::livekit("list_participants", app.metrics(), &e))?;
    let agent = parts.iter().find(|p| p.identity == rec.agent_id);
    match agent {
        Some(p) if p.publishes_audio => Ok(()),
        found => {
            let why = if found.is_some() {
                "the agent is in the room but publishes no microphone track"
            } else {
                "the agent has not joined the room"
            };
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "agent_not_ready",
                format!(
                    "{why}; join the room with the click2call token and publish the \
                     microphone, then call /connect"
                ),
            ))
        }
    }
}

pub async fn connect(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    let rec = load_call_as(app, ctx, head, Read::Recent).await?;
    let policy = app.policy().get();
    let tenant = policy
        .tenant(&rec.tenant)
        .ok_or_else(|| ApiError::forbidden("this call's tenant no longer exists"))?;
    // Outbound may have been switched off since click2call.
    if let Err(e) = app.dlt().check(tenant) {
        app.metrics()
            .dlt_blocked
            .with_label_values(&[&tenant.id])
            .inc();
        return Err(errors::dlt_pending(&e));
    }
    // The trunk as the policy has it now (prefix edits apply to new dials): refused here,
    // before anything is stored, rather than ending the call.
    DialPlan::new(tenant)
        .preview(
            &rec.trunk_label,
            &rec.customer_number,
            Some(&rec.phone_from),
        )
        .map_err(errors::dial_plan)?;
    // The rules again at the moment of dialling: the window may have closed, the DND
    // list or the trunk's category changed since click2call. A redial of a call already
    // dialled is not a new call.
    if rec.phase == c2c_callstate::Phase::Initiated {
        let category = rec.call_category.as_deref().and_then(CallCategory::parse);
        dlt_rules::check(
            app,
            &policy,
            tenant,
            &rec.trunk_label,
            category,
            &rec.phone_from,
            &rec.customer_number,
        )?;
    }
    let client = app
        .livekit()
        .client_for_tenant(&policy, &tenant.id)
        .ok_or_else(|| ApiError::internal("tenant has no LiveKit project"))?;
    let first = rec.phase == c2c_callstate::Phase::Initiated;
    if first {
        // Telephony, registration and the tenant's rules again: any may have changed
        // since click2call.
        app.agents()
            .gate(&tenant.id, tenant.agents, &rec.agent_id, Some(&rec.call_id))
            .map_err(|r| errors::agent_refused(&r))?;
        check_agent_ready(app, &client, &rec, &mut ctx.livekit_wait).await?;
        // The agent is on this call from now until it ends: a second call of a
        // registered agent cannot dial meanwhile (two created before either connected
        // included). A call past INITIATED holds its claim already.
        app.agents()
            .claim_call_everywhere(&tenant.id, tenant.agents, &rec.agent_id, &rec.call_id)
            .await
            .map_err(|e| match e {
                ClaimError::Refused(r) => errors::agent_refused(&r),
                ClaimError::Store(e) => errors::agent_store(e),
            })?;
        // The wallet's hold, atomically with its check: refused, nothing is dialled.
        if let Err(e) = calls::billing::hold(app, &rec).await {
            release_unless_dialled(app, &rec).await;
            return Err(e);
        }
    }
    // Durable DIALING first: a second /connect (double click, retry) is a 409, never a
    // second dial. The transition's `Dial` effect starts the dial (calls::run_effects).
    if let Err(e) = calls::apply(app, &rec.call_id, CallEvent::Connect).await {
        release_unless_dialled(app, &rec).await;
        return Err(errors::call_store(e));
    }
    // Waiting here for CreateSIPParticipant's early result is LiveKit's time.
    let dialed = timed(
        &mut ctx.livekit_wait,
        app.calls()
            .dials()
            .wait(&rec.call_id, calls::dial::EARLY_WINDOW),
    )
    .await;
    match dialed {
        // LiveKit could not place the call: the dial watcher has already ended it FAILED
        // (room deleted, CRM webhook queued); tell the browser plainly.
        DialWait::Finished(Some(DialResult::Failed { .. })) => {
            tracing::warn!("LiveKit could not place the call");
            Err(ApiError::unavailable(
                "livekit_unavailable",
                "the call could not be placed because LiveKit is unavailable; the call has ended",
                5,
            ))
        }
        _ => Ok(JsonResponse::json(
            StatusCode::OK,
            &ConnectResponse {
                status: ConnectStatus::Ringing,
            },
        )),
    }
}

/// After a failed `/connect`: the agent's claim stays only if the call did get dialled
/// (a concurrent `/connect` won); a call still INITIATED, or ENDED meanwhile, frees the
/// agent. Decided from the stored record, not from which request claimed.
async fn release_unless_dialled(app: &Arc<App>, rec: &CallRecord) {
    use c2c_callstate::Phase;
    let phase = match app.store().get(&rec.call_id).await {
        Ok(Some(now)) => now.phase,
        // Unknown: keep the claim; the call's end (or a restart) releases it.
        _ => return,
    };
    if matches!(phase, Phase::Initiated | Phase::Ended) {
        app.agents()
            .release_call(&rec.tenant, &rec.agent_id, &rec.call_id);
    }
}

/// Answers as soon as the request is durable. The snippet also posts `/hangup` when the
/// customer's leg disconnects, so on a dialled call the gateway first finds out whose
/// hangup it is — in the background (`calls::hangup`), so busy stays busy and a failed
/// trunk FAILED without holding the agent's button. The answer shows the call as it is
/// at that moment: ENDED when nothing was dialled yet, else still in its phase.
pub async fn hangup(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    let rec = load_call_as(app, ctx, head, Read::Recent).await?;
    let rec = calls::apply(app, &rec.call_id, CallEvent::HangupRequested)
        .await
        .map_err(errors::call_store)?;
    // The agent is done with this call once its hangup is durable, not when the
    // outcome is settled in the background: a CRM that places the agent's next call
    // right after must not get `409 agent_busy`.
    app.agents()
        .release_call(&rec.tenant, &rec.agent_id, &rec.call_id);
    Ok(JsonResponse::json(StatusCode::OK, &view(&rec)))
}

pub async fn status(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
    body: &Bytes,
) -> Result<JsonResponse, ApiError> {
    // sendBeacon / keepalive fetch may label JSON as text/plain: parse whatever came.
    // Parsed before the load only to pick how fresh the load must be; an unknown call
    // is still answered 404 before a malformed body 400.
    let report: Result<StatusReport, ApiError> = parse_json(body);
    let mode = app.policy().get().gateway.answer_detection;
    let ev = report
        .as_ref()
        .ok()
        .and_then(|r| calls::signals::browser::report_event(&r.status, mode));
    // A report that moves the call is answered with what its transition decided on
    // the latest record, so the load before it only checks the caller (a call's tenant
    // never changes) and may come from this node's own writes, as for `/connect` and
    // `/hangup`: one read of a shared store per report instead of two (BENCHMARKS.md,
    // issue 22). A report that moves nothing is answered with the stored record.
    let read = if ev.is_some() {
        Read::Recent
    } else {
        Read::Latest
    };
    let rec = load_call_as(app, ctx, head, read).await?;
    report?;
    let rec = match ev {
        Some(ev) => calls::apply(app, &rec.call_id, ev)
            .await
            .map_err(errors::call_store)?,
        None => rec,
    };
    Ok(JsonResponse::json(StatusCode::OK, &view(&rec)))
}

pub async fn get(
    app: &App,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    let rec = load_call(app, ctx, head).await?;
    Ok(JsonResponse::json(StatusCode::OK, &view(&rec)))
}

/// A fresh LiveKit token for the call's agent and room, while the call is open: the
/// agent's browser swaps it in before the first one expires, without reconnecting.
pub async fn token(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    let rec = load_call(app, ctx, head).await?;
    // The call id alone is not enough to join the call's audio: the caller proves it
    // holds this call's agent token (the one being replaced; it may have just expired
    // in a throttled tab).
    let bearer = head
        .single_header(&http::header::AUTHORIZATION)
        .map_err(|_| ApiError::ambiguous_credential("Authorization header"))?;
    let held = bearer
        .and_then(|b| {
            app.livekit()
                .verifier()
                .verify_access_token_signature(b)
                .ok()
        })
        .filter(|t| t.room.as_deref() == Some(rec.room.as_str()) && t.identity == rec.agent_id);
    if held.is_none() {
        app.metrics()
            .auth_failures
            .with_label_values(&["livekit_token"])
            .inc();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "send the call's current agent token as Authorization: Bearer <token>",
        ));
    }
    if rec.phase == c2c_callstate::Phase::Ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "call_ended",
            "the call has ended; no new token is issued for it",
        ));
    }
    let policy = app.policy().get();
    let client = app
        .livekit()
        .client_for_tenant(&policy, &rec.tenant)
        .ok_or_else(|| ApiError::internal("tenant has no LiveKit project"))?;
    let ttl = policy.gateway.calls.token_ttl;
    let token = client
        .agent_token(&rec.room, &rec.agent_id, ttl)
        .map_err(|e| ApiError::internal(format!("cannot mint the agent token: {e}")))?;
    Ok(JsonResponse::json(
        StatusCode::OK,
        &TokenResponse {
            token: &token,
            expires_at_ms: now_ms() + ttl.as_millis() as u64,
        },
    )
    .with_header(http::header::CACHE_CONTROL, "no-store"))
}

/// CORS pre-flight for the browser endpoints; headers are added by the CORS plugin when
/// the origin is one of the call's tenant's allowed origins.
pub async fn preflight(
    app: &App,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    load_call(app, ctx, head).await?;
    Ok(JsonResponse::empty(StatusCode::NO_CONTENT))
}
