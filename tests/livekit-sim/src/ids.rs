//! LiveKit-shaped identifiers (`RM_`, `PA_`, `SCL_`, `EV_` + 12 base62 chars), as
//! `github.com/livekit/protocol/utils/guid.New` produces them.

use rand::Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const GUID_LEN: usize = 12;

pub const ROOM_PREFIX: &str = "RM_";
pub const PARTICIPANT_PREFIX: &str = "PA_";
pub const SIP_CALL_PREFIX: &str = "SCL_";
pub const WEBHOOK_EVENT_PREFIX: &str = "EV_";
pub const TRACK_PREFIX: &str = "TR_";

/// `prefix` followed by 12 random base62 characters.
pub fn guid(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut out = String::with_capacity(prefix.len() + GUID_LEN);
    out.push_str(prefix);
    for _ in 0..GUID_LEN {
        let idx = rng.gen_range(0..BASE62.len());
        out.push(char::from(BASE62[idx]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_has_prefix_and_base62_tail() {
        let id = guid(ROOM_PREFIX);
        assert!(id.starts_with("RM_"));
        assert_eq!(id.len(), 3 + GUID_LEN);
        assert!(id[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(guid(ROOM_PREFIX), guid(ROOM_PREFIX));
    }
}
