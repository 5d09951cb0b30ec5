//! JSON endpoints of the web console (`/console/`), under `/api/c2c/console/`.
//!
//! Callers are a tenant's `console` key (its own tenant only) or the platform owner key
//! (any tenant). The console only reads effective policy with secrets masked, previews
//! dial strings and webhooks, and makes one live LiveKit check; everything that changes
//! state (sandbox calls, the DLT toggle) goes through the existing contract and owner
//! endpoints, so the console has no private write path.

use bytes::Bytes;
use c2c_dialplan::DialPlan;
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use c2c_tenancy::{Policy, Tenant};
use http::StatusCode;

use crate::api::console_types::{
    CallTimings, ConsoleCall, ConsoleDlt, ConsoleDltList, ConsoleDltRules, ConsoleGuide,
    ConsoleInboundNumber, ConsoleRefusal, ConsoleRole, ConsoleSession, ConsoleSettings,
    ConsoleTenant, ConsoleTrunk, CrmSettings, LimitSettings, LiveKitCheck, LiveKitSettings,
    LiveKitSource, Masked, TenantInfo, TenantRef, TrunkDial, WebhookHeaders, WebhookPreview,
};
use crate::api::contract::view;
use crate::api::errors;
use crate::api::owner::FlagSource;
use crate::app::App;
use crate::body::parse_json;
use crate::calls::livekit_pool::LiveKitPool;

/// Longest wait for the live LiveKit check: the console shows a verdict, not a spinner.
/// The console's Validate and provisioning's check on save wait as long for LiveKit.
const VALIDATE_TIMEOUT: std::time::Duration = crate::provision::livekit_check::TIMEOUT;

/// The tenant a request may act on: the `:tenant` parameter, which a tenant key may
/// only set to its own tenant.
pub(super) fn tenant_param<'p>(
    policy: &'p Policy,
    ctx: &RequestCtx,
) -> Result<&'p Tenant, ApiError> {
    let id = ctx.param(0).unwrap_or_default();
    may_see(ctx, id)?;
    policy
        .tenant(id)
        .map(|t| &**t)
        .ok_or_else(|| ApiError::not_found(format!("unknown tenant '{id}'")))
}

pub(crate) fn may_see(ctx: &RequestCtx, tenant: &str) -> Result<(), ApiError> {
    match ctx.tenant() {
        Some(own) if own != tenant => Err(ApiError::forbidden(
            "a tenant key can only see its own tenant",
        )),
        _ => Ok(()),
    }
}

/// `GET /api/c2c/console/session`: who signed in, and which tenants they may open.
pub fn session(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let policy = app.policy().get();
    let p = ctx
        .principal
        .as_ref()
        .ok_or_else(|| ApiError::internal("no principal"))?;
    let tenants = policy
        .tenants
        .values()
        .filter(|t| p.tenant.as_deref().is_none_or(|own| own == t.id))
        .map(|t| TenantRef {
            id: &t.id,
            name: &t.name,
        })
        .collect();
    Ok(JsonResponse::json(
        StatusCode::OK,
        &ConsoleSession {
            role: if p.tenant.is_some() {
                ConsoleRole::Tenant
            } else {
                ConsoleRole::Owner
            },
            key_id: &p.key_id,
            tenant: p.tenant.as_deref(),
            tenants,
        },
    ))
}

