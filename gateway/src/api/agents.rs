//! The agent registry and presence sessions: `/api/c2c/agents...` (a tenant's `calls` or
//! `console` key, its own tenant) and the console's Agents page
//! (`/api/c2c/console/tenants/{tenant}/agents...`, console or owner key). The presence
//! socket itself is `crate::agents::socket`.

use bytes::Bytes;
use c2c_agents::{check_field, AgentUpdate, AuditEntry};
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx, RequestHead};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::agents::{AgentView, SessionGrant};
use crate::api::errors;
use crate::app::App;
use crate::body::parse_json;

/// Default and largest page of `GET /api/c2c/agents`.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// Audit lines the console shows.
const AUDIT_LINES: usize = 200;

/// `PUT /api/c2c/agents/{agent_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAgentRequest {
    /// 1-128 printable characters.
    pub name: String,
    /// Whether this person is a calling agent at all.
    pub telephony_enabled: bool,
}

/// `POST /api/c2c/agents/{agent_id}/session` (the body is optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// The session also receives the tenant's other agents' availability.
    #[serde(default)]
    pub supervisor: bool,
}

/// `POST /api/c2c/console/tenants/{tenant}/agents/{agent_id}/telephony`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelephonyRequest {
    pub enabled: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentPage {
    pub agents: Vec<AgentView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// One audit line as the console shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditLine {
    pub at_ms: u64,
    /// The key that made the change.
    pub key_id: String,
    pub agent_id: String,
    /// `registered`, `name` or `telephony_enabled`.
    pub field: String,
    /// The value before (`null` when there was none): a boolean or a string.
    pub old: serde_json::Value,
    /// The value after (`null` when removed).
    pub new: serde_json::Value,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditLine>,
}

fn key_id(ctx: &RequestCtx) -> &str {
    ctx.principal.as_ref().map_or("-", |p| &p.key_id)
}

/// The tenant of a `/api/c2c/agents` request: the key's own.
fn own_tenant(ctx: &RequestCtx) -> Result<String, ApiError> {
    ctx.tenant()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::forbidden("agents belong to a tenant: use a tenant key"))
}

/// The `{agent_id}` path parameter (at `i`), percent-decoded (agent ids are CRM strings:
/// a client encodes what a path cannot hold; `&`, `+` and `=` stay themselves) and
/// checked like click2call's field.
fn agent_param(ctx: &RequestCtx, i: usize) -> Result<String, ApiError> {
    let invalid =
        |why: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", why);
    let raw = ctx.param(i).unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| invalid("agent_id is not UTF-8 once percent-decoded".into()))?;
    check_field("agent_id", &decoded)
        .map(str::to_owned)
        .map_err(|e| invalid(e.to_string()))
}

fn page_of(app: &App, tenant: &str, head: &RequestHead<'_>) -> Result<JsonResponse, ApiError> {
    let q = crate::api::query_params(head);
    let limit = match q.get("limit") {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_limit",
                    format!("limit must be between 1 and {MAX_PAGE}"),
                )
            })?,
    };
    let agents = app.agents();
    let (page, next_cursor) =
        agents
            .directory()
            .page(tenant, q.get("cursor").map(String::as_str), limit);
    Ok(JsonResponse::json(
        StatusCode::OK,
        &AgentPage {
            agents: page.iter().map(|a| agents.view(a)).collect(),
            next_cursor,
        },
    ))
}

/// `GET /api/c2c/agents`.
pub fn list(app: &App, ctx: &RequestCtx, head: &RequestHead<'_>) -> Result<JsonResponse, ApiError> {
    page_of(app, &own_tenant(ctx)?, head)
}

/// `GET /api/c2c/agents/{agent_id}`.
pub fn get(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let tenant = own_tenant(ctx)?;
    let id = agent_param(ctx, 0)?;
    let a = app
        .agents()
        .directory()
        .get(&tenant, &id)
        .ok_or_else(errors::unknown_agent)?;
    Ok(JsonResponse::json(StatusCode::OK, &app.agents().view(&a)))
}

/// `PUT /api/c2c/agents/{agent_id}`: 201 when created, 200 when updated.
pub async fn put(app: &App, ctx: &mut RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let tenant = own_tenant(ctx)?;
    let id = agent_param(ctx, 0)?;
    let req: PutAgentRequest = parse_json(body)?;
    let name = check_field("name", &req.name)
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                e.to_string(),
            )
        })?
        .to_owned();
    let update = AgentUpdate {
        name,
        telephony_enabled: req.telephony_enabled,
    };
    let (agent, created) = app
        .agents()
        .put(&tenant, &id, update, key_id(ctx))
        .await
        .map_err(errors::agent_store)?;
    ctx.resource_tenant = Some(tenant);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(JsonResponse::json(status, &app.agents().view(&agent)))
}

