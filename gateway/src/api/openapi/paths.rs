//! One `#[utoipa::path]` per operation: the handler-specific parts of each operation
//! (parameters, bodies, success and handler errors). The errors the plugin chain adds
//! to every route of a kind (401/403 for keys, 415/400/413 for JSON bodies, 429 rate
//! limits, 403 `dlt_pending` for dialling routes) are added from the route table by
//! [`super::ChainErrors`], so they cannot be forgotten here.
//!
//! The functions are never called: they only carry the attributes (utoipa documents
//! functions), which is why dead code is allowed in this module.
#![allow(dead_code)]

use c2c_plugin_api::ErrorBody;

use crate::api::contract::{
    CallView, Click2CallRequest, Click2CallResponse, ConnectResponse, StatusReport,
};
use crate::api::livekit_webhook::WebhookAck;
use crate::api::normalize::{CrmNormalized, NormalizeRequest};
use crate::api::owner::{OutboundChanged, OutboundState, ToggleRequest};
use crate::api::replay::{ReplayRequest, ReplayResponse};
use crate::api::report_types::{AnalyticsReport, CallLogPage};
use crate::api::service::{Live, Ready};

#[utoipa::path(get, path = "/livez", tag = "service", operation_id = "livez",
    summary = "Liveness: the process is up",
    responses((status = 200, description = "Alive.", body = Live)))]
fn livez() {}

#[utoipa::path(get, path = "/readyz", tag = "service", operation_id = "readyz",
    summary = "Readiness: policy loaded, store open, LiveKit reachable",
    responses(
        (status = 200, description = "Ready to take calls.", body = Ready),
        (status = 503, description = "`not_ready`: the reason is in `message`.", body = ErrorBody),
    ))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, description = "Metrics text.", content_type = "text/plain", body = String)))]
fn metrics() {}

#[utoipa::path(get, path = "/openapi.json", tag = "service", operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI document of this API.", body = Object)))]
fn openapi() {}

