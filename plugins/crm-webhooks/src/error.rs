//! Typed errors. Messages never carry payloads, keys or secrets.

use c2c_callstate::OutboxState;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Failure reported by an [`crate::OutboxSource`] implementation (the store).
#[derive(Debug, thiserror::Error)]
#[error("outbox source: {context}")]
pub struct SourceError {
    context: String,
    #[source]
    source: Option<BoxError>,
}

impl SourceError {
    /// An error with a description only.
    pub fn msg(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    /// Wrap the store's own error.
    pub fn with_source(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// An invalid [`crate::DeliveryPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("delivery policy: {0}")]
    InvalidPolicy(&'static str),
}

/// A signing secret that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("signing secret is empty")]
    Empty,
    #[error("signing secret is not valid base64")]
    NotBase64,
}

/// Why [`crate::Deliverer::deliver_once`] could not complete.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// Only `Pending` jobs are sent; requeue a terminal job first (replay).
    #[error("job {seq} is {state:?}, not pending")]
    NotPending { seq: u64, state: OutboxState },
    /// The same job is being delivered right now (run loop or another caller).
    #[error("job {seq} is already being delivered")]
    InFlight { seq: u64 },
    /// The attempt happened (or was decided) but its result could not be stored;
    /// the job stays as the store last saw it and will be retried (same webhook-id).
    #[error("storing the delivery result failed")]
    Source(#[from] SourceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A concurrency limiter was closed (the deliverer is shutting down).
    #[error("deliverer is shutting down")]
    Closed,
}
