//! Key encoding for the layout documented in the parent module. `wp/` (pending outbox
//! index) is an addition to the spec's layout: without it every deliverer poll would scan
//! the whole outbox history.

use chrono::{DateTime, Datelike};

use crate::error::StoreError;

pub(crate) const RECORD: &[u8] = b"r/";
pub(crate) const OPEN: &[u8] = b"o/";
pub(crate) const OUTBOX: &[u8] = b"w/";
pub(crate) const OUTBOX_PENDING: &[u8] = b"wp/";
const TENANT: &[u8] = b"t/";
const DAY: &[u8] = b"d/";
const WEBHOOK_INDEX: &[u8] = b"wi/";
pub(crate) const AGGREGATE: &[u8] = b"a/";
/// What purged calls contributed to the tallies (see `retention.rs`).
pub(crate) const PURGED_AGGREGATE: &[u8] = b"pa/";
/// Holds the version of the per-day tallies' format (see `aggregates.rs`).
pub(crate) const AGGREGATES_MARKER: &[u8] = b"m/aggregates";

const MAX_ID_LEN: usize = 128;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// Ids become key parts, so they must be non-empty, bounded and free of the separator byte.
pub(crate) fn check_id(what: &'static str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.as_bytes().contains(&0) {
        return Err(StoreError::InvalidInput { what });
    }
    Ok(())
}

pub(crate) fn record(call_id: &str) -> Vec<u8> {
    cat(&[RECORD, call_id.as_bytes()])
}

pub(crate) fn open(call_id: &str) -> Vec<u8> {
    cat(&[OPEN, call_id.as_bytes()])
}

pub(crate) fn tenant_prefix(tenant: &str) -> Vec<u8> {
    cat(&[TENANT, tenant.as_bytes(), b"\0"])
}

pub(crate) fn tenant_time(tenant: &str, ms: u64) -> Vec<u8> {
    cat(&[&tenant_prefix(tenant), &ms.to_be_bytes()])
}

pub(crate) fn tenant(tenant: &str, created_ms: u64, call_id: &str) -> Vec<u8> {
    cat(&[&tenant_time(tenant, created_ms), call_id.as_bytes()])
}

pub(crate) fn day_prefix(tenant: &str, day: &str) -> Vec<u8> {
    cat(&[DAY, tenant.as_bytes(), b"\0", day.as_bytes(), b"\0"])
}

/// A legacy day-index key (see the layout in the parent module): the retention purge
/// removes it with its record; tests build them to check that stores written before its
/// removal still verify.
pub(crate) fn day(tenant: &str, day: &str, call_id: &str) -> Vec<u8> {
    cat(&[&day_prefix(tenant, day), call_id.as_bytes()])
}

/// Prefix of one tenant's tallies of one day: `a/<tenant>\0<YYYYMMDD>\0`.
pub(crate) fn aggregate_day(tenant: &str, day: &str) -> Vec<u8> {
    cat(&[AGGREGATE, tenant.as_bytes(), b"\0", day.as_bytes(), b"\0"])
}

pub(crate) fn aggregate(tenant: &str, day: &str, trunk: &str) -> Vec<u8> {
    cat(&[&aggregate_day(tenant, day), trunk.as_bytes()])
}

/// The purged-calls tally matching the tally key `a/<rest>`: `pa/<rest>`.
pub(crate) fn purged_aggregate_for(aggregate_key: &[u8]) -> Vec<u8> {
    let rest = aggregate_key.get(AGGREGATE.len()..).unwrap_or_default();
    cat(&[PURGED_AGGREGATE, rest])
}

/// The tally key `a/<rest>` of the purged-calls tally `pa/<rest>`.
pub(crate) fn aggregate_for_purged(purged_key: &[u8]) -> Vec<u8> {
    let rest = purged_key.get(PURGED_AGGREGATE.len()..).unwrap_or_default();
    cat(&[AGGREGATE, rest])
}

/// The key right after every `t/<tenant>\0...` key (ids never contain bytes below
/// `0x01` after the separator), where the next tenant's index starts.
pub(crate) fn tenant_index_end(tenant: &[u8]) -> Vec<u8> {
    cat(&[TENANT, tenant, b"\x01"])
}

/// Splits a tenant index key into `(tenant, created_ms, call_id)`.
pub(crate) fn parse_tenant_key(key: &[u8]) -> Option<(&[u8], u64, &str)> {
    let rest = key.strip_prefix(TENANT)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    let ms = tail_u64(rest.get(nul + 1..nul + 9)?)?;
    let id = std::str::from_utf8(rest.get(nul + 9..)?).ok()?;
    Some((&rest[..nul], ms, id))
}