/// `GET /api/c2c/console/tenants/{tenant}`: trunks, effective settings (masked), DLT
/// state with its audit trail, and what the integration guide needs.
pub async fn tenant(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let policy = app.policy().get();
    let t = tenant_param(&policy, ctx)?;
    let g = &policy.gateway;
    let trunks = t
        .trunks
        .iter()
        .map(|tr| ConsoleTrunk {
            label: &tr.label,
            livekit_trunk_id: &tr.livekit_trunk_id,
            prefix: &tr.prefix,
            default_did: &tr.default_did,
            carrier: &tr.carrier,
            default: tr.default,
            enabled: tr.enabled,
            category: tr.category,
            media: tr.media.as_str(),
        })
        .collect();
    let livekit = policy.livekit_for(t).map(|p| LiveKitSettings {
        source: if t.livekit.is_some() {
            LiveKitSource::Tenant
        } else {
            LiveKitSource::Platform
        },
        url: if p.is_sim() {
            "sim (bundled LiveKit simulator)".to_string()
        } else {
            p.url.clone()
        },
        api_key: &p.api_key,
        api_secret: Masked::of(&p.api_secret),
    });
    let crm_webhook = t.crm_webhook.as_ref().map(|w| CrmSettings {
        url: &w.url,
        outbound_key: Masked::of(&w.outbound_key),
        signing_secret: w.signing_secret.as_ref().map(Masked::of),
    });
    let dlt_store = |e: c2c_dlt::DltError| {
        tracing::error!(error = %e, "DLT store failure");
        ApiError::unavailable("store_unavailable", "the DLT store is unavailable", 1)
    };
    let current = app.dlt().current(&t.id).await.map_err(dlt_store)?;
    let audit = app.dlt().audit(&t.id).await.map_err(dlt_store)?;
    let secs = |d: std::time::Duration| d.as_secs();
    let base_url = g.public_url.trim_end_matches('/');
    Ok(JsonResponse::json(
        StatusCode::OK,
        &ConsoleTenant {
            tenant: TenantInfo {
                id: &t.id,
                name: &t.name,
                region: &t.region,
                allowed_origins: &t.allowed_origins,
            },
            trunks,
            inbound_numbers: t
                .inbound
                .numbers
                .iter()
                .map(|n| ConsoleInboundNumber {
                    did: &n.did,
                    trunk: &n.trunk,
                })
                .collect(),
            settings: ConsoleSettings {
                livekit,
                crm_webhook,
                answer_detection: g.answer_detection.as_str(),
                calls: CallTimings {
                    ring_timeout_seconds: secs(g.calls.ring_timeout),
                    agent_drop_grace_seconds: secs(g.calls.agent_drop_grace),
                    max_duration_seconds: secs(g.calls.max_duration),
                    unconnected_expiry_seconds: secs(g.calls.unconnected_expiry),
                    poll_interval_ms: g.calls.poll_interval.as_millis() as u64,
                },
                limits: LimitSettings {
                    requests_per_second: t.limits.requests_per_second,
                    max_concurrent_calls: t.limits.max_concurrent_calls,
                },
            },
            dlt: ConsoleDlt {
                principal_entity_id: &t.dlt.principal_entity_id,
                outbound_enabled: app.dlt().outbound_enabled(t),
                source: if current.is_some() {
                    FlagSource::Owner
                } else {
                    FlagSource::Policy
                },
                policy_initial: t.dlt.outbound_enabled,
                audit,
                rules: dlt_rules_view(app, &g.dlt, t),
            },
            guide: ConsoleGuide {
                base_url: base_url.to_string(),
                ws_url: LiveKitPool::ws_url(&g.public_url),
                client_js: format!("{base_url}/js/c2c-client.js"),
            },
        },
    ))
}

/// `POST /api/c2c/console/tenants/{tenant}/normalize`: Test normalize for any tenant
/// the caller may see (the owner key has no tenant of its own).
pub fn normalize(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let id = {
        let policy = app.policy().get();
        tenant_param(&policy, ctx)?.id.clone()
    };
    let n = super::normalize::for_tenant(app, &id, body)?;
    Ok(JsonResponse::json(StatusCode::OK, &n))
}

/// `POST /api/c2c/console/tenants/{tenant}/livekit-validate`: a live, read-only
/// ListRooms with the tenant's effective LiveKit credentials.
pub async fn livekit_validate(
    app: &App,
    ctx: &RequestCtx,
    body: &Bytes,
) -> Result<JsonResponse, ApiError> {
    let (tenant, client) = {
        let policy = app.policy().get();
        let t = tenant_param(&policy, ctx)?;
        (
            t.id.clone(),
            app.livekit().client_for_tenant(&policy, &t.id),
        )
    };
    // The body carries nothing yet, but it must be the JSON object the document promises.
    let _: serde_json::Map<String, serde_json::Value> = parse_json(body)?;
    let check = |ok, rooms, latency_ms, error: Option<&str>| LiveKitCheck {
        tenant: tenant.clone(),
        ok,
        rooms,
        latency_ms,
        error: error.map(str::to_string),
    };
    let Some(client) = client else {
        let body = check(
            false,
            None,
            None,
            Some("no LiveKit project is configured for this tenant"),
        );
        return Ok(JsonResponse::json(StatusCode::OK, &body));
    };
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(VALIDATE_TIMEOUT, client.list_rooms()).await;
    let ms = Some(started.elapsed().as_millis() as u64);
    let body = match result {
        Ok(Ok(rooms)) => check(true, Some(rooms.len()), ms, None),
        Ok(Err(e)) => check(false, None, ms, Some(&e.to_string())),
        Err(_) => check(false, None, ms, Some("LiveKit did not answer within 5 s")),
    };
    Ok(JsonResponse::json(StatusCode::OK, &body))
}

