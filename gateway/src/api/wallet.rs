//! A managed tenant's wallet over HTTP.
//!
//! - `GET /api/c2c/wallet`: the balance and a page of the statement (oldest first,
//!   `after=<seq>&limit=<n>`); `GET /api/c2c/wallet/statement.csv`: the same page as a
//!   CSV export. A tenant's `calls` or `console` key reads its own wallet; the owner key
//!   names one with `tenant=`.
//! - `POST /api/c2c/owner/tenants/{tenant}/wallet/entries`: the owner's top-up,
//!   adjustment or refund. The ledger entry is the audit record: who (`owner:<key id>`),
//!   when, how much, why, and the balance after. A `request_id` makes a retry safe.
//!
//! Call charges are not posted here: calls post their own.

use std::collections::BTreeMap;

use bytes::Bytes;
use c2c_billing::{EntryKind, LedgerEntry, NewEntry, MAX_STATEMENT_PAGE};
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx, RequestHead};
use c2c_tenancy::{BillingMode, Policy, RateSource, Tenant};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::errors;
use crate::api::reports::tenant_of;
use crate::app::App;
use crate::body::parse_json;

/// Statement entries per page when `limit` is not given.
const DEFAULT_PAGE: usize = 100;

/// A wallet and one page of its statement.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WalletView {
    tenant: String,
    /// Inferred from the tenant's credentials: `byot` tenants are metered, not paid
    /// from this wallet.
    billing_mode: BillingMode,
    /// The sum of every ledger entry, in paise (₹1 = 100 paise).
    balance_paise: i64,
    /// The same in rupees, for people (`"1234.50"`); compute with `balance_paise`.
    balance_inr: String,
    /// How many entries the ledger holds (the last entry's seq).
    entries: u64,
    /// What new calls may use: the balance minus the holds of calls in progress.
    available_paise: i64,
    /// Money set aside by calls in progress (placed at `/connect`, released when the
    /// call's charge is posted).
    holds: Vec<c2c_billing::Hold>,
    /// Whether managed calls are paid from this wallet now (`billing.charge_calls` of
    /// gateway.toml): when false, calls are neither held nor charged nor refused.
    charge_calls: bool,
    /// Up to `limit` entries with a seq above `after`, oldest first.
    statement: Vec<LedgerEntry>,
    /// The `after` of the next page, when there is one.
    next_after: Option<u64>,
    /// What the tenant's calls cost per trunk (empty for `byot`).
    rate_card: Vec<RateLine>,
    /// The cost of `billing.min_call_minutes` on the default trunk: what a call needs
    /// available to start (null for `byot` or without an enabled default trunk).
    min_call_paise: Option<u64>,
}

/// One trunk's rate: paise for each started pulse.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RateLine {
    trunk: String,
    enabled: bool,
    paise_per_pulse: u64,
    pulse_seconds: u32,
    /// `trunk`: the trunk's own rate; `platform`: `[billing]` of gateway.toml.
    source: RateSource,
}

/// The rate card of a managed tenant and the cost of its minimum call.
fn rate_card(policy: &Policy, tenant: &Tenant) -> (Vec<RateLine>, Option<u64>) {
    if tenant.billing_mode() == BillingMode::Byot {
        return (Vec::new(), None);
    }
    let billing = &policy.gateway.billing;
    let lines = tenant
        .trunks
        .iter()
        .map(|t| {
            let (rate, source) = billing.rate_for(t);
            RateLine {
                trunk: t.label.clone(),
                enabled: t.enabled,
                paise_per_pulse: rate.paise_per_pulse,
                pulse_seconds: rate.pulse_seconds,
                source,
            }
        })
        .collect();
    let min = tenant.default_trunk().map(|t| {
        billing
            .rate_for(t)
            .0
            .cost_of_minutes(billing.min_call_minutes)
    });
    (lines, min)
}

/// What the owner may post (calls post their own charges).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OwnerEntryKind {
    /// Money the customer paid in (positive).
    TopUp,
    /// A correction, either sign; may not take the balance below zero.
    Adjustment,
    /// Money given back for a call (positive).
    Refund,
}

/// The owner's entry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "top_up", "amount_paise": 500000, "reason": "NEFT UTR 4096 of 2026-12-04", "request_id": "topup-4096"}))]
pub(crate) struct EntryRequest {
    kind: OwnerEntryKind,
    /// Signed paise: positive for a top-up or refund, either sign for an adjustment.
    #[serde(deserialize_with = "whole_paise")]
    #[schema(value_type = i64)]
    amount_paise: i64,
    /// Why the money moved (1 to 500 bytes), kept in the ledger.
    reason: String,
    /// The call a refund is for.
    #[serde(default)]
    call_id: Option<String>,
    /// Makes a retry safe: the same request id answers the first entry (`replayed`)
    /// and moves no money again. 1 to 128 printable ASCII characters.
    #[serde(default)]
    request_id: Option<String>,
}

