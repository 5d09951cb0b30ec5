//! The behaviour every [`DltStore`] backend must have, as async functions a backend's
//! tests call (this crate runs them on sled and memory; a backend in another crate runs
//! them through the `contract` feature). A function returns `Err` when the store fails
//! where it must succeed, and panics (an assertion) when the store answers but breaks a
//! promise.

use std::sync::Arc;

use c2c_tenancy::{DltPolicy, Tenant};

use crate::{AuditEntry, DltError, DltRegistry, DltStore, OutboundOverride, Toggle};

/// A tenant whose policy says `initial` for the outbound flag.
pub fn tenant(id: &str, initial: bool) -> Tenant {
    Tenant {
        id: id.into(),
        name: id.into(),
        region: "singapore".into(),
        allowed_origins: vec![],
        livekit: None,
        crm_webhook: None,
        dlt: DltPolicy::commercial("1101", initial, Vec::new()),
        limits: c2c_tenancy::TenantLimits {
            requests_per_second: 50,
            max_concurrent_calls: 100,
        },
        agents: Default::default(),
        trunks: vec![],
        inbound: Default::default(),
    }
}

/// An owner's toggle to `enabled`.
pub fn toggle(enabled: bool) -> Toggle<'static> {
    Toggle {
        enabled,
        verified_by: "ops@platform",
        note: "PE binding checked",
        key_id: "owner-1",
    }
}

/// The override and audit line of a record at `ms`.
fn at(ms: u64, enabled: bool) -> (OutboundOverride, AuditEntry) {
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

/// The [`DltStore`] promises on one fresh, empty store: records, overrides, audit
/// ranges, and a revision that grows with every record and with nothing else.
pub async fn store_contract(s: Arc<dyn DltStore>) -> Result<(), DltError> {
    let r0 = s.revision().await?;
    assert!(s.overrides().await?.is_empty());
    assert_eq!(s.current("acme").await?, None);
    assert!(s.audit("acme", 10).await?.is_empty());
    assert_eq!(s.revision().await?, r0, "reads change no revision");
    let mut trail = Vec::new();
    let mut last = r0;
    for (ms, enabled) in [(1, true), (2, false), (3, true)] {
        let (o, a) = at(ms, enabled);
        s.record("acme", &o, &a).await?;
        trail.push(a);
        let r = s.revision().await?;
        assert!(r > last, "a record grows the revision ({last} -> {r})");
        last = r;
    }
    let (o2, a2) = at(4, false);
    s.record("acme-2", &o2, &a2).await?;
    assert!(s.revision().await? > last, "any tenant's record counts");
    last = s.revision().await?;
    // The last record is the override; the trail is every record, oldest first.
    assert_eq!(s.current("acme").await?, Some(at(3, true).0));
    assert_eq!(s.audit("acme", 10).await?, trail);
    assert_eq!(s.audit("acme", 2).await?, trail[1..].to_vec());
    // "acme" and "acme-2" share no range.
    assert_eq!(s.audit("acme-2", 10).await?, vec![a2]);
    let mut all = s.overrides().await?;
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        all,
        vec![
            ("acme".to_owned(), at(3, true).0),
            ("acme-2".to_owned(), o2)
        ]
    );
    assert_eq!(s.revision().await?, last, "reads change no revision");
    // A registry over the store starts from what it holds, and has nothing to refresh.
    let reg = DltRegistry::with_store(s).await?;
    assert!(reg.outbound_enabled(&tenant("acme", false)));
    assert!(!reg.outbound_enabled(&tenant("acme-2", true)));
    assert!(!reg.outbound_enabled(&tenant("globex", false)));
    assert!(!reg.refresh().await?);
    Ok(())
}

/// Two handles on one store's data (two gateways on one database; the same store twice
/// for a single-process backend), fresh and empty: each registry follows the other's
/// toggles through the revision and [`DltRegistry::refresh`].
pub async fn registries_share_the_store(
    a: Arc<dyn DltStore>,
    b: Arc<dyn DltStore>,
) -> Result<(), DltError> {
    let ra = DltRegistry::with_store(a).await?;
    let rb = DltRegistry::with_store(b.clone()).await?;
    let t = tenant("acme", false);
    assert!(!rb.refresh().await?, "nothing moved yet");
    let before = b.revision().await?;
    let e = ra.set(&t, toggle(true)).await?;
    assert!(!e.old && e.new);
    // Node B's store shows node A's record at once...
    assert!(
        b.revision().await? > before,
        "B's revision counts A's record"
    );
    assert_eq!(b.current("acme").await?.map(|o| o.enabled), Some(true));
    assert!(b
        .overrides()
        .await?
        .iter()
        .any(|(id, o)| id == "acme" && o.enabled));
    // ...and node B's gate once it refreshes.
    assert!(
        !rb.outbound_enabled(&t),
        "B's copy is stale until it refreshes"
    );
    assert!(rb.refresh().await?, "A's toggle changes B's flag");
    assert!(rb.outbound_enabled(&t));
    assert!(!rb.refresh().await?, "nothing moved since");
    // B toggles back: its audit line's `old` is A's value, not B's stale copy.
    let e = rb.set(&t, toggle(false)).await?;
    assert!(e.old && !e.new, "old is the flag in force: {e:?}");
    assert!(
        !rb.refresh().await?,
        "B's own toggle changes nothing on refresh"
    );
    assert!(ra.outbound_enabled(&t));
    assert!(ra.refresh().await?);
    assert!(!ra.outbound_enabled(&t));
    let flips: Vec<(bool, bool)> = rb
        .audit("acme")
        .await?
        .iter()
        .map(|a| (a.old, a.new))
        .collect();
    assert_eq!(flips, [(false, true), (true, false)]);
    Ok(())
}
