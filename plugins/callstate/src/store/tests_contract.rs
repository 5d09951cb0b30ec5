//! The [`CallStore`] contract suite (`store/contract/`) on both backends of this crate.

use std::sync::Arc;

use super::contract::Fixture;
use super::{CallStore, MemCallStore};

/// Real sled in a temp dir that lives as long as the case.
fn sled_fixture() -> Fixture {
    let dir = tempfile::TempDir::new().unwrap();
    let store: Arc<dyn CallStore> = Arc::new(super::tests::open(&dir));
    (Box::new(dir), store)
}

fn mem_fixture() -> Fixture {
    (Box::new(()), Arc::new(MemCallStore::new()))
}

crate::call_store_contract!(sled, sled_fixture());
crate::call_store_contract!(mem, mem_fixture());
