//! What opening the store needs: the connection URL (read by the gateway from an
//! environment variable or a file, never from `gateway.toml`), pool size, statement
//! timeout, schema, and this node's lease.

use std::fmt;
use std::time::Duration;

/// How long a node's lease on its calls lasts without renewal (`[store] lease_seconds`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// Options of [`crate::PgStore::open`].
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/db` or a key=value string. Secret: never
    /// printed (`Debug` hides it).
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Server-side `statement_timeout` of every connection; also bounds how long taking
    /// a connection from the pool and opening one may take.
    pub statement_timeout: Duration,
    /// The schema (search path) the tables live in; `None`: the URL's default.
    pub schema: Option<String>,
    /// A readable name of this node in `c2c_nodes` (host name, pod name).
    pub node_name: String,
    /// This node's lease on the calls it drives.
    pub lease: Duration,
    /// How long a claimed webhook delivery stays this node's before another node may
    /// take it (longer than one delivery attempt).
    pub delivery_claim: Duration,
    /// Webhook deliveries of one tenant in flight across the fleet.
    pub tenant_delivery_concurrency: usize,
    /// How long this node's deliverer may be answered from the webhooks its own writes
    /// enqueued claimed, without a claim transaction, before a poll reads the database
    /// again (what only the database knows: retries, other nodes' expired claims).
    pub delivery_recheck: Duration,
}

impl PgOptions {
    /// Defaults around a URL: pool 16, statement timeout 5 s, lease 5 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            schema: None,
            node_name: "c2c-gateway".to_owned(),
            lease: DEFAULT_LEASE,
            delivery_claim: Duration::from_secs(60),
            tenant_delivery_concurrency: 8,
            delivery_recheck: Duration::from_millis(100),
        }
    }
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("schema", &self.schema)
            .field("node_name", &self.node_name)
            .field("lease", &self.lease)
            .field("delivery_claim", &self.delivery_claim)
            .field(
                "tenant_delivery_concurrency",
                &self.tenant_delivery_concurrency,
            )
            .field("delivery_recheck", &self.delivery_recheck)
            .finish()
    }
}
