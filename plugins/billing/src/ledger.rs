//! The wallet ledger's lines and the rules every backend applies when it appends one:
//! what amounts each kind may carry, the balance after, the floor an append may not go
//! below, and what a repeated request id means. A backend reads the tenant's balance,
//! asks [`plan_append`] and writes what it answers in one atomic step.

use serde::{Deserialize, Serialize};

use crate::WalletError;

/// Largest amount one entry may move (₹100 crore): a bigger one is a typo, and the
/// bound keeps every sum of a ledger far from `i64` overflow.
pub const MAX_AMOUNT_PAISE: i64 = 10_000_000_000;
/// Longest `actor` and `reason`, in bytes.
pub const MAX_TEXT: usize = 500;
/// Longest request id (an `Idempotency-Key`), in bytes.
pub const MAX_REQUEST_ID: usize = 128;

/// What moved the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Money the customer paid in: positive.
    TopUp,
    /// A call's charge: negative, names the call.
    CallCharge,
    /// The owner's correction: either sign, never zero.
    Adjustment,
    /// Money given back (a disputed call): positive.
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::TopUp => "top_up",
            EntryKind::CallCharge => "call_charge",
            EntryKind::Adjustment => "adjustment",
            EntryKind::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        Some(match s {
            "top_up" => EntryKind::TopUp,
            "call_charge" => EntryKind::CallCharge,
            "adjustment" => EntryKind::Adjustment,
            "refund" => EntryKind::Refund,
            _ => return None,
        })
    }

    /// Why `amount` cannot be an entry of this kind, if it cannot.
    fn sign_error(self, amount: i64) -> Option<&'static str> {
        match self {
            EntryKind::TopUp | EntryKind::Refund if amount <= 0 => {
                Some("a top-up or refund must be a positive amount of paise")
            }
            EntryKind::CallCharge if amount > 0 => Some("a call charge cannot be positive"),
            EntryKind::Adjustment if amount == 0 => Some("an adjustment cannot be zero"),
            _ => None,
        }
    }
}

/// An entry to append: the store gives it its place (seq, id) and the balance after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub kind: EntryKind,
    /// Signed: what the entry adds to the balance.
    pub amount_paise: i64,
    /// Who made it: `owner:<key id>`, `cli:<user>`, `call`.
    pub actor: String,
    pub reason: String,
    /// The call a charge or refund is about.
    pub call_id: Option<String>,
    /// Makes the append idempotent per tenant: appending the same request id again
    /// answers the first entry (when kind and amount match) and writes nothing.
    pub request_id: Option<String>,
    /// The append is refused ([`WalletError::BelowFloor`]) when it would leave the
    /// balance below this; `None`: any balance (a charge already incurred).
    pub floor_paise: Option<i64>,
    pub at_ms: u64,
}

impl NewEntry {
    /// The entry's own checks, before any store is read.
    pub fn validate(&self) -> Result<(), WalletError> {
        let invalid = |why: &str| Err(WalletError::Invalid(why.to_owned()));
        if let Some(why) = self.kind.sign_error(self.amount_paise) {
            return invalid(why);
        }
        if self.amount_paise.unsigned_abs() > MAX_AMOUNT_PAISE.unsigned_abs() {
            return invalid("an entry moves at most 10,000,000,000 paise");
        }
        if self.actor.trim().is_empty() || self.actor.len() > MAX_TEXT {
            return invalid("actor must be 1 to 500 bytes");
        }
        if self.reason.trim().is_empty() || self.reason.len() > MAX_TEXT {
            return invalid("reason must be 1 to 500 bytes: say why the money moved");
        }
        if self.kind == EntryKind::CallCharge && self.call_id.is_none() {
            return invalid("a call charge names its call");
        }
        if let Some(c) = &self.call_id {
            if !printable(c, 128) {
                return invalid("call_id must be 1 to 128 printable ASCII characters");
            }
        }
        if let Some(r) = &self.request_id {
            if !printable(r, MAX_REQUEST_ID) {
                return invalid("a request id must be 1 to 128 printable ASCII characters");
            }
        }
        Ok(())
    }
}

/// 1..=max bytes of visible ASCII (no spaces or control characters: ids end up in keys,
/// CSV cells and logs).
fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

