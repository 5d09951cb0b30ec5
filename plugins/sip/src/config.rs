//! Configuration of the SIP edge (the gateway maps its `gateway.toml` onto this).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::error::SipError;

/// Everything [`crate::SipEdge::start`] needs besides policy, DLT and metrics.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// UDP and TCP are bound on this address (same port for both; port 0 picks one).
    pub listen: SocketAddr,
    /// Address written into our Via and Record-Route. Defaults to the listen IP, which
    /// must then be specified (not 0.0.0.0 / ::).
    pub advertise: Option<IpAddr>,
    /// LiveKit SIP nodes per region. Only these may start calls; everything else is
    /// refused with 403 and never relayed.
    pub allow: Vec<AllowedRegion>,
    pub flood: FloodLimits,
    pub calls: CallLimits,
    /// Case-insensitive substrings of `User-Agent` that mark scanners; dropped silently.
    pub scanner_user_agents: Vec<String>,
    pub timers: SipTimers,
    /// Open transactions (both sides of one proxied request count once).
    pub max_transactions: usize,
    /// Calls (early or confirmed dialogs) tracked for routing and observation.
    pub max_dialogs: usize,
    /// A confirmed dialog without BYE is forgotten after this long.
    pub max_dialog_duration: Duration,
    pub max_tcp_connections: usize,
    pub tcp_idle_timeout: Duration,
    /// Messages queued per TCP connection before further ones are dropped.
    pub tcp_write_queue: usize,
    /// Kernel receive and send buffer of the UDP socket, in bytes. The default buffer
    /// (~208 KiB on Linux) holds only about a hundred datagrams: a few milliseconds of
    /// scheduling delay at 1,000+ calls/s overflows it, and every dropped datagram
    /// costs a caller a 500 ms retransmission. The kernel caps this at
    /// `net.core.rmem_max` / `wmem_max`; a smaller grant is logged at start.
    pub udp_socket_buffer: usize,
    /// Longest an inbound call is held (the carrier ringing on the edge's own 180, no
    /// LiveKit resources) while the gateway finds an agent. Past it the carrier gets
    /// `480 Temporarily Unavailable` and the observer `on_inbound_gone(HoldExpired)`.
    /// Must be > 0.
    pub inbound_hold_max: Duration,
    /// Anchored trunks' media relay.
    pub media: MediaConfig,
}

/// Where anchored calls' RTP goes through the edge (`[sip.media]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaConfig {
    /// The address anchored SDP names; `None`: the edge's advertised address. The
    /// sockets are bound on the listen address.
    pub address: Option<IpAddr>,
    /// Even RTP ports and the RTCP port above each, from `port_min ..= port_max`.
    pub port_min: u16,
    pub port_max: u16,
    pub relay: c2c_media::RelayConfig,
    /// Where relays run: the io_uring media thread, a task per call on the edge's
    /// runtime, or (`Auto`) io_uring where the kernel allows it.
    pub io: c2c_media::MediaIo,
    /// How long the io_uring media thread may hold a packet to wake once for several.
    pub batch: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            address: None,
            port_min: 20_000,
            port_max: 29_999,
            relay: c2c_media::RelayConfig {
                media_timeout: Duration::from_secs(30),
                one_way_after: Duration::from_secs(10),
            },
            io: c2c_media::MediaIo::Auto,
            batch: c2c_media::DEFAULT_BATCH,
        }
    }
}

