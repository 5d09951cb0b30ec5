//! Request body rules: size bound, content type, JSON parsing with field paths.

use c2c_plugin_api::{ApiError, RequestHead};
use http::StatusCode;
use serde::Deserialize;

/// Largest request body the gateway reads. Every API body is a few hundred bytes; the
/// bound keeps a slow or hostile client from making us buffer megabytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

/// The declared Content-Length, if any and valid.
pub fn declared_length(head: &RequestHead<'_>) -> Option<u64> {
    head.header(http::header::CONTENT_LENGTH)
        .and_then(|v| v.trim().parse().ok())
}

/// JSON routes require `application/json` (parameters such as charset allowed).
pub fn require_json(head: &RequestHead<'_>) -> Result<(), ApiError> {
    const JSON: &str = "application/json";
    let ok = head
        .header(http::header::CONTENT_TYPE)
        .map(|ct| {
            // The media type is what precedes any `; charset=...` parameters.
            let media = ct.split_once(';').map_or(ct, |(m, _)| m);
            media.trim().eq_ignore_ascii_case(JSON)
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ))
    }
}

/// Parses a JSON body; errors name the offending field path.
///
/// Generic over the borrow so request types may hold `Cow<'a, str>`: strings without
/// escapes then point into the body instead of being copied.
pub fn parse_json<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "request body is empty; expected a JSON object",
        ));
    }
    // Happy path without path tracking; only a failed parse is redone with
    // serde_path_to_error to name the offending field.
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." {
            format!("invalid JSON: {inner}")
        } else {
            format!("invalid JSON at `{path}`: {inner}")
        };
        ApiError::bad_request("invalid_json", msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        customer_number: String,
        nested: Option<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = parse_json::<Req>(br#"{"customer_number": 12}"#).unwrap_err();
        assert!(e.message.contains("`customer_number`"), "{}", e.message);
        let e = parse_json::<Req>(br#"{"customer_number": "1", "nested": {"flag": "yes"}}"#)
            .unwrap_err();
        assert!(e.message.contains("`nested.flag`"), "{}", e.message);
        let e = parse_json::<Req>(b"{not json").unwrap_err();
        assert_eq!(e.code, "invalid_json");
        let e = parse_json::<Req>(b"  ").unwrap_err();
        assert!(e.message.contains("empty"));
    }

    #[test]
    fn json_content_types_with_parameters_or_padding_are_accepted() {
        let check = |ct: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(ct) = ct {
                headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            let head = RequestHead {
                method: &http::Method::POST,
                uri: &"/api/c2c/normalize".parse().unwrap(),
                headers: &headers,
                peer: None,
            };
            require_json(&head).is_ok()
        };
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
        ] {
            assert!(check(Some(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "text/plain; x=application/json",
        ] {
            assert!(!check(Some(bad)), "{bad}");
        }
        assert!(!check(None));
    }
}
