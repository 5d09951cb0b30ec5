//! (being written)
pub(crate) const SCHEMA: &str = "";
