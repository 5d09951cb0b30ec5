//! What the document says of the web console's API and the browser assets (the agent
//! client script and the console's files), split from [`super::paths`] to keep modules
//! small. As there, the plugin chain's errors are added from the route table.

use c2c_dialplan::Normalized;

use super::paths::{
    CALL_ID, INVALID_NUMBER, NO_TRUNK, OTHER_TENANT, STORE_UNAVAILABLE, UNKNOWN_TENANT,
};
use super::spec::{
    named, Body, Content, HeaderSchema, OperationDoc, Param, Reply, ReplyHeader, Request,
};
use crate::api::console_types::{
    ConsoleCall, ConsoleSession, ConsoleTenant, LiveKitCheck, SandboxInboundCall,
    SandboxInboundRequest, SandboxJoined,
};
use crate::api::normalize::NormalizeRequest;

const CONSOLE_KEYS: &[&str] = &["console_key", "owner_key"];
const CONSOLE_TENANT_ID: Param = Param::path(
    "tenant",
    "Tenant id; a `console` key may only name its own.",
    "acme",
);
const IF_NONE_MATCH: Param = Param::header(
    "If-None-Match",
    false,
    "An `ETag` from an earlier answer (or `*`).",
);
const ETAG: &[ReplyHeader] = &[ReplyHeader {
    name: "ETag",
    schema: HeaderSchema::Text,
    description: "Strong validator of the bytes.",
}];
const NOT_MODIFIED: Reply = Reply {
    headers: ETAG,
    ..Reply::empty("304", "Not modified: `If-None-Match` matched the `ETag`.")
};

/// An asset's `200`: its bytes in one of these media types, with its `ETag`.
const fn asset(description: &'static str, content: Content) -> Reply {
    Reply {
        headers: ETAG,
        ..Reply::new("200", description, content)
    }
}

