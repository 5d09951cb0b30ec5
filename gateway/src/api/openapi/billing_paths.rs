//! What the document says of the wallet operations (`crate::api::wallet`).

use super::paths::{OTHER_TENANT, STORE_UNAVAILABLE, UNKNOWN_TENANT};
use super::spec::{named, Body, Content, OperationDoc, Param, ParamSchema, Reply, Request};
use crate::api::wallet::{EntryPosted, EntryRequest, WalletView};

const TENANT_QUERY: Param = Param::query(
    "tenant",
    ParamSchema::Text,
    "Required with the owner key; a tenant key may only name its own tenant.",
);
const PAGE: &[Param] = &[
    TENANT_QUERY,
    Param::query(
        "after",
        ParamSchema::Seq,
        "Entries with a seq above this (default 0: from the first); `next_after` of the \
         previous page.",
    ),
    Param::query(
        "limit",
        ParamSchema::Count {
            min: 1,
            max: c2c_billing::MAX_STATEMENT_PAGE as u32,
        },
        "Entries per page (default 100).",
    ),
];
const PAGE_REFUSED: Reply = Reply::error(
    "422",
    "`missing_tenant` (owner key without `tenant=`), `invalid_after`, `invalid_limit`.",
);

pub const WALLET_GET: OperationDoc = OperationDoc {
    id: "wallet_get",
    tag: "billing",
    summary: "A tenant's wallet: balance in paise and a page of its statement",
    description: "The balance is the sum of the ledger (`c2c-gateway db check` verifies it). \
        Entries are oldest first; follow `next_after` until it is null. A tenant key reads \
        its own tenant; the owner key names one with `tenant=`. `billing_mode` is inferred \
        from the tenant's credentials: a `byot` tenant is metered, not paid from a wallet.",
    params: PAGE,
    security: &["tenant_key", "console_key", "owner_key"],
    responses: &[
        Reply::ok("The wallet.", named::<WalletView>()),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        PAGE_REFUSED,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const WALLET_CSV: OperationDoc = OperationDoc {
    id: "wallet_statement_csv",
    tag: "billing",
    summary: "A page of a tenant's wallet statement as CSV",
    description: "The same page as `GET /api/c2c/wallet`, one entry per line under a header \
        line (`id,seq,at,kind,amount_paise,balance_after_paise,actor,reason,call_id,\
        request_id`), CRLF line ends. Text cells that a spreadsheet would read as a formula \
        start with `'`.",
    params: PAGE,
    security: &["tenant_key", "console_key", "owner_key"],
    responses: &[
        Reply::new(
            "200",
            "The statement page.",
            Content::Typed("text/csv", Body::Text),
        ),
        OTHER_TENANT,
        UNKNOWN_TENANT,
        PAGE_REFUSED,
        STORE_UNAVAILABLE,
    ],
    ..OperationDoc::EMPTY
};

pub const OWNER_WALLET_ENTRY: OperationDoc = OperationDoc {
    id: "owner_wallet_entry",
    tag: "billing",
    summary: "Post a top-up, adjustment or refund to a managed tenant's wallet",
    description: "The entry is the audit record: the owner key's id as actor, the time, the \
        amount, the reason and the balance after. An adjustment may empty the wallet but \
        not take it below zero. With `request_id` a retry is safe: the same id answers the \
        first entry with `replayed: true` (200) and moves no money; the same id with another \
        kind or amount is refused. Calls post their own charges.",
    params: &[Param::path("tenant", "Tenant id.", "acme")],
    request: Some(Request::json(named::<EntryRequest>())),
    security: &["owner_key"],
    responses: &[
        Reply::new("201", "Written.", Content::Json(named::<EntryPosted>())),
        Reply::ok(
            "A replay of an earlier request id: nothing new written.",
            named::<EntryPosted>(),
        ),
        UNKNOWN_TENANT,
        Reply::error(
            "409",
            "`not_managed`: the tenant brings its own telephony; `below_floor`: the entry \
             would take the balance below zero; `request_id_reused`: the request id was used \
             for another kind or amount.",
        ),
        Reply::error(
            "422",
            "`invalid_entry`: wrong sign for the kind, over 10,000,000,000 paise, empty \
             reason, malformed request id or call id.",
        ),
        STORE_UNAVAILABLE,
    ],
};
