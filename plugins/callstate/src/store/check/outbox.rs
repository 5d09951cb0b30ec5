//! The outbox half of the integrity scan: `w/` entries, the pending index `wp/` and the
//! one-webhook-per-call index `wi/`.

use super::super::keys;
use super::super::sled_calls::{decode, SledCallStore};
use super::super::OutboxEntry;
use super::{ProblemKind, Scan};
use crate::error::StoreError;

impl SledCallStore {
    pub(super) fn check_outbox(&self, r: &mut Scan<'_>) -> Result<(), StoreError> {
        for item in self.tree().scan_prefix(keys::OUTBOX) {
            let (k, v) = item?;
            r.outbox += 1;
            r.tick();
            let e: OutboxEntry = match decode(&k, &v) {
                Ok(e) => e,
                Err(err) => {
                    r.add(ProblemKind::Undecodable, &k, err.to_string());
                    continue;
                }
            };
            if keys::tail_u64(&k) != Some(e.seq) || k.len() != keys::outbox(e.seq).len() {
                r.add(
                    ProblemKind::Mismatch,
                    &k,
                    format!("entry holds seq {}", e.seq),
                );
                continue;
            }
            match self.record_at(&e.call_id)? {
                // A tenant event's entry has no call behind it.
                None if e.is_event() => {}
                None => r.add(
                    ProblemKind::Dangling,
                    &k,
                    format!("outbox entry for call {} without record", e.call_id),
                ),
                Some(rec) if rec.tenant != e.tenant => r.add(
                    ProblemKind::Mismatch,
                    &k,
                    format!(
                        "entry says tenant {:?}, record says {:?}",
                        e.tenant, rec.tenant
                    ),
                ),
                Some(_) => {}
            }
            let wi = keys::webhook_index(&e.call_id);
            match self.tree().get(&wi)?.and_then(|v| keys::tail_u64(&v)) {
                Some(s) if s == e.seq => {}
                Some(s) => r.add(
                    ProblemKind::Webhook,
                    &k,
                    format!(
                        "second outbox entry for call {} (the index names {s})",
                        e.call_id
                    ),
                ),
                None => r.add(
                    ProblemKind::MissingIndex,
                    &wi,
                    format!("outbox entry {} is not in the webhook index", e.seq),
                ),
            }
            let wp = keys::outbox_pending(e.seq);
            let pending = self.tree().get(&wp)?;
            match (e.is_pending(), pending) {
                (true, None) => r.add(
                    ProblemKind::MissingIndex,
                    &wp,
                    "pending outbox entry missing from the pending index",
                ),
                (true, Some(v)) => {
                    if keys::parse_pending_value(&v).is_some_and(|(next, created)| {
                        next != e.next_attempt_ms || created != e.created_ms
                    }) || keys::pending_tenant(&v).is_some_and(|t| t != e.tenant)
                    {
                        r.add(
                            ProblemKind::Mismatch,
                            &wp,
                            "pending index times or tenant disagree with the outbox entry",
                        );
                    }
                }
                // A non-pending entry still in `wp/` is reported by the pending scan.
                (false, _) => {}
            }
        }
        Ok(())
    }

    pub(super) fn check_pending(&self, r: &mut Scan<'_>) -> Result<(), StoreError> {
        for item in self.tree().scan_prefix(keys::OUTBOX_PENDING) {
            let (k, _) = item?;
            r.pending_index += 1;
            r.tick();
            let Some(seq) = keys::tail_u64(&k) else {
                r.add(ProblemKind::Undecodable, &k, "malformed pending index key");
                continue;
            };
            match self.entry_at(seq)? {
                None => r.add(
                    ProblemKind::Dangling,
                    &k,
                    "pending index entry without outbox entry",
                ),
                Some(e) if !e.is_pending() => r.add(
                    ProblemKind::Mismatch,
                    &k,
                    format!(
                        "pending index entry for an outbox entry in state {:?}",
                        e.state
                    ),
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(super) fn check_webhook_index(&self, r: &mut Scan<'_>) -> Result<(), StoreError> {
        let prefix = keys::webhook_index("");
        for item in self.tree().scan_prefix(&prefix) {
            let (k, v) = item?;
            r.webhook_index += 1;
            r.tick();
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let Some(seq) = keys::tail_u64(&v) else {
                r.add(
                    ProblemKind::Undecodable,
                    &k,
                    "webhook index value is not a seq",
                );
                continue;
            };
            match self.entry_at(seq)? {
                None => r.add(
                    ProblemKind::Dangling,
                    &k,
                    format!("webhook index names outbox entry {seq}, which does not exist"),
                ),
                Some(e) if e.call_id != id => r.add(
                    ProblemKind::Mismatch,
                    &k,
                    format!(
                        "webhook index names outbox entry {seq}, which is for call {}",
                        e.call_id
                    ),
                ),
                Some(_) => {}
            }
            if !crate::store::is_event_id(&id) && !self.tree().contains_key(keys::record(&id))? {
                r.add(
                    ProblemKind::Dangling,
                    &k,
                    "webhook index entry without record",
                );
            }
        }
        Ok(())
    }
}
