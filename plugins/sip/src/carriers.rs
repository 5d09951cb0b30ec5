//! The set of carrier IP addresses in the policy in force, so carriers (which send
//! responses and BYEs for many calls) are not throttled like unknown sources. Rebuilt
//! when the policy changes and every 30 s (carrier host names resolve late).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::time::Instant;

use crate::parse::{uri, Host};
use crate::resolver::Resolver;
use crate::sources::PolicySource;

const REFRESH: Duration = Duration::from_secs(30);

/// (policy identity, built at, addresses).
type Snapshot = (usize, Instant, Arc<HashSet<IpAddr>>);

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

    pub fn contains(&self, ip: IpAddr) -> bool {
        let p = self.policy.policy();
        let key = Arc::as_ptr(&p) as usize;
        if let Some((k, at, set)) = self.state.read().as_ref() {
            if *k == key && at.elapsed() < REFRESH {
                return set.contains(&ip);
            }
        }
        let mut set = HashSet::new();
        for t in p.tenants.values() {
            for tr in &t.trunks {
                let Ok(u) = uri(&tr.carrier) else { continue };
                let addr = match &u.host {
                    Host::Ip(ip) => Some(*ip),
                    Host::Name(n) => self
                        .resolver
                        .lookup(n, u.port.unwrap_or(5060))
                        .map(|a| a.ip()),
                };
                set.extend(addr);
            }
        }
        let hit = set.contains(&ip);
        *self.state.write() = Some((key, Instant::now(), Arc::new(set)));
        hit
    }
}
