//! The behaviour every [`AgentStore`](crate::AgentStore) backend must have, as one test
//! suite: `agent_store_contract!(make)` expands to a test per rule, each with a fresh
//! store from `make()` (an expression, `.await` allowed, giving the store by value). Run for sled and memory in
//! `tests/contract.rs`; a backend in another crate runs it with the `contract` feature.

use crate::agent::{Agent, AuditEntry};

/// An agent of `tenant` for the suite.
pub fn agent(tenant: &str, id: &str, name: &str, telephony: bool) -> Agent {
    Agent {
        tenant: tenant.to_owned(),
        agent_id: id.to_owned(),
        name: name.to_owned(),
        telephony_enabled: telephony,
        created_ms: 1_000,
        updated_ms: 1_000,
    }
}

/// The audit lines of creating `a`.
pub fn created(a: &Agent) -> Vec<AuditEntry> {
    AuditEntry::diff(None, Some(a), "k1", a.created_ms)
}

#[macro_export]
macro_rules! agent_store_contract {
    ($make:expr) => {
        use $crate::contract::{agent, created};
        use $crate::{AgentStore, AuditEntry};

        #[tokio::test]
        async fn put_then_all_returns_every_tenants_agents() {
            let s = $make;
            let a = agent("acme", "a1", "Asha", true);
            let b = agent("acme-2", "a1", "Bela", false);
            s.put(&a, &created(&a)).await.unwrap();
            s.put(&b, &created(&b)).await.unwrap();
            let mut all = s.all().await.unwrap();
            all.sort_by(|x, y| x.tenant.cmp(&y.tenant));
            assert_eq!(all, vec![a, b]);
        }

        #[tokio::test]
        async fn put_replaces_and_appends_audit_in_order() {
            let s = $make;
            let a = agent("acme", "a1", "Asha", true);
            s.put(&a, &created(&a)).await.unwrap();
            let mut b = a.clone();
            b.telephony_enabled = false;
            b.updated_ms = 2_000;
            s.put(&b, &AuditEntry::diff(Some(&a), Some(&b), "k2", 2_000))
                .await
                .unwrap();
            assert_eq!(s.all().await.unwrap(), vec![b]);
            let trail = s.audit("acme", 100).await.unwrap();
            let fields: Vec<_> = trail.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(
                fields,
                [
                    "registered",
                    "name",
                    "telephony_enabled",
                    "telephony_enabled"
                ]
            );
            assert_eq!(trail[3].key_id, "k2");
            let newest = s.audit("acme", 1).await.unwrap();
            assert_eq!(newest, trail[3..].to_vec(), "max keeps the newest");
        }

        #[tokio::test]
        async fn audit_is_per_tenant_even_for_prefix_ids() {
            let s = $make;
            let a = agent("acme", "a1", "Asha", true);
            let b = agent("acme-2", "a1", "Bela", true);
            s.put(&a, &created(&a)).await.unwrap();
            s.put(&b, &created(&b)).await.unwrap();
            assert!(s
                .audit("acme", 100)
                .await
                .unwrap()
                .iter()
                .all(|e| e.new != "Bela"));
            assert!(s.audit("nobody", 100).await.unwrap().is_empty());
        }

        #[tokio::test]
        async fn remove_deletes_once_and_audits() {
            let s = $make;
            let a = agent("acme", "a1", "Asha", true);
            s.put(&a, &created(&a)).await.unwrap();
            let gone = AuditEntry::diff(Some(&a), None, "k3", 3_000);
            assert!(s.remove("acme", "a1", &gone).await.unwrap());
            assert!(s.all().await.unwrap().is_empty());
            assert!(
                !s.remove("acme", "a1", &gone).await.unwrap(),
                "second remove"
            );
            let trail = s.audit("acme", 100).await.unwrap();
            assert_eq!(trail.last().unwrap().field, "registered");
            assert_eq!(trail.len(), 4, "a refused remove writes no audit line");
            assert!(!s.remove("other", "a1", &gone).await.unwrap());
        }

        #[tokio::test]
        async fn revision_grows_with_every_registry_write() {
            let s = $make;
            let r0 = s.revision().await.unwrap();
            let a = agent("acme", "a1", "Asha", true);
            s.put(&a, &created(&a)).await.unwrap();
            let r1 = s.revision().await.unwrap();
            assert!(r1 > r0, "put: {r0} -> {r1}");
            let b = agent("acme-2", "b1", "Bela", true);
            s.put(&b, &created(&b)).await.unwrap();
            let r2 = s.revision().await.unwrap();
            assert!(r2 > r1, "another tenant's put: {r1} -> {r2}");
            s.all().await.unwrap();
            s.audit("acme", 10).await.unwrap();
            assert_eq!(s.revision().await.unwrap(), r2, "reads count for nothing");
            let gone = AuditEntry::diff(Some(&a), None, "k3", 3_000);
            assert!(!s.remove("acme", "nobody", &gone).await.unwrap());
            assert_eq!(
                s.revision().await.unwrap(),
                r2,
                "a refused remove counts for nothing"
            );
            assert!(s.remove("acme", "a1", &gone).await.unwrap());
            let r3 = s.revision().await.unwrap();
            assert!(r3 > r2, "remove: {r2} -> {r3}");
            // A directory opened on the store is at its revision: nothing to refresh.
            let d = $crate::Directory::open(&s).await.unwrap();
            assert!(d.refresh(&s).await.unwrap().is_empty());
            s.put(&a, &created(&a)).await.unwrap();
            assert_eq!(
                d.refresh(&s).await.unwrap(),
                [$crate::DirectoryChange::Added(a)]
            );
        }

        #[tokio::test]
        async fn presence_secret_is_created_once() {
            let s = $make;
            let first = s.presence_secret().await.unwrap();
            assert_ne!(first, [0u8; 32]);
            assert_eq!(s.presence_secret().await.unwrap(), first);
        }
    };
}