/// A key as text for reports: printable ASCII as is, every other byte (the `\0`
/// separators, big-endian integers) hex-escaped as `\x00`.
pub(crate) fn printable(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_graphic() {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

pub(crate) fn outbox(seq: u64) -> Vec<u8> {
    cat(&[OUTBOX, &seq.to_be_bytes()])
}

/// Value of a pending-index entry: `next_attempt_ms` and `created_ms`, big-endian, then
/// the tenant id, so due checks, backlog stats and the deliverer's per-tenant admission
/// never decode the entry itself.
pub(crate) fn pending_value(next_attempt_ms: u64, created_ms: u64, tenant: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + tenant.len());
    v.extend_from_slice(&next_attempt_ms.to_be_bytes());
    v.extend_from_slice(&created_ms.to_be_bytes());
    v.extend_from_slice(tenant.as_bytes());
    v
}

/// The tenant of a pending-index value; `None` for values written before it was added.
pub(crate) fn pending_tenant(v: &[u8]) -> Option<&str> {
    v.get(16..)
        .filter(|t| !t.is_empty())
        .and_then(|t| std::str::from_utf8(t).ok())
}

/// `(next_attempt_ms, created_ms)` from a pending-index value; `None` for entries
/// written before the value was introduced (they are then decoded).
pub(crate) fn parse_pending_value(v: &[u8]) -> Option<(u64, u64)> {
    let a: [u8; 8] = v.get(..8)?.try_into().ok()?;
    let b: [u8; 8] = v.get(8..16)?.try_into().ok()?;
    Some((u64::from_be_bytes(a), u64::from_be_bytes(b)))
}

pub(crate) fn outbox_pending(seq: u64) -> Vec<u8> {
    cat(&[OUTBOX_PENDING, &seq.to_be_bytes()])
}

pub(crate) fn webhook_index(call_id: &str) -> Vec<u8> {
    cat(&[WEBHOOK_INDEX, call_id.as_bytes()])
}

/// Reads the big-endian u64 that ends a key (or is a whole value).
pub(crate) fn tail_u64(bytes: &[u8]) -> Option<u64> {
    let start = bytes.len().checked_sub(8)?;
    let arr: [u8; 8] = bytes.get(start..)?.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// UTC calendar day of a unix-millisecond timestamp as `YYYYMMDD`.
pub(crate) fn utc_day(ms: u64) -> Result<String, StoreError> {
    let bad = StoreError::InvalidInput { what: "created_ms" };
    let ms = i64::try_from(ms).map_err(|_| StoreError::InvalidInput { what: "created_ms" })?;
    let dt = DateTime::from_timestamp_millis(ms).ok_or(bad)?;
    Ok(format!("{:04}{:02}{:02}", dt.year(), dt.month(), dt.day()))
}

/// `[start, end)` in Unix ms of UTC day `YYYYMMDD`.
pub(crate) fn utc_day_range(yyyymmdd: &str) -> Result<(u64, u64), StoreError> {
    let bad = || StoreError::InvalidInput { what: "day" };
    if yyyymmdd.len() != 8 || !yyyymmdd.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let date = chrono::NaiveDate::parse_from_str(yyyymmdd, "%Y%m%d").map_err(|_| bad())?;
    let start = date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(bad)?
        .and_utc()
        .timestamp_millis();
    let start = u64::try_from(start).map_err(|_| bad())?;
    Ok((start, start + 86_400_000))
}

/// Opaque pagination cursor: 16 hex digits of created_ms followed by the call id.
pub(crate) fn encode_cursor(created_ms: u64, call_id: &str) -> String {
    format!("{created_ms:016x}{call_id}")
}

pub(crate) fn decode_cursor(c: &str) -> Result<(u64, &str), StoreError> {
    let bad = || StoreError::InvalidInput { what: "cursor" };
    let (ms, id) = (c.get(..16).ok_or_else(bad)?, c.get(16..).ok_or_else(bad)?);
    let ms = u64::from_str_radix(ms, 16).map_err(|_| bad())?;
    check_id("cursor", id)?;
    Ok((ms, id))
}

/// The tenant-time index range one `list_by_tenant` page reads: from `from_ms` (or just
/// after the cursor's key, whichever is later) up to `to_ms`, exclusive. Every backend
/// that keeps this key layout pages the same way.
pub(super) fn tenant_page(
    tenant_id: &str,
    from_ms: u64,
    to_ms: u64,
    cursor: Option<&str>,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let mut start = tenant_time(tenant_id, from_ms);
    if let Some(c) = cursor {
        let (ms, id) = decode_cursor(c)?;
        // Key + 0x00 is the smallest key after the cursor's (ids never contain 0x00).
        let mut after = tenant(tenant_id, ms, id);
        after.push(0);
        start = start.max(after);
    }
    Ok((start, tenant_time(tenant_id, to_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_is_utc() {
        // 2024-03-01T23:30:00Z
        assert_eq!(utc_day(1_709_335_800_000).unwrap(), "20240301");
        assert_eq!(utc_day(0).unwrap(), "19700101");
    }

    #[test]
    fn tenant_keys_sort_by_time() {
        let a = tenant("acme", 5, "c2c_b");
        let b = tenant("acme", 256, "c2c_a");
        assert!(a < b);
        assert!(a.starts_with(&tenant_prefix("acme")));
        assert!(!a.starts_with(&tenant_prefix("acm")));
    }

    #[test]
    fn tenant_keys_parse_and_the_next_tenant_starts_after_the_end() {
        let k = tenant("acme", 42, "c2c_x");
        assert_eq!(parse_tenant_key(&k), Some((&b"acme"[..], 42, "c2c_x")));
        assert_eq!(parse_tenant_key(b"t/acme"), None);
        let end = tenant_index_end(b"acme");
        assert!(tenant("acme", u64::MAX, "c2c_zzz") < end);
        assert!(end <= tenant("acme-2", 0, "c2c_a"));
        assert!(end <= tenant("acmf", 0, "c2c_a"));
    }

    #[test]
    fn purged_tallies_mirror_tally_keys() {
        let a = aggregate("acme", "20240301", "airtel");
        let p = purged_aggregate_for(&a);
        assert!(p.starts_with(PURGED_AGGREGATE));
        assert_eq!(aggregate_for_purged(&p), a);
    }

    #[test]
    fn cursor_round_trip() {
        let c = encode_cursor(42, "c2c_x");
        assert_eq!(decode_cursor(&c).unwrap(), (42, "c2c_x"));
        assert!(decode_cursor("zz").is_err());
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("t", "acme").is_ok());
        assert!(check_id("t", "").is_err());
        assert!(check_id("t", "a\0b").is_err());
        assert!(check_id("t", &"x".repeat(129)).is_err());
    }
}
