//! Provisioning over HTTP (owner key): `POST /api/c2c/owner/tenants` creates a tenant,
//! `GET /api/c2c/owner/tenants[/{tenant}]` lists or reads them, `PATCH
//! /api/c2c/owner/tenants/{tenant}` changes one. The work is `crate::provision`'s; this
//! module reads requests, reloads the policy before answering (so a 2xx means the change
//! is in force) and shapes the answers.
//!
//! The console edits through the same provisioning at `GET|PATCH
//! /api/c2c/console/tenants/{tenant}/settings`: the owner key with the owner's rights, a
//! tenant's console key for its own tenant and only the fields
//! `TenantPatch::owner_only_field` leaves it.

use bytes::Bytes;
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use c2c_tenancy::BillingMode;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::errors;
use crate::app::App;
use crate::body::parse_json;
use crate::provision::audit::PolicyChange;
use crate::provision::platform::{PlatformView, PLATFORM};
use crate::provision::view::TenantView;
use crate::provision::{Editor, FirstKeyShown};

/// Changes shown with a tenant.
const RECENT_CHANGES: usize = 50;

/// `GET /api/c2c/owner/tenants`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantList {
    tenants: Vec<TenantSummary>,
}

/// One line of the tenant list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantSummary {
    id: String,
    name: String,
    region: String,
    billing_mode: BillingMode,
    trunks: usize,
    /// The DLT flag in force (the owner's toggle, else the policy's initial value).
    outbound_enabled: bool,
}

/// A created tenant and its first key.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantCreated {
    tenant: TenantView,
    /// Shown this once: only its SHA-256 is stored.
    api_key: FirstKeyShown,
    change: PolicyChange,
}

/// A tenant, its DLT flag and its recent changes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantState {
    tenant: TenantView,
    outbound_enabled: bool,
    /// Provisioning changes made on this node, oldest first (at most 50).
    changes: Vec<PolicyChange>,
}

/// A changed tenant and the audit record of the change.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantChanged {
    tenant: TenantView,
    change: PolicyChange,
}

/// Who is asking, and how the audit names them (`owner:<key id>`, `console:<key id>`).
fn editor(ctx: &RequestCtx) -> (Editor, String) {
    let key = ctx.principal.as_ref().map(|p| &*p.key_id).unwrap_or("-");
    match ctx.tenant() {
        None => (Editor::Owner, format!("owner:{key}")),
        Some(_) => (Editor::TenantConsole, format!("console:{key}")),
    }
}

/// The apply step of a change: reload now, so the answer means "in force".
async fn reload_now(app: &App) -> Result<(), String> {
    crate::reload::reload(app).await.map_err(|e| {
        e.0.iter()
            .map(|x| format!("{}: {}", x.key, x.reason))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

pub async fn list(app: &App) -> Result<JsonResponse, ApiError> {
    let policy = app.policy().get();
    let tenants = policy
        .tenants
        .values()
        .map(|t| TenantSummary {
            id: t.id.clone(),
            name: t.name.clone(),
            region: t.region.clone(),
            billing_mode: t.billing_mode(),
            trunks: t.trunks.len(),
            outbound_enabled: app.dlt().outbound_enabled(t),
        })
        .collect();
    Ok(JsonResponse::json(StatusCode::OK, &TenantList { tenants }))
}

pub async fn create(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let req: Value = parse_json(body)?;
    let done = app
        .provisioner()
        .create(&req, &editor(ctx).1, || reload_now(app))
        .await
        .map_err(errors::provision)?;
    tracing::info!(
        tenant = %done.tenant.id,
        mode = ?done.tenant.billing_mode,
        actor = %done.change.actor,
        "tenant provisioned"
    );
    let api_key = done
        .first_key
        .ok_or_else(|| ApiError::internal("a new tenant got no key"))?;
    Ok(JsonResponse::json(
        StatusCode::CREATED,
        &TenantCreated {
            tenant: done.tenant,
            api_key,
            change: done.change,
        },
    ))
}

pub async fn get(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let id = ctx.param(0).unwrap_or_default();
    crate::api::console::may_see(ctx, id)?;
    let policy = app.policy().get();
    let tenant = app
        .provisioner()
        .view(&policy, id)
        .await
        .map_err(errors::provision)?;
    let outbound_enabled = policy
        .tenant(id)
        .is_some_and(|t| app.dlt().outbound_enabled(t));
    let changes = app
        .provisioner()
        .changes(id, RECENT_CHANGES)
        .await
        .map_err(errors::provision)?;
    Ok(JsonResponse::json(
        StatusCode::OK,
        &TenantState {
            tenant,
            outbound_enabled,
            changes,
        },
    ))
}

pub async fn patch(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let id = ctx.param(0).unwrap_or_default();
    crate::api::console::may_see(ctx, id)?;
    let req: Value = parse_json(body)?;
    let (who, actor) = editor(ctx);
    let done = app
        .provisioner()
        .update(id, &req, (who, &actor), || reload_now(app))
        .await
        .map_err(errors::provision)?;
    tracing::info!(
        tenant = %done.tenant.id,
        fields = done.change.changes.len(),
        actor = %done.change.actor,
        "tenant changed"
    );
    Ok(JsonResponse::json(
        StatusCode::OK,
        &TenantChanged {
            tenant: done.tenant,
            change: done.change,
        },
    ))
}

/// The platform's call settings, what waits for a restart, and their recent changes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlatformState {
    settings: PlatformView,
    /// Start-only settings changed since the gateway started (`answer_detection`, ...):
    /// in the file, not yet in force.
    restart_needed: Vec<String>,
    /// Changes made on this node, oldest first (at most 50).
    changes: Vec<PolicyChange>,
}

/// A changed platform setting and its audit record.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlatformChanged {
    settings: PlatformView,
    restart_needed: Vec<String>,
    change: PolicyChange,
}

fn restart_needed(app: &App) -> Vec<String> {
    crate::start_only::changes(app.policy().started(), &app.policy().get().gateway)
}

pub async fn platform_get(app: &App) -> Result<JsonResponse, ApiError> {
    let policy = app.policy().get();
    let p = app.provisioner();
    let settings = p.platform_view(&policy).await.map_err(errors::provision)?;
    let changes = p
        .changes(PLATFORM, RECENT_CHANGES)
        .await
        .map_err(errors::provision)?;
    Ok(JsonResponse::json(
        StatusCode::OK,
        &PlatformState {
            settings,
            restart_needed: restart_needed(app),
            changes,
        },
    ))
}

pub async fn platform_patch(
    app: &App,
    ctx: &RequestCtx,
    body: &Bytes,
) -> Result<JsonResponse, ApiError> {
    let req: Value = parse_json(body)?;
    let (settings, change) = app
        .provisioner()
        .update_platform(&req, &editor(ctx).1, || reload_now(app))
        .await
        .map_err(errors::provision)?;
    tracing::info!(fields = change.changes.len(), actor = %change.actor, "platform call settings changed");
    Ok(JsonResponse::json(
        StatusCode::OK,
        &PlatformChanged {
            settings,
            restart_needed: restart_needed(app),
            change,
        },
    ))
}