/// `GET /api/c2c/console/calls/{call_id}`: the sandbox's view of one call: its public
/// state, what hit the trunk (the internal dialed string), and the exact CRM webhook the
/// outcome produces (`null` until the call ended).
pub async fn call(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let rec = crate::api::calls::stored_call(app, ctx.param(0).unwrap_or_default()).await?;
    // Another tenant's call is as unknown as a missing one.
    may_see(ctx, &rec.tenant).map_err(|_| errors::unknown_call())?;
    let policy = app.policy().get();
    let inbound = rec.is_inbound();
    let trunk = policy
        .tenant(&rec.tenant)
        .filter(|_| !inbound)
        .and_then(|t| {
            DialPlan::new(t)
                .preview(
                    &rec.trunk_label,
                    &rec.customer_number,
                    Some(&rec.phone_from),
                )
                .ok()
        });
    let hook = policy
        .tenant(&rec.tenant)
        .and_then(|t| t.crm_webhook.as_ref());
    let webhook = rec.webhook_payload().map(|p| WebhookPreview {
        url: hook.map(|h| h.url.as_str()),
        headers: WebhookHeaders {
            content_type: "application/json",
            api_key: hook.map(|h| Masked::of(&h.outbound_key)),
            signature: hook
                .and_then(|h| h.signing_secret.as_ref())
                .map(|_| "v1,<HMAC-SHA256 of id.timestamp.body>"),
        },
        // A string, not an object: the preview must show the contract's field order
        // exactly as the CRM receives it (with `media` after it for a tenant that opted
        // in to the extended payload).
        body_json: {
            let contract = serde_json::to_string(&p).unwrap_or_default();
            match hook.filter(|h| h.media_in_payload) {
                Some(_) => super::contract::extended_webhook_body(&contract, rec.media.as_ref())
                    .unwrap_or(contract),
                None => contract,
            }
        },
    });
    Ok(JsonResponse::json(
        StatusCode::OK,
        &ConsoleCall {
            call: view(&rec),
            tenant: &rec.tenant,
            room: &rec.room,
            trunk: trunk.as_ref().map(|n| TrunkDial {
                label: &n.trunk,
                livekit_trunk_id: &n.livekit_trunk_id,
                dialed: &n.dialed,
                caller_id: &n.caller_id,
                customer_number: &n.customer_number,
                media: policy
                    .tenant(&rec.tenant)
                    .and_then(|t| t.trunks.iter().find(|tr| tr.label == n.trunk))
                    .map_or("direct", |tr| tr.media.as_str()),
            }),
            sip_disconnect_code: rec.sip_disconnect_code,
            direction: rec.direction,
            did: inbound.then_some(rec.phone_from.as_str()),
            offers: &rec.offers,
            lead_id: rec.lead_id.as_deref(),
            webhook,
        },
    ))
}

/// The tenant's DLT rules, lists and this node's latest refusals.
fn dlt_rules_view(
    app: &App,
    rules: &c2c_tenancy::DltRules,
    t: &c2c_tenancy::Tenant,
) -> ConsoleDltRules {
    let list = |kind: c2c_dlt::ListKind| {
        app.dlt().lists().get(&t.id, kind).map(|l| ConsoleDltList {
            numbers: l.set.as_ref().map(|s| s.len()),
            modified_ms: l.set.as_ref().map(|_| l.modified_ms),
            loaded_at_ms: l.set.as_ref().map(|_| l.loaded_at_ms),
            error: l.error.clone(),
        })
    };
    ConsoleDltRules {
        entity_class: t.dlt.entity_class,
        registered_numbers: t.dlt.registered_numbers.clone(),
        calling_hours: t
            .dlt
            .calling_hours
            .unwrap_or(rules.calling_hours)
            .to_string(),
        calling_hours_source: if t.dlt.calling_hours.is_some() {
            "tenant"
        } else {
            "platform"
        },
        promotional_series: rules.series.promotional.clone(),
        government_series: rules.series.government.clone(),
        financial_series: rules.series.financial.clone(),
        dnd: t
            .dlt
            .dnd_file
            .as_ref()
            .and_then(|_| list(c2c_dlt::ListKind::Dnd)),
        consent: t
            .dlt
            .consent_file
            .as_ref()
            .and_then(|_| list(c2c_dlt::ListKind::Consent)),
        recent_refusals: app
            .refusals()
            .recent(&t.id)
            .into_iter()
            .map(|r| ConsoleRefusal {
                at_ms: r.at_ms,
                rule: r.rule,
                category: r.category,
                trunk: r.trunk,
                caller_id: r.caller_id,
                number: c2c_dialplan::mask(&r.number),
                at: r.at,
                message: r.message,
            })
            .collect(),
    }
}
