//! The agent store contract, against every backend of this crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sled_backend {
    fn open() -> c2c_agents::SledAgentStore {
        // A temporary database: sled picks the path and removes it when dropped.
        let db = sled::Config::new().temporary(true).open().unwrap();
        c2c_agents::SledAgentStore::open(&db).unwrap()
    }
    c2c_agents::agent_store_contract!(open());
}

mod mem_backend {
    c2c_agents::agent_store_contract!(c2c_agents::MemAgentStore::new());
}

/// Survives a reopen: the registry, the secret and the revision are on disk.
#[tokio::test]
async fn sled_store_survives_reopen() {
    use c2c_agents::AgentStore;
    let dir = tempfile::tempdir().unwrap();
    let a = c2c_agents::contract::agent("acme", "a1", "Asha", true);
    let (secret, revision) = {
        let db = sled::open(dir.path()).unwrap();
        let s = c2c_agents::SledAgentStore::open(&db).unwrap();
        s.put(&a, &c2c_agents::contract::created(&a)).await.unwrap();
        (
            s.presence_secret().await.unwrap(),
            s.revision().await.unwrap(),
        )
    };
    let db = sled::open(dir.path()).unwrap();
    let s = c2c_agents::SledAgentStore::open(&db).unwrap();
    assert_eq!(s.all().await.unwrap(), vec![a]);
    assert_eq!(s.presence_secret().await.unwrap(), secret);
    assert_eq!(
        s.revision().await.unwrap(),
        revision,
        "the revision is on disk"
    );
    assert!(revision > 0);
}
