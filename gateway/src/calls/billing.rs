//! Managed tenants' calls and their wallets (docs/billing.md): the check before a
//! call, the hold at `/connect`, the charge at the end, and the sweep that finishes what
//! a crash interrupted.
//!
//! The money path, and why each step sits where it does:
//! 1. **click2call** refuses `402 insufficient_balance` when what the wallet has
//!    available (balance minus the holds of calls in progress) is below the cost of
//!    `billing.min_call_minutes` at the call's rate; nothing is created or dialled. The
//!    rate and that cost are written into the record (`CallBilling`): later edits of the
//!    rate card apply to new calls only.
//! 2. **/connect** places the hold (`WalletStore::place_hold`: the availability check
//!    and the hold are one atomic step, so calls connecting at once cannot overspend)
//!    before the durable DIALING write; refused: `402`, nothing dialled.
//! 3. **The end** — whatever ends the call — fixes the charge in the record in the same
//!    write as the end (the state machine's `end`), then emits `SettleWallet`, which
//!    this module carries out: release the hold and post the charge, idempotent by the
//!    call's request id.
//! 4. **The sweep** ([`WalletService`]) looks at every hold every [`SWEEP_EVERY`]: a
//!    hold whose call has ended is settled from the record. That covers a kill -9
//!    between the end's write and the settle, a wallet store that was away, and a hold
//!    placed by a `/connect` whose call then ended without it. Every node may sweep:
//!    settles are idempotent. So a call is charged once, never twice, never not at all.
//! 5. **The balance watch** ([`watch`], every [`WATCH_EVERY`]) ends an answered call
//!    with `balance_exhausted` before it starts a pulse its wallet cannot pay: per
//!    tenant, what its calls will cost by the next look (this node's answered calls at
//!    their running charge, every other hold at its amount) against the balance plus
//!    `billing.overdraft_paise`; the newest calls go first, so the longest
//!    conversations are kept. One read of the holds, one of the calls this node drives
//!    and one balance per tenant with such calls, per look: no per-call polling.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_billing::{call_charge, Settled, WalletError};
use c2c_callstate::{CallBilling, CallEvent, CallRecord, Phase};
use c2c_plugin_api::ApiError;
use c2c_tenancy::{BillingMode, Policy, Tenant};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tracing::Instrument;

use crate::api::errors;
use crate::app::App;
use crate::calls::low_balance::{LowBalanceNotices, WalletLook};
use crate::clock::now_ms;

/// How often every hold is looked at.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often the balance watch looks at answered calls (and how far ahead it prices
/// them).
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// What a new call of `tenant` on `trunk_label` costs: `None` while `billing.charge_calls`
/// is off, for a BYOT tenant (its minutes are metered, never paid from a wallet), or for
/// a trunk the policy no longer has.
pub fn plan(policy: &Policy, tenant: &Tenant, trunk_label: &str) -> Option<CallBilling> {
    let billing = &policy.gateway.billing;
    if !billing.charge_calls || tenant.billing_mode() != BillingMode::Managed {
        return None;
    }
    let (rate, _) = billing.rate_for(tenant.trunk(trunk_label)?);
    Some(CallBilling {
        rate,
        hold_paise: rate.cost_of_minutes(billing.min_call_minutes),
        billed_ms: None,
        charge_paise: None,
    })
}

fn hold_of(b: &CallBilling) -> i64 {
    i64::try_from(b.hold_paise).unwrap_or(i64::MAX)
}

/// click2call's check: what the wallet has available covers the call's hold. Read in
/// two steps (balance, holds): the atomic check is `/connect`'s hold.
pub async fn check_available(app: &App, tenant: &str, b: &CallBilling) -> Result<(), ApiError> {
    let needed = hold_of(b);
    if needed == 0 {
        return Ok(());
    }
    let available = app
        .wallets()
        .available(tenant)
        .await
        .map_err(errors::wallet)?;
    if available >= needed {
        return Ok(());
    }
    Err(refused(
        app,
        tenant,
        "click2call",
        WalletError::InsufficientBalance {
            available_paise: available,
            required_paise: needed,
        },
    ))
}

