//! Live validation of a tenant's own LiveKit credentials before they are saved: the
//! console's "Validate" (seed 002), done by the server on every save so a typo in a
//! secret is refused instead of turning into failed calls later.

use std::time::Duration;

use c2c_livekit::{LiveKitClient, LiveKitProject};

use super::spec::LiveKitSpec;

/// How long LiveKit has to answer ListRooms.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Calls ListRooms with the credentials; `Err` says why they cannot be used.
pub async fn check(lk: &LiveKitSpec) -> Result<(), String> {
    let project = LiveKitProject::new(lk.url.clone(), lk.api_key.clone(), &lk.api_secret);
    let client = LiveKitClient::new(project)
        .map_err(|e| format!("cannot use {}: {e}", lk.url))?
        .with_request_timeout(TIMEOUT);
    match tokio::time::timeout(TIMEOUT, client.list_rooms()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("LiveKit at {} refused ListRooms: {e}", lk.url)),
        Err(_) => Err(format!(
            "LiveKit at {} did not answer ListRooms within {} s",
            lk.url,
            TIMEOUT.as_secs()
        )),
    }
}
