//! Simulator configuration.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::scenario::Scenario;

/// Upper bounds on everything the simulator keeps in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimLimits {
    pub max_rooms: usize,
    pub max_participants_per_room: usize,
    pub max_request_bytes: usize,
    pub max_connections: usize,
    /// Signalling WebSocket sessions open at once (`/rtc`); more get 503.
    pub max_rtc_sessions: usize,
    pub max_scenarios: usize,
    /// Webhook queue length; events beyond it are dropped and counted (as LiveKit does).
    pub webhook_queue: usize,
    /// How many recent signed webhooks are kept for inspection/replay.
    pub webhook_log: usize,
    /// How many recent CreateSIPParticipant requests are kept for inspection.
    pub dial_log: usize,
}

impl Default for SimLimits {
    fn default() -> Self {
        Self {
            max_rooms: 10_000,
            max_participants_per_room: 64,
            max_request_bytes: 1024 * 1024,
            max_connections: 1024,
            max_rtc_sessions: 256,
            max_scenarios: 10_000,
            webhook_queue: 1024,
            webhook_log: 256,
            dial_log: 256,
        }
    }
}

/// How to start a [`crate::Simulator`].
#[derive(Clone)]
pub struct SimConfig {
    /// Listen address, e.g. `"127.0.0.1:0"` (port 0 = pick a free one).
    pub listen: String,
    pub api_key: String,
    pub api_secret: String,
    /// Where to POST signed webhooks (`http://` only); `None` = sign and log only.
    pub webhook_url: Option<String>,
    /// Call scripts keyed by number (any form; the last 10 digits are used).
    pub scenarios: HashMap<String, Scenario>,
    /// Script for numbers without one (default: answer after 200 ms, never hang up).
    pub default_scenario: Scenario,
    pub limits: SimLimits,
    /// Server default when CreateRoom leaves `empty_timeout` 0 (LiveKit: 300 s).
    pub default_empty_timeout: Duration,
    /// Server default when CreateRoom leaves `departure_timeout` 0 (LiveKit: 20 s).
    pub default_departure_timeout: Duration,
    /// Ringing timeout when the dial request sets none (Rust SDK assumes 30 s).
    pub default_ringing_timeout: Duration,
    /// Call length cap when the dial request sets none (livekit/sip: 24 h).
    pub default_max_call_duration: Duration,
    /// Non-standard: add `sip.disconnectCode` to a failed SIP participant's attributes
    /// (seen in `participant_left`). Real LiveKit never does; off by default.
    pub sip_disconnect_code_attribute: bool,
}

impl SimConfig {
    /// Defaults for everything but the credentials; listens on `127.0.0.1:0`.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        Self {
            listen: "127.0.0.1:0".to_owned(),
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            webhook_url: None,
            scenarios: HashMap::new(),
            default_scenario: Scenario::default(),
            limits: SimLimits::default(),
            default_empty_timeout: Duration::from_secs(300),
            default_departure_timeout: Duration::from_secs(20),
            default_ringing_timeout: Duration::from_secs(30),
            default_max_call_duration: Duration::from_secs(24 * 3600),
            sip_disconnect_code_attribute: false,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the API secret.
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("api_key", &self.api_key)
            .field("webhook_url", &self.webhook_url)
            .field("scenarios", &self.scenarios.len())
            .field("default_scenario", &self.default_scenario)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