/// `/connect`: the call's hold, before anything is dialled. A call that holds already
/// (a retried `/connect`) takes nothing more.
pub async fn hold(app: &App, rec: &CallRecord) -> Result<(), ApiError> {
    let Some(b) = &rec.billing else {
        return Ok(());
    };
    let amount = hold_of(b);
    if amount == 0 {
        return Ok(());
    }
    match app
        .wallets()
        .place_hold(&rec.tenant, &rec.call_id, amount, now_ms())
        .await
    {
        Ok(placed) => {
            if !placed.existing {
                tracing::info!(
                    hold_paise = amount,
                    available_after_paise = placed.available_after_paise,
                    "wallet hold placed"
                );
            }
            Ok(())
        }
        Err(e @ WalletError::InsufficientBalance { .. }) => {
            Err(refused(app, &rec.tenant, "connect", e))
        }
        Err(e) => Err(errors::wallet(e)),
    }
}

fn refused(app: &App, tenant: &str, at: &str, e: WalletError) -> ApiError {
    app.metrics()
        .wallet_refusals
        .with_label_values(&[tenant, at])
        .inc();
    tracing::info!(tenant, at, error = %e, "call refused: insufficient balance");
    errors::insufficient_balance(format!(
        "{e}: top up the wallet (GET /api/c2c/wallet shows the balance and the rate card); \
         nothing was dialled"
    ))
}

/// Releases an ended call's hold and posts its charge (see the module docs).
pub async fn settle(app: &App, rec: &CallRecord) -> Result<Settled, WalletError> {
    settle_charge(app, &rec.tenant, &rec.call_id, charge_of(rec)).await
}

/// The ledger entry that charges an ended call, if it owes anything.
fn charge_of(rec: &CallRecord) -> Option<c2c_billing::NewEntry> {
    rec.billing
        .and_then(|b| b.charge_paise.filter(|c| *c > 0).map(|c| (b, c)))
        .map(|(b, paise)| {
            let billed_s = b.billed_ms.unwrap_or(0).div_ceil(1000);
            let reason = format!(
                "call to {} on {}: {billed_s} s, {} pulse(s) of {} s at {} paise",
                c2c_dialplan::mask(&rec.customer_number),
                rec.trunk_label,
                b.rate.pulses(b.billed_ms.unwrap_or(0)),
                b.rate.pulse_seconds,
                b.rate.paise_per_pulse
            );
            call_charge(
                &rec.call_id,
                paise,
                reason,
                rec.ended_ms.unwrap_or_else(now_ms),
            )
        })
}

/// [`settle`] with the charge already worked out from the record.
async fn settle_charge(
    app: &App,
    tenant: &str,
    call_id: &str,
    charge: Option<c2c_billing::NewEntry>,
) -> Result<Settled, WalletError> {
    let settled = app
        .wallets()
        .settle(tenant, call_id, charge.as_ref())
        .await?;
    if let Some(c) = settled.charge.as_ref().filter(|c| !c.replayed) {
        let m = app.metrics();
        m.wallet_entries
            .with_label_values(&[tenant, "call_charge"])
            .inc();
        m.wallet_balance
            .with_label_values(&[tenant])
            .set(c.entry.balance_after_paise);
        tracing::info!(
            entry = %c.entry.id,
            charge_paise = -c.entry.amount_paise,
            balance_after_paise = c.entry.balance_after_paise,
            "call charged"
        );
    }
    Ok(settled)
}

