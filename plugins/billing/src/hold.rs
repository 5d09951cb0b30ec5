//! Holds: money a call in progress sets aside from its tenant's wallet, from `/connect`
//! until the call's charge is posted ([`crate::WalletStore::settle`]).
//!
//! Why holds and not a check of the balance alone: twenty calls started in the same
//! second each see the whole balance; with holds each one takes its minimum from what is
//! *available* (balance minus every open hold), in the same atomic step as the check,
//! so the twenty-first is refused instead of all twenty running the wallet dry.

use serde::{Deserialize, Serialize};

use crate::ledger::MAX_AMOUNT_PAISE;
use crate::{Appended, EntryKind, NewEntry, WalletError};

/// One call's hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hold {
    pub call_id: String,
    /// Paise set aside (positive).
    pub amount_paise: i64,
    /// When it was placed (Unix ms).
    pub at_ms: u64,
}

/// The answer to [`crate::WalletStore::place_hold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldPlaced {
    pub hold: Hold,
    /// True when the call held already (a retried `/connect`): nothing was taken now.
    pub existing: bool,
    /// Available once the hold is placed.
    pub available_after_paise: i64,
}

/// The answer to [`crate::WalletStore::settle`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settled {
    /// The hold released (None: the call held nothing, or was settled before).
    pub released: Option<Hold>,
    /// The charge appended, or the one appended by an earlier settle (`replayed`).
    pub charge: Option<Appended>,
}

/// The request id of a call's charge: one per call, so a charge posted twice (the
/// runner, then a recovery sweep after a crash) is written once.
pub fn charge_request_id(call_id: &str) -> String {
    format!("call:{call_id}")
}

/// The ledger entry that charges `call_id` `paise` (positive) for its talk time: no
/// floor, since the call has happened and its cost is owed (the balance may go below
/// zero by the overdraft a tenant was allowed).
pub fn call_charge(call_id: &str, paise: u64, reason: String, at_ms: u64) -> NewEntry {
    let amount = i64::try_from(paise)
        .unwrap_or(i64::MAX)
        .min(MAX_AMOUNT_PAISE);
    NewEntry {
        kind: EntryKind::CallCharge,
        amount_paise: -amount,
        actor: "call".to_owned(),
        reason,
        call_id: Some(call_id.to_owned()),
        request_id: Some(charge_request_id(call_id)),
        floor_paise: None,
        at_ms,
    }
}

/// Checks a hold before a backend writes it: `available` is the balance minus every
/// open hold of the tenant.
pub fn plan_hold(available: i64, amount_paise: i64) -> Result<i64, WalletError> {
    if amount_paise <= 0 || amount_paise > MAX_AMOUNT_PAISE {
        return Err(WalletError::Invalid(
            "a hold is a positive amount of paise".to_owned(),
        ));
    }
    if available < amount_paise {
        return Err(WalletError::InsufficientBalance {
            available_paise: available,
            required_paise: amount_paise,
        });
    }
    Ok(available - amount_paise)
}

/// Checks a call id a hold is keyed by (it ends up in keys and logs).
pub fn check_call_id(call_id: &str) -> Result<(), WalletError> {
    if call_id.is_empty() || call_id.len() > 128 || !call_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WalletError::Invalid(
            "call_id must be 1 to 128 printable ASCII characters".to_owned(),
        ));
    }
    Ok(())
}

/// A charge passed to `settle` must be the call's own: a call charge naming the call,
/// with the call's request id.
pub fn check_charge(call_id: &str, charge: &NewEntry) -> Result<(), WalletError> {
    charge.validate()?;
    if charge.kind != EntryKind::CallCharge
        || charge.call_id.as_deref() != Some(call_id)
        || charge.request_id.as_deref() != Some(charge_request_id(call_id).as_str())
    {
        return Err(WalletError::Invalid(format!(
            "a settle of call {call_id} posts that call's charge only"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_takes_from_what_is_available() {
        assert_eq!(plan_hold(1_000, 300).unwrap(), 700);
        assert_eq!(plan_hold(300, 300).unwrap(), 0);
        assert!(matches!(
            plan_hold(299, 300),
            Err(WalletError::InsufficientBalance {
                available_paise: 299,
                required_paise: 300
            })
        ));
        assert!(matches!(
            plan_hold(-50, 1),
            Err(WalletError::InsufficientBalance { .. })
        ));
        assert!(matches!(plan_hold(1_000, 0), Err(WalletError::Invalid(_))));
    }

    #[test]
    fn a_call_charge_is_negative_and_names_its_call_once() {
        let e = call_charge("c_1", 250, "3 pulses".into(), 5);
        assert_eq!(e.amount_paise, -250);
        assert_eq!(e.request_id.as_deref(), Some("call:c_1"));
        check_charge("c_1", &e).unwrap();
        assert!(check_charge("c_2", &e).is_err(), "another call's charge");
    }
}
