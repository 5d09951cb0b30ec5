#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The side stores on a real PostgreSQL: LiveKit webhook ids ([`PgSeenEvents`]), DLT
//! overrides ([`PgDltStore`]) and agents ([`PgAgentStore`]) keep the same contract
//! suites as the sled and memory backends, and two nodes (two pools, as two gateways
//! have) on one database see each other's writes through the revision.
//!
//! One server per test binary; every case gets a schema of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use c2c_agents::{AgentStore, AgentStoreError, Directory, DirectoryChange};
use c2c_callstate::{SeenEvents, StoreError};
use c2c_dlt::{AuditEntry, DltError, DltStore, OutboundOverride};
use c2c_store_pg::{PgAgentStore, PgDltStore, PgOptions, PgSeenEvents, PgStore, PgWalletStore};
use c2c_test_support::pg::PgServer;

static PG: OnceLock<PgServer> = OnceLock::new();

fn pg() -> &'static PgServer {
    PG.get_or_init(PgServer::start)
}

/// A schema no other case uses.
fn fresh_schema() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("side_{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One node on `schema` (its own pool and node id).
async fn node(schema: &str) -> Arc<PgStore> {
    let opts = PgOptions {
        schema: Some(schema.to_owned()),
        pool_size: 4,
        ..PgOptions::new(pg().url("postgres"))
    };
    PgStore::open(opts)
        .await
        .expect("open the PostgreSQL store")
}

/// Two nodes on one fresh schema, opened at once (their migrations race).
async fn two_nodes() -> (String, Arc<PgStore>, Arc<PgStore>) {
    let schema = fresh_schema();
    let (a, b) = tokio::join!(node(&schema), node(&schema));
    (schema, a, b)
}

async fn agent_store() -> PgAgentStore {
    PgAgentStore::new(node(&fresh_schema()).await)
}

mod agents_contract {
    use super::agent_store;
    c2c_agents::agent_store_contract!(agent_store().await);
}

#[tokio::test]
async fn wallets_keep_the_contract() {
    let s = Arc::new(PgWalletStore::new(node(&fresh_schema()).await));
    c2c_billing::contract::wallet_store_contract(s)
        .await
        .unwrap();
}

/// Two nodes appending to one tenant's wallet at once, half the requests sent to both
/// (a client retrying through the other node): every entry once, seqs without gaps.
#[tokio::test]
async fn wallets_two_nodes_appending_at_once_lose_and_double_nothing() {
    use c2c_billing::{EntryKind, WalletStore};
    let (schema, a, b) = two_nodes().await;
    let (a, b) = (
        Arc::new(PgWalletStore::new(a)),
        Arc::new(PgWalletStore::new(b)),
    );
    let mut tasks = Vec::new();
    for w in 0..6 {
        let (mine, other) = if w % 2 == 0 {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let mut e = c2c_billing::contract::owner_entry(EntryKind::TopUp, 100);
                e.request_id = Some(format!("n{w}-{i}"));
                let (x, y) = tokio::join!(mine.append("acme", &e), other.append("acme", &e));
                let (x, y) = (x.unwrap(), y.unwrap());
                assert_eq!(x.entry, y.entry, "both nodes answer the one entry");
                assert!(x.replayed != y.replayed, "exactly one of them wrote it");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let bal = a.balance("acme").await.unwrap();
    assert_eq!((bal.balance_paise, bal.entries), (6_000, 60));
    assert_eq!(
        c2c_billing::check_ledger(&*b, "acme").await.unwrap(),
        Ok(bal)
    );
    assert_eq!(
        pg().psql(
            "postgres",
            &format!("SELECT count(*), sum(amount_paise) FROM {schema}.c2c_wallet_ledger")
        ),
        "60|6000"
    );
}

/// Calls of one tenant placing holds through two nodes at once (and each settling
/// through the other): exactly what the balance covers is held, and every settle posts
/// its charge once however many times it is sent.
#[tokio::test]
async fn wallet_holds_from_two_nodes_never_exceed_the_balance() {
    use c2c_billing::{call_charge, EntryKind, WalletError, WalletStore};
    let (_, a, b) = two_nodes().await;
    let (a, b) = (
        Arc::new(PgWalletStore::new(a)),
        Arc::new(PgWalletStore::new(b)),
    );
    a.append(
        "acme",
        &c2c_billing::contract::owner_entry(EntryKind::TopUp, 1_500),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            match s.place_hold("acme", &format!("c_{i}"), 100, 1).await {
                Ok(p) => Some(p.hold.call_id),
                Err(WalletError::InsufficientBalance { .. }) => None,
                Err(e) => panic!("{e}"),
            }
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        held.extend(t.await.unwrap());
    }
    assert_eq!(held.len(), 15, "holds beyond the balance: {held:?}");
    assert_eq!(a.available("acme").await.unwrap(), 0);
    // Each held call is settled from both nodes at once, 10 paise each.
    let settles = held.iter().map(|id| {
        let (a, b) = (a.clone(), b.clone());
        let id = id.clone();
        async move {
            let charge = call_charge(&id, 10, "talk".into(), 2);
            let (x, y) = tokio::join!(
                a.settle("acme", &id, Some(&charge)),
                b.settle("acme", &id, Some(&charge))
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(
                x.released.is_some() != y.released.is_some(),
                "{id}: one release"
            );
            let (cx, cy) = (x.charge.unwrap(), y.charge.unwrap());
            assert!(cx.replayed != cy.replayed, "{id}: one charge");
        }
    });
    futures_util::future::join_all(settles).await;
    let bal = a.balance("acme").await.unwrap();
    assert_eq!((bal.balance_paise, bal.entries), (1_500 - 150, 16));
    assert!(b.all_holds().await.unwrap().is_empty());
    assert_eq!(
        c2c_billing::check_ledger(&*b, "acme").await.unwrap(),
        Ok(bal)
    );
}

#[tokio::test]
async fn seen_events_keep_the_contract() {
    let s = Arc::new(PgSeenEvents::new(node(&fresh_schema()).await));
    c2c_callstate::store::seen_events_contract(s).await.unwrap();
}

#[tokio::test]
async fn seen_events_two_nodes_recording_one_id_leave_one_row() {
    let (schema, a, b) = two_nodes().await;
    c2c_callstate::store::seen_events_race(
        Arc::new(PgSeenEvents::new(a)),
        Arc::new(PgSeenEvents::new(b)),
    )
    .await
    .unwrap();
    assert_eq!(
        pg().psql(
            "postgres",
            &format!("SELECT count(*) FROM {schema}.c2c_livekit_seen")
        ),
        "0",
        "the race's rows were pruned, one per id"
    );
}

#[tokio::test]
async fn dlt_store_keeps_the_contract() {
    let s = Arc::new(PgDltStore::new(node(&fresh_schema()).await));
    c2c_dlt::contract::store_contract(s).await.unwrap();
}

#[tokio::test]
async fn dlt_registries_on_two_nodes_follow_each_other() {
    let (_, a, b) = two_nodes().await;
    c2c_dlt::contract::registries_share_the_store(
        Arc::new(PgDltStore::new(a)),
        Arc::new(PgDltStore::new(b)),
    )
    .await
    .unwrap();
}

fn record_at(ms: u64, enabled: bool) -> (OutboundOverride, AuditEntry) {
    let o = OutboundOverride {
        enabled,
        verified_by: "ops@platform".into(),
        note: format!("at {ms}"),
        key_id: "owner-1".into(),
        at_ms: ms,
    };
    let a = AuditEntry {
        at_ms: ms,
        verified_by: o.verified_by.clone(),
        key_id: o.key_id.clone(),
        old: !enabled,
        new: enabled,
        note: o.note.clone(),
    };
    (o, a)
}

/// Records racing from two nodes all land, each counted once, and the trail is in
/// commit order (the override is the trail's last line).
#[tokio::test]
async fn dlt_records_racing_from_two_nodes_each_count() {
    let (_, a, b) = two_nodes().await;
    let (a, b): (Arc<dyn DltStore>, Arc<dyn DltStore>) =
        (Arc::new(PgDltStore::new(a)), Arc::new(PgDltStore::new(b)));
    let r0 = b.revision().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let (o, e) = record_at(1_000 + i, i % 3 == 0);
            s.record("acme", &o, &e).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.revision().await.unwrap(), r0 + 20);
    let trail = b.audit("acme", 100).await.unwrap();
    assert_eq!(trail.len(), 20);
    let current = a.current("acme").await.unwrap().unwrap();
    let last = trail.last().unwrap();
    assert_eq!(
        (current.at_ms, current.enabled),
        (last.at_ms, last.new),
        "the override is the newest line of the trail"
    );
}

#[tokio::test]
async fn agent_directory_on_another_node_follows_writes() {
    let (_, a, b) = two_nodes().await;
    let (sa, sb) = (PgAgentStore::new(a), PgAgentStore::new(b));
    let dir_b = Directory::open(&sb).await.unwrap();
    let r0 = sb.revision().await.unwrap();
    let asha = c2c_agents::contract::agent("acme", "a1", "Asha", true);
    sa.put(&asha, &c2c_agents::contract::created(&asha))
        .await
        .unwrap();
    assert!(sb.revision().await.unwrap() > r0, "B counts A's write");
    assert_eq!(dir_b.get("acme", "a1"), None, "stale until refreshed");
    assert_eq!(
        dir_b.refresh(&sb).await.unwrap(),
        [DirectoryChange::Added(asha.clone())]
    );
    assert!(dir_b.refresh(&sb).await.unwrap().is_empty());
    let gone = c2c_agents::AuditEntry::diff(Some(&asha), None, "k2", 2_000);
    assert!(sa.remove("acme", "a1", &gone).await.unwrap());
    assert_eq!(
        dir_b.refresh(&sb).await.unwrap(),
        [DirectoryChange::Removed(asha)]
    );
    let trail = sb.audit("acme", 100).await.unwrap();
    let fields: Vec<_> = trail.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["registered", "name", "telephony_enabled", "registered"]
    );
}

#[tokio::test]
async fn presence_secret_race_between_two_nodes_gives_the_same_bytes() {
    for _ in 0..5 {
        let (_, a, b) = two_nodes().await;
        let (sa, sb) = (PgAgentStore::new(a), PgAgentStore::new(b));
        let (x, y) = tokio::join!(sa.presence_secret(), sb.presence_secret());
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x, y, "both nodes sign with one secret");
        assert_ne!(x, [0u8; 32]);
        assert_eq!(sa.presence_secret().await.unwrap(), x, "created once");
    }
}

#[tokio::test]
async fn secret_and_agents_survive_a_new_pool() {
    let schema = fresh_schema();
    let asha = c2c_agents::contract::agent("acme", "a1", "Asha", true);
    let secret = {
        let s = PgAgentStore::new(node(&schema).await);
        s.put(&asha, &c2c_agents::contract::created(&asha))
            .await
            .unwrap();
        s.presence_secret().await.unwrap()
    };
    let s = PgAgentStore::new(node(&schema).await);
    assert_eq!(s.all().await.unwrap(), vec![asha]);
    assert_eq!(s.presence_secret().await.unwrap(), secret);
}

/// Driver errors come back as each trait's backend error, corrupt JSON as `Corrupt`.
#[tokio::test]
async fn driver_errors_map_to_the_backend_variants() {
    let schema = fresh_schema();
    let store = node(&schema).await;
    let (seen, dlt, agents) = (
        PgSeenEvents::new(store.clone()),
        PgDltStore::new(store.clone()),
        PgAgentStore::new(store),
    );
    let asha = c2c_agents::contract::agent("acme", "a1", "Asha", true);
    agents
        .put(&asha, &c2c_agents::contract::created(&asha))
        .await
        .unwrap();
    pg().psql(
        "postgres",
        &format!("UPDATE {schema}.c2c_agent_audit SET old_value = 'not json'"),
    );
    assert!(matches!(
        agents.audit("acme", 10).await,
        Err(AgentStoreError::Corrupt(_))
    ));
    pg().psql(
        "postgres",
        &format!(
            "DROP TABLE {schema}.c2c_livekit_seen, {schema}.c2c_dlt_overrides, \
             {schema}.c2c_agents"
        ),
    );
    assert!(matches!(
        seen.contains("EV_1").await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(dlt.overrides().await, Err(DltError::Backend(_))));
    assert!(matches!(
        agents.all().await,
        Err(AgentStoreError::Backend(_))
    ));
}

/// One call at a time per agent, fleet-wide: of two nodes claiming one agent for two
/// open calls at the same instant exactly one wins; the winner's release, or its call's
/// end, frees the agent; a claim is idempotent for its own call.
#[tokio::test]
async fn two_nodes_claiming_one_agent_at_once_grant_one() {
    use c2c_callstate::{CallEvent, CallStore, CallStoreExt};
    let (_, a, b) = two_nodes().await;
    let calls = c2c_store_pg::PgCallStore::new(a.clone()).await.unwrap();
    let (sa, sb) = (PgAgentStore::new(a), PgAgentStore::new(b));
    for round in 0..5 {
        let (c1, c2) = (
            c2c_callstate::store::contract::call("acme", 1_000),
            c2c_callstate::store::contract::call("acme", 1_000),
        );
        calls.create(&c1).await.unwrap();
        calls.create(&c2).await.unwrap();
        let agent = format!("a{round}");
        let (x, y) = tokio::join!(
            sa.claim_busy("acme", &agent, &c1.call_id),
            sb.claim_busy("acme", &agent, &c2.call_id)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        let won = match (&x, &y) {
            (None, Some(other)) => {
                assert_eq!(other, &c1.call_id);
                &c1
            }
            (Some(other), None) => {
                assert_eq!(other, &c2.call_id);
                &c2
            }
            _ => panic!("round {round}: both or neither granted: {x:?} {y:?}"),
        };
        let lost = if won.call_id == c1.call_id { &c2 } else { &c1 };
        // Claiming again for the call it is on is granted; the loser still is refused.
        assert_eq!(
            sa.claim_busy("acme", &agent, &won.call_id).await.unwrap(),
            None
        );
        assert_eq!(
            sb.claim_busy("acme", &agent, &lost.call_id).await.unwrap(),
            Some(won.call_id.clone())
        );
        if round % 2 == 0 {
            // Released: the other call may go.
            sb.release_busy("acme", &agent, &won.call_id).await.unwrap();
        } else {
            // Never released, but its call ended: taken over.
            calls
                .apply_transition(&won.call_id, |r| {
                    c2c_callstate::machine::transition(
                        r,
                        &CallEvent::HangupRequested,
                        &c2c_callstate::machine::CallKnobs::default(),
                        2_000,
                    )
                })
                .await
                .unwrap();
            assert!(calls.get(&won.call_id).await.unwrap().unwrap().is_ended());
        }
        assert_eq!(
            sb.claim_busy("acme", &agent, &lost.call_id).await.unwrap(),
            None
        );
        // Releasing someone else's claim does nothing.
        sa.release_busy("acme", &agent, &won.call_id).await.unwrap();
        assert_eq!(
            sa.claim_busy("acme", &agent, &won.call_id).await.unwrap(),
            Some(lost.call_id.clone())
        );
    }
}

/// One node's holds and settles queued at once are written in batches (one
/// transaction for all that queued meanwhile), and each still gets the answer a
/// transaction of its own would give: holds beyond the balance refused alone, a hold
/// and its settle in one batch, a call settled twice in one batch charged once, a
/// reused request id refused without taking the rest of the batch with it.
#[tokio::test]
async fn wallet_batches_answer_each_job_as_if_alone() {
    use c2c_billing::{call_charge, EntryKind, WalletError, WalletStore};
    use futures_util::future::join_all;
    let schema = fresh_schema();
    let s = Arc::new(PgWalletStore::new(node(&schema).await));
    s.append(
        "acme",
        &c2c_billing::contract::owner_entry(EntryKind::TopUp, 1_000),
    )
    .await
    .unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("c_{i}")).collect();
    let holds = join_all(ids.iter().map(|id| s.place_hold("acme", id, 100, 1))).await;
    let held: Vec<String> = holds
        .into_iter()
        .filter_map(|r| match r {
            Ok(p) => Some(p.hold.call_id),
            Err(WalletError::InsufficientBalance { .. }) => None,
            Err(e) => panic!("{e}"),
        })
        .collect();
    assert_eq!(held.len(), 10, "holds beyond the balance: {held:?}");
    // Every held call settled twice at once (10 paise), and a new call held and settled
    // in the same breath.
    let settles = held.iter().flat_map(|id| {
        let charge = call_charge(id, 10, "talk".into(), 2);
        [charge.clone(), charge].map(|c| {
            let s = s.clone();
            let id = id.clone();
            async move { s.settle("acme", &id, Some(&c)).await.unwrap() }
        })
    });
    let late = async {
        let placed = s.place_hold("acme", "c_late", 50, 3);
        let charge = call_charge("c_late", 7, "talk".into(), 4);
        let settled = s.settle("acme", "c_late", Some(&charge));
        let (placed, settled) = tokio::join!(placed, settled);
        (placed.unwrap(), settled.unwrap())
    };
    let (settled, (placed, late_settled)) = tokio::join!(join_all(settles), late);
    for pair in settled.chunks(2) {
        let (x, y) = (&pair[0], &pair[1]);
        assert!(x.released.is_some() != y.released.is_some(), "one release");
        let (cx, cy) = (x.charge.as_ref().unwrap(), y.charge.as_ref().unwrap());
        assert!(cx.replayed != cy.replayed, "one charge");
    }
    assert!(!placed.existing);
    assert_eq!(late_settled.released.as_ref(), Some(&placed.hold));
    assert_eq!(late_settled.charge.as_ref().unwrap().entry.amount_paise, -7);
    // A charge of another amount under a used request id is refused alone.
    let wrong = call_charge(&held[0], 11, "talk".into(), 5);
    let other = call_charge("c_other", 3, "talk".into(), 5);
    let (wrong, other) = tokio::join!(
        s.settle("acme", &held[0], Some(&wrong)),
        s.settle("acme", "c_other", Some(&other))
    );
    assert!(
        matches!(wrong, Err(WalletError::RequestIdReused { .. })),
        "{wrong:?}"
    );
    assert!(!other.unwrap().charge.unwrap().replayed);
    let bal = s.balance("acme").await.unwrap();
    assert_eq!(
        (bal.balance_paise, bal.entries),
        (1_000 - 10 * 10 - 7 - 3, 1 + 10 + 1 + 1)
    );
    assert!(s.all_holds().await.unwrap().is_empty());
    assert_eq!(s.available("acme").await.unwrap(), bal.balance_paise);
    assert_eq!(
        c2c_billing::check_ledger(&*s, "acme").await.unwrap(),
        Ok(bal)
    );
    assert_eq!(
        pg().psql(
            "postgres",
            &format!("SELECT count(*) FROM {schema}.c2c_wallet_holds")
        ),
        "0"
    );
}
