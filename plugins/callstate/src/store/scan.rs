//! Streaming walks over every call record and every outbox entry, in key order, for
//! exports (`c2c-gateway db export`): one entry in memory at a time, however big the
//! store.

use super::keys;
use super::sled_calls::{decode, SledCallStore};
use super::OutboxEntry;
use crate::error::StoreError;
use crate::record::CallRecord;

impl SledCallStore {
    /// Every call record, in call-id order. Lazily read: constant memory.
    pub fn scan_records(&self) -> impl Iterator<Item = Result<CallRecord, StoreError>> + '_ {
        self.tree().scan_prefix(keys::RECORD).map(|item| {
            let (k, v) = item?;
            decode(&k, &v)
        })
    }

    /// Every outbox entry, in seq order (oldest first). Lazily read: constant memory.
    pub fn scan_outbox(&self) -> impl Iterator<Item = Result<OutboxEntry, StoreError>> + '_ {
        self.tree().scan_prefix(keys::OUTBOX).map(|item| {
            let (k, v) = item?;
            decode(&k, &v)
        })
    }
}
