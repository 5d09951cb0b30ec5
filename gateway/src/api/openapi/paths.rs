//! What the document says of each operation: the handler-specific parts (parameters,
//! bodies, success and handler errors). The route table ([`crate::routes`]) names one of
//! these per method and path. The errors the plugin chain adds to every route of a kind
//! (401/403 for keys, 415/400/413 for JSON bodies, 429 rate limits, 403 `dlt_pending`
//! for dialling routes) are added from the route table by [`super::chain_errors`], so
//! they cannot be forgotten here.

use super::spec::{named, Body, Content, OperationDoc, Param, ParamSchema, Reply, Request};
use crate::api::contract::{
    CallView, Click2CallRequest, Click2CallResponse, ConnectResponse, StatusReport,
};
use crate::api::livekit_webhook::WebhookAck;
use crate::api::normalize::{CrmNormalized, NormalizeRequest};
use crate::api::owner::{OutboundChanged, OutboundState, ToggleRequest};
use crate::api::replay::{ReplayRequest, ReplayResponse};
use crate::api::report_types::{AnalyticsReport, CallLogPage};
use crate::api::service::{Live, Ready};

// Pieces several operations share.

pub(super) const CALL_ID: Param = Param::path(
    "call_id",
    "The `call_id` from `/click2call`.",
    "c2c_ab12cd34ab12cd34ab12cd34ab12cd34",
);
pub(super) const STORE_UNAVAILABLE: Reply = Reply::retry("503", "`store_unavailable`.");
pub(super) const UNKNOWN_CALL: Reply = Reply::error("404", "`not_found`: unknown `call_id`.");
pub(super) const UNKNOWN_TENANT: Reply = Reply::error("404", "`not_found`: unknown tenant.");
pub(super) const OTHER_TENANT: Reply =
    Reply::error("403", "`forbidden`: a tenant key named another tenant.");
pub(super) const NO_TRUNK: Reply =
    Reply::error("409", "`no_trunk`: the tenant has no enabled trunk.");
pub(super) const INVALID_NUMBER: Reply =
    Reply::error("422", "`invalid_number`, `invalid_did`, `unknown_trunk`.");
const OWNER_ONLY: &[&str] = &["owner_key"];
const REPORT_KEYS: &[&str] = &["tenant_key", "console_key", "owner_key"];
const TENANT_QUERY: Param = Param::query(
    "tenant",
    ParamSchema::Text,
    "Required with the owner key; a tenant key may only name its own tenant.",
);
const FROM_DAY: Param = Param::query(
    "from",
    ParamSchema::Date,
    "First day (`YYYY-MM-DD`, UTC); default `to` minus 6 days.",
);
const TO_DAY: Param = Param::query(
    "to",
    ParamSchema::Date,
    "Last day (`YYYY-MM-DD`, UTC); default today.",
);
const OWNER_TENANT: Param = Param::path("tenant", "Tenant id.", "acme");
const LIVEKIT_TOKEN_REFUSED: Reply = Reply::error(
    "401",
    "`invalid_token`: missing, forged or expired LiveKit token; `unauthorized`: the token \
     sent more than once (two `Authorization` headers, two `access_token` parameters, or a \
     parameter and a header that differ).",
);
const LIVEKIT_UNREACHABLE: Reply = Reply::error(
    "502",
    "`livekit_unavailable`: no LiveKit upstream could be reached.",
);
const LIVEKIT_TIMEOUT: Reply =
    Reply::error("504", "`livekit_unavailable`: the upstream timed out.");

pub const LIVEZ: OperationDoc = OperationDoc {
    id: "livez",
    tag: "service",
    summary: "Liveness: the process is up",
    responses: &[Reply::ok("Alive.", named::<Live>())],
    ..OperationDoc::EMPTY
};

pub const READYZ: OperationDoc = OperationDoc {
    id: "readyz",
    tag: "service",
    summary: "Readiness: policy loaded, store open, LiveKit reachable",
    responses: &[
        Reply::ok("Ready to take calls.", named::<Ready>()),
        Reply::error("503", "`not_ready`: the reason is in `message`."),
    ],
    ..OperationDoc::EMPTY
};

