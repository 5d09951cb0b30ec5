//! Typed errors of the store. Transition errors live in [`crate::machine`].

use crate::machine::TransitionError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt stored value under {key}: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("corrupt journal entry {entry} in the calls-journal tree")]
    CorruptJournal { entry: u64 },
    #[error("serialisation failed: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("call not found")]
    NotFound,
    #[error("outbox entry {0} not found")]
    OutboxNotFound(u64),
    #[error("call already exists")]
    AlreadyExists,
    #[error("version conflict: expected {expected}, found {found}")]
    VersionConflict { expected: u64, found: u64 },
    #[error("invalid {what}")]
    InvalidInput { what: &'static str },
    #[error("call has not ended; no webhook payload")]
    NotEnded,
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("flush failed: {0}")]
    Flush(String),
    #[error("group-commit flusher stopped")]
    FlusherStopped,
    #[error("could not start flusher thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// A backend's own failure (a networked store's driver, a timeout), for backends
    /// outside this crate: the serving layer treats it as "store unavailable".
    #[error("store backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}
