//! The tenants' concurrent-call cap (`limits.max_concurrent_calls`).
//!
//! One gateway alone counts its open calls exactly in memory: a slot is taken before a
//! call is created and given back when it ends. In a fleet the calls of a tenant are on
//! every node and end on whichever node sees the end, so the count is the store's:
//! [`Slots::fleet_counts`] installs the fleet's open calls per tenant (one grouped query
//! every [`crate::fleet`] tick, 250 ms), and between two refreshes this node adds what it
//! reserved, created and ended itself. Two nodes admitting the last slot within the same
//! tick can exceed the cap by the calls created in that window (docs/fleet.md).

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

#[derive(Default)]
struct TenantCount {
    /// Single process: open calls. Fleet: open calls at the last refresh.
    open: u32,
    /// Fleet only: reserved for a create not yet answered.
    reserved: u32,
    /// Fleet only: created / ended here since the last refresh's snapshot.
    created: u32,
    ended: u32,
}

impl TenantCount {
    fn in_use(&self) -> u32 {
        (self.open + self.reserved + self.created).saturating_sub(self.ended)
    }
}

/// Open calls per tenant against their caps; one per process.
#[derive(Default)]
pub struct Slots {
    inner: Mutex<SlotsInner>,
}

#[derive(Default)]
struct SlotsInner {
    fleet: bool,
    tenants: HashMap<String, TenantCount>,
}

/// What a refresh subtracts: this node's own counts as they were when the fleet query
/// started (those calls are in its answer).
pub struct Snapshot(HashMap<String, (u32, u32)>);

impl Slots {
    /// Takes one of the tenant's slots; false when the cap is reached.
    pub fn reserve(&self, tenant: &str, cap: u32) -> bool {
        let mut s = self.inner.lock();
        let fleet = s.fleet;
        let t = s.tenants.entry(tenant.to_owned()).or_default();
        if t.in_use() >= cap {
            return false;
        }
        if fleet {
            t.reserved += 1;
        } else {
            t.open += 1;
        }
        true
    }

    /// A reserved slot whose call could not be created.
    pub fn unused(&self, tenant: &str) {
        let mut s = self.inner.lock();
        let fleet = s.fleet;
        if let Some(t) = s.tenants.get_mut(tenant) {
            if fleet {
                t.reserved = t.reserved.saturating_sub(1);
            } else {
                t.open = t.open.saturating_sub(1);
            }
        }
    }

    /// A reserved slot's call is stored.
    pub fn created(&self, tenant: &str) {
        let mut s = self.inner.lock();
        if !s.fleet {
            return;
        }
        if let Some(t) = s.tenants.get_mut(tenant) {
            t.reserved = t.reserved.saturating_sub(1);
            t.created += 1;
        }
    }

    /// A call of the tenant ended here.
    pub fn ended(&self, tenant: &str) {
        let mut s = self.inner.lock();
        let fleet = s.fleet;
        let Some(t) = s.tenants.get_mut(tenant) else {
            return;
        };
        if fleet {
            t.ended += 1;
        } else {
            t.open = t.open.saturating_sub(1);
        }
    }

    /// At start (single process): the open calls of the store.
    pub fn reset(&self, open_by_tenant: HashMap<String, u32>) {
        let mut s = self.inner.lock();
        if s.fleet {
            return;
        }
        s.tenants = open_by_tenant
            .into_iter()
            .map(|(t, open)| {
                let c = TenantCount {
                    open,
                    ..TenantCount::default()
                };
                (t, c)
            })
            .collect();
    }

    /// Before a fleet query: what this node has counted itself so far.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.inner.lock();
        Snapshot(
            s.tenants
                .iter()
                .map(|(k, t)| (k.clone(), (t.created, t.ended)))
                .collect(),
        )
    }

    /// The fleet's open calls per tenant, read after `before` was taken: from now on
    /// this node counts against the store's figures.
    pub fn fleet_counts(&self, counts: BTreeMap<String, u32>, before: Snapshot) {
        let mut s = self.inner.lock();
        s.fleet = true;
        for t in s.tenants.values_mut() {
            t.open = 0;
        }
        for (tenant, open) in counts {
            s.tenants.entry(tenant).or_default().open = open;
        }
        for (tenant, (created, ended)) in before.0 {
            if let Some(t) = s.tenants.get_mut(&tenant) {
                t.created = t.created.saturating_sub(created);
                t.ended = t.ended.saturating_sub(ended);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_process_cap_release_and_reset() {
        let s = Slots::default();
        assert!(s.reserve("acme", 2));
        assert!(s.reserve("acme", 2));
        assert!(!s.reserve("acme", 2), "the cap holds");
        assert!(s.reserve("globex", 1), "per tenant");
        s.ended("acme");
        assert!(s.reserve("acme", 2));
        s.unused("acme");
        assert!(s.reserve("acme", 2));
        s.ended("nobody");
        s.reset([("acme".to_owned(), 0)].into_iter().collect());
        assert!(s.reserve("acme", 1));
    }

    #[test]
    fn fleet_counts_other_nodes_and_own_changes_between_refreshes() {
        let s = Slots::default();
        let before = s.snapshot();
        // Another node has 2 open calls of acme.
        s.fleet_counts([("acme".to_owned(), 2)].into_iter().collect(), before);
        assert!(s.reserve("acme", 3), "2 open + 1 reserved = 3");
        assert!(!s.reserve("acme", 3), "reserved counts");
        s.created("acme");
        assert!(
            !s.reserve("acme", 3),
            "created here counts until the next refresh"
        );
        // A call ends here (maybe one of the other node's): one slot frees.
        s.ended("acme");
        assert!(s.reserve("acme", 3));
        s.unused("acme");
        // The refresh sees 3 open (our created one included, the ended one gone: 2+1-1=2
        // would be the truth; the store says 2).
        let before = s.snapshot();
        s.fleet_counts([("acme".to_owned(), 2)].into_iter().collect(), before);
        assert!(s.reserve("acme", 3), "own counts consumed by the refresh");
        assert!(!s.reserve("acme", 3));
        // A refresh that no longer lists the tenant: nothing open anywhere.
        let before = s.snapshot();
        s.fleet_counts(BTreeMap::new(), before);
        assert!(s.reserve("acme", 2), "only the reservation is left");
    }

    #[test]
    fn own_changes_after_the_snapshot_survive_the_refresh() {
        let s = Slots::default();
        s.fleet_counts(BTreeMap::new(), s.snapshot());
        let before = s.snapshot();
        assert!(s.reserve("acme", 2));
        s.created("acme"); // committed after the query started: not in its answer
        s.fleet_counts(BTreeMap::new(), before);
        assert!(s.reserve("acme", 2));
        assert!(
            !s.reserve("acme", 2),
            "the call created meanwhile still counts"
        );
    }
}
