//! The carriers' addresses in the policy in force: every trunk's carrier IP and every
//! trunk's inbound `sources`. Two uses: carriers (which send responses and BYEs for
//! many calls, and inbound INVITEs) are not throttled like unknown sources, and only
//! they may start inbound calls. Rebuilt when the policy changes and every 30 s
//! (carrier host names resolve late).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use c2c_tenancy::Trunk;
use parking_lot::RwLock;
use tokio::time::Instant;

use crate::config::Cidr;
use crate::parse::{uri, Host};
use crate::resolver::Resolver;
use crate::sources::PolicySource;

const REFRESH: Duration = Duration::from_secs(30);

/// What one policy yields: carrier IPs, and the explicit inbound source networks.
struct Known {
    ips: HashSet<IpAddr>,
    nets: Vec<Cidr>,
}

impl Known {
    fn contains(&self, ip: IpAddr) -> bool {
        self.ips.contains(&ip) || self.nets.iter().any(|n| n.contains(ip))
    }
}

/// (policy identity, built at, addresses).
type Snapshot = (usize, Instant, Arc<Known>);

pub struct CarrierIps {
    policy: Arc<dyn PolicySource>,
    resolver: Arc<Resolver>,
    state: RwLock<Option<Snapshot>>,
}

impl CarrierIps {
    pub fn new(policy: Arc<dyn PolicySource>, resolver: Arc<Resolver>) -> Self {
        Self {
            policy,
            resolver,
            state: RwLock::new(None),
        }
    }

    /// Whether `ip` is a carrier of any trunk: its carrier address or one of its
    /// inbound `sources`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let p = self.policy.policy();
        let key = Arc::as_ptr(&p) as usize;
        if let Some((k, at, known)) = self.state.read().as_ref() {
            if *k == key && at.elapsed() < REFRESH {
                return known.contains(ip);
            }
        }
        let mut known = Known {
            ips: HashSet::new(),
            nets: Vec::new(),
        };
        for t in p.tenants.values() {
            for tr in &t.trunks {
                known.ips.extend(carrier_ip(tr, &self.resolver));
                known
                    .nets
                    .extend(tr.sources.iter().filter_map(|s| s.parse::<Cidr>().ok()));
            }
        }
        let hit = known.contains(ip);
        *self.state.write() = Some((key, Instant::now(), Arc::new(known)));
        hit
    }
}

/// Whether `ip` may send inbound calls of `trunk`: one of its `sources`, or, when it
/// lists none, its carrier's address (resolved like outbound calls resolve it).
pub fn trunk_admits(trunk: &Trunk, ip: IpAddr, resolver: &Resolver) -> bool {
    if trunk.sources.is_empty() {
        return carrier_ip(trunk, resolver) == Some(ip);
    }
    trunk
        .sources
        .iter()
        .filter_map(|s| s.parse::<Cidr>().ok())
        .any(|n| n.contains(ip))
}

fn carrier_ip(trunk: &Trunk, resolver: &Resolver) -> Option<IpAddr> {
    let u = uri(&trunk.carrier).ok()?;
    match &u.host {
        Host::Ip(ip) => Some(*ip),
        Host::Name(n) => resolver.lookup(n, u.port.unwrap_or(5060)).map(|a| a.ip()),
    }
}
