//! Re-sending CRM webhooks (`c2c-gateway webhooks replay`, and the owner API behind it).

use c2c_callstate::{CallStore, OutboxEntry, StoreError};

/// Default cap of one replay (`--max`, the API's `max`): a typo'd `--since` must not
/// flood a CRM. A replay that hits it says so (`capped`); it is never silent.
pub const DEFAULT_MAX: usize = 10_000;
/// The largest cap an operator may ask for: bounds the memory and the time of one
/// replay (each re-queue is a durable write).
pub const MAX_LIMIT: usize = 100_000;

/// What a replay did.
#[derive(Debug)]
pub struct Requeued {
    /// The re-queued entries, oldest first: the first `max` of those that matched.
    pub entries: Vec<OutboxEntry>,
    /// How many webhooks matched tenant and `since`, re-queued or not.
    pub matched: u64,
    /// The cap in force.
    pub max: usize,
}

impl Requeued {
    /// True when the cap left matching webhooks out.
    pub fn capped(&self) -> bool {
        self.matched > self.entries.len() as u64
    }
}

/// A replay request the gateway cannot take, with the sentence to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayArgError {
    #[error("max must be between 1 and {MAX_LIMIT}, not {0}")]
    Max(usize),
    #[error("{0:?} is neither RFC 3339 nor a duration like 6h")]
    Since(String),
    #[error("unknown unit in {0:?}; use s, m, h or d")]
    SinceUnit(String),
    #[error("time before 1970")]
    BeforeEpoch,
}

/// Validates a requested cap (`None` is the default).
pub fn check_max(max: Option<usize>) -> Result<usize, ReplayArgError> {
    match max.unwrap_or(DEFAULT_MAX) {
        m @ 1..=MAX_LIMIT => Ok(m),
        m => Err(ReplayArgError::Max(m)),
    }
}

/// Parses `--since`: RFC 3339 (`2026-11-20T00:00:00Z`) or a duration ago (`90m`, `6h`,
/// `2d`).
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, ReplayArgError> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return u64::try_from(t.timestamp_millis()).map_err(|_| ReplayArgError::BeforeEpoch);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| ReplayArgError::Since(s.to_owned()))?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(ReplayArgError::SinceUnit(s.to_owned())),
    };
    Ok(now_ms.saturating_sub(n.saturating_mul(ms)))
}

/// Re-queues the webhooks of `tenant` created at or after `since_ms`, the oldest `max`
/// of them, keeping each one's `webhook-id` so the CRM can de-duplicate. `progress`
/// hears the count re-queued so far.
pub async fn requeue(
    store: &dyn CallStore,
    tenant: &str,
    since_ms: u64,
    now_ms: u64,
    max: usize,
    progress: &mut (dyn FnMut(usize) + Send),
) -> Result<Requeued, StoreError> {
    let (entries, matched) = store
        .outbox_by_tenant_since_capped(tenant, since_ms, max)
        .await?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        out.push(store.outbox_requeue(e.seq, now_ms).await?);
        progress(out.len());
    }
    Ok(Requeued {
        entries: out,
        matched,
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_rfc3339_and_durations() {
        assert_eq!(parse_since("1970-01-01T00:00:01Z", 0).unwrap(), 1000);
        assert_eq!(
            parse_since("2h", 10_000_000).unwrap(),
            10_000_000 - 7_200_000
        );
        assert_eq!(parse_since("1d", 1).unwrap(), 0);
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("5w", 0).is_err());
    }

    #[test]
    fn max_defaults_and_is_bounded() {
        assert_eq!(check_max(None), Ok(DEFAULT_MAX));
        assert_eq!(check_max(Some(1)), Ok(1));
        assert_eq!(check_max(Some(MAX_LIMIT)), Ok(MAX_LIMIT));
        assert!(check_max(Some(0)).is_err());
        assert!(check_max(Some(MAX_LIMIT + 1)).is_err());
    }
}
