//! `[sip]`: the SIP edge's per-tenant call caps and transaction table size.

use super::Errs;
use crate::file::SipSection;
use crate::policy::SipKnobs;

pub(super) fn validate(s: &SipSection, e: &mut Errs<'_>) -> SipKnobs {
    let cps = s.calls_per_second.unwrap_or(10);
    if !(1..=100_000).contains(&cps) {
        e.push("sip.calls_per_second", "must be between 1 and 100000");
    }
    let conc = s.max_concurrent_calls.unwrap_or(100);
    if !(1..=1_000_000).contains(&conc) {
        e.push("sip.max_concurrent_calls", "must be between 1 and 1000000");
    }
    let txns = s.max_transactions.unwrap_or(8192);
    if !(64..=4_000_000).contains(&txns) {
        e.push("sip.max_transactions", "must be between 64 and 4000000");
    }
    SipKnobs {
        calls_per_second: cps,
        max_concurrent_calls: conc,
        max_transactions: txns,
    }
}