pub const METRICS: OperationDoc = OperationDoc {
    id: "metrics",
    tag: "service",
    summary: "Prometheus metrics (text exposition format)",
    responses: &[Reply::new(
        "200",
        "Metrics text.",
        Content::Typed("text/plain", Body::Text),
    )],
    ..OperationDoc::EMPTY
};

pub const OPENAPI: OperationDoc = OperationDoc {
    id: "openapi",
    tag: "service",
    summary: "This document",
    responses: &[Reply::ok("The OpenAPI document of this API.", Body::Object)],
    ..OperationDoc::EMPTY
};

pub const CLICK2CALL: OperationDoc = OperationDoc {
    id: "click2call",
    tag: "contract",
    summary: "Start a call (your backend)",
    description: "Creates the room and mints the agent token; does not dial yet. Send the \
        customer number as exactly 10 digits; no `agen_number`, no `trunk_id` (the gateway \
        picks the trunk; legacy fields are accepted and ignored). Server to server only: \
        the key must never reach a browser.",
    request: Some(Request::json(named::<Click2CallRequest>())),
    security: &["tenant_key", "console_key"],
    responses: &[
        Reply::ok(
            "Call created: hand `ws_url`, `token` and `call_id` to the agent's browser.",
            named::<Click2CallResponse>(),
        ),
        Reply::error(
            "409",
            "`no_trunk`: the tenant has no enabled trunk. `agent_busy`: the (registered) agent \
             is already on a call and the tenant does not allow concurrent calls.",
        ),
        Reply::error(
            "403",
            "`agent_not_registered`: the tenant requires registered agents \
             (`agents.require_registration`); `agent_disabled`: the agent's telephony is off. \
             DLT rules (docs/dlt.md): `dnd_blocked`: a promotional call to a number on the \
             tenant's do-not-disturb list without consent; `outside_calling_hours`: a \
             promotional call outside the tenant's window (IST; the message names the next \
             allowed time, `Retry-After` counts the seconds to it).",
        ),
        Reply::error(
            "422",
            "`invalid_field`, `invalid_number`, `invalid_did`: a field is empty, too long or \
             not a valid number. `invalid_call_category`: not promotional, service or \
             transactional. `caller_id_series`: the caller ID does not fit the call's DLT \
             category (promotional: 140 series; government and regulators: 1600; regulated \
             financial entities: 1601; other service calls: the tenant's registered numbers); \
             the message names the rule.",
        ),
        Reply::retry(
            "429",
            "`concurrent_call_limit`: the tenant's calls in progress are at its limit.",
        ),
        Reply::retry(
            "503",
            "`livekit_unavailable`: nothing was created; retry shortly. `store_unavailable`. \
             `dnd_unavailable`: a promotional call while the tenant's DND list cannot be read.",
        ),
    ],
    ..OperationDoc::EMPTY
};

pub const CONNECT: OperationDoc = OperationDoc {
    id: "connect",
    tag: "contract",
    summary: "Dial the customer (agent browser, after joining and publishing the mic)",
    description: "Browser endpoint: keyed by the opaque `call_id`, no secret. Dials the \
        customer into the room and starts answer detection. Call it only after the room is \
        connected and the mic published: the gateway looks at the room first and dials only \
        when the agent's participant (the `agent_id` of `/click2call`) is there with a \
        published audio track (`409 agent_not_ready` otherwise; join, publish, retry). \
        `ringing` means the dial has started, never that anyone answered: the answer is \
        observed later (`GET /api/c2c/calls/{call_id}`, the CRM webhook).",
    params: &[CALL_ID],
    responses: &[
        Reply::ok("Dialling.", named::<ConnectResponse>()),
        Reply::error(
            "403",
            "`dlt_pending`: the tenant's outbound calling was switched off since `/click2call`. \
             `dnd_blocked`, `outside_calling_hours`: the DLT rules checked again at the moment \
             of dialling (the window closed or the DND list changed since `/click2call`); \
             nothing was dialled.",
        ),
        UNKNOWN_CALL,
        Reply::error(
            "409",
            "`agent_not_ready`: the agent has not joined the room or publishes no microphone \
             yet; nothing was dialled. `already_connected` / `call_ended`: the call was already \
             connected or has ended; `no_trunk` when its trunk is gone; `agent_busy`: the \
             (registered) agent is on another call.",
        ),
        Reply::error(
            "422",
            "The stored number no longer passes the tenant's dial plan; `caller_id_series`: \
             the caller ID no longer fits the call's DLT category.",
        ),
        Reply::retry(
            "503",
            "`livekit_unavailable`: LiveKit could not be asked whether the agent is ready \
             (nothing dialled; retry), or the call could not be placed and has ended (the CRM \
             webhook reports FAILED). `store_unavailable`. `dnd_unavailable`: a promotional \
             call while the tenant's DND list cannot be read.",
        ),
    ],
    ..OperationDoc::EMPTY
};

