//! DLT rules as a policy states them: what kind of call a trunk carries, what kind of
//! entity a tenant is, which caller-ID series each may present, and when promotional
//! calls may go out (Indian Standard Time).
//!
//! The rules and their sources (docs/dlt.md has the full text and the citations):
//! - TRAI's TCCCPR 2018 sorts commercial voice calls into promotional, service and
//!   transactional; promotional calls reach no number on the do-not-disturb register
//!   without the customer's consent, and only in the day's window (09:00-21:00 IST by
//!   default, the window the 2010 regulation fixed and operators' codes of practice keep).
//! - DoT's numbering for commercial voice: promotional calls from the 140 series;
//!   service and transactional calls of government and regulators from 1600ABCXXX, of
//!   RBI/SEBI/PFRDA/IRDAI-regulated financial entities from 1601ABCXXX (AB the licensed
//!   service area, C the operator); everyone else's service calls from the numbers the
//!   entity registered.
//!
//! Pure data and arithmetic: the number lists and the per-call check live in `c2c-dlt`.

use std::fmt;

/// What a call is, for TCCCPR (`category` of a trunk, optionally of one click2call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallCategory {
    /// Marketing: 140-series caller ID, DND-scrubbed, only within calling hours.
    Promotional,
    /// Service calls to existing customers (the default: what a CRM's click-to-call is).
    #[default]
    Service,
    /// Transactional calls (confirmations, alerts).
    Transactional,
}

impl CallCategory {
    pub const ALL: [CallCategory; 3] = [
        CallCategory::Promotional,
        CallCategory::Service,
        CallCategory::Transactional,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallCategory::Promotional => "promotional",
            CallCategory::Service => "service",
            CallCategory::Transactional => "transactional",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for CallCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of entity a tenant is (`entity_class` in its `[dlt]`): it decides the
/// caller-ID series of its service and transactional calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntityClass {
    /// Any other business: service calls from its registered numbers.
    #[default]
    Commercial,
    /// Government bodies and regulators: the 1600 series.
    Government,
    /// RBI, SEBI, PFRDA or IRDAI-regulated financial entities: the 1601 series.
    Financial,
}

impl EntityClass {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityClass::Commercial => "commercial",
            EntityClass::Government => "government",
            EntityClass::Financial => "financial",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            EntityClass::Commercial,
            EntityClass::Government,
            EntityClass::Financial,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// India has one time zone and no daylight saving: IST is UTC+05:30 all year.
pub const IST_OFFSET_SECONDS: i64 = 5 * 3600 + 30 * 60;
const DAY_SECONDS: i64 = 86_400;

/// A daily window in IST, `[start, end)`: a call at exactly `start` may go, one at
/// exactly `end` may not (TRAI's "between 0900 and 2100 hrs" read as 21:00 being the
/// first closed minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingHours {
    start_minute: u16,
    end_minute: u16,
}

impl Default for CallingHours {
    fn default() -> Self {
        Self {
            start_minute: 9 * 60,
            end_minute: 21 * 60,
        }
    }
}

impl CallingHours {
    /// `"09:00-21:00"`: 24-hour `HH:MM`, start before end, within one day.
    pub fn parse(s: &str) -> Result<Self, String> {
        let why = || format!("{s:?} is not a window like \"09:00-21:00\" (IST, start before end)");
        let (a, b) = s.split_once('-').ok_or_else(why)?;
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            // 24:00 closes a window at midnight.
            (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
        };
        let (start, end) = (minute(a).ok_or_else(why)?, minute(b).ok_or_else(why)?);
        if start >= end || start >= 24 * 60 {
            return Err(why());
        }
        Ok(Self {
            start_minute: start,
            end_minute: end,
        })
    }

    /// `None` when a call may go at `now_unix_ms`; else when the window next opens
    /// (Unix ms).
    pub fn next_allowed(&self, now_unix_ms: u64) -> Option<u64> {
        let now = i64::try_from(now_unix_ms / 1000).unwrap_or(i64::MAX / 2);
        let local = now + IST_OFFSET_SECONDS;
        let second_of_day = local.rem_euclid(DAY_SECONDS);
        let start = i64::from(self.start_minute) * 60;
        let end = i64::from(self.end_minute) * 60;
        if (start..end).contains(&second_of_day) {
            return None;
        }
        let midnight = local - second_of_day;
        let opens_local = if second_of_day < start {
            midnight + start
        } else {
            midnight + DAY_SECONDS + start
        };
        u64::try_from((opens_local - IST_OFFSET_SECONDS) * 1000).ok()
    }
}

impl fmt::Display for CallingHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

/// The caller-ID series, as national-number prefixes (`[dlt]` of gateway.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdSeries {
    pub promotional: Vec<String>,
    pub government: Vec<String>,
    pub financial: Vec<String>,
}

