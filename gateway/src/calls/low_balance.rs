//! `wallet.low_balance` CRM webhooks: a managed tenant whose CRM opted in
//! (`[crm_webhook] low_balance_webhook = true`) hears when its wallet's available balance
//! falls below `billing.low_balance_paise`, through the same outbox, signature and
//! retries as call outcomes (docs/billing.md).
//!
//! Once per crossing: a tenant seen low is not told again until it was seen above the
//! mark. The event id is `evt_lowbal_<tenant>_<ledger entries>`, and the outbox enqueues
//! an id once, so a restart (which forgets who was seen low) or a second node that sees
//! the same crossing sends nothing twice; only a restart after the balance moved on
//! while low sends one more, with the new figures.

use std::collections::HashSet;

use c2c_callstate::OutboxEntry;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::App;

/// The `event` of the payload.
pub const EVENT: &str = "wallet.low_balance";

/// What the CRM receives (signed like a call outcome, same `X-api-key`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"event": "wallet.low_balance", "event_id": "evt_lowbal_acme_42",
    "tenant": "acme", "balance_paise": 9500, "available_paise": 9260,
    "threshold_paise": 10000, "at": "2026-12-04T18:30:00Z"}))]
pub struct LowBalanceWebhook {
    /// Always `wallet.low_balance`.
    #[schema(value_type = String, example = "wallet.low_balance")]
    pub event: &'static str,
    /// Stable across retries (the `webhook-id` header is `msg_` + this).
    pub event_id: String,
    pub tenant: String,
    /// The ledger's sum, in paise.
    pub balance_paise: i64,
    /// What new calls may use: the balance minus the holds of calls in progress.
    pub available_paise: i64,
    /// `billing.low_balance_paise`.
    pub threshold_paise: i64,
    /// When the gateway saw it (RFC 3339, UTC).
    pub at: String,
}

/// Who this process last saw low.
#[derive(Debug, Default)]
pub struct LowBalanceNotices {
    low: parking_lot::Mutex<HashSet<String>>,
}

/// One tenant's wallet at one look.
pub struct WalletLook<'a> {
    pub tenant: &'a str,
    pub balance_paise: i64,
    pub entries: u64,
    pub available_paise: i64,
    pub threshold_paise: i64,
    /// Whether this tenant's CRM asked for the event.
    pub opted_in: bool,
}

impl LowBalanceNotices {
    /// Records a look and enqueues the event on a crossing; a failed enqueue is retried
    /// at the next look (the tenant is not marked as told).
    pub async fn observe(&self, app: &App, w: &WalletLook<'_>) {
        let low = w.threshold_paise > 0 && w.available_paise < w.threshold_paise;
        if !low {
            self.low.lock().remove(w.tenant);
            return;
        }
        if !w.opted_in || self.low.lock().contains(w.tenant) {
            return;
        }
        let event_id = format!("evt_lowbal_{}_{}", w.tenant, w.entries);
        let now = crate::clock::now_ms();
        let payload = LowBalanceWebhook {
            event: EVENT,
            event_id: event_id.clone(),
            tenant: w.tenant.to_string(),
            balance_paise: w.balance_paise,
            available_paise: w.available_paise,
            threshold_paise: w.threshold_paise,
            at: crate::clock::now_rfc3339(),
        };
        let enqueued = serde_json::to_string(&payload)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                OutboxEntry::for_event(&event_id, w.tenant, json, now, 0).map_err(|e| e.to_string())
            });
        let entry = match enqueued {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(tenant = w.tenant, error = %e, "low-balance webhook not built");
                return;
            }
        };
        match app.store().outbox_enqueue_event(&entry).await {
            Ok(seq) => {
                self.low.lock().insert(w.tenant.to_string());
                if seq.is_some() {
                    tracing::info!(
                        tenant = w.tenant,
                        available_paise = w.available_paise,
                        threshold_paise = w.threshold_paise,
                        %event_id,
                        "wallet low: CRM webhook queued"
                    );
                    app.calls().kick_delivery();
                }
            }
            Err(e) => {
                tracing::warn!(tenant = w.tenant, error = %e, "low-balance webhook not queued; retrying at the next look");
            }
        }
    }
}