/// The `SettleWallet` effect: settles in the background (a failure waits for the
/// sweep, counted in `c2c_wallet_settle_failures_total`).
pub fn spawn_settle(app: &Arc<App>, rec: &CallRecord) {
    // The charge is worked out here, so the task carries three small values rather than
    // a copy of the whole record.
    let charge = charge_of(rec);
    let (app, tenant, call_id) = (app.clone(), rec.tenant.clone(), rec.call_id.clone());
    let span = super::span(&call_id);
    tokio::spawn(
        async move {
            if let Err(e) = settle_charge(&app, &tenant, &call_id, charge).await {
                app.metrics().wallet_settle_failures.inc();
                tracing::warn!(error = %e, "wallet settle failed; the wallet sweep retries it");
            }
        }
        .instrument(span),
    );
}

/// One look at every hold: those of ended calls are settled. Answers how many were.
pub async fn sweep(app: &App) -> Result<usize, WalletError> {
    let mut settled = 0;
    for (tenant, hold) in app.wallets().all_holds().await? {
        let rec = match app.store().get(&hold.call_id).await {
            Ok(rec) => rec,
            Err(e) => {
                tracing::warn!(error = %e, "wallet sweep: call store unavailable");
                return Ok(settled);
            }
        };
        match rec {
            Some(rec) if rec.tenant == tenant && rec.is_ended() => {
                if let Err(e) = settle(app, &rec).await {
                    app.metrics().wallet_settle_failures.inc();
                    tracing::warn!(call_id = %rec.call_id, error = %e, "wallet sweep: settle failed");
                    continue;
                }
                settled += 1;
            }
            Some(_) => {}
            None => {
                // No such call (purged by retention long after it ended, or a hold
                // whose call was never stored): nothing to charge from, and a hold
                // kept forever would block the wallet.
                tracing::error!(
                    tenant,
                    call_id = %hold.call_id,
                    hold_paise = hold.amount_paise,
                    "wallet sweep: a hold without its call; released without a charge"
                );
                app.wallets().settle(&tenant, &hold.call_id, None).await?;
            }
        }
    }
    Ok(settled)
}

/// A tenant's exposure for the balance watch: what its holds and this node's answered
/// calls will have cost by the next look, and those calls with their running cost.
type Exposure<'a> = (i64, Vec<(u64, &'a CallRecord)>);

/// One look of the balance watch (see the module docs): answers the calls it ended.
pub async fn watch(app: &Arc<App>) -> Result<Vec<String>, WalletError> {
    let policy = app.policy().get();
    let billing = &policy.gateway.billing;
    if !billing.charge_calls {
        return Ok(Vec::new());
    }
    let holds = app.wallets().all_holds().await?;
    if holds.is_empty() {
        return Ok(Vec::new());
    }
    let driven = match app.store().driven_calls().await {
        Ok(calls) => calls,
        Err(e) => {
            tracing::warn!(error = %e, "balance watch: call store unavailable");
            return Ok(Vec::new());
        }
    };
    // By the next look: what each answered, billed call of this node will have cost.
    let ahead = now_ms().saturating_add(WATCH_EVERY.as_millis() as u64);
    let mut running: HashMap<&str, (u64, &CallRecord)> = HashMap::new();
    for rec in &driven {
        if let (Some(b), Some(answered), Phase::Active) = (rec.billing, rec.answered_ms, rec.phase)
        {
            let cost = b.rate.charge(ahead.saturating_sub(answered));
            running.insert(rec.call_id.as_str(), (cost, rec));
        }
    }
    if running.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_tenant: HashMap<&str, Exposure<'_>> = HashMap::new();
    for (tenant, hold) in &holds {
        let slot = by_tenant.entry(tenant.as_str()).or_default();
        match running.get(hold.call_id.as_str()) {
            Some(&(cost, rec)) if rec.tenant == *tenant => {
                slot.0 = slot
                    .0
                    .saturating_add(i64::try_from(cost).unwrap_or(i64::MAX));
                slot.1.push((cost, rec));
            }
            _ => slot.0 = slot.0.saturating_add(hold.amount_paise),
        }
    }
    let overdraft = i64::try_from(billing.overdraft_paise).unwrap_or(0);
    let mut ended = Vec::new();
    for (tenant, (mut exposure, mut calls)) in by_tenant {
        if calls.is_empty() {
            continue;
        }
        let limit = app
            .wallets()
            .balance(tenant)
            .await?
            .balance_paise
            .saturating_add(overdraft);
        // The newest answered first: the longest conversations are kept.
        calls.sort_by_key(|(_, r)| std::cmp::Reverse(r.answered_ms));
        for (cost, rec) in calls {
            if exposure <= limit {
                break;
            }
            exposure = exposure.saturating_sub(i64::try_from(cost).unwrap_or(i64::MAX));
            tracing::warn!(
                call_id = %rec.call_id,
                tenant,
                limit_paise = limit,
                "balance exhausted: ending the call before a pulse its wallet cannot pay"
            );
            match super::apply_as_driver(app, &rec.call_id, CallEvent::BalanceExhausted).await {
                Ok(Some(_)) => ended.push(rec.call_id.clone()),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(call_id = %rec.call_id, error = %e, "balance watch: ending the call failed")
                }
            }
        }
    }
    Ok(ended)
}

