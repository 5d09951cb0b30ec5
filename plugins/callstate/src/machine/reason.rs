//! Reasons from outside (LiveKit's error text) made safe to store and show.

use super::MAX_REASON_LEN;

/// Keeps external error text short and free of anything that looks like a phone number or
/// dial string (runs of 6+ digits), since it is shown to the browser.
pub(super) fn sanitize_reason(reason: &str, fallback: &str) -> String {
    let mut out = String::with_capacity(reason.len().min(MAX_REASON_LEN));
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 6 {
            out.push('*');
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in reason.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut out);
        if !c.is_control() {
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    let out: String = out.chars().take(MAX_REASON_LEN).collect();
    if out.is_empty() {
        fallback.to_owned()
    } else {
        out
    }
}
