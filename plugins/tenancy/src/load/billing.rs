//! `[billing]` of gateway.toml: the platform's default rate for managed tenants' calls
//! (a trunk may carry its own), how many minutes a call must be able to pay for before it
//! is dialled, and how far a call in progress may overdraw a wallet.

use c2c_billing::Rate;

use super::Errs;
use crate::file::BillingSection;
use crate::policy::BillingPolicy;

/// Default platform rate: ₹1.00 per started minute.
const DEFAULT_RATE: Rate = Rate {
    paise_per_pulse: 100,
    pulse_seconds: 60,
};
/// Default low-balance mark: ₹100.
const DEFAULT_LOW_BALANCE_PAISE: u64 = 10_000;
/// Largest low-balance mark (₹1 crore): more is a typo.
const MAX_LOW_BALANCE_PAISE: u64 = 1_000_000_000;
/// Largest overdraft a call may run up (₹1,00,000): more is a typo.
const MAX_OVERDRAFT_PAISE: u64 = 10_000_000;

pub(super) fn validate(b: &BillingSection, e: &mut Errs<'_>) -> BillingPolicy {
    let default_rate = rate(
        "billing",
        b.paise_per_pulse.unwrap_or(DEFAULT_RATE.paise_per_pulse),
        b.pulse_seconds.unwrap_or(DEFAULT_RATE.pulse_seconds),
        e,
    )
    .unwrap_or(DEFAULT_RATE);
    let min_call_minutes = b.min_call_minutes.unwrap_or(1);
    if !(1..=60).contains(&min_call_minutes) {
        e.push("billing.min_call_minutes", "must be between 1 and 60");
    }
    let overdraft_paise = b.overdraft_paise.unwrap_or(0);
    if overdraft_paise > MAX_OVERDRAFT_PAISE {
        e.push(
            "billing.overdraft_paise",
            format!("must be at most {MAX_OVERDRAFT_PAISE} (₹1,00,000)"),
        );
    }
    let low_balance_paise = b.low_balance_paise.unwrap_or(DEFAULT_LOW_BALANCE_PAISE);
    if low_balance_paise > MAX_LOW_BALANCE_PAISE {
        e.push(
            "billing.low_balance_paise",
            format!(
                "must be at most {MAX_LOW_BALANCE_PAISE} (₹1,00,00,000); 0 turns the alert off"
            ),
        );
    }
    BillingPolicy {
        low_balance_paise,
        charge_calls: b.charge_calls.unwrap_or(false),
        default_rate,
        min_call_minutes,
        overdraft_paise,
    }
}

/// A rate at `at` (`billing`, `trunks[2]`), checked; its errors name `at`'s keys.
pub(super) fn rate(at: &str, paise: u64, pulse: u32, e: &mut Errs<'_>) -> Option<Rate> {
    match Rate::new(paise, pulse) {
        Ok(r) => Some(r),
        Err(c2c_billing::RateError::Pulse(_)) => {
            e.push(
                format!("{at}.pulse_seconds"),
                format!(
                    "must be between 1 and {} (60 and 1 are the common pulses)",
                    c2c_billing::MAX_PULSE_SECONDS
                ),
            );
            None
        }
        Err(c2c_billing::RateError::Price(_)) => {
            e.push(
                format!("{at}.paise_per_pulse"),
                format!("must be at most {}", c2c_billing::MAX_PAISE_PER_PULSE),
            );
            None
        }
    }
}
