//! One LiveKit client per tenant LiveKit project, built once (and rebuilt only for
//! projects whose settings changed on a policy reload), the multi-project webhook
//! verifier, and the in-process LiveKit simulator for projects with `url = "sim"`.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use c2c_livekit::{LiveKitClient, LiveKitProject as LkProject, RequestObserver, WebhookVerifier};
use c2c_tenancy::{LiveKitProject, Policy, SimulatorConfig};

/// The bundled simulator, running on its own small runtime so it does not depend on
/// Pingora's service runtimes (which start later and stop earlier).
#[cfg(feature = "sim")]
struct Sim {
    _rt: tokio::runtime::Runtime,
    handle: livekit_sim::SimHandle,
    url: String,
    /// The simulator's SIP runs over TCP (`simulator.sip_outbound = "tcp:..."`).
    sip_tcp: bool,
}

/// A build without the `sim` feature has no simulator: this type has no values, so
/// `sim` below is always `None` and the compiler drops every simulator branch.
#[cfg(not(feature = "sim"))]
enum Sim {}

#[cfg(not(feature = "sim"))]
impl Sim {
    fn url(&self) -> String {
        match *self {}
    }
}

#[cfg(feature = "sim")]
impl Sim {
    fn url(&self) -> String {
        self.url.clone()
    }
}

pub struct LiveKitPool {
    clients: ArcSwap<HashMap<String, (LiveKitProject, Arc<LiveKitClient>)>>,
    verifier: ArcSwap<WebhookVerifier>,
    sim: Option<Sim>,
    /// Given to every client built, now and on reloads.
    requests: RequestObserver,
}

fn projects(policy: &Policy) -> Vec<&LiveKitProject> {
    let mut out: Vec<&LiveKitProject> = policy.gateway.livekit.iter().collect();
    out.extend(policy.tenants.values().filter_map(|t| t.livekit.as_ref()));
    out
}

/// Why the LiveKit projects of a policy cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("a project uses url = \"sim\" but the simulator was not started; restart the gateway")]
    SimNotStarted,
    #[error("LiveKit project {key}: {source}")]
    Project {
        key: String,
        source: c2c_livekit::LiveKitError,
    },
    #[error(
        "LiveKit project {key} has url = \"sim\", but this build has no bundled simulator \
         (it is the cargo feature `sim`: gateway/serve.sh builds with it; a production \
         build leaves it out). Point the project at a LiveKit server, or build with \
         `cargo build --release -p c2c-gateway --features sim`"
    )]
    SimNotBuilt { key: String },
    #[error("cannot start the LiveKit simulator runtime: {0}")]
    SimRuntime(std::io::Error),
    #[error("simulator.sip_outbound {value:?}: {reason}")]
    SimSipOutbound { value: String, reason: String },
    #[cfg(feature = "sim")]
    #[error("cannot start the LiveKit simulator on {listen}: {source}")]
    Sim {
        listen: String,
        source: livekit_sim::SimError,
    },
}

impl LiveKitPool {
    /// Starts the simulator if any project uses it, and builds every client. Every
    /// client counts its API requests in `requests` (`c2c_livekit_requests_total{op}`).
    pub fn start(
        policy: &Policy,
        webhook_url: Option<String>,
        requests: prometheus::IntCounterVec,
    ) -> Result<Self, PoolError> {
        let sim_project = projects(policy).into_iter().find(|p| p.is_sim()).cloned();
        let sim = match sim_project {
            Some(p) => Some(start_sim(&p, &policy.gateway.simulator, webhook_url)?),
            None => None,
        };
        let pool = Self {
            clients: ArcSwap::from_pointee(HashMap::new()),
            verifier: ArcSwap::from_pointee(WebhookVerifier::new(Vec::<(String, Vec<u8>)>::new())),
            sim,
            requests: Arc::new(move |op| requests.with_label_values(&[op]).inc()),
        };
        pool.sync(policy)?;
        Ok(pool)
    }

    fn resolve(&self, p: &LiveKitProject) -> LkProject {
        LkProject::new(
            self.resolved_url(&p.url),
            p.api_key.clone(),
            p.api_secret.expose(),
        )
    }

