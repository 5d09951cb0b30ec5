//! The persistent state the gateway is built on, from one backend: the embedded sled
//! database (default), PostgreSQL shared by a fleet (`[store] kind = "postgres"`), or
//! process memory (`--store memory`, tests and demos).

use std::sync::Arc;

use c2c_agents::{AgentStore, MemAgentStore, SledAgentStore};
use c2c_billing::{MemWalletStore, SledWalletStore, WalletStore};
use c2c_callstate::{
    CallStore, MemCallStore, MemSeenEvents, SeenEvents, SledCallStore, SledSeenEvents,
};
use c2c_dlt::DltRegistry;
use c2c_metrics::GatewayMetrics;
use c2c_store_pg::{
    PgAgentStore, PgCallStore, PgDltStore, PgOptions, PgSeenEvents, PgStore, PgWalletStore,
};
use c2c_tenancy::{Policy, PostgresStore, StoreKind};

use crate::error::StartError;
use crate::server::ServeArgs;

/// `--store`: the backend behind the gateway's store traits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreBackend {
    /// What `[store] kind` in gateway.toml says (sled in `--data`, or PostgreSQL).
    Policy,
    /// In process memory; nothing survives a restart.
    Memory,
}

/// The persistent state [`crate::app::App`] is built on.
pub struct Stores {
    pub dlt: Arc<DltRegistry>,
    pub store: Arc<dyn CallStore>,
    pub seen: Arc<dyn SeenEvents>,
    pub agents: Arc<dyn AgentStore>,
    /// Managed tenants' wallet ledgers.
    pub wallets: Arc<dyn WalletStore>,
    /// The shared database, when the gateway is one node of a fleet.
    pub shared: Option<Arc<PgStore>>,
}

/// Opens the backend `args` and the policy name.
pub fn open(
    args: &ServeArgs,
    policy: &Policy,
    metrics: &GatewayMetrics,
) -> Result<Stores, StartError> {
    match (args.store, &policy.gateway.store) {
        (StoreBackend::Memory, _) => Ok(memory()),
        (StoreBackend::Policy, StoreKind::Sled) => {
            sled(args, policy.gateway.store_cache_bytes, metrics)
        }
        (StoreBackend::Policy, StoreKind::Postgres(pg)) => postgres(pg, policy),
    }
}

/// Opens the sled database in `--data` and the stores in it. The tally rebuild an
/// upgrade may need runs after the listener is up (crate::lifecycle), so liveness
/// probes are answered meanwhile.
fn sled(
    args: &ServeArgs,
    cache_bytes: u64,
    metrics: &GatewayMetrics,
) -> Result<Stores, StartError> {
    let db = sled::Config::new()
        .path(args.data.join("store"))
        // sled defaults to a 1 GiB cache; the working set here is open calls + indexes.
        // It fills with the pages calls write and then holds steady: with the open calls
        // it is most of the steady-state memory (`store.cache_mb`, BENCHMARKS.md soak).
        .cache_capacity(cache_bytes)
        .flush_every_ms(Some(500))
        .open()
        .map_err(|source| StartError::Store {
            dir: args.data.clone(),
            source,
        })?;
    let dlt = Arc::new(DltRegistry::open(&db).map_err(StartError::Dlt)?);
    let store = SledCallStore::open_with_db_deferred(db.clone()).map_err(StartError::CallStore)?;
    let seen = SledSeenEvents::open(&db).map_err(StartError::CallStore)?;
    let agents = SledAgentStore::open(&db).map_err(StartError::Agents)?;
    // Owner entries share the call store's group commit (one fsync for both); calls'
    // holds and settles are covered by the call writes around them
    // (`SledWalletStore::open_with`).
    let wallets = SledWalletStore::open_with(
        &db,
        Arc::new(CallStoreCommit(store.clone())),
        Arc::new(CoveredByCallWrites),
    )
    .map_err(StartError::Wallets)?;
    let (hist, errors) = (
        metrics.store_flush.clone(),
        metrics.store_flush_errors.clone(),
    );
    store.observe_flushes(move |took, ok| {
        hist.observe(took.as_secs_f64());
        if !ok {
            errors.inc();
        }
    });
    Ok(Stores {
        dlt,
        store: Arc::new(store),
        seen: Arc::new(seen),
        agents: Arc::new(agents),
        wallets: Arc::new(wallets),
        shared: None,
    })
}