/// Sets every managed tenant's wallet gauges from the store (balance, available, low):
/// one read of the balances and one of the holds, so the gauges hold on every node of a
/// fleet whoever moved the money.
pub async fn refresh_gauges(app: &App, notices: &LowBalanceNotices) -> Result<(), WalletError> {
    let policy = app.policy().get();
    let billing = &policy.gateway.billing;
    let balances: HashMap<String, c2c_billing::Balance> =
        app.wallets().balances().await?.into_iter().collect();
    let mut held: HashMap<String, i64> = HashMap::new();
    for (tenant, h) in app.wallets().all_holds().await? {
        *held.entry(tenant).or_default() += h.amount_paise;
    }
    let low_mark = i64::try_from(billing.low_balance_paise).unwrap_or(i64::MAX);
    let m = app.metrics();
    for t in policy.tenants.values() {
        if t.billing_mode() != BillingMode::Managed {
            continue;
        }
        let id = t.id.as_str();
        let (balance, entries) = balances
            .get(id)
            .map_or((0, 0), |b| (b.balance_paise, b.entries));
        let available = balance.saturating_sub(held.get(id).copied().unwrap_or(0));
        m.wallet_balance.with_label_values(&[id]).set(balance);
        m.wallet_available.with_label_values(&[id]).set(available);
        // Only where wallets pay for calls: a tenant not charged is never "low".
        let low = billing.charge_calls && low_mark > 0 && available < low_mark;
        m.wallet_low.with_label_values(&[id]).set(i64::from(low));
        if billing.charge_calls {
            let look = WalletLook {
                tenant: id,
                balance_paise: balance,
                entries,
                available_paise: available,
                threshold_paise: low_mark,
                opted_in: t
                    .crm_webhook
                    .as_ref()
                    .is_some_and(|c| c.low_balance_webhook),
            };
            notices.observe(app, &look).await;
        }
    }
    Ok(())
}

/// Runs the [`watch`] every [`WATCH_EVERY`], and the [`sweep`] at start and every
/// [`SWEEP_EVERY`].
pub struct WalletService {
    pub app: Arc<App>,
    /// Who was seen low: `wallet.low_balance` webhooks go out once per crossing.
    pub notices: LowBalanceNotices,
}

#[async_trait]
impl BackgroundService for WalletService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sweep_every = (SWEEP_EVERY.as_millis() / WATCH_EVERY.as_millis()).max(1);
        let mut ticks: u128 = 0;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = watch(&self.app).await {
                tracing::warn!(error = %e, "balance watch failed; retrying");
            }
            ticks += 1;
            if !(ticks - 1).is_multiple_of(sweep_every) {
                continue;
            }
            if let Err(e) = refresh_gauges(&self.app, &self.notices).await {
                tracing::warn!(error = %e, "wallet gauges not refreshed");
            }
            match sweep(&self.app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(calls = n, "wallet sweep settled ended calls"),
                Err(e) => tracing::warn!(error = %e, "wallet sweep failed; retrying"),
            }
        }
    }
}