    /// Rebuilds clients for new or changed projects; keeps the rest (and their
    /// connection pools) as they are.
    pub fn sync(&self, policy: &Policy) -> Result<(), PoolError> {
        let old = self.clients.load_full();
        let mut next = HashMap::new();
        let mut verifier_projects = Vec::new();
        for p in projects(policy) {
            if p.is_sim() && self.sim.is_none() {
                return Err(PoolError::SimNotStarted);
            }
            let resolved = self.resolve(p);
            verifier_projects.push((p.api_key.clone(), p.api_secret.expose().as_bytes().to_vec()));
            let client = match old.get(&p.api_key) {
                Some((prev, c)) if prev == p => c.clone(),
                _ => Arc::new(
                    LiveKitClient::new(resolved)
                        .map_err(|source| PoolError::Project {
                            key: p.api_key.clone(),
                            source,
                        })?
                        .with_request_observer(self.requests.clone()),
                ),
            };
            next.insert(p.api_key.clone(), (p.clone(), client));
        }
        self.clients.store(Arc::new(next));
        self.verifier
            .store(Arc::new(WebhookVerifier::new(verifier_projects)));
        Ok(())
    }

    pub fn client_for_tenant(&self, policy: &Policy, tenant: &str) -> Option<Arc<LiveKitClient>> {
        let t = policy.tenant(tenant)?;
        let p = policy.livekit_for(t)?;
        self.clients.load().get(&p.api_key).map(|(_, c)| c.clone())
    }

    /// The signalling URL handed to browsers: the gateway itself (`server.public_url`
    /// as ws/wss). Browsers never talk to LiveKit directly; the edge verifies their token
    /// and routes them to the tenant's region or bring-your-own project.
    pub fn ws_url(public_url: &str) -> String {
        let url = public_url.trim_end_matches('/');
        if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            url.to_string()
        }
    }

    /// A project URL as the gateway reaches it (`sim` becomes the simulator's address).
    pub fn resolved_url(&self, url: &str) -> String {
        match (&self.sim, url == "sim") {
            (Some(sim), true) => sim.url(),
            _ => url.to_string(),
        }
    }

    pub fn verifier(&self) -> Arc<WebhookVerifier> {
        self.verifier.load_full()
    }

    /// The bundled simulator's SIP address as a URI (where inbound calls are forwarded
    /// when the region names no LiveKit SIP), if it runs one.
    pub fn sim_sip_uri(&self) -> Option<String> {
        #[cfg(feature = "sim")]
        {
            let s = self.sim.as_ref()?;
            let addr = s.handle.sip_local_addr()?;
            Some(if s.sip_tcp {
                format!("sip:{addr};transport=tcp")
            } else {
                format!("sip:{addr}")
            })
        }
        #[cfg(not(feature = "sim"))]
        {
            None
        }
    }

    /// The in-process simulator, if running.
    #[cfg(feature = "sim")]
    pub fn sim(&self) -> Option<&livekit_sim::SimHandle> {
        self.sim.as_ref().map(|s| &s.handle)
    }
}

#[cfg(not(feature = "sim"))]
fn start_sim(
    p: &LiveKitProject,
    _cfg: &SimulatorConfig,
    _webhook_url: Option<String>,
) -> Result<Sim, PoolError> {
    Err(PoolError::SimNotBuilt {
        key: p.api_key.clone(),
    })
}

#[cfg(feature = "sim")]
fn start_sim(
    p: &LiveKitProject,
    cfg: &SimulatorConfig,
    webhook_url: Option<String>,
) -> Result<Sim, PoolError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("livekit-sim")
        .enable_all()
        .build()
        .map_err(PoolError::SimRuntime)?;
    let mut conf =
        livekit_sim::SimConfig::new(p.api_key.clone(), p.api_secret.expose().to_string());
    conf.listen = cfg.listen.clone();
    conf.webhook_url = webhook_url;
    conf.sip_disconnect_code_attribute = cfg.sip_disconnect_code_attribute;
    if let Some(out) = &cfg.sip_outbound {
        conf.sip_outbound = Some(out.parse::<livekit_sim::SipOutbound>().map_err(|e| {
            PoolError::SimSipOutbound {
                value: out.clone(),
                reason: e.to_string(),
            }
        })?);
    }
    // Inbound calls work with zero setup: the simulator provisions the one inbound
    // trunk and Callee dispatch rule an operator makes once on a real LiveKit
    // (docs/inbound.md), and listens for SIP even when it does not dial through it.
    conf.inbound_auto_provision = Some(livekit_sim::InboundProvision::default());
    let handle = rt
        .block_on(livekit_sim::Simulator::start(conf))
        .map_err(|source| PoolError::Sim {
            listen: cfg.listen.clone(),
            source,
        })?;
    let url = handle.url();
    tracing::info!(%url, "bundled LiveKit simulator running (url = \"sim\")");
    Ok(Sim {
        _rt: rt,
        handle,
        url,
        sip_tcp: cfg
            .sip_outbound
            .as_deref()
            .is_some_and(|o| o.starts_with("tcp:")),
    })
}
