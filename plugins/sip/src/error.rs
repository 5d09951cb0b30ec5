//! Typed errors of the SIP edge.

use std::net::SocketAddr;

/// Start-up and I/O failures of [`crate::SipEdge`].
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot bind SIP {transport} listener on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("SIP listen address {0} is unspecified; set `advertise` to the address peers reach")]
    NoAdvertiseAddress(SocketAddr),
    #[error("SIP metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid SIP configuration: {0}")]
    Config(String),
}

/// Why a message could not be understood. The text is short and safe to put in a
/// `400` reason phrase: it never echoes message content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Malformed(&'static str),
    /// The request line names a SIP version other than 2.0 (answered with 505).
    #[error("Version Not Supported")]
    Version,
    /// The Request-URI scheme is not sip/sips/tel (answered with 416).
    #[error("Unsupported URI Scheme")]
    Scheme,
}

impl ParseError {
    pub(crate) fn status(&self) -> (u16, &'static str) {
        match self {
            ParseError::Malformed(why) => (400, why),
            ParseError::Version => (505, "Version Not Supported"),
            ParseError::Scheme => (416, "Unsupported URI Scheme"),
        }
    }
}

pub(crate) fn bad(why: &'static str) -> ParseError {
    ParseError::Malformed(why)
}
