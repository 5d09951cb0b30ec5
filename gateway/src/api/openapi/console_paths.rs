//! `#[utoipa::path]` operations of the web console's API and the browser assets (the
//! agent client script and the console's files), split from [`super::paths`] to keep
//! modules small. As there, the plugin chain's errors are added from the route table.
//!
//! The functions are never called: they only carry the attributes.
#![allow(dead_code)]

use c2c_dialplan::Normalized;
use c2c_plugin_api::ErrorBody;

use crate::api::console_types::{ConsoleCall, ConsoleSession, ConsoleTenant, LiveKitCheck};
use crate::api::normalize::NormalizeRequest;

#[utoipa::path(get, path = "/api/c2c/console/session", tag = "console", operation_id = "console_session",
    summary = "Who signed in to the console, and which tenants they may open",
    description = "The console's sign-in check. A tenant's `console` key sees its own tenant; \
        the owner key sees every tenant.",
    security(("console_key" = []), ("owner_key" = [])),
    responses((status = 200, description = "The session.", body = ConsoleSession)))]
fn console_session() {}

#[utoipa::path(get, path = "/api/c2c/console/tenants/{tenant}", tag = "console", operation_id = "console_tenant",
    summary = "A tenant's trunks, effective settings (secrets masked), DLT state and guide values",
    params(("tenant" = String, Path, description = "Tenant id; a `console` key may only name its own.", example = "acme")),
    security(("console_key" = []), ("owner_key" = [])),
    responses(
        (status = 200, description = "The tenant.", body = ConsoleTenant),
        (status = 403, description = "`forbidden`: a tenant key named another tenant.", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown tenant.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn console_tenant() {}

#[utoipa::path(post, path = "/api/c2c/console/tenants/{tenant}/normalize", tag = "console", operation_id = "console_normalize",
    summary = "Test normalize for a tenant the caller may see",
    description = "Like `POST /api/c2c/normalize`, for a named tenant (the owner key has none of its own).",
    params(("tenant" = String, Path, description = "Tenant id; a `console` key may only name its own.", example = "acme")),
    request_body(content = NormalizeRequest, content_type = "application/json"),
    security(("console_key" = []), ("owner_key" = [])),
    responses(
        (status = 200, description = "How a call to this number would be placed.", body = Normalized),
        (status = 403, description = "`forbidden`: a tenant key named another tenant.", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown tenant.", body = ErrorBody),
        (status = 409, description = "`no_trunk`: the tenant has no enabled trunk.", body = ErrorBody),
        (status = 422, description = "`invalid_number`, `invalid_did`, `unknown_trunk`.", body = ErrorBody),
    ))]
fn console_normalize() {}

#[utoipa::path(post, path = "/api/c2c/console/tenants/{tenant}/livekit-validate", tag = "console", operation_id = "console_livekit_validate",
    summary = "Check the tenant's effective LiveKit credentials (a live, read-only ListRooms)",
    description = "Always 200 once the tenant is known: `ok` is the verdict, `error` the reason. \
        LiveKit gets at most 5 s.",
    params(("tenant" = String, Path, description = "Tenant id; a `console` key may only name its own.", example = "acme")),
    request_body(content = Object, content_type = "application/json", description = "`{}` (no fields yet)."),
    security(("console_key" = []), ("owner_key" = [])),
    responses(
        (status = 200, description = "The verdict.", body = LiveKitCheck),
        (status = 403, description = "`forbidden`: a tenant key named another tenant.", body = ErrorBody),
        (status = 404, description = "`not_found`: unknown tenant.", body = ErrorBody),
    ))]
fn console_livekit_validate() {}

#[utoipa::path(get, path = "/api/c2c/console/calls/{call_id}", tag = "console", operation_id = "console_call",
    summary = "The sandbox's view of a call: state, the dialled string and the CRM webhook it produces",
    params(("call_id" = String, Path, description = "The `call_id` from `/click2call`.", example = "c2c_ab12cd34ab12cd34ab12cd34ab12cd34")),
    security(("console_key" = []), ("owner_key" = [])),
    responses(
        (status = 200, description = "The call.", body = ConsoleCall),
        (status = 404, description = "`not_found`: unknown `call_id`, or another tenant's call.", body = ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
fn console_call() {}

#[utoipa::path(get, path = "/js/c2c-client.js", tag = "assets", operation_id = "client_js",
    summary = "The agent client script (`window.C2C`, with `window.LivekitClient`)",
    description = "Embedded in the binary. Served with a strong `ETag` and `Cache-Control: \
        no-cache`, and `Cross-Origin-Resource-Policy: cross-origin` so agent UIs on CRM \
        origins can load it.",
    params(("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer (or `*`).")),
    responses(
        (status = 200, description = "The script.", content_type = "text/javascript", body = String,
            headers(("ETag" = String, description = "Strong validator of the bytes."))),
        (status = 304, description = "Not modified: `If-None-Match` matched the `ETag`.",
            headers(("ETag" = String, description = "Strong validator of the bytes."))),
    ))]
fn client_js() {}

#[utoipa::path(get, path = "/console", tag = "assets", operation_id = "console_page",
    summary = "The web console (HTML)",
    description = "Sign in with a tenant's `console` key or the owner key; the page keeps it in \
        sessionStorage and never embeds it. The page's `Content-Security-Policy` admits this \
        origin only.",
    params(("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer (or `*`).")),
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String,
            headers(("ETag" = String, description = "Strong validator of the bytes."))),
        (status = 304, description = "Not modified: `If-None-Match` matched the `ETag`.",
            headers(("ETag" = String, description = "Strong validator of the bytes."))),
    ))]
fn console_page() {}

#[utoipa::path(get, path = "/console/{file}", tag = "assets", operation_id = "console_file",
    summary = "The console's files: `index.html`, `app.js`, `style.css`",
    params(
        ("file" = String, Path, description = "`index.html`, `app.js` or `style.css`.", example = "app.js"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` from an earlier answer (or `*`)."),
    ),
    responses(
        (status = 200, description = "The file.",
            content(
                (String = "text/html"),
                (String = "text/javascript"),
                (String = "text/css"),
            ),
            headers(("ETag" = String, description = "Strong validator of the bytes."))),
        (status = 304, description = "Not modified: `If-None-Match` matched the `ETag`.",
            headers(("ETag" = String, description = "Strong validator of the bytes."))),
        (status = 404, description = "`not_found`: no such file.", body = ErrorBody),
    ))]
fn console_file() {}
