//! The behaviour every [`WalletStore`] backend must have, as async functions a backend's
//! tests call (this crate runs them on sled and memory; `c2c-store-pg` runs them on
//! PostgreSQL through the `contract` feature). A function returns `Err` when the store
//! fails where it must succeed, and panics (an assertion) when the store answers but
//! breaks a promise.

use std::sync::Arc;

use crate::{call_charge, check_ledger, Balance, EntryKind, NewEntry, WalletError, WalletStore};

/// An owner's entry of `kind` for `amount` paise, floored at zero.
pub fn owner_entry(kind: EntryKind, amount: i64) -> NewEntry {
    NewEntry {
        kind,
        amount_paise: amount,
        actor: "owner:owner-1".into(),
        reason: "contract".into(),
        call_id: None,
        request_id: None,
        floor_paise: Some(0),
        at_ms: 1_700_000_000_000,
    }
}

/// Appends top-ups of 1, 2, ..., `n` paise to `tenant` (a balance of n(n+1)/2).
pub async fn fill(s: &dyn WalletStore, tenant: &str, n: i64) -> Result<(), WalletError> {
    for a in 1..=n {
        s.append(tenant, &owner_entry(EntryKind::TopUp, a)).await?;
    }
    Ok(())
}

/// The [`WalletStore`] promises on one fresh, empty store.
pub async fn wallet_store_contract(s: Arc<dyn WalletStore>) -> Result<(), WalletError> {
    empty_and_first_entries(&*s).await?;
    refusals_write_nothing(&*s).await?;
    request_ids(&*s).await?;
    tenants_and_pages(&*s).await?;
    concurrent_appends(s.clone()).await?;
    holds_and_settles(&*s).await?;
    concurrent_holds(s).await?;
    Ok(())
}

/// Holds take from what is available, once per call; a settle releases the hold and
/// posts the charge once, however often it runs.
pub async fn holds_and_settles(s: &dyn WalletStore) -> Result<(), WalletError> {
    s.append("holder", &owner_entry(EntryKind::TopUp, 1_000))
        .await?;
    let first = s.place_hold("holder", "c_1", 600, 7).await?;
    assert!(!first.existing);
    assert_eq!(first.available_after_paise, 400);
    match s.place_hold("holder", "c_2", 600, 8).await {
        Err(WalletError::InsufficientBalance {
            available_paise: 400,
            required_paise: 600,
        }) => {}
        other => panic!("a hold beyond what is available: {other:?}"),
    }
    let again = s.place_hold("holder", "c_1", 600, 9).await?;
    assert!(again.existing, "a retried /connect takes nothing twice");
    assert_eq!((again.hold.at_ms, again.available_after_paise), (7, 400));
    assert_eq!(s.available("holder").await?, 400);
    assert_eq!(s.holds("holder").await?.len(), 1);
    // Another call's charge is refused, and the hold stays.
    let foreign = call_charge("c_9", 10, "talk".into(), 10);
    assert!(matches!(
        s.settle("holder", "c_1", Some(&foreign)).await,
        Err(WalletError::Invalid(_))
    ));
    assert_eq!(s.available("holder").await?, 400);

    let charge = call_charge("c_1", 250, "3 pulses".into(), 10);
    let settled = s.settle("holder", "c_1", Some(&charge)).await?;
    assert_eq!(settled.released.map(|h| h.amount_paise), Some(600));
    let Some(posted) = settled.charge else {
        panic!("a settle with a charge posts it");
    };
    assert!(!posted.replayed);
    assert_eq!(posted.entry.balance_after_paise, 750);
    assert_eq!(s.available("holder").await?, 750);
    assert!(s.holds("holder").await?.is_empty());
    // The recovery sweep settles the same call again: nothing moves.
    let twice = s.settle("holder", "c_1", Some(&charge)).await?;
    assert!(twice.released.is_none());
    assert!(twice.charge.is_some_and(|c| c.replayed), "replayed");
    assert_eq!(s.balance("holder").await?.balance_paise, 750);
    // An unanswered call releases its hold and costs nothing.
    s.place_hold("holder", "c_3", 700, 11).await?;
    let free = s.settle("holder", "c_3", None).await?;
    assert_eq!(free.released.map(|h| h.amount_paise), Some(700));
    assert!(free.charge.is_none());
    assert_eq!(s.balance("holder").await?.entries, 2);
    // A charge may take the balance below zero (the talk happened).
    s.place_hold("holder", "c_4", 750, 12).await?;
    let over = s
        .settle(
            "holder",
            "c_4",
            Some(&call_charge("c_4", 900, "over".into(), 13)),
        )
        .await?;
    assert_eq!(over.charge.map(|c| c.entry.balance_after_paise), Some(-150));
    assert!(matches!(
        s.place_hold("holder", "c_5", 1, 14).await,
        Err(WalletError::InsufficientBalance { .. })
    ));
    assert_eq!(
        check_ledger(s, "holder").await?.map(|b| b.balance_paise),
        Ok(-150)
    );
    // Holds are listed per tenant and for the sweep across tenants.
    s.append("holder-2", &owner_entry(EntryKind::TopUp, 100))
        .await?;
    s.place_hold("holder-2", "c_6", 100, 15).await?;
    let all = s.all_holds().await?;
    let mine: Vec<(&str, &str)> = all
        .iter()
        .filter(|(t, _)| t.starts_with("holder"))
        .map(|(t, h)| (t.as_str(), h.call_id.as_str()))
        .collect();
    assert_eq!(mine, vec![("holder-2", "c_6")]);
    Ok(())
}