/// One line of a tenant's wallet ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// `<tenant>/<seq>`: unique across tenants, stable.
    #[schema(example = "acme/12")]
    pub id: String,
    /// 1, 2, 3, ... per tenant, without gaps, in the order the entries were made.
    pub seq: u64,
    /// When it was made (Unix ms).
    pub at_ms: u64,
    pub kind: EntryKind,
    /// Signed paise: positive adds to the balance.
    pub amount_paise: i64,
    /// The balance once this entry was applied.
    pub balance_after_paise: i64,
    pub actor: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A tenant's balance as the store holds it next to the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Balance {
    /// The sum of every entry.
    pub balance_paise: i64,
    /// How many entries the ledger holds (the last seq).
    pub entries: u64,
}

/// The answer to an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub entry: LedgerEntry,
    /// True when the request id had been used: `entry` is the first append's, and
    /// nothing was written now.
    pub replayed: bool,
}

/// What an append writes: the new entry and the balance after it.
pub fn plan_append(
    tenant: &str,
    cur: Balance,
    e: &NewEntry,
) -> Result<(LedgerEntry, Balance), WalletError> {
    e.validate()?;
    let after = cur
        .balance_paise
        .checked_add(e.amount_paise)
        .ok_or_else(|| WalletError::Invalid("the balance would overflow".to_owned()))?;
    if let Some(floor) = e.floor_paise {
        if after < floor {
            return Err(WalletError::BelowFloor {
                balance_paise: cur.balance_paise,
                amount_paise: e.amount_paise,
                floor_paise: floor,
            });
        }
    }
    let seq = cur.entries + 1;
    let entry = LedgerEntry {
        id: format!("{tenant}/{seq}"),
        seq,
        at_ms: e.at_ms,
        kind: e.kind,
        amount_paise: e.amount_paise,
        balance_after_paise: after,
        actor: e.actor.clone(),
        reason: e.reason.clone(),
        call_id: e.call_id.clone(),
        request_id: e.request_id.clone(),
    };
    Ok((
        entry,
        Balance {
            balance_paise: after,
            entries: seq,
        },
    ))
}

/// The answer when `e`'s request id is already `first`'s: the first entry again, or
/// [`WalletError::RequestIdReused`] when the two differ in kind or amount (a client
/// that reused an idempotency key for another operation).
pub fn replay(first: LedgerEntry, e: &NewEntry) -> Result<Appended, WalletError> {
    if first.kind != e.kind || first.amount_paise != e.amount_paise {
        return Err(WalletError::RequestIdReused {
            request_id: e.request_id.clone().unwrap_or_default(),
            entry_id: first.id,
        });
    }
    Ok(Appended {
        entry: first,
        replayed: true,
    })
}

/// A ledger that does not add up (`db check`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerFault {
    #[error(
        "entry {found} follows entry {expected_before}: seqs must run 1, 2, 3, ... without gaps"
    )]
    Gap { expected_before: u64, found: u64 },
    #[error("entry {seq}: balance after is {stored} but the entries before it and its amount make {sum}")]
    Running { seq: u64, stored: i64, sum: i64 },
    #[error("entry {seq}: kind {kind} cannot carry {amount} paise")]
    Sign {
        seq: u64,
        kind: &'static str,
        amount: i64,
    },
    #[error("the stored balance is {stored} paise over {stored_entries} entries but the ledger sums to {sum} over {entries}")]
    Balance {
        stored: i64,
        stored_entries: u64,
        sum: i64,
        entries: u64,
    },
}

/// Reads a tenant's ledger in seq order, one entry at a time (a ledger may be long), and
/// checks that it adds up: [`LedgerCheck::push`] each entry, then
/// [`LedgerCheck::finish`] with the balance the store holds.
#[derive(Debug, Default)]
pub struct LedgerCheck {
    seq: u64,
    sum: i64,
}

impl LedgerCheck {
    pub fn push(&mut self, e: &LedgerEntry) -> Result<(), LedgerFault> {
        if e.seq != self.seq + 1 {
            return Err(LedgerFault::Gap {
                expected_before: self.seq + 1,
                found: e.seq,
            });
        }
        if e.kind.sign_error(e.amount_paise).is_some() {
            return Err(LedgerFault::Sign {
                seq: e.seq,
                kind: e.kind.as_str(),
                amount: e.amount_paise,
            });
        }
        let sum = self.sum.saturating_add(e.amount_paise);
        if e.balance_after_paise != sum {
            return Err(LedgerFault::Running {
                seq: e.seq,
                stored: e.balance_after_paise,
                sum,
            });
        }
        self.seq = e.seq;
        self.sum = sum;
        Ok(())
    }

