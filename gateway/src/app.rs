//! Process-wide state shared by every request and background service.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use c2c_billing::WalletStore;
use c2c_callstate::{CallStore, SeenEvents, StoreError};
use c2c_dlt::DltRegistry;
use pingora::server::ShutdownWatch;

use crate::agents::AgentService;
use crate::calls::livekit_pool::LiveKitPool;
use crate::calls::outbox::PolicyEndpoints;
use crate::calls::runtime::CallRuntime;
use crate::edge::Regions;
use c2c_metrics::GatewayMetrics;
use c2c_tenancy::Policy;

/// The policy in force, swapped atomically on reload.
///
/// Readers take a cheap `Arc` snapshot per request (`load_full`), so a request that
/// started under one policy finishes under it even if a reload lands meanwhile.
pub struct PolicyHandle {
    dir: PathBuf,
    current: ArcSwap<Policy>,
    /// The gateway section the server was assembled from: start-only settings changed
    /// since are pending until a restart (`crate::start_only`).
    started: c2c_tenancy::GatewayConfig,
}

impl PolicyHandle {
    pub fn new(dir: PathBuf, policy: Policy) -> Self {
        Self {
            dir,
            started: policy.gateway.clone(),
            current: ArcSwap::from_pointee(policy),
        }
    }

    /// See the field.
    pub fn started(&self) -> &c2c_tenancy::GatewayConfig {
        &self.started
    }

    pub fn get(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn replace(&self, policy: Policy) {
        self.current.store(Arc::new(policy));
    }
}

/// Why `/readyz` is 503.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("draining: the gateway is shutting down")]
    Draining,
    /// What start-up is doing.
    #[error("starting up: {0}")]
    Starting(String),
    #[error("store unavailable: {0}")]
    Store(StoreError),
}

/// Everything request handlers and services share: one handle, private fields, methods
/// (a struct of public fields let 27 files reach into each other's state).
pub struct App {
    policy: Arc<PolicyHandle>,
    dlt: Arc<DltRegistry>,
    metrics: GatewayMetrics,
    registry: prometheus::Registry,
    /// Call records, indexes, tallies and the CRM webhook outbox, whichever backend.
    store: Arc<dyn CallStore>,
    /// LiveKit ids of webhooks already applied (de-duplication).
    seen: Arc<dyn SeenEvents>,
    /// Managed tenants' wallet ledgers.
    wallets: Arc<dyn WalletStore>,
    /// The agent registry, presence and the outbound rules for agents.
    agents: AgentService,
    /// Inbound calls: the ones ringing agents, and the SIP edge's handle on held INVITEs.
    inbound: crate::inbound::InboundService,
    livekit: LiveKitPool,
    /// Timers, dials in flight, concurrent-call slots, the delivery wake-up.
    calls: CallRuntime,
    endpoints: Arc<PolicyEndpoints>,
    /// LiveKit upstream regions (signalling and server API proxying).
    edge: Regions,
    lifecycle: Lifecycle,
    /// Writes tenants' policy files for the owner's provisioning API.
    provisioner: crate::provision::Provisioner,
    /// Calls the DLT rules refused, for the console and the audit export.
    refusals: crate::dlt_audit::RefusalLog,
    /// When this process started (Unix ms): a call dialled before it was dialled by a
    /// process that is gone.
    started_ms: u64,
}

/// Where the process stands: opening the store (the listener already answers probes),
/// serving, or draining after SIGTERM. `/readyz` says which; call-store routes and the
/// services that write calls wait for serving.
struct Lifecycle {
    /// Flips to true once the store is fully open (tallies current).
    serving: tokio::sync::watch::Sender<bool>,
    draining: AtomicBool,
    /// What start-up is doing, for `/readyz` while not serving.
    starting: parking_lot::Mutex<String>,
}

/// The parts [`App::new`] assembles.
pub struct AppParts {
    pub policy: Arc<PolicyHandle>,
    pub dlt: Arc<DltRegistry>,
    pub metrics: GatewayMetrics,
    pub registry: prometheus::Registry,
    pub store: Arc<dyn CallStore>,
    pub seen: Arc<dyn SeenEvents>,
    pub wallets: Arc<dyn WalletStore>,
    pub agents: AgentService,
    pub inbound: crate::inbound::InboundService,
    pub livekit: LiveKitPool,
    pub edge: Regions,
    /// The data directory (the provisioning audit lives there).
    pub data_dir: PathBuf,
}