impl Default for CallerIdSeries {
    fn default() -> Self {
        Self {
            promotional: vec!["140".to_string()],
            government: vec!["1600".to_string()],
            financial: vec!["1601".to_string()],
        }
    }
}

/// The platform's DLT rules (`[dlt]` of gateway.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DltRules {
    /// Promotional calls' window when a tenant sets none.
    pub calling_hours: CallingHours,
    pub series: CallerIdSeries,
    /// The most numbers one tenant's DND or consent list may hold.
    pub max_list_numbers: usize,
}

impl Default for DltRules {
    fn default() -> Self {
        Self {
            calling_hours: CallingHours::default(),
            series: CallerIdSeries::default(),
            max_list_numbers: 50_000_000,
        }
    }
}

/// Why a caller ID does not fit a call: the rule in words, for `422 caller_id_series`,
/// the SIP `Warning` and `policy check`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SeriesMismatch(pub String);

impl CallerIdSeries {
    /// Whether `caller_id` (E.164) may present a `category` call of an `entity`;
    /// `registered` are the tenant's registered numbers (E.164).
    pub fn check(
        &self,
        category: CallCategory,
        entity: EntityClass,
        caller_id: &str,
        registered: &[String],
    ) -> Result<(), SeriesMismatch> {
        let national = caller_id
            .strip_prefix("+91")
            .filter(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()));
        let in_series = |series: &[String]| {
            national.is_some_and(|n| series.iter().any(|p| n.starts_with(p.as_str())))
        };
        let named = |series: &[String]| series.join("/");
        match (category, entity) {
            (CallCategory::Promotional, _) => {
                if in_series(&self.promotional) {
                    return Ok(());
                }
                Err(SeriesMismatch(format!(
                    "promotional calls must present a {}-series caller ID \
                     (+91{}XXXXXXX, TCCCPR 2018); {caller_id} is not one",
                    named(&self.promotional),
                    self.promotional.first().map_or("", String::as_str),
                )))
            }
            (_, EntityClass::Government | EntityClass::Financial) => {
                let (series, who) = if entity == EntityClass::Government {
                    (&self.government, "a government or regulator entity")
                } else {
                    (&self.financial, "an RBI/SEBI/PFRDA/IRDAI-regulated entity")
                };
                if in_series(series) {
                    return Ok(());
                }
                Err(SeriesMismatch(format!(
                    "{category} calls of {who} must present a {}-series caller ID \
                     (+91{}ABCXXX: service area, operator, number); {caller_id} is not one",
                    named(series),
                    series.first().map_or("", String::as_str),
                )))
            }
            (_, EntityClass::Commercial) => {
                // The reserved series belong to other callers: a commercial entity's
                // service call presenting one would pose as a bank or as marketing.
                if in_series(&self.promotional)
                    || in_series(&self.government)
                    || in_series(&self.financial)
                {
                    return Err(SeriesMismatch(format!(
                        "{caller_id} is in a series reserved for promotional, government or \
                         financial callers; {category} calls of a commercial entity present \
                         one of its registered numbers"
                    )));
                }
                if registered.iter().any(|r| r == caller_id) {
                    return Ok(());
                }
                Err(SeriesMismatch(format!(
                    "{category} calls must present one of the tenant's registered numbers \
                     ([dlt] registered_numbers); {caller_id} is not registered"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-04 00:00 IST as Unix ms (2026-12-03 18:30 UTC).
    const MIDNIGHT_IST: u64 = 1_796_322_600_000;

    fn at(h: u64, m: u64, s: u64) -> u64 {
        MIDNIGHT_IST + ((h * 60 + m) * 60 + s) * 1000
    }

    #[test]
    fn the_window_is_read_in_ist_with_its_edges() {
        let w = CallingHours::default();
        assert_eq!(w.next_allowed(at(9, 0, 0)), None, "09:00:00 opens");
        assert_eq!(w.next_allowed(at(20, 59, 59)), None, "20:59:59 is inside");
        assert_eq!(
            w.next_allowed(at(8, 59, 59)),
            Some(at(9, 0, 0)),
            "a second early: today's 09:00"
        );
        assert_eq!(
            w.next_allowed(at(21, 0, 0)),
            Some(at(24 + 9, 0, 0)),
            "21:00:00 is closed: tomorrow's 09:00"
        );
        assert_eq!(w.next_allowed(at(23, 59, 59)), Some(at(24 + 9, 0, 0)));
        assert_eq!(w.next_allowed(at(0, 0, 0)), Some(at(9, 0, 0)));
        // 08:00 UTC is 13:30 IST: open; 16:00 UTC is 21:30 IST: closed.
        assert_eq!(
            w.next_allowed(MIDNIGHT_IST + 18 * 3_600_000 + 1_800_000),
            None
        );
    }

    #[test]
    fn windows_parse_strictly() {
        let w = CallingHours::parse("10:30-19:00").unwrap();
        assert_eq!(w.to_string(), "10:30-19:00");
        assert_eq!(w.next_allowed(at(10, 29, 59)), Some(at(10, 30, 0)));
        assert_eq!(w.next_allowed(at(10, 30, 0)), None);
        assert_eq!(w.next_allowed(at(19, 0, 0)), Some(at(24 + 10, 30, 0)));
        assert!(CallingHours::parse("00:00-24:00").is_ok());
        for bad in [
            "21:00-09:00",
            "9:00-21:00",
            "09:00",
            "09:00-09:00",
            "25:00-26:00",
            "09:60-10:00",
            "",
        ] {
            assert!(CallingHours::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn promotional_calls_present_the_140_series() {
        let s = CallerIdSeries::default();
        let c = EntityClass::Commercial;
        assert!(s
            .check(CallCategory::Promotional, c, "+911401234567", &[])
            .is_ok());
        let e = s
            .check(
                CallCategory::Promotional,
                c,
                "+919876543210",
                &["+919876543210".into()],
            )
            .unwrap_err();
        assert!(e.0.contains("140-series"), "{e}");
        // Too short or too long is not a 140-series number.
        assert!(s
            .check(CallCategory::Promotional, c, "+91140123456", &[])
            .is_err());
        assert!(s
            .check(CallCategory::Promotional, c, "+9114012345678", &[])
            .is_err());
        assert!(s
            .check(CallCategory::Promotional, c, "+441401234567", &[])
            .is_err());
    }

    #[test]
    fn service_calls_follow_the_entity_class() {
        let s = CallerIdSeries::default();
        for cat in [CallCategory::Service, CallCategory::Transactional] {
            assert!(s
                .check(cat, EntityClass::Government, "+911600111234", &[])
                .is_ok());
            assert!(s
                .check(cat, EntityClass::Government, "+911601111234", &[])
                .is_err());
            assert!(s
                .check(cat, EntityClass::Financial, "+911601111234", &[])
                .is_ok());
            let e = s
                .check(cat, EntityClass::Financial, "+911600111234", &[])
                .unwrap_err();
            assert!(e.0.contains("1601-series"), "{e}");
            let reg = ["+912240001234".to_string()];
            assert!(s
                .check(cat, EntityClass::Commercial, "+912240001234", &reg)
                .is_ok());
            let e = s
                .check(cat, EntityClass::Commercial, "+912240009999", &reg)
                .unwrap_err();
            assert!(e.0.contains("registered"), "{e}");
            // A commercial tenant cannot pose as a bank, even with the number registered.
            let reg = ["+911601111234".to_string()];
            assert!(s
                .check(cat, EntityClass::Commercial, "+911601111234", &reg)
                .is_err());
        }
    }

    #[test]
    fn categories_and_classes_parse_by_name() {
        for c in CallCategory::ALL {
            assert_eq!(CallCategory::parse(c.as_str()), Some(c));
        }
        assert_eq!(CallCategory::parse("Promotional"), None);
        assert_eq!(
            EntityClass::parse("financial"),
            Some(EntityClass::Financial)
        );
        assert_eq!(EntityClass::parse("bank"), None);
    }
}
