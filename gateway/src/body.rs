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

fn unsupported(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    )
}

/// The one `Content-Type` of the request; sent twice, the body's type is ambiguous.
fn content_type<'a>(head: &RequestHead<'a>) -> Result<Option<&'a str>, ApiError> {
    head.single_header(&http::header::CONTENT_TYPE)
        .map_err(|e| unsupported(format!("{e}: send exactly one Content-Type")))
}

/// JSON routes require `application/json` in UTF-8 (RFC 8259: JSON exchanged between
/// systems is UTF-8). Parameters are allowed; a `charset` must say UTF-8.
pub fn require_json(head: &RequestHead<'_>) -> Result<(), ApiError> {
    const JSON: &str = "application/json";
    let Some(ct) = content_type(head)? else {
        return Err(unsupported(
            "send the body as JSON with Content-Type: application/json",
        ));
    };
    // The media type is what precedes any `; charset=...` parameters.
    let media = ct.split_once(';').map_or(ct, |(m, _)| m);
    if !media.trim().eq_ignore_ascii_case(JSON) {
        return Err(unsupported(
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    utf8_charset(ct)
}

/// Routes that read a body of any declared type as JSON (the browser endpoints accept
/// `navigator.sendBeacon`'s `text/plain`) still read it as UTF-8: a body declared in
/// another charset would be misread, so it is refused like on the JSON routes. Requests
/// without a body are not checked.
pub fn require_utf8_body(head: &RequestHead<'_>) -> Result<(), ApiError> {
    let has_body = head.headers.contains_key(http::header::TRANSFER_ENCODING)
        || declared_length(head).is_some_and(|n| n > 0);
    match content_type(head)? {
        Some(ct) if has_body => utf8_charset(ct),
        _ => Ok(()),
    }
}

/// `Ok` when the content type declares no charset or exactly one that is UTF-8 (the
/// name is case-insensitive and may be quoted, RFC 9110 section 8.3.1).
fn utf8_charset(content_type: &str) -> Result<(), ApiError> {
    let mut charsets = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| {
            let v = value.trim();
            v.strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(v)
        });
    let first = charsets.next();
    let utf8 = match (first, charsets.next()) {
        (None, _) => true,
        (Some(c), None) => c.eq_ignore_ascii_case("utf-8"),
        // Two charsets: which one applies is anyone's guess.
        (Some(_), Some(_)) => false,
    };
    if utf8 {
        Ok(())
    } else {
        Err(unsupported(
            "the body must be UTF-8: send charset=utf-8 or no charset parameter",
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
    // Every body of this API is a JSON object. serde would also fill a struct from an
    // array, by position (`["a", true]`): refused, as the documented schema says.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_json",
            "invalid JSON: the body must be a JSON object",
        ));
    }
    // Happy path without path tracking; only a failed parse is redone with
    // serde_path_to_error to name the offending field.
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." {
            format!("invalid JSON: {inner}")
        } else {
            format!("invalid JSON at `{path}`: {inner}")
        };
        ApiError::bad_request("invalid_json", msg)
    })?;
    // The value parsed, so the fast path failed on what follows it. serde_json allows
    // only JSON whitespace (space, tab, CR, LF) there; a NUL or a second value is not
    // part of the request and must not be ignored.
    de.end().map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!(
                "invalid JSON: trailing data after the JSON value (line {}, column {}); \
                 send exactly one JSON value",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(value)
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
        // A struct is never filled from an array by position.
        for not_object in [&br#"["1"]"#[..], b" []", b"\"x\"", b"1", b"null"] {
            let e = parse_json::<Req>(not_object).unwrap_err();
            assert!(e.message.contains("JSON object"), "{}", e.message);
        }
    }

    #[test]
    fn only_json_whitespace_may_follow_the_value() {
        let v = br#"{"customer_number": "1"}"#;
        for tail in [&b""[..], b" ", b"\r\n", b"\t\n  "] {
            assert!(
                parse_json::<Req>(&[&v[..], tail].concat()).is_ok(),
                "{tail:?}"
            );
        }
        // The fast path refuses these too; the path-tracking retry used to accept them.
        for tail in [&b"\0"[..], b"x", b" {}", b"\x0b", b"\n\x0c"] {
            let e = parse_json::<Req>(&[&v[..], tail].concat()).unwrap_err();
            assert_eq!(e.code, "invalid_json", "{tail:?}");
            assert!(
                e.message.contains("trailing data"),
                "{tail:?}: {}",
                e.message
            );
        }
    }

    fn with_headers<T>(pairs: &[(http::HeaderName, &str)], f: impl Fn(&RequestHead<'_>) -> T) -> T {
        let mut headers = http::HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name, value.parse().unwrap());
        }
        let head = RequestHead {
            method: &http::Method::POST,
            uri: &"/api/c2c/normalize".parse().unwrap(),
            headers: &headers,
            peer: None,
        };
        f(&head)
    }

    #[test]
    fn json_content_types_with_parameters_or_padding_are_accepted() {
        let check = |ct: Option<&str>| {
            let pairs: Vec<_> = ct
                .map(|c| (http::header::CONTENT_TYPE, c))
                .into_iter()
                .collect();
            with_headers(&pairs, |h| require_json(h).is_ok())
        };
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
            "application/json; charset=\"utf-8\"",
            "application/json; foo=bar; Charset = Utf-8",
        ] {
            assert!(check(Some(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "text/plain; x=application/json",
            "application/json; charset=utf-16",
            "application/json; charset=\"UTF-16\"",
            "application/json; charset=latin1",
            "application/json; charset=utf8",
            "application/json; charset=utf-8; charset=utf-16",
        ] {
            assert!(!check(Some(bad)), "{bad}");
        }
        assert!(!check(None));
        let two = [
            (http::header::CONTENT_TYPE, "application/json"),
            (http::header::CONTENT_TYPE, "application/json"),
        ];
        assert!(!with_headers(&two, |h| require_json(h).is_ok()));
    }

    #[test]
    fn any_body_declared_in_another_charset_is_refused() {
        use http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
        let check = |pairs: &[(http::HeaderName, &str)]| {
            with_headers(pairs, |h| {
                require_utf8_body(h).map_err(|e| e.status.as_u16())
            })
        };
        assert_eq!(
            check(&[
                (CONTENT_TYPE, "text/plain;charset=UTF-8"),
                (CONTENT_LENGTH, "2")
            ]),
            Ok(())
        );
        assert_eq!(
            check(&[(CONTENT_TYPE, "text/plain"), (CONTENT_LENGTH, "2")]),
            Ok(())
        );
        assert_eq!(
            check(&[
                (CONTENT_TYPE, "text/plain;charset=UTF-16"),
                (CONTENT_LENGTH, "2")
            ]),
            Err(415)
        );
        assert_eq!(
            check(&[
                (CONTENT_TYPE, "text/plain;charset=UTF-16"),
                (TRANSFER_ENCODING, "chunked")
            ]),
            Err(415)
        );
        // No body, nothing to misread (an empty sendBeacon).
        assert_eq!(
            check(&[
                (CONTENT_TYPE, "text/plain;charset=UTF-16"),
                (CONTENT_LENGTH, "0")
            ]),
            Ok(())
        );
        assert_eq!(
            check(&[(CONTENT_TYPE, "text/plain;charset=UTF-16")]),
            Ok(())
        );
    }
}