/// `DELETE /api/c2c/agents/{agent_id}`.
pub async fn delete(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let tenant = own_tenant(ctx)?;
    let id = agent_param(ctx, 0)?;
    let removed = app
        .agents()
        .remove(&tenant, &id, key_id(ctx))
        .await
        .map_err(errors::agent_store)?;
    if !removed {
        return Err(errors::unknown_agent());
    }
    Ok(JsonResponse::empty(StatusCode::NO_CONTENT))
}

/// `POST /api/c2c/agents/{agent_id}/session`: a presence token for the agent's browser.
pub fn session(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let tenant = own_tenant(ctx)?;
    let id = agent_param(ctx, 0)?;
    let req: SessionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        SessionRequest::default()
    } else {
        parse_json(body)?
    };
    if app.agents().directory().telephony(&tenant, &id).is_none() {
        return Err(errors::unknown_agent());
    }
    Ok(grant(app, &tenant, Some(&id), req.supervisor))
}

fn grant(app: &App, tenant: &str, agent: Option<&str>, supervisor: bool) -> JsonResponse {
    let policy = app.policy().get();
    let g: SessionGrant = app.agents().grant(
        tenant,
        agent,
        supervisor,
        policy.gateway.presence.token_ttl,
        &policy.gateway.public_url,
    );
    // A credential: no cache may keep it.
    JsonResponse::json(StatusCode::OK, &g).with_header(http::header::CACHE_CONTROL, "no-store")
}

/// `GET /api/c2c/agents/presence` without a WebSocket upgrade (an upgrade never gets
/// here: `crate::agents::socket` answers it).
pub fn presence_without_upgrade(app: &App) -> Result<JsonResponse, ApiError> {
    if app.is_draining() {
        return Err(ApiError::unavailable(
            "draining",
            "this gateway is shutting down; open the presence socket again (another gateway answers)",
            1,
        ));
    }
    Err(ApiError::new(
        StatusCode::UPGRADE_REQUIRED,
        "upgrade_required",
        "the presence channel is a WebSocket: open it with Upgrade: websocket (see docs/agents.md)",
    ))
}

// The console's Agents page: `{tenant}` is param 0, `{agent_id}` param 1.

fn console_tenant(app: &App, ctx: &RequestCtx) -> Result<String, ApiError> {
    let id = ctx.param(0).unwrap_or_default();
    if ctx.tenant().is_some_and(|own| own != id) {
        return Err(ApiError::forbidden(
            "a tenant key can only see its own tenant",
        ));
    }
    if app.policy().get().tenant(id).is_none() {
        return Err(ApiError::not_found(format!("unknown tenant '{id}'")));
    }
    Ok(id.to_owned())
}

/// `GET /api/c2c/console/tenants/{tenant}/agents`.
pub fn console_list(
    app: &App,
    ctx: &RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    page_of(app, &console_tenant(app, ctx)?, head)
}

/// `POST /api/c2c/console/tenants/{tenant}/agents/{agent_id}/telephony`: the toggle,
/// audited under the console user's key.
pub async fn console_telephony(
    app: &App,
    ctx: &mut RequestCtx,
    body: &Bytes,
) -> Result<JsonResponse, ApiError> {
    let tenant = console_tenant(app, ctx)?;
    let id = agent_param(ctx, 1)?;
    let req: TelephonyRequest = parse_json(body)?;
    let agent = app
        .agents()
        .set_telephony(&tenant, &id, req.enabled, key_id(ctx))
        .await
        .map_err(errors::agent_store)?
        .ok_or_else(errors::unknown_agent)?;
    ctx.resource_tenant = Some(tenant);
    Ok(JsonResponse::json(
        StatusCode::OK,
        &app.agents().view(&agent),
    ))
}

/// `GET /api/c2c/console/tenants/{tenant}/agents/audit`.
pub async fn console_audit(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let tenant = console_tenant(app, ctx)?;
    let entries = app
        .agents()
        .audit(&tenant, AUDIT_LINES)
        .await
        .map_err(errors::agent_store)?;
    let entries = entries
        .into_iter()
        .rev()
        .map(|e: AuditEntry| AuditLine {
            at_ms: e.at_ms,
            key_id: e.key_id,
            agent_id: e.agent_id,
            field: e.field,
            old: e.old,
            new: e.new,
        })
        .collect();
    Ok(JsonResponse::json(StatusCode::OK, &AuditPage { entries }))
}

/// `POST /api/c2c/console/tenants/{tenant}/presence-session`: a supervisor-only token,
/// so the Agents page follows availability live.
pub fn console_presence_session(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let tenant = console_tenant(app, ctx)?;
    Ok(grant(app, &tenant, None, true))
}
