//! `[store]`: the embedded store's settings.

use super::Errs;
use crate::file::StoreSection;

/// `store.cache_mb` (default 64), in bytes.
pub(super) fn cache_bytes(s: &StoreSection, e: &mut Errs<'_>) -> u64 {
    let mb = s.cache_mb.unwrap_or(64);
    if !(4..=65_536).contains(&mb) {
        e.push("store.cache_mb", "must be between 4 and 65536");
    }
    mb * 1024 * 1024
}
