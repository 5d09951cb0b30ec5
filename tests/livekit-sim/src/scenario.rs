//! Call scripts: what the simulated callee does, chosen by the dialled number.
//!
//! The key is the *last 10 digits* of `sip_call_to`, so the trunk's dial prefix
//! (e.g. `9911` + number) does not matter. Times are measured from the
//! CreateSIPParticipant request (the INVITE), except `hangup_after_ms`, which
//! counts from the answer. A call not answered or failed within its ringing timeout
//! ends as "no answer", as LiveKit SIP does.
//!
//! File format (JSON or TOML; TOML shown):
//! ```toml
//! [default]                      # optional; replaces the built-in default
//! ring_after_ms = 100
//! outcome = { kind = "answer", after_ms = 200 }
//!
//! [numbers.9530251797]
//! outcome = { kind = "fail", sip_code = 486, after_ms = 1500 }
//!
//! [numbers.9000000001]
//! outcome = { kind = "no_answer" }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use livekit_protocol::DisconnectReason;
use serde::{Deserialize, Serialize};

use crate::twirp::code;
use crate::SimError;

/// How many digits of the dialled string select a scenario.
pub const KEY_DIGITS: usize = 10;

/// One scripted call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// When the callee's 180 Ringing arrives (`sip.callStatus` -> `ringing`).
    /// `None`: never rings (e.g. an immediate trunk failure).
    #[serde(default = "default_ring_after")]
    pub ring_after_ms: Option<u64>,
    pub outcome: Outcome,
}

fn default_ring_after() -> Option<u64> {
    Some(100)
}

/// How the call ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// 200 OK after `after_ms`; the callee hangs up (BYE) `hangup_after_ms` after answering,
    /// or never (until `max_call_duration` or the room goes away).
    Answer {
        after_ms: u64,
        #[serde(default)]
        hangup_after_ms: Option<u64>,
    },
    /// A final SIP error response after `after_ms` (486 busy, 603 decline, 480, 503...).
    Fail { sip_code: u16, after_ms: u64 },
    /// Rings until the request's ringing timeout; LiveKit cancels the INVITE.
    NoAnswer,
}

impl Scenario {
    /// Answers after `after_ms`; hangs up `hangup_after_ms` after answering if given.
    pub fn answer(after_ms: u64, hangup_after_ms: Option<u64>) -> Self {
        Self {
            ring_after_ms: Some(after_ms / 2),
            outcome: Outcome::Answer {
                after_ms,
                hangup_after_ms,
            },
        }
    }

    /// A final SIP error `sip_code` after `after_ms` (rings first if `after_ms` > 0).
    pub fn fail(sip_code: u16, after_ms: u64) -> Self {
        Self {
            ring_after_ms: (after_ms > 0).then_some(after_ms / 2),
            outcome: Outcome::Fail { sip_code, after_ms },
        }
    }

    /// 486 Busy Here -> `USER_REJECTED`.
    pub fn busy() -> Self {
        Self::fail(486, 300)
    }

    /// 603 Decline -> `USER_REJECTED`.
    pub fn decline() -> Self {
        Self::fail(603, 300)
    }

    /// 480 Temporarily Unavailable -> `USER_UNAVAILABLE`.
    pub fn unavailable() -> Self {
        Self::fail(480, 300)
    }

    /// 503 from the carrier, before any ringing -> `SIP_TRUNK_FAILURE`.
    pub fn trunk_failure() -> Self {
        Self {
            ring_after_ms: None,
            outcome: Outcome::Fail {
                sip_code: 503,
                after_ms: 50,
            },
        }
    }

    /// Rings until the ringing timeout -> `USER_UNAVAILABLE`, no SIP code.
    pub fn no_answer() -> Self {
        Self {
            ring_after_ms: Some(100),
            outcome: Outcome::NoAnswer,
        }
    }
}

