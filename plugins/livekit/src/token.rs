//! Access tokens for agents joining a call room from the browser.

use std::time::Duration;

use livekit_api::access_token::{AccessToken, VideoGrants};

use crate::error::LiveKitError;

/// A join token for `identity` in `room`, valid for `ttl`: `roomJoin`,
/// `canPublish`, `canSubscribe` — nothing administrative.
pub fn agent_token(
    api_key: &str,
    api_secret: &str,
    room: &str,
    identity: &str,
    ttl: Duration,
) -> Result<String, LiveKitError> {
    if room.is_empty() || identity.is_empty() {
        return Err(LiveKitError::Token(
            "room and identity are required".to_owned(),
        ));
    }
    AccessToken::with_api_key(api_key, api_secret)
        .with_identity(identity)
        .with_ttl(ttl)
        .with_grants(VideoGrants {
            room_join: true,
            room: room.to_owned(),
            can_publish: Some(true),
            can_subscribe: Some(true),
            ..Default::default()
        })
        .to_jwt()
        .map_err(|e| LiveKitError::Token(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::access_token::TokenVerifier;

    #[test]
    fn grants_are_join_publish_subscribe_only() {
        let token = agent_token("k", "s", "c2c-room", "agent-1", Duration::from_secs(600)).unwrap();
        let claims = TokenVerifier::with_api_key("k", "s")
            .verify(&token)
            .unwrap();
        assert_eq!(claims.sub, "agent-1");
        assert!(claims.video.room_join);
        assert_eq!(claims.video.room, "c2c-room");
        assert_eq!(claims.video.can_publish, Some(true));
        assert_eq!(claims.video.can_subscribe, Some(true));
        assert!(!claims.video.room_admin && !claims.video.room_create && !claims.video.room_list);
        assert!(!claims.sip.call && !claims.sip.admin);
        assert!(claims.exp - claims.nbf <= 601);
    }

    #[test]
    fn empty_room_or_identity_is_refused() {
        assert!(agent_token("k", "s", "", "a", Duration::from_secs(60)).is_err());
        assert!(agent_token("k", "s", "r", "", Duration::from_secs(60)).is_err());
    }
}
