//! Phone numbers as carriers write them in inbound INVITEs: the called number (DID) in
//! the Request-URI or To user, the caller in the From user and display name. Only
//! Indian numbers are normalised (`+91XXXXXXXXXX` from `91…`, `0…` or 10 digits, with
//! `c2c_dialplan::normalize_did`); any other `+digits` number is taken as written.

use crate::hdr::name_addr;
use crate::parse::uri;

/// The user part of a `sip:`/`sips:` URI, or the number of a `tel:` URI.
pub fn uri_user(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() > 4 && s[..4].eq_ignore_ascii_case("tel:") {
        let n = s[4..].split(';').next().unwrap_or_default();
        return (!n.is_empty()).then(|| n.to_string());
    }
    uri(s).ok()?.user
}

/// The user of a From/To value (`"Name" <sip:user@host>;tag=x`).
pub fn header_user(value: &str) -> Option<String> {
    uri_user(name_addr(value).ok()?.uri)
}

/// A number in E.164, if `user` is one: Indian shapes normalised, other `+digits` kept.
pub fn e164(user: &str) -> Option<String> {
    let n = phone(user);
    if let Ok(e) = c2c_dialplan::normalize_did(&n) {
        return Some(e);
    }
    let digits = n.strip_prefix('+')?;
    (digits.len() >= 7 && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(n)
}

/// The caller as reported to the gateway: E.164 for an Indian number, else the From
/// user as sent (`anonymous`, a foreign number without `+`, ...); and the display name.
pub fn caller(from: &str) -> (String, Option<String>) {
    let user = header_user(from).unwrap_or_default();
    let number = c2c_dialplan::normalize_did(&phone(&user)).unwrap_or(user);
    (number, display_name(from))
}

/// The number part of a URI user: visual parameters (`;npdi`, `;isub=`) dropped and an
/// escaped leading `+` (`%2B`) decoded.
fn phone(user: &str) -> String {
    let n = user.split(';').next().unwrap_or_default();
    match n.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("%2b") => format!("+{}", &n[3..]),
        _ => n.to_string(),
    }
}

/// The display name of a name-addr, unquoted (`"A \"B\"" <sip:..>` -> `A "B"`).
pub fn display_name(value: &str) -> Option<String> {
    let na = name_addr(value).ok()?;
    if !na.bracketed {
        return None;
    }
    let raw = value[..na.uri_range.start.saturating_sub(1)].trim();
    let name = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(q) => {
            let mut out = String::with_capacity(q.len());
            let mut esc = false;
            for c in q.chars() {
                if esc || c != '\\' {
                    out.push(c);
                    esc = false;
                } else {
                    esc = true;
                }
            }
            out
        }
        None => raw.to_string(),
    };
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The From/To value with its SIP URI's user set to `user` (added when it has none);
/// `None` when the value is not a name-addr with a `sip:`/`sips:` URI.
pub fn set_user(value: &str, user: &str) -> Option<String> {
    let na = name_addr(value).ok()?;
    let u = uri(na.uri).ok()?;
    let (start, end) = match u.user_range {
        Some(r) => (na.uri_range.start + r.start, na.uri_range.start + r.end),
        None => {
            let colon = na.uri.find(':')? + 1;
            let at = na.uri_range.start + colon;
            return Some(format!("{}{user}@{}", &value[..at], &value[at..]));
        }
    };
    Some(format!("{}{user}{}", &value[..start], &value[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn called_numbers_in_every_shape() {
        for u in [
            "+918045678901",
            "918045678901",
            "08045678901",
            "8045678901",
            "%2B918045678901",
            "+918045678901;npdi",
        ] {
            assert_eq!(e164(u).as_deref(), Some("+918045678901"), "{u}");
        }
        assert_eq!(e164("+14155550100").as_deref(), Some("+14155550100"));
        assert_eq!(e164("99118045678901"), None);
        assert_eq!(e164("room-1"), None);
        assert_eq!(e164("+1"), None);
        assert_eq!(
            uri_user("tel:+918045678901;phone-context=x").as_deref(),
            Some("+918045678901")
        );
        assert_eq!(
            uri_user("sip:08045678901@10.0.0.1;user=phone").as_deref(),
            Some("08045678901")
        );
        assert_eq!(uri_user("sip:10.0.0.1"), None);
    }

    #[test]
    fn caller_number_and_name() {
        assert_eq!(
            caller("\"Asha \\\"K\\\"\" <sip:09876543210@carrier>;tag=1"),
            ("+919876543210".to_string(), Some("Asha \"K\"".to_string()))
        );
        assert_eq!(
            caller("Bob <sip:+14155550100@carrier>;tag=1"),
            ("+14155550100".to_string(), Some("Bob".to_string()))
        );
        assert_eq!(
            caller("<sip:anonymous@anonymous.invalid>;tag=1"),
            ("anonymous".to_string(), None)
        );
        assert_eq!(caller("sip:9876543210@c;tag=1").1, None);
    }

    #[test]
    fn sets_the_uri_user() {
        assert_eq!(
            set_user("<sip:08045678901@edge:5060;user=phone>", "c2c-ab").as_deref(),
            Some("<sip:c2c-ab@edge:5060;user=phone>")
        );
        assert_eq!(
            set_user("\"D\" <sip:edge>", "r").as_deref(),
            Some("\"D\" <sip:r@edge>")
        );
        assert_eq!(set_user("<tel:+918045678901>", "r"), None);
    }
}