impl Default for Scenario {
    /// The fallback when no scenario matches: ring at 100 ms, answer at 200 ms, never hang up.
    fn default() -> Self {
        Self {
            ring_after_ms: Some(100),
            outcome: Outcome::Answer {
                after_ms: 200,
                hangup_after_ms: None,
            },
        }
    }
}

/// The scenario key for a dialled string: its last [`KEY_DIGITS`] digits.
pub fn scenario_key(dialled: &str) -> String {
    let digits: Vec<char> = dialled.chars().filter(char::is_ascii_digit).collect();
    let start = digits.len().saturating_sub(KEY_DIGITS);
    digits[start..].iter().collect()
}

/// `DisconnectReason` LiveKit SIP reports for a failed INVITE with this final
/// status (livekit/sip `classifyInviteError`).
pub fn disconnect_reason_for_sip(sip_code: u16) -> DisconnectReason {
    match sip_code {
        401 | 403 | 407 | 486 | 488 => DisconnectReason::UserRejected,
        404 | 408 | 480 => DisconnectReason::UserUnavailable,
        400..=499 => DisconnectReason::UserUnavailable,
        500..=599 => DisconnectReason::SipTrunkFailure,
        600..=699 => DisconnectReason::UserRejected,
        _ => DisconnectReason::UnknownReason,
    }
}

/// Twirp code for a SIP failure returned with `wait_until_answered`
/// (livekit/protocol `sipCodeToGRPCCode` mapped through gRPC -> Twirp).
pub fn twirp_code_for_sip(sip_code: u16) -> &'static str {
    match sip_code {
        300 | 305 | 380 | 400 | 405 | 406 | 411 | 413 | 414 | 415 | 417 | 420 | 421 | 422 | 423
        | 424 | 425 | 429 | 430 | 439 | 469 | 484 | 485 | 488 | 489 | 493 | 505 | 513 | 606 => {
            code::INVALID_ARGUMENT
        }
        401 | 402 | 403 | 433 | 470 | 603 | 607 | 608 => code::PERMISSION_DENIED,
        301 | 302 | 404 | 410 | 481 | 604 => code::NOT_FOUND,
        407 | 428 | 436 | 437 | 438 | 494 => code::UNAUTHENTICATED,
        408 | 504 => code::DEADLINE_EXCEEDED,
        409 | 412 | 482 | 483 | 500 | 501 | 502 | 503 => code::FAILED_PRECONDITION,
        416 => code::OUT_OF_RANGE,
        440 | 480 | 486 | 600 => code::RESOURCE_EXHAUSTED,
        487 | 491 => code::ABORTED,
        c if (300..500).contains(&c) => code::INVALID_ARGUMENT,
        c if (500..600).contains(&c) => code::FAILED_PRECONDITION,
        c if (600..700).contains(&c) => code::INVALID_ARGUMENT,
        _ => code::UNKNOWN,
    }
}

/// Standard reason phrase for the SIP codes scenarios use.
pub fn sip_reason_phrase(sip_code: u16) -> &'static str {
    match sip_code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        _ => "Unknown",
    }
}

/// A scenario file: an optional default plus per-number scripts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    #[serde(default)]
    pub default: Option<Scenario>,
    #[serde(default)]
    pub numbers: BTreeMap<String, Scenario>,
}

impl ScenarioFile {
    /// Reads `path` as TOML when it ends in `.toml`, JSON otherwise.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
        let meta = std::fs::metadata(path).map_err(|e| SimError::Config(e.to_string()))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(SimError::Config(format!(
                "scenario file larger than {MAX_FILE_BYTES} bytes"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| SimError::Config(e.to_string()))?;
        let is_toml = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"));
        if is_toml {
            toml::from_str(&text).map_err(|e| SimError::Config(e.to_string()))
        } else {
            serde_json::from_str(&text).map_err(|e| SimError::Config(e.to_string()))
        }
    }
}

/// Scenario lookup table (bounded).
#[derive(Clone, Debug)]
pub(crate) struct ScenarioTable {
    default: Scenario,
    by_key: HashMap<String, Scenario>,
    max_entries: usize,
}

impl ScenarioTable {
    pub(crate) fn new(default: Scenario, max_entries: usize) -> Self {
        Self {
            default,
            by_key: HashMap::new(),
            max_entries,
        }
    }

