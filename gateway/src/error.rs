//! Why the gateway could not start, typed. Each start-up step has its own error, and
//! [`StartError`] names the step; the command line prints it as one sentence (exit 1).
//! The sentences say what to change (the flag, the key, the address), so they are kept
//! word for word across refactors: operators' runbooks and tests quote them.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A start-up step that failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid policy in {}:\n{errors}", dir.display())]
    Policy {
        dir: PathBuf,
        errors: c2c_tenancy::PolicyErrors,
    },
    #[error("--listen {0:?} is not an address like 127.0.0.1:8080")]
    ListenAddress(String),
    /// A listener's address is taken (or otherwise cannot be bound).
    #[error(
        "{what} cannot listen on {addr} ({transport}): {reason}; set {flag} to another address"
    )]
    Listen {
        what: &'static str,
        addr: String,
        transport: String,
        reason: String,
        flag: &'static str,
    },
    #[error("SIP edge cannot listen on {0} without an address to advertise in its Via and Record-Route: set --sip-advertise (C2C_SIP_ADVERTISE) to the address LiveKit and carriers reach it at, or --sip-listen to a specific address")]
    SipAdvertise(SocketAddr),
    #[error("SIP edge: {0}")]
    Sip(c2c_sip::SipError),
    #[error("SIP edge: regions {region} sip_sources: {source}")]
    SipSources {
        region: String,
        source: c2c_sip::SipError,
    },
    #[error("cannot create data directory {}: {source}", dir.display())]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the store in {} (is another gateway using it?): {source}", dir.display())]
    Store { dir: PathBuf, source: sled::Error },
    #[error("cannot open DLT state: {0}")]
    Dlt(c2c_dlt::DltError),
    #[error("cannot open the agent registry: {0}")]
    Agents(c2c_agents::AgentStoreError),
    #[error("cannot open the wallets: {0}")]
    Wallets(c2c_billing::WalletError),
    #[error("cannot open the call store: {0}")]
    CallStore(c2c_callstate::StoreError),
    #[error("PostgreSQL store: {0}")]
    Postgres(c2c_store_pg::PgError),
    #[error("cannot open the store: {0}")]
    Tree(sled::Error),
    #[error("metrics registration: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    LiveKit(#[from] crate::calls::livekit_pool::PoolError),
    #[error(transparent)]
    Edge(#[from] crate::edge::RegionError),
    #[error(transparent)]
    Webhooks(#[from] crate::calls::services::DelivererError),
    #[error("the CRM lead lookup client: {0}")]
    LookupClient(reqwest::Error),
    #[error("TLS listener {listen}: {reason}")]
    Tls { listen: SocketAddr, reason: String },
}

impl StartError {
    /// `what` cannot listen on `addr` over `transport` (`TCP`, `UDP`): the address is
    /// taken, or not ours; `flag` is where to choose another.
    pub fn listen(
        what: &'static str,
        addr: impl ToString,
        transport: &str,
        e: &std::io::Error,
        flag: &'static str,
    ) -> Self {
        let reason = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "address in use (is another gateway running?)".to_owned()
            }
            std::io::ErrorKind::AddrNotAvailable => "address not available on this host".to_owned(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)".to_owned()
            }
            _ => e.to_string(),
        };
        StartError::Listen {
            what,
            addr: addr.to_string(),
            transport: transport.to_owned(),
            reason,
            flag,
        }
    }
}