/// An integer number of paise. JSON Schema counts `2500.0` as an integer too, so a
/// number with no fraction is taken; one with a fraction, or too big for a double to
/// hold exactly (over 2^53), is refused rather than rounded: money is never rounded.
fn whole_paise<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    match serde_json::Number::deserialize(d)? {
        n if n.is_i64() => n.as_i64().ok_or_else(|| D::Error::custom("amount_paise")),
        n => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
            _ => Err(D::Error::custom(
                "amount_paise must be a whole number of paise (₹1 = 100 paise)",
            )),
        },
    }
}

/// The entry the owner's request wrote (or, when `replayed`, the one it wrote before).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EntryPosted {
    tenant: String,
    entry: LedgerEntry,
    /// True when the request id was used before: nothing new was written.
    replayed: bool,
    /// The balance after this request (the current one for a replay).
    balance_paise: i64,
}

impl From<OwnerEntryKind> for EntryKind {
    fn from(k: OwnerEntryKind) -> Self {
        match k {
            OwnerEntryKind::TopUp => EntryKind::TopUp,
            OwnerEntryKind::Adjustment => EntryKind::Adjustment,
            OwnerEntryKind::Refund => EntryKind::Refund,
        }
    }
}

/// Why `tenant` has no wallet to post to, if it has none.
pub(crate) fn not_managed(tenant: &c2c_tenancy::Tenant) -> Option<String> {
    (tenant.billing_mode() == BillingMode::Byot).then(|| {
        format!(
            "tenant '{}' brings its own telephony (its own LiveKit project): its minutes \
             are metered, not paid from a wallet",
            tenant.id
        )
    })
}

/// An operator's entry (owner API or CLI), stamped now.
pub(crate) fn owner_entry(
    kind: EntryKind,
    amount_paise: i64,
    reason: &str,
    actor: String,
    call_id: Option<String>,
    request_id: Option<String>,
) -> NewEntry {
    NewEntry {
        kind,
        amount_paise,
        actor,
        reason: reason.trim().to_owned(),
        call_id,
        request_id,
        // An operator's correction may empty the wallet, not take it below zero.
        floor_paise: Some(0),
        at_ms: crate::clock::now_ms(),
    }
}

fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, msg)
}

/// `after` and `limit` of a statement page.
fn page(q: &BTreeMap<String, String>) -> Result<(u64, usize), ApiError> {
    let after = match q.get("after") {
        None => 0,
        // Stores keep seqs as BIGINT: the bound is i64's.
        Some(a) => a
            .parse::<u64>()
            .ok()
            .filter(|&a| i64::try_from(a).is_ok())
            .ok_or_else(|| {
                bad(
                    "invalid_after",
                    "after must be an entry seq (0 to 9223372036854775807)",
                )
            })?,
    };
    let limit = match q.get("limit") {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_STATEMENT_PAGE).contains(n))
            .ok_or_else(|| {
                bad(
                    "invalid_limit",
                    format!("limit must be 1-{MAX_STATEMENT_PAGE}"),
                )
            })?,
    };
    Ok((after, limit))
}

/// Paise as rupees with two decimals, exactly (no float on the way).
pub(crate) fn inr(paise: i64) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    let p = paise.unsigned_abs();
    format!("{sign}{}.{:02}", p / 100, p % 100)
}

/// How `GET` answers: the JSON view or the CSV export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

