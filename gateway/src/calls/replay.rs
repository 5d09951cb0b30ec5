//! Re-sending CRM webhooks (`c2c-gateway webhooks replay`, and the owner API behind it).

use c2c_callstate::{OutboxEntry, SledCallStore, StoreError};

/// Most webhooks one replay may re-queue: a typo'd `--since` must not flood a CRM.
pub const MAX_REPLAY: usize = 10_000;

/// Parses `--since`: RFC 3339 (`2026-11-20T00:00:00Z`) or a duration ago (`90m`, `6h`,
/// `2d`).
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return u64::try_from(t.timestamp_millis()).map_err(|_| "time before 1970".to_string());
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is neither RFC 3339 nor a duration like 6h"))?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("unknown unit in {s:?}; use s, m, h or d")),
    };
    Ok(now_ms.saturating_sub(n.saturating_mul(ms)))
}

/// Re-queues every webhook of `tenant` created at or after `since_ms`, keeping each
/// one's `webhook-id` so the CRM can de-duplicate.
pub async fn requeue(
    store: &SledCallStore,
    tenant: &str,
    since_ms: u64,
    now_ms: u64,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut entries = store.outbox_by_tenant_since(tenant, since_ms)?;
    entries.truncate(MAX_REPLAY);
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        out.push(store.outbox_requeue(e.seq, now_ms).await?);
    }
    Ok(out)
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
}