/// In-memory stores: a gateway whose calls end with the process (tests, demos).
fn memory() -> Stores {
    // Said at every start: a production gateway on this backend would lose acknowledged
    // calls and undelivered webhooks on any restart.
    tracing::warn!(
        "store: in memory (--store memory): every call, webhook and DLT flag is lost when \
         the process stops; for tests and demos only"
    );
    Stores {
        dlt: Arc::new(DltRegistry::in_memory()),
        store: Arc::new(MemCallStore::new()),
        seen: Arc::new(MemSeenEvents::new()),
        agents: Arc::new(MemAgentStore::new()),
        wallets: Arc::new(MemWalletStore::new()),
        shared: None,
    }
}

/// The options of the shared store from `[store]` (and the webhook policy, whose
/// per-tenant delivery concurrency the fleet enforces as a whole).
pub fn pg_options(pg: &PostgresStore, policy: &Policy) -> PgOptions {
    let mut o = PgOptions::new(pg.url.expose());
    o.pool_size = pg.pool_size;
    o.statement_timeout = pg.statement_timeout;
    o.schema = pg.schema.clone();
    o.lease = pg.lease;
    o.node_name = pg.node_name.clone().unwrap_or_else(host_name);
    o.tenant_delivery_concurrency = policy.gateway.webhooks.per_tenant_concurrency;
    // A claimed delivery is this node's for a whole attempt and then some.
    o.delivery_claim = (policy.gateway.webhooks.timeout * 2).max(pg.lease * 2);
    o
}

/// This machine's host name (the default node name).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "c2c-gateway".to_owned())
}

/// Connects to PostgreSQL, migrates the schema (under the fleet's migration lock) and
/// builds every store on the one pool. No serving runtime runs yet: a one-off
/// current-thread runtime does it; the pool's connections live on the store's own I/O
/// thread, so they outlast it.
fn postgres(pg: &PostgresStore, policy: &Policy) -> Result<Stores, StartError> {
    let opts = pg_options(pg, policy);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Postgres(c2c_store_pg::PgError::Pool(e.to_string())))?;
    rt.block_on(async move {
        let shared = PgStore::open(opts).await.map_err(StartError::Postgres)?;
        let store = PgCallStore::new(shared.clone())
            .await
            .map_err(StartError::CallStore)?;
        let dlt = DltRegistry::with_store(Arc::new(PgDltStore::new(shared.clone())))
            .await
            .map_err(StartError::Dlt)?;
        tracing::info!(
            node = %shared.options().node_name,
            node_id = shared.node_id(),
            lease_ms = shared.lease_ms(),
            "store: PostgreSQL (fleet node)"
        );
        Ok(Stores {
            dlt: Arc::new(dlt),
            store: Arc::new(store),
            seen: Arc::new(PgSeenEvents::new(shared.clone())),
            agents: Arc::new(PgAgentStore::new(shared.clone())),
            wallets: Arc::new(PgWalletStore::new(shared.clone())),
            shared: Some(shared),
        })
    })
}

/// [`c2c_billing::Durability`] through the sled call store's group commit.
struct CallStoreCommit(SledCallStore);

#[async_trait::async_trait]
impl c2c_billing::Durability for CallStoreCommit {
    async fn sync(&self) -> Result<(), c2c_billing::WalletError> {
        self.0
            .commit_durable()
            .await
            .map_err(|e| c2c_billing::WalletError::Backend(Box::new(e)))
    }
}

/// [`c2c_billing::Durability`] of a call's hold and settle on sled: nothing to wait for,
/// the call store's own durable writes cover them (see `SledWalletStore::open_with`).
struct CoveredByCallWrites;

#[async_trait::async_trait]
impl c2c_billing::Durability for CoveredByCallWrites {
    async fn sync(&self) -> Result<(), c2c_billing::WalletError> {
        Ok(())
    }
}
