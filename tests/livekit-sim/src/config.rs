//! Simulator configuration.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
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
    /// SIP calls (dialogs, lingering ones included) tracked at once in
    /// [`SimConfig::sip_outbound`] mode; more dials get Twirp `resource_exhausted`.
    pub max_sip_calls: usize,
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
            max_sip_calls: 1024,
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
    /// Dial a real SIP trunk: every CreateSIPParticipant sends an INVITE to this
    /// proxy and the participant follows the SIP responses (no [`Scenario`]s).
    pub sip_outbound: Option<SipOutbound>,
    /// CreateSIPParticipant returns at once even with `wait_until_answered`, as an older
    /// server or a proxy timing out the long request does (start value of the
    /// `ignore_wait_until_answered` fault).
    pub ignore_wait_until_answered: bool,
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
            sip_outbound: None,
            ignore_wait_until_answered: false,
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
            .field("sip_outbound", &self.sip_outbound)
            .finish_non_exhaustive()
    }
}

/// SIP transport towards the outbound proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    /// One connection per next hop, messages framed by Content-Length.
    Tcp,
}

impl SipTransport {
    /// The token used in `Via` (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            SipTransport::Udp => "UDP",
            SipTransport::Tcp => "TCP",
        }
    }
}

/// Where and how the simulator dials when it dials SIP for real (LiveKit SIP's
/// outbound trunk `address` + `transport`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipOutbound {
    /// The trunk's address: every INVITE (and CANCEL, non-2xx ACK) goes here;
    /// in-dialog requests follow the route set.
    pub proxy: SocketAddr,
    pub transport: SipTransport,
    /// The address to bind (port chosen by the OS) and to put in Via, Contact,
    /// From and SDP. Default `127.0.0.1`.
    pub local_ip: IpAddr,
    /// RFC 3261 timer T1 (500 ms). Retransmissions start at T1 and double
    /// (non-INVITE capped at T2 = 4 s); a transaction gives up after 64*T1.
    /// Tests shorten it to exercise timer B quickly.
    pub t1: Duration,
}

impl SipOutbound {
    /// UDP to `proxy` from `127.0.0.1`.
    pub fn udp(proxy: SocketAddr) -> Self {
        Self {
            proxy,
            transport: SipTransport::Udp,
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            t1: Duration::from_millis(500),
        }
    }

    /// TCP to `proxy` from `127.0.0.1`.
    pub fn tcp(proxy: SocketAddr) -> Self {
        Self {
            transport: SipTransport::Tcp,
            ..Self::udp(proxy)
        }
    }
}

impl FromStr for SipOutbound {
    type Err = String;

    /// `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, or a bare address (UDP).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (transport, addr) = match s.split_once(':') {
            Some((t, rest)) if t.eq_ignore_ascii_case("udp") => (SipTransport::Udp, rest),
            Some((t, rest)) if t.eq_ignore_ascii_case("tcp") => (SipTransport::Tcp, rest),
            _ => (SipTransport::Udp, s),
        };
        let proxy: SocketAddr = addr.parse().map_err(|e| {
            format!("SIP proxy address {addr:?}: {e} (want udp:IP:PORT or tcp:IP:PORT)")
        })?;
        let local_ip = if proxy.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        };
        Ok(Self {
            local_ip,
            transport,
            ..Self::udp(proxy)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_outbound_from_str() {
        let o: SipOutbound = "udp:127.0.0.1:5060".parse().unwrap();
        assert_eq!(o, SipOutbound::udp("127.0.0.1:5060".parse().unwrap()));
        let o: SipOutbound = "TCP:127.0.0.1:5070".parse().unwrap();
        assert_eq!(o.transport, SipTransport::Tcp);
        assert_eq!(o.proxy.port(), 5070);
        let o: SipOutbound = "tcp:[::1]:5060".parse().unwrap();
        assert_eq!(o.local_ip, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
        let o: SipOutbound = "127.0.0.1:5060".parse().unwrap();
        assert_eq!(o.transport, SipTransport::Udp);
        assert!("udp:nowhere".parse::<SipOutbound>().is_err());
        assert!("sctp:127.0.0.1:5060".parse::<SipOutbound>().is_err());
    }
}
