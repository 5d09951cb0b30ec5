//! What the document says of provisioning (`crate::api::tenants`).

use super::paths::{OTHER_TENANT, UNKNOWN_TENANT};
use super::spec::{named, Content, OperationDoc, Param, Reply, Request};
use crate::api::tenants::{
    PlatformChanged, PlatformState, TenantChanged, TenantCreated, TenantList, TenantState,
};
use crate::provision::platform::PlatformPatch;
use crate::provision::spec::{NewTenant, TenantPatch};

const TENANT: &[Param] = &[Param::path("tenant", "Tenant id.", "acme")];

const INVALID: Reply = Reply::error(
    "422",
    "`invalid_field` (a value the request itself gets wrong; `message` names it), \
     `invalid_policy` (the policy file would not \
     pass `policy check`: every problem by key), `livekit_invalid` (the LiveKit project \
     refused ListRooms with these credentials, or did not answer in 5 s), \
     `policy_rejected` (the running gateway refused the written policy; the file was put \
     back), `nothing_to_change`.",
);
const MODE_REFUSED: Reply =
    Reply::error("400", "`mode_not_accepted`: the body names a billing mode.");
const REVISION_CONFLICT: Reply = Reply::error(
    "409",
    "`revision_conflict`: the file changed since the `revision` sent.",
);
const WRITE_FAILED: Reply = Reply::error(
    "500",
    "`policy_write_failed`: the policy directory or the audit file cannot be written.",
);

pub const OWNER_TENANTS_LIST: OperationDoc = OperationDoc {
    id: "owner_tenants_list",
    tag: "owner",
    summary: "Every tenant, with its inferred billing mode and DLT flag",
    description: "`billing_mode` is inferred from the credentials: `byot` with the tenant's \
        own LiveKit project, else `managed`.",
    security: &["owner_key"],
    responses: &[Reply::ok("The tenants.", named::<TenantList>())],
    ..OperationDoc::EMPTY
};

pub const OWNER_TENANT_CREATE: OperationDoc = OperationDoc {
    id: "owner_tenant_create",
    tag: "owner",
    summary: "Provision a tenant: its policy file, secret files and first API key",
    description: "Without `livekit` credentials the tenant is **managed** (the platform's \
        LiveKit project, paid from its wallet); with them it is **byot**. The mode is \
        inferred and never sent: a body with `mode`, `billing_mode` or `billingMode` is \
        refused `400 mode_not_accepted`. New LiveKit credentials are checked live \
        (ListRooms) first. The policy file is validated like `policy check`, written \
        atomically, and in force when this answers (the gateway reloads). Secrets go to \
        secret files and are never echoed. Outbound calling starts disabled until the DLT \
        toggle. The first key (scope `calls`) is in the answer, once. Provisioning writes \
        this node's policy directory (see docs/provisioning.md for fleets).",
    request: Some(Request::json(named::<NewTenant>())),
    security: &["owner_key"],
    responses: &[
        Reply::new(
            "201",
            "Created and in force.",
            Content::Json(named::<TenantCreated>()),
        ),
        MODE_REFUSED,
        Reply::error("409", "`tenant_exists`."),
        INVALID,
        WRITE_FAILED,
    ],
    ..OperationDoc::EMPTY
};

pub const OWNER_TENANT_GET: OperationDoc = OperationDoc {
    id: "owner_tenant_get",
    tag: "owner",
    summary: "A tenant as provisioned: settings (secrets masked), revision, recent changes",
    description: "`tenant.revision` identifies the policy file's content: send it with a \
        `PATCH` to refuse a change to a file someone else changed meanwhile.",
    params: TENANT,
    security: &["owner_key"],
    responses: &[
        Reply::ok("The tenant.", named::<TenantState>()),
        UNKNOWN_TENANT,
        WRITE_FAILED,
    ],
    ..OperationDoc::EMPTY
};