    /// Sets the script for `number` (any form; keyed by its last 10 digits).
    pub(crate) fn set(&mut self, number: &str, scenario: Scenario) -> Result<(), SimError> {
        let key = scenario_key(number);
        if key.is_empty() {
            return Err(SimError::Config("scenario number has no digits".to_owned()));
        }
        if !self.by_key.contains_key(&key) && self.by_key.len() >= self.max_entries {
            return Err(SimError::Limit("scenario table is full"));
        }
        self.by_key.insert(key, scenario);
        Ok(())
    }

    pub(crate) fn set_default(&mut self, scenario: Scenario) {
        self.default = scenario;
    }

    pub(crate) fn lookup(&self, dialled: &str) -> Scenario {
        self.by_key
            .get(&scenario_key(dialled))
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ignores_prefix() {
        assert_eq!(scenario_key("99119530251797"), "9530251797");
        assert_eq!(scenario_key("+919530251797"), "9530251797");
        assert_eq!(scenario_key("12345"), "12345");
    }

    #[test]
    fn reasons_follow_livekit_sip() {
        assert_eq!(
            disconnect_reason_for_sip(486),
            DisconnectReason::UserRejected
        );
        assert_eq!(
            disconnect_reason_for_sip(603),
            DisconnectReason::UserRejected
        );
        assert_eq!(
            disconnect_reason_for_sip(480),
            DisconnectReason::UserUnavailable
        );
        assert_eq!(
            disconnect_reason_for_sip(404),
            DisconnectReason::UserUnavailable
        );
        assert_eq!(
            disconnect_reason_for_sip(503),
            DisconnectReason::SipTrunkFailure
        );
        assert_eq!(twirp_code_for_sip(486), code::RESOURCE_EXHAUSTED);
        assert_eq!(twirp_code_for_sip(603), code::PERMISSION_DENIED);
        assert_eq!(twirp_code_for_sip(503), code::FAILED_PRECONDITION);
        assert_eq!(twirp_code_for_sip(480), code::RESOURCE_EXHAUSTED);
    }

    #[test]
    fn table_lookup_and_bound() {
        let mut t = ScenarioTable::new(Scenario::default(), 1);
        t.set("9119530251797", Scenario::busy()).unwrap();
        assert_eq!(t.lookup("99119530251797"), Scenario::busy());
        assert_eq!(t.lookup("9000000000"), Scenario::default());
        assert!(t.set("9000000000", Scenario::busy()).is_err());
        // Overwriting an existing key is allowed at the bound.
        t.set("9530251797", Scenario::decline()).unwrap();
    }

    #[test]
    fn file_formats() {
        let toml_text = r#"
            [default]
            ring_after_ms = 10
            outcome = { kind = "answer", after_ms = 20 }

            [numbers.9530251797]
            outcome = { kind = "fail", sip_code = 486, after_ms = 1500 }

            [numbers.9000000001]
            ring_after_ms = 5
            outcome = { kind = "no_answer" }
        "#;
        let f: ScenarioFile = toml::from_str(toml_text).unwrap();
        assert_eq!(f.numbers["9530251797"].ring_after_ms, Some(100));
        assert_eq!(f.numbers["9000000001"].outcome, Outcome::NoAnswer);
        let json = r#"{"numbers":{"9530251797":{"ring_after_ms":null,
            "outcome":{"kind":"answer","after_ms":5,"hangup_after_ms":50}}}}"#;
        let f: ScenarioFile = serde_json::from_str(json).unwrap();
        assert_eq!(f.numbers["9530251797"].ring_after_ms, None);
    }
}
