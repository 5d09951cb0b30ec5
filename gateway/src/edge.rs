//! LiveKit upstream regions: one Pingora load balancer per region with active HTTP
//! health checks (run as background services), region fallback, and passive retry of
//! the next healthy upstream when a connect fails.
//!
//! Built once at start from `gateway.toml [[regions]]`; changing regions needs a
//! restart (the health-check services are Pingora services, fixed at start-up).

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use async_trait::async_trait;
use c2c_metrics::GatewayMetrics;
use c2c_plugin_api::UpstreamChoice;
use c2c_tenancy::Policy;
use pingora::lb::health_check::{HealthObserve, HttpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};

/// How many upstreams one request may try before giving up (passive failover), in the
/// proxy phases and for signalling handshakes (crate::rtc) alike.
pub const MAX_CONNECT_ATTEMPTS: usize = 4;

/// A region's load balancer run as a Pingora background service (its health checks).
pub type HealthCheckService = GenBackgroundService<LoadBalancer<RoundRobin>>;

/// One upstream of a region.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    /// `host:port` for the Host header, SNI and the `upstream` metric label.
    pub host: String,
    pub tls: bool,
}

struct Region {
    lb: Arc<LoadBalancer<RoundRobin>>,
    fallback: Vec<String>,
    upstreams: HashMap<SocketAddr, Upstream>,
}

/// Every region's pool.
#[derive(Default)]
pub struct Regions {
    regions: HashMap<String, Region>,
    /// Where tokens that name no region go (the first region in gateway.toml).
    pub default_region: Option<String>,
}

/// Why an upstream URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{url}: {source}")]
    Parse {
        url: String,
        source: url::ParseError,
    },
    #[error("{0}: no host")]
    NoHost(String),
    #[error("{0}: no port")]
    NoPort(String),
    #[error("{url}: cannot resolve: {source}")]
    Resolve { url: String, source: std::io::Error },
    #[error("{0}: no address")]
    NoAddress(String),
}

/// Why a request has no upstream to go to.
#[derive(Debug, thiserror::Error)]
pub enum NoUpstream {
    #[error("no healthy LiveKit upstream in the region or its fallbacks")]
    NoneHealthy,
    #[error(transparent)]
    BadUrl(#[from] UpstreamError),
    #[error("no upstream for this route")]
    NotRouted,
}

impl NoUpstream {
    /// The HTTP status it answers: 503 while the region's upstreams are all down (it
    /// passes), 502 for what will not pass by itself.
    pub fn status(&self) -> u16 {
        match self {
            NoUpstream::NoneHealthy => 503,
            NoUpstream::BadUrl(_) | NoUpstream::NotRouted => 502,
        }
    }
}

/// Why a region cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("region {region}: {source}")]
    Upstream {
        region: String,
        source: UpstreamError,
    },
    #[error("region {region}: {reason}")]
    Pool { region: String, reason: String },
}

/// Parses `http(s)://host:port` (ws/wss too) into an upstream; resolves the host once.
pub fn parse_upstream(url: &str) -> Result<Upstream, UpstreamError> {
    let u = url::Url::parse(url).map_err(|source| UpstreamError::Parse {
        url: url.to_owned(),
        source,
    })?;
    let tls = matches!(u.scheme(), "https" | "wss");
    let host = u
        .host_str()
        .ok_or_else(|| UpstreamError::NoHost(url.to_owned()))?
        .to_string();
    let port = u
        .port_or_known_default()
        .ok_or_else(|| UpstreamError::NoPort(url.to_owned()))?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|source| UpstreamError::Resolve {
            url: url.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| UpstreamError::NoAddress(url.to_owned()))?;
    Ok(Upstream {
        addr,
        host: format!("{host}:{port}"),
        tls,
    })
}

/// Counts a request that reached (or was meant for) an upstream:
/// `c2c_proxied_requests_total{region, upstream, status}`.
pub fn count_proxied(metrics: &GatewayMetrics, region: &str, host: &str, status: u16) {
    let status = c2c_metrics::status_label(status);
    metrics
        .proxied_requests
        .with_label_values(&[region, host, &status])
        .inc();
}

struct HealthGauge {
    region: String,
    names: HashMap<SocketAddr, String>,
    metrics: GatewayMetrics,
}

