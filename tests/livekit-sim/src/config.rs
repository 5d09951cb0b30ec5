//! Simulator configuration.

use std::collections::{BTreeMap, HashMap};
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
    /// SIP calls (dialogs, lingering ones included, both directions) tracked at once;
    /// more dials get Twirp `resource_exhausted`, more inbound INVITEs `503`.
    pub max_sip_calls: usize,
    /// Inbound trunks kept (`CreateSIPInboundTrunk` beyond it: `resource_exhausted`).
    pub max_sip_trunks: usize,
    /// Dispatch rules kept (`CreateSIPDispatchRule` beyond it: `resource_exhausted`).
    pub max_dispatch_rules: usize,
    /// How many recent inbound INVITEs [`crate::SimHandle::inbound_calls`] remembers.
    pub inbound_log: usize,
    /// Rejected INVITEs remembered for replay (LiveKit SIP's `rejectedInvites`, 1 min).
    pub rejected_invites: usize,
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
            max_sip_trunks: 256,
            max_dispatch_rules: 256,
            inbound_log: 256,
            rejected_invites: 1024,
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
    /// Accept inbound SIP calls as LiveKit SIP does (trunks, dispatch rules, a SIP
    /// participant per call). With [`Self::sip_outbound`] set the one SIP socket serves
    /// both directions even when this is `None` (defaults apply); set it to listen
    /// without dialling, or to change the inbound knobs.
    pub sip_inbound: Option<SipInbound>,
    /// Provision one inbound trunk and one Callee dispatch rule at start (the
    /// c2c-gateway setup, `docs/inbound-design.md` §5), so inbound works with zero
    /// setup. Implies a SIP socket ([`SipInbound::default`]) when neither SIP option is set.
    pub inbound_auto_provision: Option<InboundProvision>,
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
            sip_inbound: None,
            inbound_auto_provision: None,
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
            .field("sip_inbound", &self.sip_inbound)
            .field("inbound_auto_provision", &self.inbound_auto_provision)
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

/// How the simulator answers inbound SIP (LiveKit SIP's `inbound.go`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipInbound {
    /// Where the SIP socket listens when [`SimConfig::sip_outbound`] is unset
    /// (`127.0.0.1:0`: a port chosen by the OS; see [`crate::SimHandle::sip_local_addr`]).
    /// With `sip_outbound` the outbound socket answers: only this port is used there
    /// (0 = any), bound on the outbound `local_ip`.
    pub listen: SocketAddr,
    /// Transport and T1 when `sip_outbound` is unset (otherwise the outbound ones).
    pub transport: SipTransport,
    pub t1: Duration,
    /// `180 Ringing` is repeated this often while the call waits for the room
    /// (LiveKit SIP's `sip_ringing_interval`, 1 s).
    pub ring_interval: Duration,
    /// An INVITE matching no trunk gets `404 No trunk found` (LiveKit Cloud) instead
    /// of going on with wildcard rules only (OSS; the default).
    pub no_trunk_404: bool,
    /// An INVITE matching no dispatch rule gets `404 Does not match Trunks or Dispatch
    /// Rules` instead of OSS's silence after 100/180 (the default). Also a runtime fault.
    pub no_rule_404: bool,
}

impl Default for SipInbound {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            transport: SipTransport::Udp,
            t1: Duration::from_millis(500),
            ring_interval: Duration::from_secs(1),
            no_trunk_404: false,
            no_rule_404: false,
        }
    }
}

impl FromStr for SipInbound {
    type Err = String;

    /// `udp:127.0.0.1:5080`, `tcp:127.0.0.1:5080`, or a bare address (UDP).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed: SipOutbound = s.parse()?;
        Ok(Self {
            listen: parsed.proxy,
            transport: parsed.transport,
            ..Self::default()
        })
    }
}

/// The inbound trunk and dispatch rule [`SimConfig::inbound_auto_provision`] creates:
/// one wildcard trunk and one Callee rule bound to it, room = To user. The default is
/// `docs/inbound-design.md` §5 with the edge on loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundProvision {
    /// Trunk `allowed_addresses` (CIDRs or IPs the INVITE may come from).
    pub allowed_addresses: Vec<String>,
    /// Trunk `headers_to_attributes` (SIP header -> participant attribute).
    pub headers_to_attributes: BTreeMap<String, String>,
    /// Trunk `attributes_to_headers` (participant attribute -> header on 200 and BYE).
    pub attributes_to_headers: BTreeMap<String, String>,
    pub ringing_timeout: Duration,
    pub max_call_duration: Duration,
    /// Rule `attributes` (added to every caller's participant).
    pub rule_attributes: BTreeMap<String, String>,
    /// Rule `hide_phone_number`.
    pub hide_phone_number: bool,
}

impl Default for InboundProvision {
    fn default() -> Self {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Self {
            allowed_addresses: vec!["127.0.0.0/8".to_owned()],
            headers_to_attributes: map(&[
                ("X-C2C-Call-Id", "c2c.callId"),
                ("X-C2C-Tenant", "c2c.tenant"),
            ]),
            attributes_to_headers: map(&[("c2c.callId", "X-C2C-Call-Id")]),
            ringing_timeout: Duration::from_secs(30),
            max_call_duration: Duration::from_secs(4 * 3600),
            rule_attributes: map(&[("c2c.direction", "inbound")]),
            hide_phone_number: true,
        }
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

    #[test]
    fn sip_inbound_from_str() {
        let i: SipInbound = "tcp:127.0.0.1:5080".parse().unwrap();
        assert_eq!(i.transport, SipTransport::Tcp);
        assert_eq!(i.listen, "127.0.0.1:5080".parse().unwrap());
        assert_eq!(i.ring_interval, Duration::from_secs(1));
        assert!("nowhere".parse::<SipInbound>().is_err());
    }
}