pub const HANGUP: OperationDoc = OperationDoc {
    id: "hangup",
    tag: "contract",
    summary: "End the call (agent clicked, or the tab is closing via sendBeacon)",
    description: "Browser endpoint. Idempotent. Accepts any body and content type \
        (`navigator.sendBeacon`). Deletes the room, computes the duration and fires the CRM \
        webhook. Answers as soon as the hangup is stored: on a dialled call the gateway first \
        finds out, in the background, whether the customer's leg had already ended (the \
        snippet also posts `/hangup` when the customer drops), so the answer may still show \
        the call in its phase; it ends within about 3 s (poll `GET /api/c2c/calls/{call_id}` \
        or wait for the webhook). A call never dialled ends at once.",
    params: &[CALL_ID],
    responses: &[
        Reply::ok(
            "The hangup is stored; the call as it now stands (`ended` may still be false while \
             its cause is worked out).",
            named::<CallView>(),
        ),
        UNKNOWN_CALL,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const REPORT_STATUS: OperationDoc = OperationDoc {
    id: "report_status",
    tag: "contract",
    summary: "Report what the browser saw (ANSWERED is the answer signal in webhook mode)",
    description: "Browser endpoint. Send `{\"status\": \"ANSWERED\"}` when the SIP \
        participant's `sip.callStatus` becomes `active`. Teardown stays backend-owned. The \
        body is read as JSON whatever its content type (keepalive fetch / sendBeacon).",
    params: &[CALL_ID],
    request: Some(Request::json(named::<StatusReport>())),
    responses: &[
        Reply::ok("The call as it now stands.", named::<CallView>()),
        Reply::error(
            "400",
            "`invalid_json`: the body is not a JSON object with a string `status`.",
        ),
        UNKNOWN_CALL,
        Reply::error("409", "The report conflicts with the call's state."),
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const GET_CALL: OperationDoc = OperationDoc {
    id: "get_call",
    tag: "contract",
    summary: "Current call record (polling UIs)",
    params: &[CALL_ID],
    responses: &[
        Reply::ok("The call.", named::<CallView>()),
        UNKNOWN_CALL,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

/// The CORS pre-flight of a browser endpoint; each names its own `id`.
pub const PREFLIGHT: OperationDoc = OperationDoc {
    id: "",
    tag: "contract",
    summary: "CORS pre-flight",
    description: "Answered for a known `call_id`; CORS headers are added only for the call's \
        tenant's `allowed_origins`.",
    params: &[CALL_ID],
    responses: &[
        Reply::empty("204", "Pre-flight answered."),
        UNKNOWN_CALL,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const ANALYTICS: OperationDoc = OperationDoc {
    id: "analytics",
    tag: "reports",
    summary: "Outcomes, failures by SIP code and per-day counts",
    description: "A tenant key reads its own tenant; the owner key names one with `tenant=`. \
        The range is inclusive, in UTC days, at most 92 days; default: the last 7 days.",
    params: &[
        TENANT_QUERY,
        FROM_DAY,
        TO_DAY,
        Param::query(
            "trunk",
            ParamSchema::Text,
            "Only calls on this trunk label.",
        ),
    ],
    security: REPORT_KEYS,
    responses: &[
        Reply::ok("The report.", named::<AnalyticsReport>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        Reply::error(
            "422",
            "`missing_tenant`, `invalid_date`, `invalid_range`, `range_too_large`.",
        ),
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const CALL_LOG: OperationDoc = OperationDoc {
    id: "call_log",
    tag: "reports",
    summary: "A tenant's call log, oldest first, paginated",
    description: "A tenant key reads its own tenant; the owner key names one with `tenant=`. \
        The `status` filter applies within a page, so a page may hold fewer than `limit` \
        calls; follow `next_cursor` until it is null.",
    params: &[
        TENANT_QUERY,
        FROM_DAY,
        TO_DAY,
        Param::query(
            "limit",
            ParamSchema::Count {
                min: 1,
                max: c2c_callstate::MAX_PAGE as u32,
            },
            "Calls per page (default 50).",
        ),
        Param::query(
            "status",
            ParamSchema::Text,
            "Only calls in this phase (`INITIATED`, `DIALING`, `RINGING`, `ACTIVE`, `ENDED`) \
             or with this outcome (`ANSWERED`, `NOT_ANSWERED`, `FAILED`); case-insensitive.",
        ),
        Param::query(
            "cursor",
            ParamSchema::Text,
            "`next_cursor` of the previous page.",
        ),
    ],
    security: REPORT_KEYS,
    responses: &[
        Reply::ok("One page.", named::<CallLogPage>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        Reply::error(
            "422",
            "`missing_tenant`, `invalid_date`, `invalid_range`, `range_too_large`, \
             `invalid_limit`, `invalid_status`, `invalid_cursor`.",
        ),
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const NORMALIZE: OperationDoc = OperationDoc {
    id: "normalize",
    tag: "tools",
    summary: "Test normalize: run a number through the tenant's dial plan",
    description: "The clean number, its E.164 form and the caller ID a call would present. \
        The internal dial string and trunk are the gateway's and never shown to a CRM (the \
        console's Test normalize shows them to console and owner keys).",
    request: Some(Request::json(named::<NormalizeRequest>())),
    security: &["tenant_key"],
    responses: &[
        Reply::ok(
            "What the customer and the CRM will see of this number.",
            named::<CrmNormalized>(),
        ),
        NO_TRUNK,
        INVALID_NUMBER,
    ],
    ..OperationDoc::EMPTY
};

pub const OWNER_OUTBOUND_GET: OperationDoc = OperationDoc {
    id: "owner_outbound_get",
    tag: "owner",
    summary: "A tenant's DLT outbound-enable flag and its audit trail",
    params: &[OWNER_TENANT],
    security: OWNER_ONLY,
    responses: &[
        Reply::ok("The flag.", named::<OutboundState>()),
        UNKNOWN_TENANT,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const OWNER_OUTBOUND_SET: OperationDoc = OperationDoc {
    id: "owner_outbound_set",
    tag: "owner",
    summary: "Flip a tenant's DLT outbound-enable flag (after verifying its Principal Entity \
        binding)",
    description: "While the flag is off, `/click2call` and `/connect` answer 403 `dlt_pending` \
        and the SIP edge refuses the tenant's calls. Every change is audited.",
    params: &[OWNER_TENANT],
    request: Some(Request::json(named::<ToggleRequest>())),
    security: OWNER_ONLY,
    responses: &[
        Reply::ok("Changed (or confirmed).", named::<OutboundChanged>()),
        UNKNOWN_TENANT,
        Reply::error(
            "422",
            "`invalid_field`: `verified_by` empty, or a text over 500 bytes.",
        ),
        STORE_UNAVAILABLE,
    ],
};

pub const OWNER_CALL_GET: OperationDoc = OperationDoc {
    id: "owner_call_get",
    tag: "owner",
    summary: "One call's stored record (numbers masked) and its CRM webhook delivery state",
    description: "What `c2c-gateway calls show --gateway` prints: the record as stored and \
        the state of the call's CRM webhook in the durable outbox.",
    params: &[Param::path(
        "call_id",
        "The call id from `/click2call`.",
        "c2c_0123456789abcdef0123456789abcdef",
    )],
    security: OWNER_ONLY,
    responses: &[
        Reply::ok("The call.", named::<crate::calls::detail::CallDetail>()),
        Reply::error("404", "`not_found`: unknown call_id."),
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const OWNER_BACKUP: OperationDoc = OperationDoc {
    id: "owner_backup",
    tag: "owner",
    summary: "A consistent copy of the whole store, streamed",
    description: "What `c2c-gateway db backup --gateway` saves and `c2c-gateway db restore` \
        loads: every tree of the gateway's store as it was at one moment, taken while calls \
        go on (changes made during the copy are recorded and follow it). Binary, streamed \
        with chunked transfer coding: `C2CBAK01`, framed trees and entries, then a trailer \
        with a frame count and a SHA-256 of the stream. A stream that ends without its \
        trailer is incomplete (the gateway stopped or the connection broke) and must not be \
        used; one that ends with an `X` frame carries the reason. One backup at a time.",
    security: OWNER_ONLY,
    responses: &[
        Reply::new(
            "200",
            "The backup stream (binary).",
            Content::Typed("application/vnd.c2c-gateway.backup", Body::Text),
        ),
        Reply::error("409", "`backup_in_progress`: another backup is running."),
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const WEBHOOKS_REPLAY: OperationDoc = OperationDoc {
    id: "webhooks_replay",
    tag: "webhooks",
    summary: "Send a tenant's CRM webhooks again",
    description: "Re-queues the CRM webhooks created since `since`, the oldest `max` of them \
        (default 10000); each is delivered again with its original `webhook-id`, so the CRM \
        can de-duplicate. The answer says how many matched: `capped` is true when `max` \
        left some out.",
    request: Some(Request::json(named::<ReplayRequest>())),
    security: OWNER_ONLY,
    responses: &[
        Reply::ok("Re-queued.", named::<ReplayResponse>()),
        UNKNOWN_TENANT,
        Reply::error("422", "`invalid_since`, or `invalid_max` (not 1..=100000)."),
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const LIVEKIT_WEBHOOK: OperationDoc = OperationDoc {
    id: "livekit_webhook",
    tag: "webhooks",
    summary: "LiveKit's signed webhooks (answer detection and teardown signals)",
    description: "Authenticated by its signature, not a key: `Authorization` carries a JWT \
        signed with the issuing LiveKit project's API secret whose `sha256` claim is the \
        SHA-256 of the raw body. Point LiveKit's webhook URL here.",
    params: &[Param::header(
        "Authorization",
        true,
        "LiveKit's webhook JWT (no `Bearer ` prefix).",
    )],
    request: Some(Request {
        content_type: "application/webhook+json",
        body: Body::Object,
        description: Some("A LiveKit `WebhookEvent` (protojson)."),
    }),
    responses: &[
        Reply::ok("Accepted.", named::<WebhookAck>()),
        Reply::error(
            "401",
            "`invalid_signature`: missing, forged or expired signature; `unauthorized`: more \
             than one `Authorization` header.",
        ),
        Reply::error("409", "The event conflicts with the call's state."),
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const RTC: OperationDoc = OperationDoc {
    id: "rtc",
    tag: "livekit",
    summary: "LiveKit signalling (WebSocket), proxied to the tenant's LiveKit region",
    description: "The agent browser's `ws_url`. The LiveKit access token (from \
        `/click2call`) is verified at the edge before any upstream is contacted; paths under \
        `/rtc/` (e.g. `/rtc/validate`) are proxied the same way.",
    params: &[Param::query(
        "access_token",
        ParamSchema::Text,
        "The LiveKit access token (or send `Authorization: Bearer`).",
    )],
    security: &["livekit_token"],
    responses: &[
        Reply::empty("101", "Switching to the WebSocket (LiveKit's answer)."),
        LIVEKIT_TOKEN_REFUSED,
        LIVEKIT_UNREACHABLE,
        Reply::retry(
            "503",
            "`livekit_unavailable` / `no_upstream`: no healthy upstream in the region or its \
             fallbacks.",
        ),
        LIVEKIT_TIMEOUT,
        Reply::empty("default", "LiveKit's own answer, passed through."),
    ],
    ..OperationDoc::EMPTY
};

pub const TWIRP: OperationDoc = OperationDoc {
    id: "twirp",
    tag: "livekit",
    summary: "LiveKit server API (Twirp), proxied for server SDKs pointed at the gateway",
    params: &[Param {
        example: None,
        ..Param::path(
            "service_method",
            "e.g. `livekit.RoomService/ListRooms` (the slash is part of the path).",
            "",
        )
    }],
    security: &["livekit_token"],
    responses: &[
        LIVEKIT_TOKEN_REFUSED,
        LIVEKIT_UNREACHABLE,
        Reply::retry("503", "`livekit_unavailable` / `no_upstream`."),
        LIVEKIT_TIMEOUT,
        Reply::empty("default", "LiveKit's own Twirp answer, passed through."),
    ],
    ..OperationDoc::EMPTY
};
