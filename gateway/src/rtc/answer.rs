//! LiveKit's answer to a forwarded handshake: its head, and for a refusal its body,
//! read bounded and re-framed for the browser (RFC 9112 §6.3).

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use tokio::io::AsyncReadExt;

use crate::detach::Detached;

/// The largest answer head taken from LiveKit (its 101 is a few hundred bytes).
const MAX_ANSWER_HEAD: usize = 16 * 1024;
/// The largest refusal body passed on (LiveKit's are a line of text).
const MAX_REFUSAL_BODY: usize = 64 * 1024;
/// Headers about the hop, not the answer: not passed on with a refusal, which is
/// re-framed (`Content-Length`) and closes the connection.
const HOP_BY_HOP: [http::header::HeaderName; 7] = [
    http::header::CONNECTION,
    http::header::TRANSFER_ENCODING,
    http::header::CONTENT_LENGTH,
    http::header::UPGRADE,
    http::header::TE,
    http::header::TRAILER,
    http::header::PROXY_AUTHENTICATE,
];

/// LiveKit's answer head, parsed.
#[derive(Debug)]
pub(super) struct AnswerHead {
    pub(super) status: u16,
    /// Bytes of the head in what was read (the rest is body, or the socket's first bytes).
    len: usize,
    headers: Vec<(http::header::HeaderName, http::HeaderValue)>,
}

/// Why LiveKit's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum AnswerError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("closed before its answer was complete")]
    Closed,
    #[error("answer head over {MAX_ANSWER_HEAD} bytes")]
    HeadTooLarge,
    #[error("refusal body over {MAX_REFUSAL_BODY} bytes")]
    BodyTooLarge,
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

/// Reads LiveKit's answer head. Returns it with everything read so far (head included).
pub(super) async fn read_answer(
    upstream: &mut Detached,
) -> Result<(AnswerHead, BytesMut), AnswerError> {
    let mut read = BytesMut::with_capacity(1024);
    loop {
        read.reserve(1024);
        if upstream.read_buf(&mut read).await? == 0 {
            return Err(AnswerError::Closed);
        }
        if let Some(head) = parse_answer(&read)? {
            return Ok((head, read));
        }
        if read.len() > MAX_ANSWER_HEAD {
            return Err(AnswerError::HeadTooLarge);
        }
    }
}

fn parse_answer(read: &[u8]) -> Result<Option<AnswerHead>, AnswerError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(AnswerError::Malformed("not an HTTP/1.1 response head")),
    };
    let status = resp.code.ok_or(AnswerError::Malformed("no status"))?;
    // Interim answers (100 Continue, 103 Early Hints) have no place in a handshake
    // without a body; a 101 is the only 1xx that ends it.
    if (100..200).contains(&status) && status != 101 {
        return Err(AnswerError::Malformed("an interim answer"));
    }
    let headers = resp
        .headers
        .iter()
        .map(|h| {
            Ok((
                http::header::HeaderName::from_bytes(h.name.as_bytes())
                    .map_err(|_| AnswerError::Malformed("a header name"))?,
                http::HeaderValue::from_bytes(h.value)
                    .map_err(|_| AnswerError::Malformed("a header value"))?,
            ))
        })
        .collect::<Result<_, AnswerError>>()?;
    Ok(Some(AnswerHead {
        status,
        len,
        headers,
    }))
}

/// How a refusal's body is framed (RFC 9112 §6.3).
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

fn framing(answer: &AnswerHead) -> Result<Framing, AnswerError> {
    if matches!(answer.status, 204 | 304) {
        return Ok(Framing::None);
    }
    let header = |name: http::header::HeaderName| {
        answer
            .headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v)
    };
    if let Some(te) = header(http::header::TRANSFER_ENCODING).last() {
        let last = te.to_str().ok().and_then(|v| v.rsplit(',').next());
        return match last.map(str::trim) {
            Some(c) if c.eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
            _ => Ok(Framing::UntilClose),
        };
    }
    let mut lengths = header(http::header::CONTENT_LENGTH);
    match (lengths.next(), lengths.next()) {
        (None, _) => Ok(Framing::UntilClose),
        (Some(v), None) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map(Framing::Length)
            .ok_or(AnswerError::Malformed("Content-Length")),
        (Some(_), Some(_)) => Err(AnswerError::Malformed("two Content-Length headers")),
    }
}

/// Reads a refusal's body, bounded by [`MAX_REFUSAL_BODY`].
pub(super) async fn read_refusal_body(
    upstream: &mut Detached,
    answer: &AnswerHead,
    mut read: BytesMut,
) -> Result<Bytes, AnswerError> {
    let mut body = read.split_off(answer.len);
    match framing(answer)? {
        Framing::None => Ok(Bytes::new()),
        Framing::Length(n) => {
            if n > MAX_REFUSAL_BODY {
                return Err(AnswerError::BodyTooLarge);
            }
            while body.len() < n {
                body.reserve(n - body.len());
                if upstream.read_buf(&mut body).await? == 0 {
                    return Err(AnswerError::Closed);
                }
            }
            body.truncate(n);
            Ok(body.freeze())
        }
        Framing::UntilClose => loop {
            body.reserve(4096);
            if upstream.read_buf(&mut body).await? == 0 {
                return Ok(body.freeze());
            }
            if body.len() > MAX_REFUSAL_BODY {
                return Err(AnswerError::BodyTooLarge);
            }
        },
        Framing::Chunked => loop {
            if let Some(decoded) = decode_chunked(&body)? {
                return Ok(decoded.into());
            }
            // Chunk-size lines and the trailer section ride on top of the body.
            if body.len() > MAX_REFUSAL_BODY + 4096 {
                return Err(AnswerError::BodyTooLarge);
            }
            body.reserve(4096);
            if upstream.read_buf(&mut body).await? == 0 {
                return Err(AnswerError::Closed);
            }
        },
    }
}