#[utoipa::path(post, path = "/api/c2c/click2call", tag = "contract", operation_id = "click2call",
    summary = "Start a call (your backend)",
    description = "Creates the room and mints the agent token; does not dial yet. Send the \
        customer number as exactly 10 digits; no `agen_number`, no `trunk_id` (the gateway \
        picks the trunk; legacy fields are accepted and ignored). Server to server only: \
        the key must never reach a browser.",
    request_body(content = Click2CallRequest, content_type = "application/json"),
    security(("tenant_key" = []), ("console_key" = [])),
    responses(
        (status = 200, description = "Call created: hand `ws_url`, `token` and `call_id` to the agent's browser.", body = Click2CallResponse),
        (status = 409, description = "`no_trunk`: the tenant has no enabled trunk.", body = ErrorBody),
        (status = 422, description = "`invalid_field`, `invalid_number`, `invalid_did`: a field is empty, too long or not a valid number.", body = ErrorBody),
        (status = 429, description = "`concurrent_call_limit`: the tenant's calls in progress are at its limit.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "`livekit_unavailable`: nothing was created; retry shortly. `store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn click2call() {}

#[utoipa::path(post, path = "/api/c2c/calls/{call_id}/connect", tag = "contract", operation_id = "connect",
    summary = "Dial the customer (agent browser, after joining and publishing the mic)",
    description = "Browser endpoint: keyed by the opaque `call_id`, no secret. Dials the \
        customer into the room and starts answer detection. Call it only after the room is \
        connected and the mic published: the gateway looks at the room first and dials only \
        when the agent's participant (the `agent_id` of `/click2call`) is there with a \
        published audio track (`409 agent_not_ready` otherwise; join, publish, retry). \
        `ringing` means the dial has started, never that anyone answered: the answer is \
        observed later (`GET /api/c2c/calls/{call_id}`, the CRM webhook).",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    responses(
        (status = 200, description = "Dialling.", body = ConnectResponse),
        (status = 403, description = "`dlt_pending`: the tenant's outbound calling was switched off since `/click2call`.", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown `call_id`.", body = ErrorBody),
        (status = 409, description = "`agent_not_ready`: the agent has not joined the room or publishes no microphone yet; nothing was dialled. `already_connected` / `call_ended`: the call was already connected or has ended; `no_trunk` when its trunk is gone.", body = ErrorBody),
        (status = 422, description = "The stored number no longer passes the tenant's dial plan.", body = ErrorBody),
        (status = 503, description = "`livekit_unavailable`: LiveKit could not be asked whether the agent is ready (nothing dialled; retry), or the call could not be placed and has ended (the CRM webhook reports FAILED). `store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn connect() {}

#[utoipa::path(post, path = "/api/c2c/calls/{call_id}/hangup", tag = "contract", operation_id = "hangup",
    summary = "End the call (agent clicked, or the tab is closing via sendBeacon)",
    description = "Browser endpoint. Idempotent. Accepts any body and content type \
        (`navigator.sendBeacon`). Deletes the room, computes the duration and fires the CRM \
        webhook. Answers as soon as the hangup is stored: on a dialled call the gateway first \
        finds out, in the background, whether the customer's leg had already ended (the \
        snippet also posts `/hangup` when the customer drops), so the answer may still show \
        the call in its phase; it ends within about 3 s (poll `GET /api/c2c/calls/{call_id}` \
        or wait for the webhook). A call never dialled ends at once.",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    responses(
        (status = 200, description = "The hangup is stored; the call as it now stands (`ended` may still be false while its cause is worked out).", body = CallView),
        (status = 404, description = "`not_found`: unknown `call_id`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn hangup() {}

#[utoipa::path(post, path = "/api/c2c/calls/{call_id}/status", tag = "contract", operation_id = "report_status",
    summary = "Report what the browser saw (ANSWERED is the answer signal in webhook mode)",
    description = "Browser endpoint. Send `{\"status\": \"ANSWERED\"}` when the SIP \
        participant's `sip.callStatus` becomes `active`. Teardown stays backend-owned. The \
        body is read as JSON whatever its content type (keepalive fetch / sendBeacon).",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    request_body(content = StatusReport, content_type = "application/json"),
    responses(
        (status = 200, description = "The call as it now stands.", body = CallView),
        (status = 400, description = "`invalid_json`: the body is not a JSON object with a string `status`.", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown `call_id`.", body = ErrorBody),
        (status = 409, description = "The report conflicts with the call's state.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn report_status() {}

#[utoipa::path(get, path = "/api/c2c/calls/{call_id}", tag = "contract", operation_id = "get_call",
    summary = "Current call record (polling UIs)",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    responses(
        (status = 200, description = "The call.", body = CallView),
        (status = 404, description = "`not_found`: unknown `call_id`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn get_call() {}

#[utoipa::path(options, path = "/api/c2c/calls/{call_id}/connect", tag = "contract", operation_id = "preflight_connect",
    summary = "CORS pre-flight",
    description = "Answered for a known `call_id`; CORS headers are added only for the call's tenant's `allowed_origins`.",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    responses(
        (status = 204, description = "Pre-flight answered."),
        (status = 404, description = "`not_found`: unknown `call_id`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn preflight_connect() {}

#[utoipa::path(options, path = "/api/c2c/calls/{call_id}/hangup", tag = "contract", operation_id = "preflight_hangup",
    summary = "CORS pre-flight",
    description = "Answered for a known `call_id`; CORS headers are added only for the call's tenant's `allowed_origins`.",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    responses(
        (status = 204, description = "Pre-flight answered."),
        (status = 404, description = "`not_found`: unknown `call_id`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn preflight_hangup() {}

#[utoipa::path(options, path = "/api/c2c/calls/{call_id}/status", tag = "contract", operation_id = "preflight_status",
    summary = "CORS pre-flight",
    description = "Answered for a known `call_id`; CORS headers are added only for the call's tenant's `allowed_origins`.",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    responses(
        (status = 204, description = "Pre-flight answered."),
        (status = 404, description = "`not_found`: unknown `call_id`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn preflight_status() {}

#[utoipa::path(options, path = "/api/c2c/calls/{call_id}", tag = "contract", operation_id = "preflight_get",
    summary = "CORS pre-flight",
    description = "Answered for a known `call_id`; CORS headers are added only for the call's tenant's `allowed_origins`.",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    responses(
        (status = 204, description = "Pre-flight answered."),
        (status = 404, description = "`not_found`: unknown `call_id`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn preflight_get() {}

#[utoipa::path(get, path = "/api/c2c/analytics", tag = "reports", operation_id = "analytics",
    summary = "Outcomes, failures by SIP code and per-day counts",
    description = "A tenant key reads its own tenant; the owner key names one with `tenant=`. \
        The range is inclusive, in UTC days, at most 92 days; default: the last 7 days.",
    params(
        ("tenant" = Option<String>, Query, description = "Required with the owner key; a tenant key may only name its own tenant."),
        ("from" = Option<String>, Query, format = Date, description = "First day (`YYYY-MM-DD`, UTC); default `to` minus 6 days."),
        ("to" = Option<String>, Query, format = Date, description = "Last day (`YYYY-MM-DD`, UTC); default today."),
        ("trunk" = Option<String>, Query, description = "Only calls on this trunk label."),
    ),
    security(("tenant_key" = []), ("console_key" = []), ("owner_key" = [])),
    responses(
        (status = 200, description = "The report.", body = AnalyticsReport),
        (status = 403, description = "`forbidden`: a tenant key named another tenant.", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown tenant.", body = ErrorBody),
        (status = 422, description = "`missing_tenant`, `invalid_date`, `invalid_range`, `range_too_large`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn analytics() {}

#[utoipa::path(get, path = "/api/c2c/calls", tag = "reports", operation_id = "call_log",
    summary = "A tenant's call log, oldest first, paginated",
    description = "A tenant key reads its own tenant; the owner key names one with `tenant=`. \
        The `status` filter applies within a page, so a page may hold fewer than `limit` \
        calls; follow `next_cursor` until it is null.",
    params(
        ("tenant" = Option<String>, Query, description = "Required with the owner key; a tenant key may only name its own tenant."),
        ("from" = Option<String>, Query, format = Date, description = "First day (`YYYY-MM-DD`, UTC); default `to` minus 6 days."),
        ("to" = Option<String>, Query, format = Date, description = "Last day (`YYYY-MM-DD`, UTC); default today."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Calls per page (default 50)."),
        ("status" = Option<String>, Query, description = "Only calls in this phase (`INITIATED`, `DIALING`, `RINGING`, `ACTIVE`, `ENDED`) or with this outcome (`ANSWERED`, `NOT_ANSWERED`, `FAILED`); case-insensitive."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
    ),
    security(("tenant_key" = []), ("console_key" = []), ("owner_key" = [])),
    responses(
        (status = 200, description = "One page.", body = CallLogPage),
        (status = 403, description = "`forbidden`: a tenant key named another tenant.", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown tenant.", body = ErrorBody),
        (status = 422, description = "`missing_tenant`, `invalid_date`, `invalid_range`, `range_too_large`, `invalid_limit`, `invalid_status`, `invalid_cursor`.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn call_log() {}

#[utoipa::path(post, path = "/api/c2c/normalize", tag = "tools", operation_id = "normalize",
    summary = "Test normalize: run a number through the tenant's dial plan",
    description = "The clean number, its E.164 form and the caller ID a call would present. \
        The internal dial string and trunk are the gateway's and never shown to a CRM (the \
        console's Test normalize shows them to console and owner keys).",
    request_body(content = NormalizeRequest, content_type = "application/json"),
    security(("tenant_key" = [])),
    responses(
        (status = 200, description = "What the customer and the CRM will see of this number.", body = CrmNormalized),
        (status = 409, description = "`no_trunk`: the tenant has no enabled trunk.", body = ErrorBody),
        (status = 422, description = "`invalid_number`, `invalid_did`, `unknown_trunk`.", body = ErrorBody),
    ))]
fn normalize() {}

#[utoipa::path(get, path = "/api/telephony/config/owner/{tenant}/outbound-enable", tag = "owner", operation_id = "owner_outbound_get",
    summary = "A tenant's DLT outbound-enable flag and its audit trail",
    params(("tenant" = String, Path, description = "Tenant id.", example = "acme")),
    security(("owner_key" = [])),
    responses(
        (status = 200, description = "The flag.", body = OutboundState),
        (status = 404, description = "`not_found`: unknown tenant.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn owner_outbound_get() {}

#[utoipa::path(post, path = "/api/telephony/config/owner/{tenant}/outbound-enable", tag = "owner", operation_id = "owner_outbound_set",
    summary = "Flip a tenant's DLT outbound-enable flag (after verifying its Principal Entity binding)",
    description = "While the flag is off, `/click2call` and `/connect` answer 403 `dlt_pending` \
        and the SIP edge refuses the tenant's calls. Every change is audited.",
    params(("tenant" = String, Path, description = "Tenant id.", example = "acme")),
    request_body(content = ToggleRequest, content_type = "application/json"),
    security(("owner_key" = [])),
    responses(
        (status = 200, description = "Changed (or confirmed).", body = OutboundChanged),
        (status = 404, description = "`not_found`: unknown tenant.", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `verified_by` empty, or a text over 500 bytes.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn owner_outbound_set() {}

#[utoipa::path(get, path = "/api/c2c/owner/calls/{call_id}", tag = "owner", operation_id = "owner_call_get",
    summary = "One call's stored record (numbers masked) and its CRM webhook delivery state",
    description = "What `c2c-gateway calls show --gateway` prints: the record as stored and \
        the state of the call's CRM webhook in the durable outbox.",
    params(("call_id" = String, Path, description = "The call id from `/click2call`.",
        example = "c2c_0123456789abcdef0123456789abcdef")),
    security(("owner_key" = [])),
    responses(
        (status = 200, description = "The call.", body = crate::calls::detail::CallDetail),
        (status = 404, description = "`not_found`: unknown call_id.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn owner_call_get() {}

#[utoipa::path(get, path = "/api/c2c/owner/backup", tag = "owner", operation_id = "owner_backup",
    summary = "A consistent copy of the whole store, streamed",
    description = "What `c2c-gateway db backup --gateway` saves and `c2c-gateway db restore` \
        loads: every tree of the gateway's store as it was at one moment, taken while calls \
        go on (changes made during the copy are recorded and follow it). Binary, streamed \
        with chunked transfer coding: `C2CBAK01`, framed trees and entries, then a trailer \
        with a frame count and a SHA-256 of the stream. A stream that ends without its \
        trailer is incomplete (the gateway stopped or the connection broke) and must not be \
        used; one that ends with an `X` frame carries the reason. One backup at a time.",
    security(("owner_key" = [])),
    responses(
        (status = 200, description = "The backup stream (binary).",
            content_type = "application/vnd.c2c-gateway.backup", body = String),
        (status = 409, description = "`backup_in_progress`: another backup is running.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn owner_backup() {}

#[utoipa::path(post, path = "/api/c2c/webhooks/replay", tag = "webhooks", operation_id = "webhooks_replay",
    summary = "Send a tenant's CRM webhooks again",
    description = "Re-queues the CRM webhooks created since `since`, the oldest `max` of them \
        (default 10000); each is delivered again with its original `webhook-id`, so the CRM \
        can de-duplicate. The answer says how many matched: `capped` is true when `max` \
        left some out.",
    request_body(content = ReplayRequest, content_type = "application/json"),
    security(("owner_key" = [])),
    responses(
        (status = 200, description = "Re-queued.", body = ReplayResponse),
        (status = 404, description = "`not_found`: unknown tenant.", body = ErrorBody),
        (status = 422, description = "`invalid_since`, or `invalid_max` (not 1..=100000).", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn webhooks_replay() {}

#[utoipa::path(post, path = "/webhooks/livekit", tag = "webhooks", operation_id = "livekit_webhook",
    summary = "LiveKit's signed webhooks (answer detection and teardown signals)",
    description = "Authenticated by its signature, not a key: `Authorization` carries a JWT \
        signed with the issuing LiveKit project's API secret whose `sha256` claim is the \
        SHA-256 of the raw body. Point LiveKit's webhook URL here.",
    params(("Authorization" = String, Header, description = "LiveKit's webhook JWT (no `Bearer ` prefix).")),
    request_body(content = Object, content_type = "application/webhook+json", description = "A LiveKit `WebhookEvent` (protojson)."),
    responses(
        (status = 200, description = "Accepted.", body = WebhookAck),
        (status = 401, description = "`invalid_signature`: missing, forged or expired signature; `unauthorized`: more than one `Authorization` header.", body = ErrorBody),
        (status = 409, description = "The event conflicts with the call's state.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn livekit_webhook() {}

#[utoipa::path(get, path = "/rtc", tag = "livekit", operation_id = "rtc",
    summary = "LiveKit signalling (WebSocket), proxied to the tenant's LiveKit region",
    description = "The agent browser's `ws_url`. The LiveKit access token (from \
        `/click2call`) is verified at the edge before any upstream is contacted; paths under \
        `/rtc/` (e.g. `/rtc/validate`) are proxied the same way.",
    params(("access_token" = Option<String>, Query, description = "The LiveKit access token (or send `Authorization: Bearer`).")),
    security(("livekit_token" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket (LiveKit's answer)."),
        (status = 401, description = "`invalid_token`: missing, forged or expired LiveKit token; `unauthorized`: the token sent more than once (two `Authorization` headers, two `access_token` parameters, or a parameter and a header that differ).", body = ErrorBody),
        (status = 502, description = "`livekit_unavailable`: no LiveKit upstream could be reached.", body = ErrorBody),
        (status = 503, description = "`livekit_unavailable` / `no_upstream`: no healthy upstream in the region or its fallbacks.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 504, description = "`livekit_unavailable`: the upstream timed out.", body = ErrorBody),
        (status = "default", description = "LiveKit's own answer, passed through."),
    ))]
fn rtc() {}

#[utoipa::path(post, path = "/twirp/{service_method}", tag = "livekit", operation_id = "twirp",
    summary = "LiveKit server API (Twirp), proxied for server SDKs pointed at the gateway",
    params(("service_method" = String, Path, description = "e.g. `livekit.RoomService/ListRooms` (the slash is part of the path).")),
    security(("livekit_token" = [])),
    responses(
        (status = 401, description = "`invalid_token`: missing, forged or expired LiveKit token; `unauthorized`: the token sent more than once (two `Authorization` headers, two `access_token` parameters, or a parameter and a header that differ).", body = ErrorBody),
        (status = 502, description = "`livekit_unavailable`: no LiveKit upstream could be reached.", body = ErrorBody),
        (status = 503, description = "`livekit_unavailable` / `no_upstream`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 504, description = "`livekit_unavailable`: the upstream timed out.", body = ErrorBody),
        (status = "default", description = "LiveKit's own Twirp answer, passed through."),
    ))]
fn twirp() {}