pub async fn get(
    app: &App,
    ctx: &RequestCtx,
    head: &RequestHead<'_>,
    format: Format,
) -> Result<JsonResponse, ApiError> {
    let q = crate::api::query_params(head);
    let tenant = tenant_of(app, ctx, &q)?;
    let (after, limit) = page(&q)?;
    let policy = app.policy().get();
    let (mode, (rate_card, min_call_paise)) = match policy.tenant(&tenant) {
        Some(t) => (t.billing_mode(), self::rate_card(&policy, t)),
        // `tenant_of` checked it; a reload between the two reads finds nothing to bill.
        None => (BillingMode::Managed, (Vec::new(), None)),
    };
    let wallets = app.wallets();
    // Holds before the balance: a settle landing between the two reads then shows its
    // hold still open next to its charge already taken (what is available is understated
    // for a moment). The other order showed the hold gone and the charge not yet taken,
    // more money than there was, and "no holds" with a balance still moving.
    let holds = wallets.holds(&tenant).await.map_err(errors::wallet)?;
    let balance = wallets.balance(&tenant).await.map_err(errors::wallet)?;
    let statement = wallets
        .statement(&tenant, after, limit)
        .await
        .map_err(errors::wallet)?;
    let held: i64 = holds.iter().map(|h| h.amount_paise).sum();
    if mode == BillingMode::Managed {
        app.metrics()
            .wallet_balance
            .with_label_values(&[tenant.as_str()])
            .set(balance.balance_paise);
    }
    let next_after = statement
        .last()
        .map(|e| e.seq)
        .filter(|&last| statement.len() == limit && last < balance.entries);
    if format == Format::Csv {
        let body = crate::api::wallet_csv::statement(&statement);
        return Ok(
            JsonResponse::raw(StatusCode::OK, "text/csv; charset=utf-8", body).with_header(
                http::header::CONTENT_DISPOSITION,
                &format!("attachment; filename=\"wallet-{tenant}-{after}.csv\""),
            ),
        );
    }
    Ok(JsonResponse::json(
        StatusCode::OK,
        &WalletView {
            billing_mode: mode,
            balance_paise: balance.balance_paise,
            balance_inr: inr(balance.balance_paise),
            entries: balance.entries,
            available_paise: balance.balance_paise.saturating_sub(held),
            holds,
            charge_calls: policy.gateway.billing.charge_calls && mode == BillingMode::Managed,
            statement,
            next_after,
            rate_card,
            min_call_paise,
            tenant,
        },
    ))
}

pub async fn post_entry(
    app: &App,
    ctx: &RequestCtx,
    body: &Bytes,
) -> Result<JsonResponse, ApiError> {
    let id = ctx
        .param(0)
        .ok_or_else(|| ApiError::internal("missing tenant parameter"))?;
    let req: EntryRequest = parse_json(body)?;
    let policy = app.policy().get();
    let tenant = policy
        .tenant(id)
        .ok_or_else(|| ApiError::not_found(format!("unknown tenant '{id}'")))?;
    if let Some(why) = not_managed(tenant) {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_managed", why));
    }
    let key_id = ctx.principal.as_ref().map_or("-", |p| &*p.key_id);
    let kind = req.kind.into();
    let entry = owner_entry(
        kind,
        req.amount_paise,
        &req.reason,
        format!("owner:{key_id}"),
        req.call_id,
        req.request_id,
    );
    let wallets = app.wallets();
    let appended = wallets.append(id, &entry).await.map_err(errors::wallet)?;
    let balance = if appended.replayed {
        wallets
            .balance(id)
            .await
            .map_err(errors::wallet)?
            .balance_paise
    } else {
        appended.entry.balance_after_paise
    };
    let m = app.metrics();
    m.wallet_balance.with_label_values(&[id]).set(balance);
    if !appended.replayed {
        m.wallet_entries
            .with_label_values(&[id, kind.as_str()])
            .inc();
        tracing::info!(
            tenant = id,
            entry = %appended.entry.id,
            kind = kind.as_str(),
            amount_paise = appended.entry.amount_paise,
            balance_after_paise = appended.entry.balance_after_paise,
            actor = %appended.entry.actor,
            "wallet entry posted"
        );
    }
    Ok(JsonResponse::json(
        if appended.replayed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        &EntryPosted {
            tenant: id.to_owned(),
            replayed: appended.replayed,
            balance_paise: balance,
            entry: appended.entry,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::{inr, EntryRequest};

    fn amount(v: serde_json::Value) -> Option<i64> {
        let body = serde_json::json!({"kind": "top_up", "amount_paise": v, "reason": "r"});
        serde_json::from_value::<EntryRequest>(body)
            .ok()
            .map(|r| r.amount_paise)
    }

    #[test]
    fn amounts_are_whole_paise_never_rounded() {
        assert_eq!(amount(serde_json::json!(2500)), Some(2500));
        assert_eq!(amount(serde_json::json!(2500.0)), Some(2500));
        assert_eq!(amount(serde_json::json!(-7)), Some(-7));
        assert_eq!(amount(serde_json::json!(2500.5)), None);
        assert_eq!(amount(serde_json::json!(1e300)), None);
        assert_eq!(amount(serde_json::json!(u64::MAX)), None);
        assert_eq!(amount(serde_json::json!("2500")), None);
    }

    #[test]
    fn rupees_are_exact() {
        assert_eq!(inr(0), "0.00");
        assert_eq!(inr(5), "0.05");
        assert_eq!(inr(123_450), "1234.50");
        assert_eq!(inr(-1), "-0.01");
        assert_eq!(inr(i64::MIN), "-92233720368547758.08");
    }
}