impl SipConfig {
    /// Defaults suitable for production, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            advertise: None,
            allow: Vec::new(),
            flood: FloodLimits::default(),
            calls: CallLimits::default(),
            scanner_user_agents: default_scanners(),
            timers: SipTimers::default(),
            max_transactions: 8192,
            max_dialogs: 8192,
            max_dialog_duration: Duration::from_secs(4 * 3600),
            max_tcp_connections: 1024,
            tcp_idle_timeout: Duration::from_secs(900),
            tcp_write_queue: 512,
            udp_socket_buffer: 4 << 20,
            inbound_hold_max: Duration::from_secs(300),
            media: MediaConfig::default(),
        }
    }

    /// Whether `ip` is one of the LiveKit SIP sources, and in which region.
    pub fn allowed_region(&self, ip: IpAddr) -> Option<&str> {
        self.allow
            .iter()
            .find(|r| r.sources.iter().any(|c| c.contains(ip)))
            .map(|r| r.region.as_str())
    }

    /// Checks the configuration and returns the address the edge puts in its `Via` and
    /// `Record-Route`: `advertise`, or the listen address when that is a specific one.
    /// Run at start-up, so a configuration the edge would refuse stops the process.
    pub fn advertised_ip(&self) -> Result<IpAddr, SipError> {
        self.validate()?;
        match self.advertise {
            Some(ip) => Ok(ip),
            None if self.listen.ip().is_unspecified() => {
                Err(SipError::NoAdvertiseAddress(self.listen))
            }
            None => Ok(self.listen.ip()),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SipError> {
        if self.max_transactions == 0 || self.max_dialogs == 0 {
            return Err(SipError::Config(
                "max_transactions and max_dialogs must be > 0".into(),
            ));
        }
        if self.timers.t1.is_zero() || self.timers.t2 < self.timers.t1 {
            return Err(SipError::Config("timers: need 0 < t1 <= t2".into()));
        }
        if self.inbound_hold_max.is_zero() {
            return Err(SipError::Config("inbound_hold_max must be > 0".into()));
        }
        c2c_media::PortPool::new(self.media.port_min, self.media.port_max)
            .map_err(|e| SipError::Config(e.to_string()))?;
        Ok(())
    }
}

/// The scanners Kamailio's default configuration drops, plus a few newer ones.
pub fn default_scanners() -> Vec<String> {
    [
        "friendly-scanner",
        "sipvicious",
        "sipcli",
        "sip-scan",
        "sipsak",
        "sundayddr",
        "iwar",
        "smap",
        "pplsip",
        "vaxsipuseragent",
        "sivus",
        "nessus",
        "eyeballs",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect()
}

/// One LiveKit region's SIP source addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRegion {
    pub region: String,
    pub sources: Vec<Cidr>,
}

/// Per-source message limits (token bucket) for sources that are neither on the
/// allow-list nor a carrier of the policy in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimits {
    pub messages_per_second: u32,
    pub burst: u32,
    /// Also limit allow-listed LiveKit sources (with `allowed_messages_per_second`).
    pub allowed_messages_per_second: Option<u32>,
    /// Sources tracked at once; when full, new sources are treated as flooding.
    pub max_sources: usize,
}

impl Default for FloodLimits {
    fn default() -> Self {
        Self {
            messages_per_second: 50,
            burst: 100,
            allowed_messages_per_second: None,
            max_sources: 4096,
        }
    }
}

/// New-call rate and concurrency caps per tenant (503 + Retry-After when exceeded).
#[derive(Debug, Clone, PartialEq)]
pub struct CallLimits {
    pub default: TenantCaps,
    pub per_tenant: HashMap<String, TenantCaps>,
    pub retry_after: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            default: TenantCaps {
                calls_per_second: 10,
                max_concurrent: 100,
            },
            per_tenant: HashMap::new(),
            retry_after: Duration::from_secs(5),
        }
    }
}

impl CallLimits {
    pub fn caps(&self, tenant: &str) -> TenantCaps {
        self.per_tenant.get(tenant).copied().unwrap_or(self.default)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantCaps {
    pub calls_per_second: u32,
    pub max_concurrent: u32,
}

/// RFC 3261 timers plus the proxy's timer C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipTimers {
    pub t1: Duration,
    pub t2: Duration,
    /// Proxy INVITE timer (RFC 3261 §16.6 step 11): > 3 minutes.
    pub timer_c: Duration,
}

impl Default for SipTimers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            timer_c: Duration::from_secs(181),
        }
    }
}

impl SipTimers {
    /// 64*T1: timers B, F, H and the 2xx-retransmission window (RFC 6026 timer M).
    pub fn long(&self) -> Duration {
        self.t1 * 64
    }
}

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, SipError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(SipError::Config(format!(
                "prefix /{prefix} too long for {addr}"
            )));
        }
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                masked(u32::from(a) as u128, 32, self.prefix)
                    == masked(u32::from(b) as u128, 32, self.prefix)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                masked(u128::from(a), 128, self.prefix) == masked(u128::from(b), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(v: u128, bits: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let shift = u32::from(bits - prefix);
    (v >> shift) << shift
}

impl FromStr for Cidr {
    type Err = SipError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| SipError::Config(format!("'{s}' is not an IP address or CIDR")))?;
        let prefix = match prefix {
            Some(p) => p
                .parse()
                .map_err(|_| SipError::Config(format!("'{s}': bad prefix length")))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Cidr::new(addr, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }
}
