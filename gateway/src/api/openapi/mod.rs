//! The OpenAPI 3.1 document of the gateway's HTTP API, served at `GET /openapi.json`.
//!
//! Built with `utoipa` from the types the handlers serialise (so schemas cannot drift
//! from the wire). Its paths are the route table's ([`crate::routes::ENDPOINTS`]): each
//! entry names its method, path and [`OperationDoc`] (from [`paths`] and
//! [`console_paths`]: parameters, bodies, handler errors), and the errors the plugin
//! chain produces for a whole class of routes are added from the entry's route, so they
//! follow the chain's rules. The document is built and serialised once per process.

pub(crate) mod agent_paths;
pub(crate) mod billing_paths;
pub(crate) mod console_paths;
pub(crate) mod paths;
mod spec;
pub(crate) mod tenant_paths;

pub(crate) use spec::OperationDoc;

use std::sync::OnceLock;

use bytes::Bytes;
use c2c_plugin_api::{Access, JsonResponse, RouteInfo};
use http::{Method, StatusCode};
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, HttpMethod, OpenApi as Doc, PathItem, PathsBuilder, Ref, RefOr,
    Required, Response, ResponseBuilder,
};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "c2c-gateway",
        description = "Multi-tenant click-to-call gateway for CRMs. The `contract` operations \
            are the Click2Call integration guide: your backend calls `/click2call` with its \
            `X-api-key`; the agent's browser calls the `/api/c2c/calls/{call_id}/...` \
            endpoints keyed by the opaque `call_id` (no secret); the outcome arrives at your \
            CRM as the `crmCallOutcome` webhook (schema `CrmWebhookPayload`). Every error \
            is `{\"error\": {\"code\", \"message\"}}` (schema `ErrorBody`), including the \
            `400 bad_request` (`405` for `CONNECT`) for a request that is not valid HTTP \
            (a malformed request line or header field, broken body framing) on any path."
    ),
    components(schemas(
        c2c_callstate::CrmWebhookPayload,
        c2c_callstate::InboundWebhookPayload,
        crate::calls::low_balance::LowBalanceWebhook,
        c2c_plugin_api::ErrorBody
    )),
    modifiers(&Security, &RoutePaths, &CrmWebhook),
    tags(
        (name = "contract", description = "Click2Call: your backend starts a call, the agent's browser drives it."),
        (name = "reports", description = "Analytics and the call log (tenant key: own tenant; owner key: any)."),
        (name = "owner", description = "Platform owner: tenant provisioning, DLT outbound-enable toggle, call records, store backup."),
        (name = "billing", description = "Managed tenants' wallets in paise: balance, statement, the owner's top-ups and adjustments."),
        (name = "webhooks", description = "LiveKit's webhooks in; CRM webhook replay."),
        (name = "tools", description = "Console helpers."),
        (name = "inbound", description = "Inbound calls: an agent takes a call offered over the presence channel."),
        (name = "agents", description = "Agents: the registry, presence tokens and the presence WebSocket (a tenant's `calls` or `console` key, own tenant)."),
        (name = "console", description = "The web console's API (a tenant's `console` key: own tenant; owner key: any)."),
        (name = "assets", description = "Browser assets embedded in the binary: the agent client and the web console."),
        (name = "service", description = "Probes, metrics and this document."),
        (name = "livekit", description = "LiveKit traffic proxied by the edge."),
    )
)]
struct ApiDoc;

/// The serialised document, built on first use.
pub fn document() -> Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| {
        // Serialising utoipa's own model cannot fail (string keys, no custom Serialize).
        Bytes::from(serde_json::to_vec(&ApiDoc::openapi()).unwrap_or_default())
    })
    .clone()
}

/// `GET /openapi.json`.
pub fn serve() -> JsonResponse {
    JsonResponse::raw(StatusCode::OK, "application/json", document())
}

