//! What goes wrong on the client's side of a request: a body whose chunked framing is
//! broken or that ends before its `Content-Length`, a request head Pingora cannot parse,
//! a client that hangs up. These are the client's errors, so the proxy answers them `400`
//! in the one JSON error shape (when anyone is left to read it), logs them at debug and
//! counts them under that 4xx status: the 5xx alert (`C2CHttp5xxRatioHigh`) must not fire
//! because clients misbehave. The wording never echoes what the client sent.

use bytes::Bytes;
use c2c_plugin_api::{ApiError, JsonResponse};
use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorSource, ErrorType};

/// The `400` for a request body that could not be read (`session.read_request_body`
/// failed, or Pingora's proxying read of it did).
pub fn body_error(e: &Error) -> ApiError {
    let why = match e.etype().as_str() {
        // pingora-core's v1 body reader: bad chunk sizes, extensions or trailers.
        "InvalidChunk" | "InvalidTrailerEnd" => "the chunked request body is malformed",
        // Its reader's word for EOF with body bytes still owed.
        "ConnectionClosed" => {
            "the request body ended before its Content-Length (the client stopped sending)"
        }
        "ReadTimedout" => "the request body did not arrive in time",
        _ => "the request body could not be read",
    };
    ApiError::bad_request("bad_request", why)
}

/// An error on the client's side of the connection (Pingora marks those `Downstream`;
/// the gateway marks its own failed writes to the client the same way).
pub fn is_client_error(e: &Error) -> bool {
    *e.esource() == ErrorSource::Downstream
}

/// The status to answer a client-side error with: `400` while the request is still
/// being read, `0` (nothing to send, nobody to read it) once the answer has begun or a
/// write to the client failed.
pub fn client_error_status(e: &Error, response_started: bool) -> u16 {
    if response_started || *e.etype() == ErrorType::WriteError {
        0
    } else {
        400
    }
}

/// The answer to a request Pingora refused before any hook ran (see the vendored
/// pingora-proxy's `ProxyHttp::early_error_response`): `400` for a head it could not
/// parse, `405` for `CONNECT`.
pub fn early_error(status: u16) -> ApiError {
    match status {
        405 => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "CONNECT is not supported",
        ),
        _ => ApiError::bad_request(
            "bad_request",
            "the request head is malformed (request line or a header field); \
             nothing was processed",
        ),
    }
}

/// An [`ApiError`] as a Pingora response head and body, for the paths where Pingora
/// writes the response itself. `None` only if the head cannot be built (it always can:
/// the status and headers are ours).
pub fn to_pingora(e: ApiError) -> Option<(ResponseHeader, Bytes)> {
    json_to_pingora(e.into())
}

/// A gateway-made answer as Pingora's response head and body, for a connection that is
/// closed after it (`private, no-store`: it answers this request only).
pub fn json_to_pingora(resp: JsonResponse) -> Option<(ResponseHeader, Bytes)> {
    let mut h = ResponseHeader::build(resp.status, Some(resp.headers.len() + 2)).ok()?;
    for (name, value) in resp.headers {
        h.append_header(name, value).ok()?;
    }
    h.insert_header(http::header::CONTENT_LENGTH, resp.body.len())
        .ok()?;
    h.insert_header(http::header::CACHE_CONTROL, "private, no-store")
        .ok()?;
    Some((h, resp.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_are_400_bad_request_naming_the_framing() {
        let chunk = Error::new(ErrorType::new("InvalidChunk"));
        let e = body_error(&chunk);
        assert_eq!((e.status.as_u16(), e.code), (400, "bad_request"));
        assert!(e.message.contains("chunked"), "{}", e.message);
        let short = Error::new(ErrorType::ConnectionClosed);
        assert!(body_error(&short).message.contains("Content-Length"));
    }

    #[test]
    fn a_client_that_is_gone_gets_no_answer() {
        let read = Error::new(ErrorType::ReadError);
        assert_eq!(client_error_status(&read, false), 400);
        assert_eq!(client_error_status(&read, true), 0);
        let write = Error::new(ErrorType::WriteError);
        assert_eq!(client_error_status(&write, false), 0);
    }

    #[test]
    fn early_errors_carry_the_json_shape() {
        let (h, body) = to_pingora(early_error(400)).unwrap();
        assert_eq!(h.status.as_u16(), 400);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "bad_request");
        assert_eq!(
            h.headers.get(http::header::CONTENT_LENGTH).unwrap(),
            &body.len().to_string()
        );
        let (h, _) = to_pingora(early_error(405)).unwrap();
        assert_eq!(h.status.as_u16(), 405);
    }
}