/// Twenty calls of one tenant ask for a hold at once: exactly what the balance covers
/// is held.
pub async fn concurrent_holds(s: Arc<dyn WalletStore>) -> Result<(), WalletError> {
    s.append("rush", &owner_entry(EntryKind::TopUp, 1_000))
        .await?;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            match s.place_hold("rush", &format!("c_{i}"), 100, 1).await {
                Ok(_) => Ok(true),
                Err(WalletError::InsufficientBalance { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        }));
    }
    let mut held = 0;
    for t in tasks {
        if t.await.map_err(|e| WalletError::Invalid(e.to_string()))?? {
            held += 1;
        }
    }
    assert_eq!(held, 10, "holds beyond the balance");
    assert_eq!(s.available("rush").await?, 0);
    Ok(())
}

async fn empty_and_first_entries(s: &dyn WalletStore) -> Result<(), WalletError> {
    assert_eq!(s.balance("acme").await?, Balance::default());
    assert!(s.statement("acme", 0, 10).await?.is_empty());
    let a = s
        .append("acme", &owner_entry(EntryKind::TopUp, 10_000))
        .await?;
    assert!(!a.replayed);
    assert_eq!((a.entry.seq, a.entry.id.as_str()), (1, "acme/1"));
    assert_eq!(a.entry.balance_after_paise, 10_000);
    let mut charge = owner_entry(EntryKind::CallCharge, -2_500);
    charge.call_id = Some("c_abc".into());
    charge.floor_paise = None;
    charge.actor = "call".into();
    let b = s.append("acme", &charge).await?;
    assert_eq!((b.entry.seq, b.entry.balance_after_paise), (2, 7_500));
    assert_eq!(b.entry.call_id.as_deref(), Some("c_abc"));
    assert_eq!(
        s.balance("acme").await?,
        Balance {
            balance_paise: 7_500,
            entries: 2
        }
    );
    let st = s.statement("acme", 0, 10).await?;
    assert_eq!(
        st,
        vec![a.entry, b.entry],
        "the statement is the entries as appended"
    );
    Ok(())
}

