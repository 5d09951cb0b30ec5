//! Money for managed tenants: what a call costs ([`Rate`]: paise per pulse) and the
//! wallet it is paid from, a ledger of entries in integer paise ([`LedgerEntry`]) whose
//! sum is the balance.
//!
//! Owns: the pulse arithmetic, the ledger's rules (signs per kind, the balance after, the
//! floor an append may not cross, idempotent appends by request id, the check that a
//! ledger adds up) and the [`WalletStore`] trait with its sled (tree `wallet` of the
//! gateway's database) and in-memory backends; PostgreSQL implements the same trait in
//! `c2c-store-pg` and passes the same contract ([`contract`], feature `contract`).
//!
//! Must not: know about HTTP, policies or calls. The gateway decides who may move money
//! and maps [`WalletError`] to HTTP in one place.
//!
//! Money is `i64` paise everywhere, never a float: ₹1 = 100 paise, and every sum a
//! ledger can reach stays far inside `i64` ([`ledger::MAX_AMOUNT_PAISE`]).

#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod durability;
mod hold;
pub mod ledger;
mod mem;
mod rate;
mod sled_held;
mod sled_settle;
mod store;

pub use durability::Durability;
pub use hold::{
    call_charge, charge_request_id, check_call_id, check_charge, plan_hold, Hold, HoldPlaced,
    Settled,
};
pub use ledger::{Appended, Balance, EntryKind, LedgerCheck, LedgerEntry, LedgerFault, NewEntry};
pub use mem::MemWalletStore;
pub use rate::{Rate, RateError, MAX_PAISE_PER_PULSE, MAX_PULSE_SECONDS};
pub use store::{check_ledger, SledWalletStore, WalletStore, MAX_STATEMENT_PAGE};

/// What a wallet operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The entry breaks a ledger rule (sign, size, text); nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// The entry would leave the balance below its floor; nothing was written.
    #[error(
        "the balance is {balance_paise} paise: {amount_paise} paise would take it below \
         {floor_paise}"
    )]
    BelowFloor {
        balance_paise: i64,
        amount_paise: i64,
        floor_paise: i64,
    },
    /// A hold asked for more than the tenant has available (balance minus the holds of
    /// its calls in progress); nothing was written.
    #[error("insufficient balance: {available_paise} paise available, {required_paise} needed")]
    InsufficientBalance {
        available_paise: i64,
        required_paise: i64,
    },
    /// The request id was used before for an entry of another kind or amount.
    #[error(
        "request id '{request_id}' was used for entry {entry_id}, of another kind or \
         amount; use a new request id for a new entry"
    )]
    RequestIdReused {
        request_id: String,
        entry_id: String,
    },
    #[error("wallet store error: {0}")]
    Store(#[from] sled::Error),
    #[error("wallet record is corrupt: {0}")]
    Corrupt(String),
    /// A backend's own failure (a networked store's driver), for backends outside
    /// this crate.
    #[error("wallet store backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl From<serde_json::Error> for WalletError {
    fn from(e: serde_json::Error) -> Self {
        WalletError::Corrupt(e.to_string())
    }
}

/// Tenant ids as every store keys them: 1..=128 bytes without `\0` (the key separator).
pub fn check_tenant(tenant: &str) -> Result<(), WalletError> {
    if tenant.is_empty() || tenant.len() > 128 || tenant.contains('\0') {
        return Err(WalletError::Invalid(
            "a tenant id is 1 to 128 bytes without NUL".to_owned(),
        ));
    }
    Ok(())
}
