//! [`PgStore`]: the pool of connections and this node's identity, shared by every
//! store trait object of one gateway process.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_callstate::StoreError;
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
    TimeoutType,
};

use tokio_postgres::NoTls;

use crate::error::{backend, PgError};
use crate::PgOptions;

/// The shared PostgreSQL store of one gateway process: open it once with
/// [`PgStore::open`] and build the trait objects on it.
pub struct PgStore {
    pool: Pool,
    /// This process's id in the fleet: random at every start, so a restarted node is a
    /// new node and its previous life's calls are taken over like any dead node's.
    node_id: String,
    opts: PgOptions,
    /// When an operation last ran out of time (see [`PgStore::within`]).
    stalled: Arc<Stall>,
    /// The engine takes `SET LOCAL synchronous_commit` (probed at open; `relaxed.rs`).
    relaxed_commits: bool,
    /// What checkouts from the pool waited (see [`PgStore::pool_stats`]).
    checkouts: Checkouts,
    /// Runs every connection's socket; dropped last.
    _io: IoRuntime,
}

/// The pool now and its checkouts since the start ([`PgStore::pool_stats`]): what an
/// operator needs to see whether `store.pool_size` is too small for the load (requests
/// wait for a connection) or the database is away (connections cannot be opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `store.pool_size`.
    pub max_size: usize,
    /// Connections open now, handed out or idle.
    pub open: usize,
    /// Connections open now and not handed out.
    pub idle: usize,
    /// Operations waiting for a connection now.
    pub waiting: usize,
    /// Checkouts since the start, whatever their outcome.
    pub checkouts: u64,
    /// Time those checkouts waited, summed (nanoseconds).
    pub wait_ns: u64,
    /// Checkouts that found no connection free within `statement_timeout_ms` (the
    /// operation answered "unavailable"): the pool is too small for the load, or the
    /// database too slow to give connections back.
    pub exhausted: u64,
}

/// Counters of [`PoolStats`], bumped by every checkout.
#[derive(Default)]
struct Checkouts {
    count: AtomicU64,
    wait_ns: AtomicU64,
    exhausted: AtomicU64,
}

/// An operation that did not finish within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL did not answer within {0:?}")]
pub struct Stalled(Duration);

/// The last time an operation ran out of time.
#[derive(Default)]
struct Stall(std::sync::Mutex<Option<std::time::Instant>>);

impl Stall {
    fn now(&self) {
        if let Ok(mut t) = self.0.lock() {
            *t = Some(std::time::Instant::now());
        }
    }

    /// True when an operation stalled at or after `t`.
    fn since(&self, t: std::time::Instant) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|s| *s)
            .is_some_and(|stalled| stalled >= t)
    }
}

/// The runtime the connections' sockets live on. A connection's I/O belongs to the
/// runtime that opened it; Pingora runs several runtimes (one per service, some per
/// thread) and a pooled connection is used from all of them, so none of them may own
/// it: a busy proxy thread would stall other services' queries, and a runtime that
/// ends would take its connections with it. One thread is plenty: it only moves bytes.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl IoRuntime {
    fn start() -> Result<Self, PgError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("c2c-pg-io")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| PgError::Pool(format!("cannot start the PostgreSQL I/O thread: {e}")))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's async context panics; nothing waits
        // on these tasks any more, so let them go in the background.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Drops a reference to the store taken by one of its background tasks (which run on
/// its I/O runtime): the last reference dropped there would drop that runtime from one
/// of its own threads, which panics; a plain thread does it then.
pub(crate) fn release(pg: Arc<PgStore>) {
    if Arc::strong_count(&pg) == 1 {
        let _ = std::thread::Builder::new()
            .name("c2c-pg-close".into())
            .spawn(move || drop(pg));
    } else {
        drop(pg);
    }
}

/// Opens connections on the I/O runtime (see [`IoRuntime`]).
struct OnIoRuntime(tokio::runtime::Handle);

