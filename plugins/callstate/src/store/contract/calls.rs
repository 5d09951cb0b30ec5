//! Contract cases for call records: create, conditional and serialised writes, the one
//! webhook per call, the open-call and tenant-time reads, and the per-day tallies.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{call, event, finished_call, knobs, webhook_of, DAY1, DAY_MS};
use crate::error::StoreError;
use crate::machine::{transition, CallEvent, Effect, Transition, TransitionError};
use crate::record::{CallStatus, Phase, TimerKind};
use crate::store::{CallStore, CallStoreExt, OutboxEntry, MAX_PAGE};

fn is_invalid<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::InvalidInput { .. }))
}

pub async fn create_stores_once_and_validates_ids(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    let rec = call("acme", 1_000);
    s.create(&rec).await?;
    assert_eq!(s.get(&rec.call_id).await?, Some(rec.clone()));
    assert!(matches!(
        s.create(&rec).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(s.get("c2c_ffffffffffffffffffffffffffffffff").await?, None);

    assert!(is_invalid(&s.create(&call("ac\0me", 1_000)).await));
    let mut bad = call("acme", 1_000);
    bad.call_id = String::new();
    assert!(is_invalid(&s.create(&bad).await));
    bad.call_id = "x".repeat(129);
    assert!(is_invalid(&s.create(&bad).await));
    // A created_ms that is no calendar day cannot be filed under a day's tally.
    assert!(is_invalid(&s.create(&call("acme", 1 << 63)).await));
    assert!(is_invalid(&s.get("").await));
    assert!(is_invalid(&s.outbox_seq_for_call("a\0b").await));
    assert!(is_invalid(
        &s.list_by_tenant("", 0, u64::MAX, 10, None).await
    ));
    assert!(is_invalid(
        &s.day_tallies("a\0b", "20240301", "20240301", None).await
    ));
    // Nothing of the refused calls was stored.
    let page = s.list_by_tenant("acme", 0, u64::MAX, 10, None).await?;
    assert_eq!(page.records, vec![rec]);
    Ok(())
}

pub async fn apply_is_conditional_on_the_version(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    let rec = call("acme", 1_000);
    s.create(&rec).await?;
    let t = transition(&rec, &CallEvent::Connect, &knobs(), 2_000)?;
    assert_eq!(s.apply(rec.version, &t.record, None).await?, None);
    let stale = s.apply(rec.version, &t.record, None).await;
    assert!(
        matches!(
            stale,
            Err(StoreError::VersionConflict { expected, found })
                if expected == rec.version && found == t.record.version
        ),
        "{stale:?}"
    );
    assert_eq!(
        s.get(&rec.call_id).await?.map(|r| r.phase),
        Some(Phase::Dialing)
    );
    let missing = call("acme", 1_000);
    assert!(matches!(
        s.apply(1, &missing, None).await,
        Err(StoreError::NotFound)
    ));
    Ok(())
}

pub async fn apply_transition_skips_noops_and_reports_errors(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    let rec = call("acme", 1_000);
    s.create(&rec).await?;
    let a = event(&*s, &rec.call_id, CallEvent::Connect, 2_000).await?;
    assert!(a.written);
    assert!(a.effects.contains(&Effect::Dial));
    assert_eq!(s.get(&rec.call_id).await?, Some(a.record.clone()));
    let again = event(&*s, &rec.call_id, CallEvent::Connect, 3_000).await;
    assert!(matches!(
        again,
        Err(StoreError::Transition(TransitionError::Conflict {
            code: "already_connected",
            ..
        }))
    ));
    let noop = event(&*s, &rec.call_id, CallEvent::AgentJoined, 3_000).await?;
    assert!(!noop.written);
    assert!(noop.effects.is_empty());
    assert_eq!(noop.record, a.record);
    let renamed = s
        .apply_transition(&rec.call_id, |r| {
            let mut record = r.clone();
            record.version += 1;
            record.call_id = "c2c_00000000000000000000000000000000".into();
            Ok(Transition {
                from: r.phase,
                record,
                effects: Vec::new(),
            })
        })
        .await;
    assert!(is_invalid(&renamed), "{renamed:?}");
    let missing = event(
        &*s,
        "c2c_ffffffffffffffffffffffffffffffff",
        CallEvent::Connect,
        1,
    )
    .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
    assert_eq!(s.get(&rec.call_id).await?, Some(a.record));
    Ok(())
}

/// Many writers of one call: each write is made from the record the previous one
/// wrote (no two writes over the same version, no update lost). A backend may run a
/// closure more than once (optimistic writes retry on the newer record), never less.
pub async fn concurrent_transitions_each_write_over_the_latest_record(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    const WRITERS: u64 = 32;
    let rec = call("acme", 1_000);
    s.create(&rec).await?;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (s, id, runs) = (s.clone(), rec.call_id.clone(), runs.clone());
        tasks.push(tokio::spawn(async move {
            s.apply_transition(&id, move |r| {
                runs.fetch_add(1, Ordering::SeqCst);
                let mut record = r.clone();
                record.version += 1;
                // Which writer made this version: each must appear once.
                record.case_id = format!("{}|{w}", r.case_id);
                Ok(Transition {
                    from: r.phase,
                    record,
                    effects: Vec::new(),
                })
            })
            .await
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let applied = t.await.map_err(|e| StoreError::Backend(Box::new(e)))??;
        assert!(applied.written);
        versions.push(applied.record.version);
    }
    assert!(runs.load(Ordering::SeqCst) >= WRITERS as usize);
    versions.sort_unstable();
    let want: Vec<u64> = (rec.version + 1..=rec.version + WRITERS).collect();
    assert_eq!(versions, want, "each writer wrote one version of its own");
    let last = s.get(&rec.call_id).await?.ok_or(StoreError::NotFound)?;
    assert_eq!(last.version, rec.version + WRITERS);
    // Every writer's mark is in the final record, once: no write was lost or repeated.
    let mut marks: Vec<u64> = last
        .case_id
        .split('|')
        .skip(1)
        .map(|m| m.parse().unwrap_or(u64::MAX))
        .collect();
    marks.sort_unstable();
    assert_eq!(marks, (0..WRITERS).collect::<Vec<_>>());
    Ok(())
}

pub async fn racing_enders_enqueue_one_webhook(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    let rec = call("acme", 1_000);
    s.create(&rec).await?;
    event(&*s, &rec.call_id, CallEvent::Connect, 2_000).await?;
    event(&*s, &rec.call_id, CallEvent::Answered, 3_000).await?;
    let enders = [
        CallEvent::AgentHangup,
        CallEvent::RoomFinished,
        CallEvent::CustomerLeft {
            sip_code: None,
            disconnect_reason: Some("CLIENT_INITIATED".into()),
        },
        CallEvent::Timer(TimerKind::MaxDuration),
    ];
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let (s, id) = (s.clone(), rec.call_id.clone());
        let ev = enders[i as usize % enders.len()].clone();
        tasks.push(tokio::spawn(async move {
            event(&*s, &id, ev, 10_000 + i).await
        }));
    }
    let (mut enqueued, mut ended_writes) = (0, 0);
    for t in tasks {
        let a = t.await.map_err(|e| StoreError::Backend(Box::new(e)))??;
        enqueued += usize::from(a.enqueued.is_some());
        ended_writes += usize::from(a.effects.contains(&Effect::EnqueueWebhook));
    }
    assert_eq!((enqueued, ended_writes), (1, 1));
    let (entries, matched) = s.outbox_by_tenant_since_capped("acme", 0, 10).await?;
    assert_eq!((entries.len(), matched), (1, 1));
    assert_eq!(entries[0].call_id, rec.call_id);
    assert!(entries[0].is_pending());
    assert!(s.open_calls().await?.is_empty());
    Ok(())
}

pub async fn one_webhook_per_call_even_through_apply(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    let ended = finished_call(&*s, "acme", 1_000).await?;
    let first = webhook_of(&*s, &ended.call_id).await?;
    // A later change (a late SIP code) carrying another entry must not enqueue it.
    let t = transition(&ended, &CallEvent::SipCode { code: 487 }, &knobs(), 99_000)?;
    let extra = OutboxEntry::for_call(&t.record, s.next_outbox_seq().await?)?;
    assert_eq!(s.apply(ended.version, &t.record, Some(extra)).await?, None);
    assert_eq!(s.outbox_seq_for_call(&ended.call_id).await?, Some(first));
    assert_eq!(s.outbox_by_tenant_since_capped("acme", 0, 10).await?.1, 1);
    let stored = s.get(&ended.call_id).await?;
    assert_eq!(stored.and_then(|r| r.sip_disconnect_code), Some(487));
    // Another call's entry is refused, and nothing of that write happens.
    let other = finished_call(&*s, "acme", 2_000).await?;
    let t = transition(&ended, &CallEvent::SipCode { code: 486 }, &knobs(), 99_500)?;
    let wrong = OutboxEntry::for_call(&other, s.next_outbox_seq().await?)?;
    assert!(is_invalid(
        &s.apply(ended.version + 1, &t.record, Some(wrong)).await
    ));
    let stored = s.get(&ended.call_id).await?;
    assert_eq!(stored.map(|r| r.version), Some(ended.version + 1));
    Ok(())
}

pub async fn open_calls_shrink_on_end_and_walk_in_chunks(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    let mut open = Vec::new();
    for i in 0..7u64 {
        let rec = call("acme", 1_000 + i);
        s.create(&rec).await?;
        open.push(rec.call_id);
    }
    let ended = finished_call(&*s, "acme", 2_000).await?;
    event(&*s, &open[3], CallEvent::AgentHangup, 3_000).await?;
    open.remove(3);
    open.sort();
    let all: Vec<String> = s
        .open_calls()
        .await?
        .into_iter()
        .map(|r| r.call_id)
        .collect();
    assert_eq!(all, open, "every open call, in id order");
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let chunk = s.open_calls_after(after.as_deref(), 2).await?;
        assert!(chunk.len() <= 2);
        match chunk.last() {
            Some(last) => after = Some(last.call_id.clone()),
            None => break,
        }
        walked.extend(chunk.into_iter().map(|r| r.call_id));
    }
    assert_eq!(walked, open);
    assert!(!walked.contains(&ended.call_id));
    Ok(())
}

pub async fn list_by_tenant_pages_in_time_order(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    let mut acme = Vec::new();
    for i in 0..25u64 {
        let rec = call("acme", 10_000 + i * 1_000);
        s.create(&rec).await?;
        acme.push(rec.call_id);
    }
    // Same timestamp twice, and tenants whose names extend or shorten another's.
    let twin = call("acme", 10_000);
    s.create(&twin).await?;
    s.create(&call("acm", 12_000)).await?;
    s.create(&call("acmex", 12_000)).await?;

    let (mut got, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let page = s
            .list_by_tenant("acme", 0, u64::MAX, 10, cursor.as_deref())
            .await?;
        pages += 1;
        got.extend(
            page.records
                .iter()
                .map(|r| (r.created_ms, r.call_id.clone())),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!((pages, got.len()), (3, 26));
    assert!(got.windows(2).all(|w| w[0] < w[1]), "not in time order");
    assert!(got.iter().any(|(_, id)| id == &twin.call_id));
    assert!(acme.iter().all(|id| got.iter().any(|(_, g)| g == id)));

    // Half-open window [12 000, 15 000); exactly `limit` left: no dangling cursor.
    let window = s.list_by_tenant("acme", 12_000, 15_000, 100, None).await?;
    let times: Vec<_> = window.records.iter().map(|r| r.created_ms).collect();
    assert_eq!(times, vec![12_000, 13_000, 14_000]);
    assert_eq!(window.next_cursor, None);
    let exact = s.list_by_tenant("acme", 12_000, 15_000, 3, None).await?;
    assert_eq!((exact.records.len(), exact.next_cursor), (3, None));
    assert_eq!(
        s.list_by_tenant("acm", 0, u64::MAX, 100, None)
            .await?
            .records
            .len(),
        1
    );
    assert!(is_invalid(
        &s.list_by_tenant("acme", 0, u64::MAX, 10, Some("garbage"))
            .await
    ));
    assert!(s
        .list_by_tenant("acme", 0, u64::MAX, 0, None)
        .await?
        .records
        .is_empty());
    Ok(())
}

pub async fn list_by_tenant_caps_a_page_at_max_page(
    s: Arc<dyn CallStore>,
) -> Result<(), StoreError> {
    // Created by concurrent writers, which a backend must accept anyway (and which keeps
    // a disk backend's group commit from making this case slow).
    let mut tasks = Vec::new();
    for i in 0..(MAX_PAGE as u64 + 1) {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create(&call("acme", 1_000 + i)).await
        }));
    }
    for t in tasks {
        t.await.map_err(|e| StoreError::Backend(Box::new(e)))??;
    }
    let page = s
        .list_by_tenant("acme", 0, u64::MAX, usize::MAX, None)
        .await?;
    assert_eq!(page.records.len(), MAX_PAGE);
    let rest = s
        .list_by_tenant("acme", 0, u64::MAX, usize::MAX, page.next_cursor.as_deref())
        .await?;
    assert_eq!((rest.records.len(), rest.next_cursor), (1, None));
    assert_eq!(rest.records[0].created_ms, 1_000 + MAX_PAGE as u64);
    Ok(())
}

pub async fn day_tallies_follow_outcomes(s: Arc<dyn CallStore>) -> Result<(), StoreError> {
    finished_call(&*s, "acme", DAY1 + 10).await?; // airtel, ANSWERED
    let mut busy = call("acme", DAY1 + 20);
    busy.trunk_label = "jio".into();
    s.create(&busy).await?;
    event(&*s, &busy.call_id, CallEvent::Connect, DAY1 + 1_000).await?;
    let left = CallEvent::CustomerLeft {
        sip_code: Some(486),
        disconnect_reason: Some("USER_REJECTED".into()),
    };
    let busy = event(&*s, &busy.call_id, left, DAY1 + 5_000).await?.record;
    assert_eq!(busy.call_status, Some(CallStatus::NotAnswered));
    let open = call("acme", DAY1 + DAY_MS + 40); // day 2, still open
    s.create(&open).await?;
    s.create(&call("globex", DAY1 + 50)).await?;

    let all = s.day_tallies("acme", "20240301", "20240302", None).await?;
    assert_eq!(all.len(), 2);
    let d1 = &all["20240301"];
    assert_eq!((d1.total, d1.answered, d1.not_answered), (2, 1, 1));
    assert_eq!(d1.failures_by_sip_code, [(486, 1)].into_iter().collect());
    assert_eq!(all["20240302"].in_progress, 1);
    let jio = s
        .day_tallies("acme", "20240301", "20240302", Some("jio"))
        .await?;
    assert_eq!(jio.len(), 1);
    assert_eq!(jio["20240301"].total, 1);
    assert!(s
        .day_tallies("acme", "20240301", "20240302", Some("ji"))
        .await?
        .is_empty());
    assert_eq!(
        s.day_tallies("acme", "20240301", "20240301", None)
            .await?
            .len(),
        1
    );
    assert_eq!(
        s.day_tallies("globex", "20240301", "20240302", None)
            .await?["20240301"]
            .total,
        1
    );

    // An outcome change moves the call within its day's tally.
    event(
        &*s,
        &open.call_id,
        CallEvent::AgentHangup,
        DAY1 + DAY_MS + 100,
    )
    .await?;
    let d2 = &s.day_tallies("acme", "20240302", "20240302", None).await?["20240302"];
    assert_eq!((d2.total, d2.in_progress, d2.failed), (1, 0, 1));
    assert_eq!(d2.talk_ms, 0, "never answered");

    // Talk time and a managed call's charge add up per day and trunk: the first call
    // talked 60 s; a billed one talks 60 s at 100 paise a minute.
    let d1 = &s
        .day_tallies("acme", "20240301", "20240301", Some("airtel"))
        .await?["20240301"];
    assert_eq!((d1.talk_ms, d1.charge_paise), (60_000, 0));
    let mut billed = call("acme", DAY1 + 60);
    billed.billing = Some(crate::CallBilling {
        rate: c2c_billing::Rate {
            paise_per_pulse: 100,
            pulse_seconds: 60,
        },
        hold_paise: 100,
        billed_ms: None,
        charge_paise: None,
    });
    s.create(&billed).await?;
    event(&*s, &billed.call_id, CallEvent::Connect, DAY1 + 1_000).await?;
    event(&*s, &billed.call_id, CallEvent::Answered, DAY1 + 2_000).await?;
    event(&*s, &billed.call_id, CallEvent::AgentHangup, DAY1 + 62_000).await?;
    let d1 = &s
        .day_tallies("acme", "20240301", "20240301", Some("airtel"))
        .await?["20240301"];
    assert_eq!(
        (d1.answered, d1.talk_ms, d1.charge_paise),
        (2, 120_000, 100)
    );

    // An anchored call's media report, arriving after its end, counts in its tally;
    // a redelivery counts nothing more.
    let media = crate::CallMedia {
        early_media: true,
        media_timeout: true,
        one_way_silent: Some("carrier".into()),
        from_carrier: crate::MediaStream {
            packets: 900,
            jitter_us: 7_400,
            ..Default::default()
        },
        ..Default::default()
    };
    for _ in 0..2 {
        event(
            &*s,
            &billed.call_id,
            CallEvent::Media(Box::new(media.clone())),
            DAY1 + 63_000,
        )
        .await?;
    }
    let d1 = &s
        .day_tallies("acme", "20240301", "20240301", Some("airtel"))
        .await?["20240301"];
    assert_eq!(
        (
            d1.media_calls,
            d1.early_media,
            d1.one_way_audio,
            d1.media_timeouts
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        d1.jitter_ms_buckets.get(&10),
        Some(&1),
        "7.4 ms is under 10"
    );
    assert_eq!(d1.median_jitter_bucket_ms(), Some(10));
    assert_eq!(d1.answered, 2, "the report changes no outcome");
    assert!(s.tallies_current()?);
    assert!(
        !s.ensure_aggregates(&mut |_| {})?,
        "current tallies need no rebuild"
    );
    Ok(())
}
