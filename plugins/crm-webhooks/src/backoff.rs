//! Retry timing: the per-attempt schedule with full jitter, and `Retry-After`.
//!
//! Full jitter (delay uniform in `[0, step]`) spreads the retries of a tenant whose
//! CRM was down, so its recovery is not met by a synchronized burst.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// No single backoff step is longer than this.
pub const MAX_STEP: Duration = Duration::from_secs(4 * 3600);

/// A `Retry-After` shorter than this is raised to it, so a server answering
/// `Retry-After: 0` cannot make us spin.
pub const RETRY_AFTER_FLOOR: Duration = Duration::from_secs(1);

/// Default schedule: 5 s, 30 s, 2 m, 10 m, 30 m, 1 h, 2 h, 4 h, then 4 h forever
/// (until the job's `max_age` is reached).
pub fn default_schedule() -> Vec<Duration> {
    [5, 30, 120, 600, 1_800, 3_600, 7_200, 14_400]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// The upper bound of the delay after the `failures`-th failed attempt (1-based):
/// `schedule[failures-1]`, the last step repeating, capped at [`MAX_STEP`].
/// An empty schedule means [`MAX_STEP`] (policy validation rejects it anyway).
pub fn step(schedule: &[Duration], failures: u32) -> Duration {
    let idx = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
    let raw = schedule
        .get(idx)
        .or_else(|| schedule.last())
        .copied()
        .unwrap_or(MAX_STEP);
    raw.min(MAX_STEP)
}

/// Full jitter: uniform in `[0, step]`.
pub fn full_jitter<R: Rng + ?Sized>(step: Duration, rng: &mut R) -> Duration {
    let max = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.gen_range(0..=max))
}

/// Delay before the next attempt after `failures` failed attempts.
pub fn next_delay(schedule: &[Duration], failures: u32) -> Duration {
    full_jitter(step(schedule, failures), &mut rand::thread_rng())
}

/// Parse a `Retry-After` value (RFC 9110 §10.2.3): delta-seconds or an HTTP-date
/// (IMF-fixdate, RFC 850 or asctime). Returns the wait from `now`; a date in the
/// past is zero. `None` when unparseable (the caller then uses the schedule).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too large for u64: it is still "a very long time".
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Clamp a server-requested wait into `[RETRY_AFTER_FLOOR, cap]`.
pub fn clamp_retry_after(wait: Duration, cap: Duration) -> Duration {
    wait.max(RETRY_AFTER_FLOOR).min(cap.max(RETRY_AFTER_FLOOR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn schedule_steps_repeat_last_and_cap() {
        let sched = default_schedule();
        assert_eq!(step(&sched, 1), S(5));
        assert_eq!(step(&sched, 2), S(30));
        assert_eq!(step(&sched, 3), S(120));
        assert_eq!(step(&sched, 8), S(14_400));
        assert_eq!(step(&sched, 9), S(14_400));
        assert_eq!(step(&sched, u32::MAX), S(14_400));
        // failures = 0 behaves like the first failure.
        assert_eq!(step(&sched, 0), S(5));
        // Over-long custom steps are capped.
        assert_eq!(step(&[S(86_400)], 1), MAX_STEP);
        assert_eq!(step(&[], 3), MAX_STEP);
    }

    #[test]
    fn full_jitter_stays_in_range_and_spreads() {
        let mut rng = StdRng::seed_from_u64(7);
        let step = Duration::from_millis(1_000);
        let samples: Vec<Duration> = (0..2_000).map(|_| full_jitter(step, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= step));
        let low = samples
            .iter()
            .filter(|d| **d < Duration::from_millis(250))
            .count();
        let high = samples
            .iter()
            .filter(|d| **d > Duration::from_millis(750))
            .count();
        // Uniform: about a quarter in each tail.
        assert!((350..650).contains(&low), "low tail {low}");
        assert!((350..650).contains(&high), "high tail {high}");
        assert_eq!(full_jitter(Duration::ZERO, &mut rng), Duration::ZERO);
    }

    #[test]
    fn retry_after_delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("2", now), Some(S(2)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(S(120)));
        assert_eq!(parse_retry_after("0", now), Some(S(0)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(S(u64::MAX))
        );
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_http_dates() {
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        let date = std::time::UNIX_EPOCH + S(784_111_777);
        let now = date - S(90);
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate
            "Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
            "Sun Nov  6 08:49:37 1994",       // asctime
        ] {
            assert_eq!(parse_retry_after(v, now), Some(S(90)), "{v}");
        }
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date + S(10)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 32 Nov 1994 08:49:37 GMT", now),
            None
        );
    }

    #[test]
    fn retry_after_clamped() {
        let cap = S(3_600);
        assert_eq!(clamp_retry_after(S(0), cap), RETRY_AFTER_FLOOR);
        assert_eq!(clamp_retry_after(S(2), cap), S(2));
        assert_eq!(clamp_retry_after(S(86_400), cap), cap);
    }
}