impl deadpool_postgres::Connect for OnIoRuntime {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> Pin<Box<dyn Future<Output = ConnectResult> + Send + '_>> {
        let cfg = pg_config.clone();
        let io = self.0.clone();
        Box::pin(async move {
            let on_io = cfg.clone();
            match io.spawn(open(on_io)).await {
                Ok(r) => r,
                // The I/O runtime is gone (the process is stopping): this runtime then.
                Err(_) => open(cfg).await,
            }
        })
    }
}

type ConnectResult =
    Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>;

/// Opens a connection and runs its socket on the current runtime.
async fn open(cfg: tokio_postgres::Config) -> ConnectResult {
    let (client, conn) = cfg.connect(NoTls).await?;
    let task = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok((client, task))
}

impl PgStore {
    /// Connects, creates the schema if named, applies pending migrations under the
    /// migration lock, and answers once the database is usable.
    pub async fn open(opts: PgOptions) -> Result<Arc<PgStore>, PgError> {
        if let Some(schema) = &opts.schema {
            check_identifier(schema)?;
        }
        if opts.pool_size == 0 {
            return Err(PgError::Option("pool_size must be at least 1".into()));
        }
        let mut cfg = tokio_postgres::Config::from_str(&opts.url).map_err(PgError::Url)?;
        // Session settings the URL carries (`?options=-c%20name%3Dvalue`, libpq's
        // parameter) stay; the store's own come after them and win.
        let mut options = cfg
            .get_options()
            .map(|o| format!("{o} "))
            .unwrap_or_default();
        options.push_str(&format!(
            "-c statement_timeout={}",
            opts.statement_timeout.as_millis().max(1)
        ));
        if let Some(schema) = &opts.schema {
            options.push_str(&format!(" -c search_path={schema}"));
        }
        cfg.options(&options);
        cfg.application_name("c2c-gateway");
        cfg.connect_timeout(opts.statement_timeout);
        // A database host that vanished (power, partition) is noticed by TCP instead of
        // waiting on the kernel's two-hour default: keepalives on an idle connection,
        // and a send nobody acknowledges fails after the user timeout.
        cfg.keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(opts.statement_timeout * 2 + Duration::from_secs(1));
        let io = IoRuntime::start()?;
        let mgr = Manager::from_connect(
            cfg,
            OnIoRuntime(io.handle()),
            ManagerConfig {
                // `Fast`: a connection the server closed fails its next query once and
                // is dropped; `Verified` would add a round trip to every checkout.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let wait = opts.statement_timeout;
        let stalled = Arc::new(Stall::default());
        let on_recycle = stalled.clone();
        let pool = Pool::builder(mgr)
            .pre_recycle(Hook::sync_fn(move |_client, metrics| {
                // A connection in use, or idle, when an operation ran out of time may
                // have a request stuck on it (a frozen server): never hand it out again.
                let last_ok = metrics.recycled.unwrap_or(metrics.created);
                if on_recycle.since(last_ok) {
                    return Err(HookError::message(
                        "connection predates a stalled operation",
                    ));
                }
                Ok(())
            }))
            .max_size(opts.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .recycle_timeout(Some(wait))
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        let node_id = format!("{:016x}", rand::random::<u64>());
        let mut store = PgStore {
            pool,
            node_id,
            opts,
            stalled,
            relaxed_commits: false,
            checkouts: Checkouts::default(),
            _io: io,
        };
        {
            let mut client = store.pool.get().await?;
            if let Some(schema) = &store.opts.schema {
                create_schema(&client, schema).await?;
            }
            crate::migrate::run(&mut client, &store.node_id).await?;
            store.relaxed_commits = crate::relaxed::probe(&client).await;
        }
        Ok(Arc::new(store))
    }

    /// Runs one store operation with a client-side deadline. The server's
    /// `statement_timeout` bounds a statement the server is running, not one it never
    /// answers (a frozen process, a stalled disk under a commit, a partition that leaves
    /// TCP open): without this, a request would wait forever. Past the deadline the
    /// operation fails as "unavailable" (`503 store_unavailable`), and every connection
    /// that was open then is dropped at its next checkout instead of being reused.
    ///
    /// The deadline is two statement timeouts plus a second: an operation is a few
    /// statements (a transition: lock, write, commit).
    pub async fn within<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.within_or(op, StoreError::Backend).await
    }

    /// [`Self::within`] for the stores whose error type is not the call store's: `wrap`
    /// makes their "backend" error.
    pub async fn within_or<T, E>(
        &self,
        op: impl Future<Output = Result<T, E>>,
        wrap: impl FnOnce(Box<dyn std::error::Error + Send + Sync + 'static>) -> E,
    ) -> Result<T, E> {
        let deadline = self.opts.statement_timeout * 2 + Duration::from_secs(1);
        match tokio::time::timeout(deadline, op).await {
            Ok(r) => r,
            Err(_) => {
                self.stalled.now();
                Err(wrap(Box::new(Stalled(deadline))))
            }
        }
    }

    /// A pooled connection, or the store's "unavailable" error.
    pub async fn client(&self) -> Result<Object, StoreError> {
        self.checkout().await.map_err(backend)
    }

    /// A pooled connection, counted in [`Self::pool_stats`] (for stores in this crate
    /// that map errors their own way).
    pub(crate) async fn checkout(&self) -> Result<Object, PoolError> {
        let started = Instant::now();
        let got = self.pool.get().await;
        let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let c = &self.checkouts;
        c.count.fetch_add(1, Ordering::Relaxed);
        c.wait_ns.fetch_add(waited, Ordering::Relaxed);
        if matches!(got, Err(PoolError::Timeout(TimeoutType::Wait))) {
            c.exhausted.fetch_add(1, Ordering::Relaxed);
        }
        got
    }

    /// The pool now and what its checkouts waited since the start.
    pub fn pool_stats(&self) -> PoolStats {
        let now = self.pool.status();
        let c = &self.checkouts;
        PoolStats {
            max_size: now.max_size,
            open: now.size,
            idle: now.available,
            waiting: now.waiting,
            checkouts: c.count.load(Ordering::Relaxed),
            wait_ns: c.wait_ns.load(Ordering::Relaxed),
            exhausted: c.exhausted.load(Ordering::Relaxed),
        }
    }

    /// The runtime the connections' sockets live on: for the store's own background
    /// tasks too, since it lives as long as the pool (the callers' runtimes come and go).
    pub(crate) fn io_handle(&self) -> tokio::runtime::Handle {
        self._io.handle()
    }

    /// Whether the outbox's delivery claims and attempt progress commit without waiting
    /// for the WAL flush: the engine took `SET LOCAL synchronous_commit` when probed at
    /// open (PostgreSQL does). See `docs/fleet.md`.
    pub fn relaxed_commits(&self) -> bool {
        self.relaxed_commits
    }

    /// This process's node id (random per start).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn options(&self) -> &PgOptions {
        &self.opts
    }

    /// The lease as milliseconds.
    pub fn lease_ms(&self) -> u64 {
        crate::calls::millis(self.opts.lease)
    }

    /// How long to wait between two tries of something that found the database away.
    pub fn retry_after(&self) -> Duration {
        self.opts.statement_timeout.min(Duration::from_secs(1))
    }
}

/// Schema names go into SQL text (`search_path`, `CREATE SCHEMA`): letters, digits and
/// `_` only, starting with a letter or `_`, at most 63 bytes (PostgreSQL's limit).
fn check_identifier(s: &str) -> Result<(), PgError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(PgError::Option(format!(
            "schema {s:?}: use lowercase letters, digits and _ (at most 63, not starting with a digit)"
        )))
    }
}

/// `CREATE SCHEMA IF NOT EXISTS` is not race-free on PostgreSQL: two nodes creating it
/// at once may see a unique violation, which means it exists now.
async fn create_schema(client: &Object, schema: &str) -> Result<(), PgError> {
    match client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if crate::migrate::is_creation_race(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_identifier;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_identifier("c2c").is_ok());
        assert!(check_identifier("fleet_2").is_ok());
        for bad in [
            "",
            "1abc",
            "a-b",
            "A",
            "a;drop table x",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(check_identifier(bad).is_err(), "{bad:?}");
        }
    }
}
