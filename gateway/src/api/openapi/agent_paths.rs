//! What the document says of the agent routes: the registry, presence tokens, the
//! presence WebSocket, a call's token refresh and the console's Agents page. As in
//! [`super::paths`], the plugin chain's errors are added from the route table.

use super::paths::{CALL_ID, OTHER_TENANT, STORE_UNAVAILABLE, UNKNOWN_CALL, UNKNOWN_TENANT};
use super::spec::{named, OperationDoc, Param, ParamSchema, Reply, Request};
use crate::agents::{AgentView, SessionGrant};
use crate::api::agents::{AgentPage, AuditPage, PutAgentRequest, SessionRequest, TelephonyRequest};
use crate::api::contract::TokenResponse;

const AGENT_KEYS: &[&str] = &["tenant_key", "console_key"];
const CONSOLE_KEYS: &[&str] = &["console_key", "owner_key"];
const AGENT_ID: Param = Param::path(
    "agent_id",
    "The agent's id: the `agent_id` string click2call is sent (1-128 printable characters, \
     percent-encoded in the path).",
    "agent-42",
);
const TENANT: Param = Param::path(
    "tenant",
    "Tenant id; a `console` key may only name its own.",
    "acme",
);
const LIMIT: Param = Param::query(
    "limit",
    ParamSchema::Count { min: 1, max: 500 },
    "Agents per page (default 50).",
);
const CURSOR: Param = Param::query(
    "cursor",
    ParamSchema::Text,
    "`next_cursor` of the previous page.",
);
const UNKNOWN_AGENT: Reply = Reply::error("404", "`unknown_agent`: no such agent in this tenant.");
const INVALID_AGENT_ID: Reply = Reply::error(
    "422",
    "`invalid_field`: `agent_id` (or `name`) is empty, longer than 128 bytes or has control \
     characters.",
);
const NOT_A_TENANT_KEY: Reply = Reply::error(
    "403",
    "`forbidden`: agents belong to a tenant; use a tenant key.",
);

pub const AGENTS_LIST: OperationDoc = OperationDoc {
    id: "agents_list",
    tag: "agents",
    summary: "The tenant's agents, with live availability",
    description: "Sorted by `agent_id`. `availability` is live (`offline` without a presence \
        session); `on_call` is true from a call's `/connect` until it ends.",
    params: &[LIMIT, CURSOR],
    security: AGENT_KEYS,
    responses: &[
        Reply::ok("A page of agents.", named::<AgentPage>()),
        Reply::error("422", "`invalid_limit`."),
        NOT_A_TENANT_KEY,
    ],
    ..OperationDoc::EMPTY
};

pub const AGENT_GET: OperationDoc = OperationDoc {
    id: "agent_get",
    tag: "agents",
    summary: "One agent",
    params: &[AGENT_ID],
    security: AGENT_KEYS,
    responses: &[
        Reply::ok("The agent.", named::<AgentView>()),
        UNKNOWN_AGENT,
        INVALID_AGENT_ID,
        NOT_A_TENANT_KEY,
    ],
    ..OperationDoc::EMPTY
};

pub const AGENT_PUT: OperationDoc = OperationDoc {
    id: "agent_put",
    tag: "agents",
    summary: "Register or update an agent",
    description: "Durable on return, and audited (the key id). Turning `telephony_enabled` \
        off makes the agent offline at once. With the tenant's \
        `agents.require_registration`, click2call refuses unregistered agents.",
    params: &[AGENT_ID],
    request: Some(Request::json(named::<PutAgentRequest>())),
    security: AGENT_KEYS,
    responses: &[
        Reply::ok("Updated.", named::<AgentView>()),
        Reply::new(
            "201",
            "Created.",
            super::spec::Content::Json(named::<AgentView>()),
        ),
        INVALID_AGENT_ID,
        NOT_A_TENANT_KEY,
        STORE_UNAVAILABLE,
    ],
};