/// The `X-api-key` schemes (one header, one scheme per key scope, so an operation's
/// `security` can be checked against its route's access rule) and the LiveKit token.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Doc) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "tenant_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-api-key",
                "A tenant's inbound key (scope `calls`). Server to server only: never ship it \
                 to a browser.",
            ))),
        );
        c.add_security_scheme(
            "console_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-api-key",
                "A tenant's console key (scope `console`): a person signed in to the web \
                 console, for that tenant only. Also places sandbox calls and reads reports.",
            ))),
        );
        c.add_security_scheme(
            "owner_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-api-key",
                "A platform owner key (scope `owner`).",
            ))),
        );
        c.add_security_scheme(
            "livekit_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A LiveKit access token signed by a project the gateway knows.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The paths: one operation per route table entry, with the errors the plugin chain
/// answers for every route of its kind.
struct RoutePaths;

/// One error response in the shared shape; `retry` adds the `Retry-After` header.
fn error_response(description: &str, retry: bool) -> Response {
    let mut r = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if retry {
        r = r.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    r.build()
}

/// The responses the chain adds for a route: `(status, description, Retry-After)`.
fn chain_errors(method: &Method, route: &RouteInfo) -> Vec<(u16, &'static str, bool)> {
    let mut out = Vec::new();
    match route.access {
        Access::Key(_) | Access::AnyKey(_) => {
            out.push((
                401,
                "`unauthorized`: the `X-api-key` header is missing, not a valid key, or sent \
                 more than once.",
                false,
            ));
            out.push((
                403,
                "`forbidden`: the key lacks the scope this endpoint requires.",
                false,
            ));
            out.push((
                429,
                "`rate_limited`: the tenant's request rate is over its limit.",
                true,
            ));
        }
        // Probes and scrapes are exempt from rate limits (see chain/limits.rs).
        Access::Public if matches!(route.name, "livez" | "readyz" | "metrics") => {}
        Access::Public => out.push((
            429,
            "`rate_limited`: this address's request rate is over the limit.",
            true,
        )),
    }
    if routes::is_browser_route(route) && *method != Method::OPTIONS {
        out.push((
            401,
            "`unauthorized`: `X-api-key` sent more than once (no key is needed here; a \
             server that sends one sends exactly one).",
            false,
        ));
    }
    if route.dials {
        out.push((
            403,
            "`dlt_pending`: the tenant's outbound calling is disabled until its DLT \
             Principal Entity binding is verified.",
            false,
        ));
    }
    let with_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if route.local && with_body {
        out.push((413, "`body_too_large`: the body exceeds 64 KiB.", false));
    }
    if routes::uses_call_store(route) {
        out.push((
            503,
            "`starting`: the gateway is still opening its call store (after an upgrade it \
             may rebuild its tallies); retry after `Retry-After`.",
            true,
        ));
    }
    if route.json_body && with_body {
        out.push((
            415,
            "`unsupported_media_type`: send one `Content-Type: application/json`, in UTF-8 \
             (a `charset` other than `utf-8` is refused).",
            false,
        ));
        out.push((
            400,
            "`invalid_json`: the body is not valid JSON for this operation (`message` names \
             the field), or something other than whitespace follows the JSON value.",
            false,
        ));
    }
    if with_body {
        // Proxied (twirp) bodies too: Pingora reads them on the way to LiveKit.
        out.push((
            400,
            "`bad_request`: the body's framing is broken (malformed chunked encoding, or \
             fewer bytes than its `Content-Length` before the client stopped sending).",
            false,
        ));
    }
    if route.local && with_body && !route.json_body {
        // The body is read as UTF-8 whatever its type (sendBeacon sends text/plain).
        out.push((
            415,
            "`unsupported_media_type`: the body is declared in a charset other than UTF-8.",
            false,
        ));
    }
    out
}

fn http_method(method: &Method) -> Option<HttpMethod> {
    match *method {
        Method::GET => Some(HttpMethod::Get),
        Method::POST => Some(HttpMethod::Post),
        Method::OPTIONS => Some(HttpMethod::Options),
        Method::PUT => Some(HttpMethod::Put),
        Method::DELETE => Some(HttpMethod::Delete),
        Method::PATCH => Some(HttpMethod::Patch),
        _ => None,
    }
}

impl Modify for RoutePaths {
    fn modify(&self, doc: &mut Doc) {
        let mut schemas = Vec::new();
        for e in routes::ENDPOINTS.iter() {
            let Some(method) = http_method(&e.method) else {
                continue; // no such route: the tests name any undocumented one
            };
            let mut op = e.doc.build(&mut schemas);
            for (status, text, retry) in chain_errors(&e.method, &e.route) {
                let key = status.to_string();
                match op.responses.responses.get_mut(&key) {
                    // The handler documented this status too: one response, both reasons.
                    Some(RefOr::T(existing)) => {
                        existing.description = format!("{} {text}", existing.description);
                    }
                    _ => {
                        op.responses
                            .responses
                            .insert(key, RefOr::T(error_response(text, retry)));
                    }
                }
            }
            doc.paths.add_path_operation(e.path, vec![method], op);
        }
        let components = doc.components.get_or_insert_with(Default::default);
        components.schemas.extend(schemas);
    }
}

/// The CRM webhook as an OpenAPI 3.1 webhook: what the gateway POSTs to a tenant's CRM.
struct CrmWebhook;

impl Modify for CrmWebhook {
    fn modify(&self, doc: &mut Doc) {
        let header = |name: &str, description: &str, required: bool| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(if required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        };
        let op = OperationBuilder::new()
            .operation_id(Some("crmCallOutcome"))
            .summary(Some("The call outcome, POSTed to your CRM webhook URL"))
            .description(Some(
                "Sent once per call on its terminal outcome (ANSWERED, NOT_ANSWERED, FAILED), \
                 retried until your endpoint answers 2xx, even if the agent's tab closed. \
                 `phone_to` is always the clean 10-digit number. Flip the agent \
                 BUSY -> AVAILABLE when it arrives. Verify `X-api-key` (your outbound key).",
            ))
            .parameter(header("X-api-key", "Your outbound key.", true))
            .parameter(header(
                "webhook-id",
                "Stable per event: de-duplicate on it (replays keep it).",
                true,
            ))
            .parameter(header("webhook-timestamp", "Unix seconds.", true))
            .parameter(header(
                "webhook-signature",
                "`v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\">` when a signing \
                 secret is configured (Standard Webhooks).",
                false,
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("CrmWebhookPayload")))
                            .build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ))
            .response(
                "2XX",
                ResponseBuilder::new().description("Delivered; not sent again."),
            )
            .response(
                "410",
                ResponseBuilder::new()
                    .description("Gone: the gateway stops delivering to this endpoint."),
            )
            .response(
                "default",
                ResponseBuilder::new()
                    .description("Retried with backoff (`Retry-After` honoured on 429/503)."),
            )
            .build();
        // Inbound calls reach the same endpoint with their own body (`direction`
        // tells them apart); the outbound body stays exactly the integration guide's.
        let mut inbound = op.clone();
        inbound.operation_id = Some("crmInboundCallOutcome".into());
        inbound.summary = Some("An inbound call's outcome, POSTed to your CRM webhook URL".into());
        inbound.description = Some(
            "Sent once per inbound call (a customer called one of your numbers) on its \
             terminal outcome: ANSWERED (`agent_id` is who took it) or MISSED. `phone_from` \
             is the caller, `phone_to` your number, `lead_id` the lead your lookup returned. \
             Same headers, signature and retries as the outbound webhook."
                .into(),
        );
        inbound.request_body = Some(RefOr::T(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("InboundWebhookPayload")))
                        .build(),
                )
                .required(Some(Required::True))
                .build(),
        ));
        // Opt-in (`[crm_webhook] low_balance_webhook = true`): the same endpoint, its own
        // body (`event` tells it apart: call outcomes have none).
        let mut low = inbound.clone();
        low.operation_id = Some("crmWalletLowBalance".into());
        low.summary = Some("A managed tenant's wallet ran low (opt-in)".into());
        low.description = Some(
            "Sent when the wallet's available balance (balance minus the holds of calls in \
             progress) falls below `billing.low_balance_paise`, once per crossing, only to \
             CRMs whose tenant file sets `low_balance_webhook = true` under `[crm_webhook]`. \
             Same headers, signature and retries as call outcomes."
                .into(),
        );
        low.request_body = Some(RefOr::T(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("LowBalanceWebhook")))
                        .build(),
                )
                .required(Some(Required::True))
                .build(),
        ));
        // Opt-in (`[crm_webhook] media_in_payload = true`): the contract's body, then
        // `media` (`calls::media_payload`).
        let mut with_media = op.clone();
        with_media.operation_id = Some("crmCallOutcomeWithMedia".into());
        with_media.summary =
            Some("A call's outcome with the media the SIP edge measured (opt-in)".into());
        with_media.description = Some(
            "Sent instead of the plain outcome only to CRMs whose tenant file sets \
             `media_in_payload = true` under `[crm_webhook]`: the same fields in the same \
             order, then `media`, the object `GET /api/c2c/calls/{call_id}` shows for a \
             call on an anchored trunk (`media = \"anchor\"`), or null for a call the SIP \
             edge did not anchor or whose report did not come within 5 s of the end. Same \
             headers, signature and retries."
                .into(),
        );
        with_media.request_body = Some(RefOr::T(
            RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(
                            utoipa::openapi::schema::AllOfBuilder::new()
                                .item(Ref::from_schema_name("CrmWebhookPayload"))
                                .item(
                                    ObjectBuilder::new()
                                        .property(
                                            "media",
                                            utoipa::openapi::schema::OneOfBuilder::new()
                                                .item(Ref::from_schema_name("MediaView"))
                                                .item(ObjectBuilder::new().schema_type(Type::Null)),
                                        )
                                        .required("media"),
                                ),
                        ))
                        .build(),
                )
                .required(Some(Required::True))
                .build(),
        ));
        doc.webhooks = Some(
            PathsBuilder::new()
                .path("crmCallOutcome", PathItem::new(HttpMethod::Post, op))
                .path(
                    "crmCallOutcomeWithMedia",
                    PathItem::new(HttpMethod::Post, with_media),
                )
                .path(
                    "crmInboundCallOutcome",
                    PathItem::new(HttpMethod::Post, inbound),
                )
                .path("crmWalletLowBalance", PathItem::new(HttpMethod::Post, low))
                .build(),
        );
    }
}

#[cfg(test)]
mod tests;
