//! Stream reassembly for SIP over TCP (RFC 3261 §18.3): our own Content-Length framing.
//!
//! Bytes accumulate in a bounded buffer; a frame is cut once the empty line and
//! `Content-Length` body bytes are in. A header section longer than the message cap,
//! a missing terminator within the cap, or an unusable Content-Length make the stream
//! unframeable: the connection must be closed.

use bytes::{Buf, Bytes, BytesMut};

use crate::normalize::{canonical_name, parse_len, MAX_MESSAGE};

/// One unit cut from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A double-CRLF keepalive ping (RFC 5626 §3.5.1): answer with a single CRLF.
    Ping,
    Message(Bytes),
}

/// The stream cannot be framed any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("header section exceeds {MAX_MESSAGE} bytes")]
    TooLarge,
    /// The header section is complete but its Content-Length is unusable. Carries the
    /// header section so a 400 can still be formed before closing.
    #[error("invalid Content-Length on a stream")]
    BadLength(Bytes),
}

/// Cuts the next frame from `buf`, or returns `Ok(None)` when more bytes are needed.
pub fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    // Leading CRLFs between messages are keepalives.
    let lead = buf
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(buf.len());
    if lead > 0 {
        let crlfs = buf[..lead].windows(4).any(|w| w == b"\r\n\r\n");
        buf.advance(lead);
        if crlfs {
            return Ok(Some(Frame::Ping));
        }
    }
    if buf.is_empty() {
        return Ok(None);
    }
    let Some((head_end, body_start)) = header_end(buf) else {
        if buf.len() > MAX_MESSAGE {
            return Err(FrameError::TooLarge);
        }
        return Ok(None);
    };
    let head = &buf[..head_end];
    let len = match content_length(head) {
        Ok(n) => n,
        Err(()) => {
            let head = Bytes::copy_from_slice(&buf[..body_start]);
            buf.clear();
            return Err(FrameError::BadLength(head));
        }
    };
    let total = body_start + len;
    if total > MAX_MESSAGE {
        return Err(FrameError::TooLarge);
    }
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(Frame::Message(buf.split_to(total).freeze())))
}

/// (end of the last header line, start of the body) for CRLFCRLF or LFLF.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let limit = buf.len().min(MAX_MESSAGE + 4);
    let mut i = 0;
    while i < limit {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Content-Length of a header section: absent means 0; several, or non-numeric, is an
/// error.
fn content_length(head: &[u8]) -> Result<usize, ()> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue;
        }
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        if canonical_name(name.trim_end_matches([' ', '\t'])) != "Content-Length" {
            continue;
        }
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        let n = parse_len(value.trim_matches([' ', '\t', '\r'])).ok_or(())?;
        if found.replace(n).is_some() {
            return Err(());
        }
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_glued_messages() {
        let a = "OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabc";
        let b = "BYE sip:b SIP/2.0\nContent-Length : 0\n\n";
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\r\n\r\n");
        buf.extend_from_slice(&a.as_bytes()[..10]);
        assert_eq!(next_frame(&mut buf), Ok(Some(Frame::Ping)));
        assert_eq!(next_frame(&mut buf), Ok(None));
        buf.extend_from_slice(&a.as_bytes()[10..]);
        buf.extend_from_slice(b.as_bytes());
        assert_eq!(
            next_frame(&mut buf),
            Ok(Some(Frame::Message(Bytes::from(a))))
        );
        assert_eq!(
            next_frame(&mut buf),
            Ok(Some(Frame::Message(Bytes::from(b))))
        );
        assert_eq!(next_frame(&mut buf), Ok(None));
    }

    #[test]
    fn rejects_bad_lengths_and_oversize() {
        let mut buf = BytesMut::from(&b"INVITE sip:a SIP/2.0\r\nl: -5\r\n\r\n"[..]);
        assert!(matches!(
            next_frame(&mut buf),
            Err(FrameError::BadLength(_))
        ));
        let mut buf = BytesMut::from(&b"INVITE sip:a SIP/2.0\r\nl: 5\r\nl: 5\r\n\r\n"[..]);
        assert!(matches!(
            next_frame(&mut buf),
            Err(FrameError::BadLength(_))
        ));
        let mut buf = BytesMut::from(&b"INVITE sip:a SIP/2.0\r\nl: 16380\r\n\r\n"[..]);
        assert_eq!(next_frame(&mut buf), Err(FrameError::TooLarge));
        let mut buf = BytesMut::from(vec![b'A'; MAX_MESSAGE + 10].as_slice());
        assert_eq!(next_frame(&mut buf), Err(FrameError::TooLarge));
    }
}