pub const AGENT_DELETE: OperationDoc = OperationDoc {
    id: "agent_delete",
    tag: "agents",
    summary: "Remove an agent",
    description: "Its presence session is closed with code 4410.",
    params: &[AGENT_ID],
    security: AGENT_KEYS,
    responses: &[
        Reply::empty("204", "Removed."),
        UNKNOWN_AGENT,
        INVALID_AGENT_ID,
        NOT_A_TENANT_KEY,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const AGENT_SESSION: OperationDoc = OperationDoc {
    id: "agent_session",
    tag: "agents",
    summary: "Mint a presence token for the agent's browser",
    description: "Short-lived (`agents.presence_token_ttl_seconds`). Hand it to the agent's \
        browser, which sends it in the first frame of the presence WebSocket at `ws_url` — \
        never in a URL. The body is optional; `{\"supervisor\": true}` also streams the \
        tenant's other agents' availability to the session.",
    params: &[AGENT_ID],
    request: Some(Request::json(named::<SessionRequest>())),
    security: AGENT_KEYS,
    responses: &[
        Reply::ok("The token.", named::<SessionGrant>()),
        UNKNOWN_AGENT,
        INVALID_AGENT_ID,
        NOT_A_TENANT_KEY,
    ],
};

pub const PRESENCE: OperationDoc = OperationDoc {
    id: "agent_presence",
    tag: "agents",
    summary: "The presence WebSocket",
    description: "Open with `Upgrade: websocket`; the first frame is \
        `{\"type\": \"auth\", \"token\": \"...\"}`. Frames, rules and close codes: \
        docs/agents.md. A session starts offline.",
    responses: &[
        Reply::empty("101", "Switching to the WebSocket protocol."),
        Reply::error("426", "`upgrade_required`: not a WebSocket upgrade."),
        Reply::retry(
            "503",
            "`draining`: the gateway is shutting down; `presence_full`: it holds \
             `agents.max_presence_sessions` sockets.",
        ),
    ],
    ..OperationDoc::EMPTY
};

pub const CALL_ACCEPT: OperationDoc = OperationDoc {
    id: "call_accept",
    tag: "inbound",
    summary: "Take an inbound call offered to this agent (agent browser)",
    description: "The HTTP twin of the presence channel's `accept` frame (docs/inbound.md). \
        The agent proves who it is with its presence token (`Authorization: Bearer pt1.…`). \
        The answer has `/click2call`'s fields; the browser joins `room` and publishes its \
        microphone, and the caller is put into the room (the call is ACTIVE once LiveKit \
        answers the carrier). Accepting again returns the same answer.",
    params: &[
        CALL_ID,
        Param::header(
            "Authorization",
            true,
            "`Bearer <the agent's presence token>`.",
        ),
    ],
    security: &[],
    responses: &[
        Reply::ok("The room to join.", named::<crate::inbound::AcceptAnswer>()),
        Reply::error("401", "`invalid_token`: no valid presence token was sent."),
        Reply::error(
            "403",
            "`not_offered`: the call is offered to another agent (or the token is a \
             supervisor's).",
        ),
        Reply::error(
            "409",
            "`offer_gone`: the call is no longer offered (taken, ended, caller hung up).",
        ),
        Reply::error(
            "503",
            "`livekit_unavailable`: the room could not be created.",
        ),
        UNKNOWN_CALL,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const CALL_TOKEN: OperationDoc = OperationDoc {
    id: "call_token",
    tag: "contract",
    summary: "A fresh agent token while the call is open (agent browser)",
    description: "Browser endpoint keyed by the `call_id`, like `/connect`, and proven by the \
        call's current agent token (`Authorization: Bearer`; it may have expired): the call \
        id alone does not open the call's audio. The client refreshes 30 s before the token \
        expires and hands the new one to the room without reconnecting.",
    params: &[
        CALL_ID,
        Param::header(
            "Authorization",
            true,
            "`Bearer <the call's current agent token>`.",
        ),
    ],
    security: &[],
    responses: &[
        Reply::ok("The token.", named::<TokenResponse>()),
        Reply::error(
            "401",
            "`invalid_token`: no token of this call's agent and room was sent.",
        ),
        Reply::error("409", "`call_ended`: the call has ended."),
        UNKNOWN_CALL,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_AGENTS: OperationDoc = OperationDoc {
    id: "console_agents",
    tag: "console",
    summary: "A tenant's agents, for the Agents page",
    params: &[TENANT, LIMIT, CURSOR],
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("A page of agents.", named::<AgentPage>()),
        Reply::error("422", "`invalid_limit`."),
        OTHER_TENANT,
        UNKNOWN_TENANT,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_AGENTS_AUDIT: OperationDoc = OperationDoc {
    id: "console_agents_audit",
    tag: "console",
    summary: "Who changed which agent, newest first (the last 200 lines)",
    params: &[TENANT],
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("Audit lines.", named::<AuditPage>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_AGENT_TELEPHONY: OperationDoc = OperationDoc {
    id: "console_agent_telephony",
    tag: "console",
    summary: "Turn an agent's telephony on or off (audited)",
    params: &[TENANT, AGENT_ID],
    request: Some(Request::json(named::<TelephonyRequest>())),
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("The agent.", named::<AgentView>()),
        UNKNOWN_AGENT,
        INVALID_AGENT_ID,
        OTHER_TENANT,
        UNKNOWN_TENANT,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_PRESENCE_SESSION: OperationDoc = OperationDoc {
    id: "console_presence_session",
    tag: "console",
    summary: "A supervisor-only presence token, so the Agents page follows availability live",
    params: &[TENANT],
    security: CONSOLE_KEYS,
    responses: &[
        Reply::ok("The token.", named::<SessionGrant>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
    ],
    ..OperationDoc::EMPTY
};
