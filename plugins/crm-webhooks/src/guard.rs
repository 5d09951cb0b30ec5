//! SSRF guard: CRM URLs come from tenant configuration, so a tenant must not be
//! able to make the gateway POST (with its outbound key) into our own network or a
//! cloud metadata service.
//!
//! Two layers, because each alone has a hole:
//! - [`check_target`] runs before every attempt and refuses IP-literal hosts and
//!   `localhost` in forbidden ranges (reqwest never calls a DNS resolver for them);
//! - [`SsrfGuardResolver`] is meant for the gateway's single `reqwest::Client`
//!   (`ClientBuilder::dns_resolver`) and drops forbidden addresses a *name*
//!   resolves to at connect time (no check-then-resolve race).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// True for addresses a tenant-supplied URL must never reach: loopback,
/// unspecified, private (RFC 1918), CGNAT, link-local (incl. 169.254.169.254),
/// multicast/broadcast, IPv6 ULA/link-local, and IPv4-mapped forms of those.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10 CGNAT
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (first & 0xffc0) == 0xfe80 // fe80::/10 link local
}

/// Why a target URL was refused (short, PII-free; goes into `last_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRefused {
    InvalidUrl,
    Scheme,
    ForbiddenHost,
}

impl TargetRefused {
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetRefused::InvalidUrl => "endpoint url invalid",
            TargetRefused::Scheme => "endpoint url scheme not http(s)",
            TargetRefused::ForbiddenHost => "endpoint host is a private/loopback address",
        }
    }
}

/// Parse and vet an endpoint URL. With `allow_private` (tests, lab setups) only
/// the scheme is checked.
pub fn check_target(url: &str, allow_private: bool) -> Result<Url, TargetRefused> {
    let parsed = Url::parse(url).map_err(|_| TargetRefused::InvalidUrl)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetRefused::Scheme);
    }
    if allow_private {
        return Ok(parsed);
    }
    match parsed.host() {
        None => Err(TargetRefused::InvalidUrl),
        Some(url::Host::Ipv4(ip)) if forbidden_v4(ip) => Err(TargetRefused::ForbiddenHost),
        Some(url::Host::Ipv6(ip)) if is_forbidden_ip(IpAddr::V6(ip)) => {
            Err(TargetRefused::ForbiddenHost)
        }
        Some(url::Host::Domain(d)) if is_localhost_name(d) => Err(TargetRefused::ForbiddenHost),
        Some(_) => Ok(parsed),
    }
}

fn is_localhost_name(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == "localhost" || n.ends_with(".localhost")
}

/// A `reqwest` DNS resolver that resolves with the system resolver and drops
/// forbidden addresses; a name that only resolves to forbidden addresses fails.
/// Install once on the process-wide client:
/// `ClientBuilder::dns_resolver(Arc::new(SsrfGuardResolver))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SsrfGuardResolver;

#[derive(Debug, thiserror::Error)]
#[error("host resolves only to private/loopback addresses")]
struct ForbiddenResolution;

impl Resolve for SsrfGuardResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest substitutes the URL's port.
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_forbidden_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(ForbiddenResolution) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl SsrfGuardResolver {
    /// Convenience for `ClientBuilder::dns_resolver`.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn forbidden_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700::1111"] {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn check_target_rules() {
        assert!(check_target("https://crm.example.com/hook", false).is_ok());
        assert!(check_target("http://8.8.8.8/hook", false).is_ok());
        assert_eq!(
            check_target("http://127.0.0.1:8080/hook", false),
            Err(TargetRefused::ForbiddenHost)
        );
        assert_eq!(
            check_target("http://[::1]/hook", false),
            Err(TargetRefused::ForbiddenHost)
        );
        assert_eq!(
            check_target("http://169.254.169.254/latest/meta-data", false),
            Err(TargetRefused::ForbiddenHost)
        );
        assert_eq!(
            check_target("http://LocalHost./x", false),
            Err(TargetRefused::ForbiddenHost)
        );
        assert_eq!(
            check_target("file:///etc/passwd", false),
            Err(TargetRefused::Scheme)
        );
        assert_eq!(
            check_target("not a url", false),
            Err(TargetRefused::InvalidUrl)
        );
        // Lab/test mode only relaxes the address rule.
        assert!(check_target("http://127.0.0.1:8080/hook", true).is_ok());
        assert_eq!(
            check_target("ftp://127.0.0.1/x", true),
            Err(TargetRefused::Scheme)
        );
    }

    #[tokio::test]
    async fn resolver_refuses_names_of_loopback() {
        let r = SsrfGuardResolver;
        let res = r.resolve(Name::from_str("localhost").unwrap()).await;
        assert!(res.is_err());
    }
}