#[async_trait]
impl HealthObserve for HealthGauge {
    async fn observe(&self, target: &Backend, healthy: bool) {
        let Some(addr) = target.addr.as_inet() else {
            return;
        };
        let name = self
            .names
            .get(addr)
            .map(String::as_str)
            .unwrap_or("unknown");
        self.metrics
            .upstream_healthy
            .with_label_values(&[&self.region, name])
            .set(i64::from(healthy));
        if healthy {
            tracing::info!(region = %self.region, upstream = name, "LiveKit upstream healthy");
        } else {
            tracing::warn!(region = %self.region, upstream = name, "LiveKit upstream down");
        }
    }
}

impl Regions {
    /// Builds the pools and returns the health-check services to add to the server.
    pub fn build(
        policy: &Policy,
        metrics: &GatewayMetrics,
    ) -> Result<(Self, Vec<HealthCheckService>), RegionError> {
        let mut regions = HashMap::new();
        let mut services = Vec::new();
        for r in &policy.gateway.regions {
            let ups: Vec<Upstream> = r
                .upstreams
                .iter()
                .map(|u| parse_upstream(u))
                .collect::<Result<_, _>>()
                .map_err(|source| RegionError::Upstream {
                    region: r.name.clone(),
                    source,
                })?;
            let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(ups.iter().map(|u| u.addr))
                .map_err(|e| RegionError::Pool {
                    region: r.name.clone(),
                    reason: e.to_string(),
                })?;
            // One check per region; every upstream of a region speaks the same scheme.
            let tls = ups.first().is_some_and(|u| u.tls);
            let host = ups.first().map(|u| u.host.clone()).unwrap_or_default();
            let mut hc = HttpHealthCheck::new(&host, tls);
            hc.consecutive_failure = 1;
            hc.consecutive_success = 1;
            let names: HashMap<SocketAddr, String> =
                ups.iter().map(|u| (u.addr, u.host.clone())).collect();
            for u in &ups {
                metrics
                    .upstream_healthy
                    .with_label_values(&[&r.name, &u.host])
                    .set(1);
            }
            hc.health_changed_callback = Some(Box::new(HealthGauge {
                region: r.name.clone(),
                names,
                metrics: metrics.clone(),
            }));
            lb.set_health_check(Box::new(hc));
            lb.health_check_frequency = Some(policy.gateway.health_check_interval);
            lb.parallel_health_check = true;
            let svc = background_service(&format!("health checks {}", r.name), lb);
            regions.insert(
                r.name.clone(),
                Region {
                    lb: svc.task(),
                    fallback: r.fallback.clone(),
                    upstreams: ups.into_iter().map(|u| (u.addr, u)).collect(),
                },
            );
            services.push(svc);
        }
        let default_region = policy.gateway.regions.first().map(|r| r.name.clone());
        Ok((
            Self {
                regions,
                default_region,
            },
            services,
        ))
    }

    /// A healthy upstream of `region`, else of its fallback regions in order, skipping
    /// upstreams this request already failed to reach. Returns the region that served.
    pub fn select(&self, region: &str, tried: &[SocketAddr]) -> Option<(String, Upstream)> {
        let first = self.regions.get(region)?;
        let order = std::iter::once(region).chain(first.fallback.iter().map(String::as_str));
        for name in order {
            let Some(r) = self.regions.get(name) else {
                continue;
            };
            let pick =
                r.lb.select_with(b"", r.upstreams.len().max(1) * 2, |b, healthy| {
                    healthy && b.addr.as_inet().is_some_and(|a| !tried.contains(a))
                });
            if let Some(b) = pick {
                if let Some(u) = b.addr.as_inet().and_then(|a| r.upstreams.get(a)) {
                    return Some((name.to_string(), u.clone()));
                }
            }
        }
        None
    }

    /// The upstream for the edge plugin's choice: a healthy member of the region or of
    /// its fallbacks not yet tried ([`Regions::select`]), or a bring-your-own project's
    /// URL. Returns the region that served (`byo` for a project's own LiveKit).
    pub fn pick(
        &self,
        choice: Option<&UpstreamChoice>,
        tried: &[SocketAddr],
    ) -> Result<(String, Upstream), NoUpstream> {
        match choice {
            Some(UpstreamChoice::Region(r)) => self.select(r, tried).ok_or(NoUpstream::NoneHealthy),
            Some(UpstreamChoice::Url(u)) => Ok(("byo".to_string(), parse_upstream(u)?)),
            None => Err(NoUpstream::NotRouted),
        }
    }

    pub fn contains(&self, region: &str) -> bool {
        self.regions.contains_key(region)
    }
}