impl App {
    pub fn new(p: AppParts) -> Arc<Self> {
        let endpoints = Arc::new(PolicyEndpoints::new(p.policy.clone()));
        let provisioner = crate::provision::Provisioner::new(p.policy.dir(), &p.data_dir);
        // Before the first call: a tenant's DND list must be in force when it can dial.
        crate::dlt_lists::reload(&p.dlt, &p.policy.get(), &p.metrics);
        let refusals = crate::dlt_audit::RefusalLog::start(
            &p.data_dir,
            p.metrics.dlt_refusal_log_dropped.clone(),
        );
        Arc::new(Self {
            provisioner,
            refusals,
            policy: p.policy,
            dlt: p.dlt,
            metrics: p.metrics,
            registry: p.registry,
            store: p.store,
            seen: p.seen,
            wallets: p.wallets,
            agents: p.agents,
            inbound: p.inbound,
            livekit: p.livekit,
            calls: CallRuntime::default(),
            endpoints,
            edge: p.edge,
            started_ms: crate::clock::now_ms(),
            lifecycle: Lifecycle {
                serving: tokio::sync::watch::Sender::new(false),
                draining: AtomicBool::new(false),
                starting: parking_lot::Mutex::new("opening the store".to_owned()),
            },
        })
    }

    pub fn policy(&self) -> &Arc<PolicyHandle> {
        &self.policy
    }

    pub fn refusals(&self) -> &crate::dlt_audit::RefusalLog {
        &self.refusals
    }

    pub fn provisioner(&self) -> &crate::provision::Provisioner {
        &self.provisioner
    }

    pub fn dlt(&self) -> &Arc<DltRegistry> {
        &self.dlt
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// The registry `/metrics` serves.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Call records, indexes, tallies and the CRM webhook outbox.
    pub fn store(&self) -> &Arc<dyn CallStore> {
        &self.store
    }

    /// LiveKit ids of webhooks already applied (de-duplication).
    pub fn seen(&self) -> &dyn SeenEvents {
        &*self.seen
    }

    /// Managed tenants' wallet ledgers.
    pub fn wallets(&self) -> &dyn WalletStore {
        &*self.wallets
    }

    /// Agents: registry, presence, outbound rules.
    pub fn agents(&self) -> &AgentService {
        &self.agents
    }

    pub fn inbound(&self) -> &crate::inbound::InboundService {
        &self.inbound
    }

    pub fn livekit(&self) -> &LiveKitPool {
        &self.livekit
    }

    /// Timers, dials in flight, concurrent-call slots, the delivery wake-up.
    pub fn calls(&self) -> &CallRuntime {
        &self.calls
    }

    /// Tenants' CRM endpoints, from the policy in force.
    pub fn endpoints(&self) -> &Arc<PolicyEndpoints> {
        &self.endpoints
    }

    /// LiveKit upstream regions.
    pub fn edge(&self) -> &Regions {
        &self.edge
    }

    /// Writes everything to disk (at shutdown); nothing to do for in-memory stores.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.store.flush_at_shutdown()
    }

    /// When this process started, Unix ms.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// Start-up progress, shown by `/readyz` until the gateway serves.
    pub fn set_starting(&self, what: impl Into<String>) {
        *self.lifecycle.starting.lock() = what.into();
    }

    /// The store is fully open: call-store routes answer and call services run.
    pub fn set_serving(&self) {
        self.lifecycle.serving.send_replace(true);
    }

    /// True once [`Self::set_serving`] was called.
    pub fn is_serving(&self) -> bool {
        *self.lifecycle.serving.borrow()
    }

    /// Waits until the gateway serves (returns at once if it does).
    pub async fn until_serving(&self) {
        let mut rx = self.lifecycle.serving.subscribe();
        // Err only if the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|serving| *serving).await;
    }

    /// For background services that write calls: waits until the gateway serves. False
    /// when shutdown came first (the service should return).
    pub async fn serving_before(&self, shutdown: &mut ShutdownWatch) -> bool {
        tokio::select! {
            _ = shutdown.changed() => false,
            _ = self.until_serving() => true,
        }
    }

    /// SIGTERM: from now on `/readyz` is 503 so load balancers stop sending new work,
    /// and presence sockets are closed `1001` (browsers reconnect to another gateway).
    pub fn set_draining(&self) {
        self.lifecycle.draining.store(true, Ordering::Release);
        self.agents.hub().close_all();
    }

    /// True after SIGTERM.
    pub fn is_draining(&self) -> bool {
        self.lifecycle.draining.load(Ordering::Acquire)
    }

    /// Ready when start-up finished, the gateway is not draining and the store answers.
    pub async fn is_ready(&self) -> Result<(), NotReady> {
        if self.lifecycle.draining.load(Ordering::Acquire) {
            return Err(NotReady::Draining);
        }
        if !self.is_serving() {
            return Err(NotReady::Starting(self.lifecycle.starting.lock().clone()));
        }
        // The sled store's ping is the one read `/readyz` always made.
        self.store.ping().await.map_err(NotReady::Store)
    }
}