pub const CONSOLE_SESSION: OperationDoc = OperationDoc {
    id: "console_session",
    tag: "console",
    summary: "Who signed in to the console, and which tenants they may open",
    description: "The console's sign-in check. A tenant's `console` key sees its own tenant; \
        the owner key sees every tenant.",
    security: CONSOLE_KEYS,
    responses: &[Reply::ok("The session.", named::<ConsoleSession>())],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_TENANT: OperationDoc = OperationDoc {
    id: "console_tenant",
    tag: "console",
    summary: "A tenant's trunks, effective settings (secrets masked), DLT state and guide values",
    params: &[CONSOLE_TENANT_ID],
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("The tenant.", named::<ConsoleTenant>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_NORMALIZE: OperationDoc = OperationDoc {
    id: "console_normalize",
    tag: "console",
    summary: "Test normalize for a tenant the caller may see",
    description: "Like `POST /api/c2c/normalize`, for a named tenant (the owner key has none \
        of its own).",
    params: &[CONSOLE_TENANT_ID],
    request: Some(Request::json(named::<NormalizeRequest>())),
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok(
            "How a call to this number would be placed.",
            named::<Normalized>(),
        ),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        NO_TRUNK,
        INVALID_NUMBER,
    ],
};

pub const CONSOLE_LIVEKIT_VALIDATE: OperationDoc = OperationDoc {
    id: "console_livekit_validate",
    tag: "console",
    summary: "Check the tenant's effective LiveKit credentials (a live, read-only ListRooms)",
    description: "Always 200 once the tenant is known: `ok` is the verdict, `error` the \
        reason. LiveKit gets at most 5 s.",
    params: &[CONSOLE_TENANT_ID],
    request: Some(Request {
        description: Some("`{}` (no fields yet)."),
        ..Request::json(Body::Object)
    }),
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("The verdict.", named::<LiveKitCheck>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
    ],
};

pub const CONSOLE_CALL: OperationDoc = OperationDoc {
    id: "console_call",
    tag: "console",
    summary: "The sandbox's view of a call: state, the dialled string and the CRM webhook it \
        produces",
    params: &[CALL_ID],
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("The call.", named::<ConsoleCall>()),
        Reply::error(
            "404",
            "`not_found`: unknown `call_id`, or another tenant's call.",
        ),
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_SANDBOX_INBOUND: OperationDoc = OperationDoc {
    id: "console_sandbox_inbound",
    tag: "console",
    summary: "Sandbox: a test inbound call from the bundled simulator to one of the tenant's \
        numbers",
    description: "The simulator plays the carrier: it sends an INVITE for `did` to this \
        gateway's own SIP edge (from its SIP address, 127.0.0.1: the number's trunk must admit \
        it as its `carrier` or `sources`), rings, and once answered holds the call \
        `hold_seconds`, then hangs up (BYE). The call goes through the edge, the ring and the \
        offers to available agents like any inbound call (docs/inbound.md). Answers once the \
        gateway stored the call (at most 5 s): follow it at \
        `GET /api/c2c/console/calls/{call_id}`. Only with the bundled simulator.",
    params: &[CONSOLE_TENANT_ID],
    request: Some(Request::json(named::<SandboxInboundRequest>())),
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("The stored call.", named::<SandboxInboundCall>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        Reply::error(
            "409",
            "`simulator_only`: the gateway runs no bundled LiveKit simulator (a LiveKit \
             project with `url = \"sim\"`); `no_sip_edge`: its SIP edge is not running; \
             `inbound_refused`: the SIP edge refused the call (e.g. the number's trunk does \
             not admit the simulator's address).",
        ),
        Reply::error(
            "422",
            "`unknown_did`: not one of the tenant's inbound numbers; `invalid_number`: \
             `from` is not a phone number; `invalid_hold`: `hold_seconds` is not 1-30.",
        ),
        Reply::retry(
            "503",
            "`simulator_unavailable`: the simulator could not place the call (too many at once).",
        ),
        Reply::error(
            "504",
            "`inbound_timeout`: the gateway did not store the call within 5 s.",
        ),
    ],
};

pub const CONSOLE_SANDBOX_JOIN: OperationDoc = OperationDoc {
    id: "console_sandbox_join",
    tag: "console",
    summary: "Sandbox: the call's agent joins its room with the microphone published (simulated)",
    description: "The bundled simulator's stand-in for the agent's browser, which cannot carry \
        media to a simulator: the participant with the call's `agent_id` as identity joins \
        the call's room and publishes its microphone, as `C2C.accept` or `C2C.startCall` \
        would. An inbound call is answered once the agent publishes audio. Only with the \
        bundled simulator.",
    params: &[CALL_ID],
    request: Some(Request {
        description: Some("`{}` (no fields yet)."),
        ..Request::json(Body::Object)
    }),
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("Joined.", named::<SandboxJoined>()),
        Reply::error(
            "404",
            "`not_found`: unknown `call_id`, or another tenant's call.",
        ),
        Reply::error(
            "409",
            "`simulator_only`: no bundled simulator; `call_ended`; `no_agent`: nobody \
             accepted the call yet; `join_failed`: the simulator refused the join.",
        ),
        STORE_UNAVAILABLE,
    ],
};

pub const CLIENT_JS: OperationDoc = OperationDoc {
    id: "client_js",
    tag: "assets",
    summary: "The agent client script (`window.C2C`)",
    description: "Embedded in the binary. Served with a strong `ETag` and `Cache-Control: \
        no-cache`, and `Cross-Origin-Resource-Policy: cross-origin` so agent UIs on CRM \
        origins can load it; gzip when accepted. It loads `/js/livekit-client.js` only \
        when a call starts.",
    params: &[IF_NONE_MATCH],
    responses: &[
        asset("The script.", Content::Typed("text/javascript", Body::Text)),
        NOT_MODIFIED,
    ],
    ..OperationDoc::EMPTY
};

pub const LIVEKIT_JS: OperationDoc = OperationDoc {
    id: "livekit_js",
    tag: "assets",
    summary: "The pinned LiveKit browser SDK (`window.LivekitClient`)",
    description: "What the agent client loads when a call starts, and a drop-in replacement \
        for the CDN script of the integration guide's hand-written snippet. Same headers as \
        `/js/c2c-client.js`; gzip when accepted.",
    params: &[IF_NONE_MATCH],
    responses: &[
        asset("The script.", Content::Typed("text/javascript", Body::Text)),
        NOT_MODIFIED,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_PAGE: OperationDoc = OperationDoc {
    id: "console_page",
    tag: "assets",
    summary: "The web console (HTML)",
    description: "Sign in with a tenant's `console` key or the owner key; the page keeps it in \
        sessionStorage and never embeds it. The page's `Content-Security-Policy` admits this \
        origin only.",
    params: &[IF_NONE_MATCH],
    responses: &[
        asset("The page.", Content::Typed("text/html", Body::Text)),
        NOT_MODIFIED,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_FILE: OperationDoc = OperationDoc {
    id: "console_file",
    tag: "assets",
    summary: "The console's files: `index.html`, `app.js`, `style.css`",
    params: &[
        Param::path("file", "`index.html`, `app.js` or `style.css`.", "app.js"),
        IF_NONE_MATCH,
    ],
    responses: &[
        asset(
            "The file.",
            Content::Alternatives(&[
                ("text/html", Body::Text),
                ("text/javascript", Body::Text),
                ("text/css", Body::Text),
            ]),
        ),
        NOT_MODIFIED,
        Reply::error("404", "`not_found`: no such file."),
    ],
    ..OperationDoc::EMPTY
};