/// The body of a complete chunked message in `buf`, `None` while it is incomplete.
fn decode_chunked(buf: &[u8]) -> Result<Option<Vec<u8>>, AnswerError> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let (used, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(AnswerError::Malformed("a chunk size")),
        };
        pos += used;
        if size == 0 {
            // The trailer section: nothing, or header lines, then an empty line.
            let rest = &buf[pos..];
            let done = rest.starts_with(b"\r\n") || rest.windows(4).any(|w| w == b"\r\n\r\n");
            return Ok(done.then_some(out));
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|s| out.len() + s <= MAX_REFUSAL_BODY)
            .ok_or(AnswerError::BodyTooLarge)?;
        let Some(chunk) = buf.get(pos..pos + size + 2) else {
            return Ok(None);
        };
        if &chunk[size..] != b"\r\n" {
            return Err(AnswerError::Malformed("a chunk's end"));
        }
        out.extend_from_slice(&chunk[..size]);
        pos += size + 2;
    }
}

/// The head passed on with a refusal: LiveKit's status and headers, less those about
/// the hop, framed by length.
pub(super) fn refusal_head(answer: &AnswerHead, body_len: usize) -> Option<ResponseHeader> {
    let mut h = ResponseHeader::build(answer.status, Some(answer.headers.len() + 1)).ok()?;
    for (name, value) in &answer.headers {
        if HOP_BY_HOP.contains(name) || name.as_str() == "keep-alive" {
            continue;
        }
        h.append_header(name.clone(), value.clone()).ok()?;
    }
    h.insert_header(http::header::CONTENT_LENGTH, body_len)
        .ok()?;
    Some(h)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn answer_heads_parse_or_are_refused() {
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nfirst-frame";
        let head = parse_answer(ok).unwrap().unwrap();
        assert_eq!((head.status, &ok[head.len..]), (101, &b"first-frame"[..]));
        assert!(parse_answer(b"HTTP/1.1 101 Switching").unwrap().is_none());
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_answer(b"HTTP/1.1 100 Continue\r\n\r\n").is_err());
    }

    #[test]
    fn refusal_bodies_are_framed_as_rfc_9112_says() {
        let head = |h: &[u8]| parse_answer(h).unwrap().unwrap();
        assert!(matches!(
            framing(&head(b"HTTP/1.1 401 x\r\nContent-Length: 12\r\n\r\n")).unwrap(),
            Framing::Length(12)
        ));
        assert!(matches!(
            framing(&head(
                b"HTTP/1.1 401 x\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n"
            ))
            .unwrap(),
            Framing::Chunked
        ));
        assert!(matches!(
            framing(&head(b"HTTP/1.1 401 x\r\n\r\n")).unwrap(),
            Framing::UntilClose
        ));
        assert!(matches!(
            framing(&head(b"HTTP/1.1 304 x\r\nContent-Length: 9\r\n\r\n")).unwrap(),
            Framing::None
        ));
        assert!(framing(&head(
            b"HTTP/1.1 401 x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        ))
        .is_err());
        assert!(framing(&head(b"HTTP/1.1 401 x\r\nContent-Length: -1\r\n\r\n")).is_err());
    }

    #[test]
    fn chunked_refusals_decode_once_complete() {
        let whole = b"5\r\nhello\r\n7;ext=1\r\n, there\r\n0\r\n\r\n";
        assert_eq!(decode_chunked(whole).unwrap().unwrap(), b"hello, there");
        for cut in 0..whole.len() - 1 {
            assert!(
                decode_chunked(&whole[..cut]).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        let trailers = b"2\r\nok\r\n0\r\nx-why: token\r\n\r\n";
        assert_eq!(decode_chunked(trailers).unwrap().unwrap(), b"ok");
        assert!(decode_chunked(b"2\r\nokXX").is_err());
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"fffffff\r\n").is_err());
    }

    #[test]
    fn a_refusal_is_passed_on_without_its_hop_headers() {
        let answer = parse_answer(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().unwrap();
        let h = refusal_head(&answer, 7).unwrap();
        assert_eq!(h.status, 401);
        assert_eq!(h.headers["content-type"], "text/plain");
        assert_eq!(h.headers["content-length"], "7");
        for gone in ["connection", "keep-alive", "transfer-encoding"] {
            assert!(!h.headers.contains_key(gone), "{gone}");
        }
    }
}
