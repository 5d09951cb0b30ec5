//! Typed errors, mapped from `livekit_api::services::ServiceError`.

use livekit_api::services::{ServerError, ServiceError};

/// What went wrong talking to LiveKit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveKitError {
    /// Could not reach LiveKit, timed out, or LiveKit answered 5xx (`unavailable`,
    /// `internal`, `unknown`, `dataloss`) or `deadline_exceeded`. Worth retrying.
    #[error("livekit unavailable: {0}")]
    Unavailable(String),
    /// Twirp `not_found` (room or participant does not exist).
    #[error("livekit: not found: {0}")]
    NotFound(String),
    /// Any other Twirp error. A SIP failure reported by a `wait_until_answered` dial
    /// carries the carrier's code in `sip_status_code` (meta `sip_status_code`).
    #[error("livekit rejected the request: {code}: {msg}")]
    Rejected {
        code: String,
        msg: String,
        sip_status_code: Option<u16>,
    },
    /// Twirp `unauthenticated`/`permission_denied`: the token lacks a grant.
    #[error("livekit refused the token: {0}")]
    Unauthorized(String),
    /// A response that is neither the expected protobuf nor a Twirp JSON error.
    /// LiveKit answers a token with a wrong key/secret with a *plain-text* 401,
    /// which lands here (the SDK cannot decode it), as do HTML pages from proxies.
    #[error("unexpected response from livekit: {0}")]
    BadResponse(String),
    /// Bad project settings (URL, empty key or secret).
    #[error("invalid livekit configuration: {0}")]
    Config(String),
    /// The SDK could not sign a token.
    #[error("cannot sign livekit token: {0}")]
    Token(String),
}

impl LiveKitError {
    /// True for errors a retry (with backoff) may fix.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LiveKitError::Unavailable(_))
    }

    /// The SIP status LiveKit attached to a failed dial, if any.
    pub fn sip_status_code(&self) -> Option<u16> {
        match self {
            LiveKitError::Rejected {
                sip_status_code, ..
            } => *sip_status_code,
            _ => None,
        }
    }
}

impl From<ServiceError> for LiveKitError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Env(e) => LiveKitError::Config(e.to_string()),
            ServiceError::AccessToken(e) => LiveKitError::Token(e.to_string()),
            ServiceError::Twirp(server) => from_server(server),
        }
    }
}

fn from_server(err: ServerError) -> LiveKitError {
    match err {
        ServerError::Request(e) => {
            if e.is_decode() {
                LiveKitError::BadResponse(e.to_string())
            } else if e.is_builder() {
                LiveKitError::Config(e.to_string())
            } else {
                // connect, timeout, reset mid-request, body read failure
                LiveKitError::Unavailable(e.to_string())
            }
        }
        ServerError::Twirp(twirp) => {
            let sip_status_code = twirp
                .meta
                .get("sip_status_code")
                .and_then(|v| v.parse::<u16>().ok());
            // A dial failure's Twirp code derives from the SIP code (SIP 404 ->
            // `not_found`, SIP 503 -> `failed_precondition`), so the SIP meta wins.
            if sip_status_code.is_some() {
                return LiveKitError::Rejected {
                    code: twirp.code,
                    msg: twirp.msg,
                    sip_status_code,
                };
            }
            match twirp.code.as_str() {
                "not_found" => LiveKitError::NotFound(twirp.msg),
                "unauthenticated" | "permission_denied" => LiveKitError::Unauthorized(twirp.msg),
                "unavailable" | "internal" | "unknown" | "dataloss" | "deadline_exceeded" => {
                    LiveKitError::Unavailable(format!("{}: {}", twirp.code, twirp.msg))
                }
                _ => LiveKitError::Rejected {
                    code: twirp.code,
                    msg: twirp.msg,
                    sip_status_code: None,
                },
            }
        }
        ServerError::Url(e) => LiveKitError::Config(e.to_string()),
        ServerError::Prost(e) => LiveKitError::BadResponse(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::services::ServerErrorCode;
    use std::collections::HashMap;

    fn twirp(code: &str, meta: &[(&str, &str)]) -> ServiceError {
        ServiceError::Twirp(ServerError::Twirp(ServerErrorCode {
            code: code.to_owned(),
            msg: "m".to_owned(),
            meta: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        }))
    }

    #[test]
    fn twirp_codes_map_to_variants() {
        assert_eq!(
            LiveKitError::from(twirp("not_found", &[])),
            LiveKitError::NotFound("m".into())
        );
        assert!(LiveKitError::from(twirp("unavailable", &[])).is_retryable());
        assert!(LiveKitError::from(twirp("internal", &[])).is_retryable());
        assert_eq!(
            LiveKitError::from(twirp("unauthenticated", &[])),
            LiveKitError::Unauthorized("m".into())
        );
        assert_eq!(
            LiveKitError::from(twirp("invalid_argument", &[])),
            LiveKitError::Rejected {
                code: "invalid_argument".into(),
                msg: "m".into(),
                sip_status_code: None
            }
        );
    }

    #[test]
    fn sip_meta_wins_over_code() {
        let e = LiveKitError::from(twirp("not_found", &[("sip_status_code", "404")]));
        assert_eq!(e.sip_status_code(), Some(404));
        assert!(matches!(e, LiveKitError::Rejected { .. }));
        let e = LiveKitError::from(twirp("failed_precondition", &[("sip_status_code", "503")]));
        assert_eq!(e.sip_status_code(), Some(503));
        assert!(
            !e.is_retryable(),
            "a carrier 503 is a call outcome, not LiveKit down"
        );
    }
}