async fn refusals_write_nothing(s: &dyn WalletStore) -> Result<(), WalletError> {
    let before = s.balance("acme").await?;
    let r = s
        .append("acme", &owner_entry(EntryKind::Adjustment, -7_501))
        .await;
    assert!(
        matches!(
            r,
            Err(WalletError::BelowFloor {
                balance_paise: 7_500,
                floor_paise: 0,
                ..
            })
        ),
        "{r:?}"
    );
    let r = s.append("acme", &owner_entry(EntryKind::TopUp, -1)).await;
    assert!(matches!(r, Err(WalletError::Invalid(_))), "{r:?}");
    let r = s.append("", &owner_entry(EntryKind::TopUp, 1)).await;
    assert!(matches!(r, Err(WalletError::Invalid(_))), "{r:?}");
    assert_eq!(
        s.balance("acme").await?,
        before,
        "a refused append changes nothing"
    );
    // Down to exactly the floor is allowed.
    let a = s
        .append("acme", &owner_entry(EntryKind::Adjustment, -7_500))
        .await?;
    assert_eq!(a.entry.balance_after_paise, 0);
    Ok(())
}

async fn request_ids(s: &dyn WalletStore) -> Result<(), WalletError> {
    let mut e = owner_entry(EntryKind::TopUp, 500);
    e.request_id = Some("topup-2026-12-04-1".into());
    let first = s.append("acme", &e).await?;
    let again = s.append("acme", &e).await?;
    assert!(again.replayed && !first.replayed);
    assert_eq!(again.entry, first.entry, "a replay answers the first entry");
    let bal = s.balance("acme").await?;
    assert_eq!(bal.balance_paise, 500, "a replay writes nothing");
    let mut other = e.clone();
    other.amount_paise = 501;
    let r = s.append("acme", &other).await;
    assert!(
        matches!(r, Err(WalletError::RequestIdReused { .. })),
        "{r:?}"
    );
    assert_eq!(s.balance("acme").await?, bal);
    // Request ids are per tenant.
    let g = s.append("globex", &e).await?;
    assert!(!g.replayed);
    assert_eq!(g.entry.id, "globex/1");
    Ok(())
}

async fn tenants_and_pages(s: &dyn WalletStore) -> Result<(), WalletError> {
    // "acme-2" shares a prefix with "acme": their ranges must not mix.
    fill(s, "acme-2", 30).await?;
    let acme = s.balance("acme").await?;
    let page1 = s.statement("acme-2", 0, 12).await?;
    let page2 = s.statement("acme-2", 12, 12).await?;
    let page3 = s.statement("acme-2", 24, 12).await?;
    assert_eq!(page1.len(), 12);
    assert_eq!(page2.first().map(|e| e.seq), Some(13));
    assert_eq!(page3.len(), 6);
    assert!(s.statement("acme-2", 30, 12).await?.is_empty());
    assert!(s.statement("acme-2", u64::MAX, 12).await?.is_empty());
    let all: Vec<_> = page1.iter().chain(&page2).chain(&page3).collect();
    assert!(all.iter().all(|e| e.id.starts_with("acme-2/")));
    assert_eq!(all.last().map(|e| e.balance_after_paise), Some(465));
    let acme_st = s.statement("acme", 0, 1_000).await?;
    assert_eq!(
        acme_st.len() as u64,
        acme.entries,
        "acme's statement holds only acme's"
    );
    let balances = s.balances().await?;
    let names: Vec<&str> = balances.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["acme", "acme-2", "globex"]);
    for (t, b) in &balances {
        let checked = check_ledger(s, t).await?;
        assert_eq!(checked.as_ref().ok(), Some(b), "{t}: {checked:?}");
    }
    Ok(())
}

async fn concurrent_appends(s: Arc<dyn WalletStore>) -> Result<(), WalletError> {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let mut e = owner_entry(EntryKind::TopUp, 1);
                e.request_id = Some(format!("w{w}-{i}"));
                s.append("busy", &e).await?;
                // Every other append is sent twice, as a client retrying a timeout.
                if i % 2 == 0 {
                    assert!(s.append("busy", &e).await?.replayed);
                }
            }
            Ok::<(), WalletError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| WalletError::Invalid(e.to_string()))??;
    }
    let b = s.balance("busy").await?;
    assert_eq!(
        (b.balance_paise, b.entries),
        (80, 80),
        "no append lost or doubled"
    );
    assert_eq!(check_ledger(&*s, "busy").await?, Ok(b));
    Ok(())
}
