//! The gateway on its in-memory stores (`C2C_STORE=memory`: `MemCallStore`, the
//! in-memory DLT store and webhook-id set): a whole call over real HTTP against the
//! bundled LiveKit simulator, ending in a signed CRM webhook, with nothing written to
//! the data directory. Proves the serving gateway depends on the store traits only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::CallEnv;
use serde_json::json;

const NUMBER: &str = "9530251797";
const T: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_call_runs_on_the_in_memory_store() {
    // Webhook mode: LiveKit's webhooks go through the de-duplication set too.
    let env = CallEnv::start_with_env("webhook", &[("C2C_STORE", "memory")]).await;
    let (call_id, _room) = env.start_call(NUMBER).await;
    let active = env.wait_status(&call_id, "ACTIVE", T).await;
    assert_eq!(active["connected"], true);
    let _ = env
        .post_json(
            &format!("/api/c2c/calls/{call_id}/status"),
            json!({"status": "ANSWERED"}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ended = env.hang_up(&call_id).await;
    assert_eq!(ended["call_status"], "ANSWERED");
    assert_eq!(ended["disconnect_reason"], "agent_hangup");

    // The outbox entry written with the call's end is delivered, once.
    let w = env.webhook(&call_id, T).await;
    assert_eq!(w.body["call_id"], call_id.as_str());
    assert_eq!(w.body["call_status"], "ANSWERED");
    assert!(w.body["duration_seconds"].as_u64().unwrap() >= 1);
    let stored = env.get_call(&call_id).await;
    assert_eq!(stored["status"], "ENDED");

    // The store is the process's memory: no sled database in the data directory.
    assert!(
        !env.data.path().join("store").exists(),
        "the in-memory gateway opened a sled store"
    );
}