pub const OWNER_TENANT_PATCH: OperationDoc = OperationDoc {
    id: "owner_tenant_patch",
    tag: "owner",
    summary: "Change a tenant: name, region, origins, CRM webhook, LiveKit, trunks, limits",
    description: "Fields present replace what the policy file says; `trunks` replaces the \
        whole list; `livekit: null` removes the tenant's own project (it becomes managed). \
        Validated, written atomically, in force when this answers, audited (who, when, \
        which fields from what to what; secrets only as replaced). A billing mode field is \
        refused as for creation.",
    params: TENANT,
    request: Some(Request::json(named::<TenantPatch>())),
    security: &["owner_key"],
    responses: &[
        Reply::ok("Changed and in force.", named::<TenantChanged>()),
        MODE_REFUSED,
        UNKNOWN_TENANT,
        REVISION_CONFLICT,
        INVALID,
        WRITE_FAILED,
    ],
};

pub const CONSOLE_SETTINGS_GET: OperationDoc = OperationDoc {
    id: "console_settings_get",
    tag: "console",
    summary: "The console's editable settings of a tenant (provisioning's view)",
    description: "The same answer as `GET /api/c2c/owner/tenants/{tenant}`, for the owner \
        key or the tenant's own console key.",
    params: TENANT,
    security: &["console_key", "owner_key"],
    responses: &[
        Reply::ok("The tenant.", named::<TenantState>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        WRITE_FAILED,
    ],
    ..OperationDoc::EMPTY
};

pub const CONSOLE_SETTINGS_PATCH: OperationDoc = OperationDoc {
    id: "console_settings_patch",
    tag: "console",
    summary: "Change a tenant's settings from the console",
    description: "The body of `PATCH /api/c2c/owner/tenants/{tenant}`. The owner key may \
        change everything. A tenant's console key changes its own tenant's CRM webhook, \
        and, for a byot tenant, its LiveKit credentials (checked live first) and trunks; \
        anything else is refused `403 owner_only` naming the field, before any LiveKit \
        check. Audited as `console:<key id>`.",
    params: TENANT,
    request: Some(Request::json(named::<TenantPatch>())),
    security: &["console_key", "owner_key"],
    responses: &[
        Reply::ok("Changed and in force.", named::<TenantChanged>()),
        MODE_REFUSED,
        Reply::error(
            "403",
            "`owner_only`: a console key asked for a field only the owner changes; \
             `forbidden`: another tenant.",
        ),
        UNKNOWN_TENANT,
        REVISION_CONFLICT,
        INVALID,
        WRITE_FAILED,
    ],
};

pub const OWNER_GATEWAY_GET: OperationDoc = OperationDoc {
    id: "owner_gateway_get",
    tag: "owner",
    summary: "The platform's call settings: call knobs and answer detection",
    description: "From gateway.toml, with its `revision`, the start-only settings changed \
        since start (`restart_needed`), and recent changes made on this node.",
    security: &["owner_key"],
    responses: &[
        Reply::ok("The settings.", named::<PlatformState>()),
        WRITE_FAILED,
    ],
    ..OperationDoc::EMPTY
};

pub const OWNER_GATEWAY_PATCH: OperationDoc = OperationDoc {
    id: "owner_gateway_patch",
    tag: "owner",
    summary: "Change the platform's call knobs or answer-detection mode",
    description: "Edits gateway.toml like `PATCH /api/c2c/owner/tenants/{tenant}` edits a \
        tenant file: validated, written atomically, reloaded before the answer, audited. \
        Call knobs apply to calls from now on; `answer_detection` is read at start, so it \
        is listed in `restart_needed` until the gateway restarts.",
    request: Some(Request::json(named::<PlatformPatch>())),
    security: &["owner_key"],
    responses: &[
        Reply::ok("Changed.", named::<PlatformChanged>()),
        REVISION_CONFLICT,
        INVALID,
        WRITE_FAILED,
    ],
    ..OperationDoc::EMPTY
};
