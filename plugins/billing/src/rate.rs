//! What a call costs: a rate of paise per pulse, and the pulses a call's billed time
//! takes. Indian carriers bill in whole pulses (60 s and 1 s are both common): a call of
//! 61 s on 60 s pulses is two pulses.

use serde::{Deserialize, Serialize};

/// Most paise one pulse may cost (₹10,000): a rate above it is a typo in a policy file.
pub const MAX_PAISE_PER_PULSE: u64 = 1_000_000;
/// Longest pulse accepted (one hour).
pub const MAX_PULSE_SECONDS: u32 = 3_600;

/// Paise per pulse and the pulse's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rate {
    /// Paise charged for each started pulse.
    pub paise_per_pulse: u64,
    /// The pulse's length in seconds (1 ..= 3600).
    pub pulse_seconds: u32,
}

/// A rate a policy file may not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("pulse_seconds must be between 1 and {MAX_PULSE_SECONDS}, not {0}")]
    Pulse(u32),
    #[error("paise_per_pulse must be at most {MAX_PAISE_PER_PULSE}, not {0}")]
    Price(u64),
}

impl Rate {
    /// A rate, checked.
    pub fn new(paise_per_pulse: u64, pulse_seconds: u32) -> Result<Rate, RateError> {
        if pulse_seconds == 0 || pulse_seconds > MAX_PULSE_SECONDS {
            return Err(RateError::Pulse(pulse_seconds));
        }
        if paise_per_pulse > MAX_PAISE_PER_PULSE {
            return Err(RateError::Price(paise_per_pulse));
        }
        Ok(Rate {
            paise_per_pulse,
            pulse_seconds,
        })
    }

    /// Pulses started in `billed_ms` of talk: ceil(billed seconds / pulse), where a
    /// started second counts (1,001 ms on 1 s pulses is two pulses). Zero talk is zero.
    pub fn pulses(&self, billed_ms: u64) -> u64 {
        let pulse_ms = u64::from(self.pulse_seconds.max(1)) * 1000;
        billed_ms.div_ceil(pulse_ms)
    }

    /// The charge for `billed_ms` of talk, in paise (saturating; a checked rate times
    /// any real call length is far below `u64::MAX`).
    pub fn charge(&self, billed_ms: u64) -> u64 {
        self.pulses(billed_ms).saturating_mul(self.paise_per_pulse)
    }

    /// The cost of `minutes` of talk (what a call must be able to pay for to start).
    pub fn cost_of_minutes(&self, minutes: u32) -> u64 {
        self.charge(u64::from(minutes) * 60_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_pulse_is_a_whole_pulse() {
        let per_minute = Rate::new(120, 60).unwrap();
        assert_eq!(per_minute.charge(0), 0);
        assert_eq!(per_minute.charge(1), 120);
        assert_eq!(per_minute.charge(60_000), 120);
        assert_eq!(per_minute.charge(60_001), 240);
        assert_eq!(per_minute.charge(61_000), 240);
        let per_second = Rate::new(2, 1).unwrap();
        assert_eq!(per_second.charge(999), 2);
        assert_eq!(per_second.charge(1_000), 2);
        assert_eq!(per_second.charge(1_001), 4);
        assert_eq!(per_second.charge(61_000), 122);
        assert_eq!(per_minute.cost_of_minutes(2), 240);
        assert_eq!(per_second.cost_of_minutes(2), 240);
    }

    #[test]
    fn rates_outside_the_bounds_are_refused() {
        assert_eq!(Rate::new(1, 0), Err(RateError::Pulse(0)));
        assert_eq!(Rate::new(1, 3_601), Err(RateError::Pulse(3_601)));
        assert_eq!(Rate::new(1_000_001, 60), Err(RateError::Price(1_000_001)));
        assert!(Rate::new(0, 60).is_ok(), "a free trunk is allowed");
    }

    #[test]
    fn huge_calls_saturate_instead_of_wrapping() {
        let r = Rate::new(MAX_PAISE_PER_PULSE, 1).unwrap();
        assert_eq!(r.charge(u64::MAX), u64::MAX);
    }
}
