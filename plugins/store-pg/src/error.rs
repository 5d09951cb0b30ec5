//! Errors of opening the store, and the mapping of driver errors into the store traits'
//! "backend" variants (which the serving layer answers as `503 store_unavailable`).

use c2c_callstate::StoreError;

/// Why the PostgreSQL store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("cannot build the PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("cannot take a PostgreSQL connection from the pool: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[error("schema migration lock held by {holder} for over {waited_s} s; is a migration stuck?")]
    MigrationLock { holder: String, waited_s: u64 },
    #[error("the database's schema is version {found}, newer than this gateway's {known}: upgrade the gateway")]
    SchemaTooNew { found: i32, known: i32 },
    #[error("invalid option: {0}")]
    Option(String),
}

/// A driver or pool error as the call store's backend error.
pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}
