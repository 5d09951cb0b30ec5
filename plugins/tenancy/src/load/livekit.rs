//! `[livekit]`: a LiveKit project, the platform's (gateway.toml) or a tenant's own.

use std::path::Path;

use super::syntax::is_http_url;
use super::Errs;
use crate::file::LiveKitSection;
use crate::policy::LiveKitProject;
use crate::secret;

/// The project at key path `at`; `None` when its secret does not resolve.
pub(super) fn project(
    lk: &LiveKitSection,
    at: &str,
    dir: &Path,
    e: &mut Errs<'_>,
) -> Option<LiveKitProject> {
    if lk.url != "sim" && !is_http_url(&lk.url) {
        e.push(
            format!("{at}.url"),
            "must be an http(s):// or ws(s):// URL, or \"sim\"",
        );
    }
    if lk.api_key.trim().is_empty() {
        e.push(format!("{at}.api_key"), "must not be empty");
    }
    match secret::resolve(
        lk.api_secret_env.as_deref(),
        lk.api_secret_file.as_deref(),
        dir,
    ) {
        Ok(s) => Some(LiveKitProject {
            url: lk.url.clone(),
            api_key: lk.api_key.clone(),
            api_secret: s,
        }),
        Err(reason) => {
            e.push(format!("{at}.api_secret_env"), reason);
            None
        }
    }
}
