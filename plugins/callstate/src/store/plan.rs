//! How a backend applies a transition to the record it read, decided once for every
//! backend: [`TransitionPlan::new`] runs the transition on that record and says whether
//! there is anything to write, and with what CRM-webhook entry; the backend writes it
//! atomically — under its per-call lock (or row lock), or conditionally on the version
//! it read, planning again on the newer record when that write lost — and reports with
//! [`TransitionPlan::written`]. So a no-op, a transition that changed the call id, and the
//! webhook's entry at a call's end behave the same in sled, in memory and in a shared
//! backend.

use super::{Applied, OutboxEntry};
use crate::error::StoreError;
use crate::machine::{Effect, Transition, TransitionError};
use crate::record::CallRecord;

/// What to do after running a transition on the stored record.
// Lives on the stack for one write; boxing the large variant would cost an allocation
// per transition for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TransitionPlan {
    /// The version did not change: write nothing and answer this.
    Unchanged(Applied),
    /// Write `record` over `prev` (and `outbox`, unless the call has a webhook already)
    /// in one atomic step, then answer [`TransitionPlan::written`].
    Write {
        prev: CallRecord,
        record: CallRecord,
        effects: Vec<Effect>,
        outbox: Option<OutboxEntry>,
    },
}

impl TransitionPlan {
    /// Runs `f` on `cur`. `next_seq` hands out an outbox seq; it is asked only when the
    /// effects enqueue the webhook (even if the call has one already: the write keeps the
    /// first, and a seq never comes back).
    pub fn new<F>(
        cur: CallRecord,
        f: F,
        next_seq: impl FnOnce() -> Result<u64, StoreError>,
    ) -> Result<TransitionPlan, StoreError>
    where
        F: FnOnce(&CallRecord) -> Result<Transition, TransitionError>,
    {
        let Transition {
            record, effects, ..
        } = f(&cur)?;
        if record.version == cur.version {
            return Ok(TransitionPlan::Unchanged(Applied {
                record: cur,
                effects,
                written: false,
                enqueued: None,
                adopted: false,
            }));
        }
        if record.call_id != cur.call_id {
            return Err(StoreError::InvalidInput {
                what: "transition changed call_id",
            });
        }
        let outbox = if effects.contains(&Effect::EnqueueWebhook) {
            Some(OutboxEntry::for_call(&record, next_seq()?)?)
        } else {
            None
        };
        Ok(TransitionPlan::Write {
            prev: cur,
            record,
            effects,
            outbox,
        })
    }

    /// Carries the plan out with a backend's synchronous atomic write (`write(prev,
    /// record, outbox)` returns the seq it enqueued). An async backend matches on the
    /// plan instead and answers [`TransitionPlan::written`].
    pub fn apply(
        self,
        write: impl FnOnce(
            &CallRecord,
            &CallRecord,
            Option<OutboxEntry>,
        ) -> Result<Option<u64>, StoreError>,
    ) -> Result<Applied, StoreError> {
        match self {
            TransitionPlan::Unchanged(applied) => Ok(applied),
            TransitionPlan::Write {
                prev,
                record,
                effects,
                outbox,
            } => {
                let enqueued = write(&prev, &record, outbox)?;
                Ok(TransitionPlan::written(record, effects, enqueued))
            }
        }
    }

    /// The answer for a `Write` the backend has made; `enqueued` is the seq it stored.
    pub fn written(record: CallRecord, effects: Vec<Effect>, enqueued: Option<u64>) -> Applied {
        Applied {
            record,
            effects,
            written: true,
            enqueued,
            adopted: false,
        }
    }
}