    pub fn finish(self, stored: Balance) -> Result<Balance, LedgerFault> {
        if stored.balance_paise != self.sum || stored.entries != self.seq {
            return Err(LedgerFault::Balance {
                stored: stored.balance_paise,
                stored_entries: stored.entries,
                sum: self.sum,
                entries: self.seq,
            });
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, amount: i64) -> NewEntry {
        NewEntry {
            kind,
            amount_paise: amount,
            actor: "owner:k1".into(),
            reason: "test".into(),
            call_id: None,
            request_id: None,
            floor_paise: Some(0),
            at_ms: 1,
        }
    }

    #[test]
    fn kinds_carry_their_sign() {
        assert!(entry(EntryKind::TopUp, 0).validate().is_err());
        assert!(entry(EntryKind::TopUp, -5).validate().is_err());
        assert!(entry(EntryKind::Refund, -5).validate().is_err());
        assert!(entry(EntryKind::Adjustment, 0).validate().is_err());
        assert!(entry(EntryKind::Adjustment, -5).validate().is_ok());
        let mut charge = entry(EntryKind::CallCharge, -5);
        assert!(charge.validate().is_err(), "a charge names its call");
        charge.call_id = Some("c_1".into());
        assert!(charge.validate().is_ok());
        charge.amount_paise = 5;
        assert!(charge.validate().is_err());
        assert!(entry(EntryKind::TopUp, MAX_AMOUNT_PAISE + 1)
            .validate()
            .is_err());
        let mut e = entry(EntryKind::TopUp, 5);
        e.reason = " ".into();
        assert!(e.validate().is_err());
        e.reason = "ok".into();
        e.request_id = Some("has space".into());
        assert!(e.validate().is_err());
    }

    #[test]
    fn the_floor_refuses_and_the_plan_counts() {
        let cur = Balance {
            balance_paise: 100,
            entries: 3,
        };
        let (e, after) = plan_append("acme", cur, &entry(EntryKind::Adjustment, -100)).unwrap();
        assert_eq!(
            (e.seq, e.id.as_str(), e.balance_after_paise),
            (4, "acme/4", 0)
        );
        assert_eq!(
            after,
            Balance {
                balance_paise: 0,
                entries: 4
            }
        );
        let err = plan_append("acme", cur, &entry(EntryKind::Adjustment, -101)).unwrap_err();
        assert!(matches!(
            err,
            WalletError::BelowFloor { floor_paise: 0, .. }
        ));
        let mut no_floor = entry(EntryKind::Adjustment, -101);
        no_floor.floor_paise = None;
        assert!(plan_append("acme", cur, &no_floor).is_ok());
    }

    #[test]
    fn a_check_finds_gaps_wrong_sums_and_a_wrong_balance() {
        let mut cur = Balance::default();
        let mut entries = Vec::new();
        for a in [500, -200, 50] {
            let kind = if a > 0 {
                EntryKind::TopUp
            } else {
                EntryKind::Adjustment
            };
            let (e, next) = plan_append("t", cur, &entry(kind, a)).unwrap();
            entries.push(e);
            cur = next;
        }
        let mut ok = LedgerCheck::default();
        entries.iter().for_each(|e| ok.push(e).unwrap());
        assert_eq!(ok.finish(cur).unwrap().balance_paise, 350);

        let mut check = LedgerCheck::default();
        check.push(&entries[0]).unwrap();
        assert!(matches!(
            check.push(&entries[2]),
            Err(LedgerFault::Gap { .. })
        ));

        let mut bad = entries.clone();
        bad[1].balance_after_paise += 1;
        let mut check = LedgerCheck::default();
        check.push(&bad[0]).unwrap();
        assert!(matches!(
            check.push(&bad[1]),
            Err(LedgerFault::Running { .. })
        ));

        let mut check = LedgerCheck::default();
        entries.iter().for_each(|e| check.push(e).unwrap());
        let wrong = Balance {
            balance_paise: 351,
            entries: 3,
        };
        assert!(matches!(
            check.finish(wrong),
            Err(LedgerFault::Balance { .. })
        ));
    }

    #[test]
    fn a_reused_request_id_replays_or_is_refused() {
        let (first, _) = plan_append("t", Balance::default(), &entry(EntryKind::TopUp, 5)).unwrap();
        let again = replay(first.clone(), &entry(EntryKind::TopUp, 5)).unwrap();
        assert!(again.replayed);
        assert_eq!(again.entry, first);
        assert!(matches!(
            replay(first, &entry(EntryKind::TopUp, 6)),
            Err(WalletError::RequestIdReused { .. })
        ));
    }
}
