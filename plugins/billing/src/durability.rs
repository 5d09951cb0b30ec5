//! When a sled wallet write is on disk: [`Durability`].

use async_trait::async_trait;

use crate::WalletError;

/// How a sled wallet write becomes durable. The default flushes the database itself;
/// the gateway passes its call store's group commit, so an entry shares one fsync with
/// the call writes around it, and for calls' holds and settles a barrier that the call
/// writes themselves satisfy (`SledWalletStore::open_with`; tests/bench/wallet.sh: a
/// flush of its own per hold and per charge cost almost half a lifecycle's throughput).
#[async_trait]
pub trait Durability: Send + Sync {
    /// Returns once every write applied to the database before the call is on disk.
    async fn sync(&self) -> Result<(), WalletError>;
}

/// [`Durability`] by a flush of the tree's database on the blocking pool (not
/// `flush_async`: sled 0.34 read-only transactions hang while `flush_async` calls are in
/// flight, see `SledWalletStore`).
pub(crate) struct OwnFlush(pub(crate) sled::Tree);

#[async_trait]
impl Durability for OwnFlush {
    async fn sync(&self) -> Result<(), WalletError> {
        let tree = self.0.clone();
        tokio::task::spawn_blocking(move || tree.flush())
            .await
            .map_err(|e| WalletError::Backend(Box::new(e)))??;
        Ok(())
    }
}
