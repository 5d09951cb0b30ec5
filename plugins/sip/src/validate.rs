//! Message-level checks after the start line (RFC 3261 §8.2.2, §16.3, RFC 4475):
//! required and single-valued headers, Via/From/To/Contact/Route grammar, CSeq range
//! and method, Max-Forwards and Expires ranges, Date in GMT.

use crate::error::{bad, ParseError};
use crate::hdr::{cseq, name_addr, small_number, split_list, via, Via};
use crate::normalize::NormalizedMessage;
use crate::parse::StartLine;

/// What the rest of the edge needs from every valid message.
#[derive(Debug)]
pub struct Facts {
    pub via: Via,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub max_forwards: Option<u32>,
}

const SINGLE: &[&str] = &["From", "To", "Call-ID", "CSeq", "Max-Forwards"];

pub fn check(n: &NormalizedMessage, start: &StartLine) -> Result<Facts, ParseError> {
    fn named<'a>(
        n: &'a NormalizedMessage,
        name: &'a str,
    ) -> impl Iterator<Item = &'a crate::normalize::RawHeader> + 'a {
        n.headers.iter().filter(move |h| h.name == name)
    }
    let get = |name: &'static str| named(n, name);
    for name in SINGLE {
        if get(name).count() > 1 {
            return Err(bad("repeated single-value header"));
        }
    }
    let one = |name: &'static str| get(name).next().map(|h| h.value.as_str());
    let (Some(from), Some(to), Some(call_id), Some(cseq_v)) =
        (one("From"), one("To"), one("Call-ID"), one("CSeq"))
    else {
        return Err(bad("missing required header"));
    };

    let mut top: Option<Via> = None;
    for h in get("Via") {
        for v in split_list(&h.value)? {
            let parsed = via(v)?;
            if parsed.version != "2.0" {
                return Err(bad("bad Via protocol"));
            }
            if top.is_none() {
                top = Some(parsed);
            }
        }
    }
    let via = top.ok_or(bad("missing Via"))?;

    let from_tag = name_addr(from)?.tag().map(str::to_string);
    let to_tag = name_addr(to)?.tag().map(str::to_string);
    if call_id.is_empty() || call_id.bytes().any(|b| b <= b' ') {
        return Err(bad("bad Call-ID"));
    }
    let (seq, method) = cseq(cseq_v)?;
    if let StartLine::Request { method: m, .. } = start {
        if m.as_str() != method {
            return Err(bad("CSeq method does not match"));
        }
    }
    let max_forwards = match one("Max-Forwards") {
        Some(v) => Some(small_number(v, 255)? as u32),
        None => None,
    };
    for h in get("Expires") {
        small_number(&h.value, u64::from(u32::MAX))?;
    }
    for h in get("Date") {
        if !h.value.trim_end().ends_with(" GMT") {
            return Err(bad("Date must be in GMT"));
        }
    }
    for h in get("Contact") {
        if h.value.trim() == "*" {
            continue;
        }
        for c in split_list(&h.value)? {
            name_addr(c)?;
        }
    }
    for name in ["Route", "Record-Route"] {
        for h in get(name) {
            for r in split_list(&h.value)? {
                if !name_addr(r)?.bracketed {
                    return Err(bad("Route entries need <URI>"));
                }
            }
        }
    }
    Ok(Facts {
        via,
        call_id: call_id.to_string(),
        cseq: seq,
        cseq_method: method.to_string(),
        from_tag,
        to_tag,
        max_forwards,
    })
}
