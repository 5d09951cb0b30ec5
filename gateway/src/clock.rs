//! Wall-clock time as the gateway stores it: Unix milliseconds (call records, timers,
//! webhook schedules) and UTC calendar days (default key ids).

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// `YYYYMMDD` of today in UTC (used for default key ids).
pub fn today_utc() -> String {
    chrono::Utc::now().format("%Y%m%d").to_string()
}

/// Now in UTC as RFC 3339 to the second (`2026-12-04T17:45:00Z`), for people.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn today_is_eight_digits_and_now_is_after_2026() {
        let d = super::today_utc();
        assert_eq!(d.len(), 8);
        assert!(d.bytes().all(|b| b.is_ascii_digit()));
        assert!(super::now_ms() > 1_767_225_600_000);
    }
}
