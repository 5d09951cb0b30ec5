//! The wallet statement as CSV (RFC 4180), for spreadsheets and accounting imports.
//!
//! Text cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR at
//! the start) get a leading `'`: a reason typed into the owner API must not become a
//! formula on an accountant's machine (OWASP "CSV injection").

use bytes::Bytes;
use c2c_billing::LedgerEntry;

const HEADER: &str =
    "id,seq,at,kind,amount_paise,balance_after_paise,actor,reason,call_id,request_id\r\n";

/// One text cell: guarded against formulas, quoted when it holds a separator, quote or
/// line break.
pub(crate) fn text(out: &mut String, s: &str) {
    let guard = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = guard || s.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// The entries under a header line, CRLF line ends.
pub fn statement(entries: &[LedgerEntry]) -> Bytes {
    use std::fmt::Write;
    let mut out = String::with_capacity(HEADER.len() + entries.len() * 120);
    out.push_str(HEADER);
    for e in entries {
        let at = chrono::DateTime::from_timestamp_millis(i64::try_from(e.at_ms).unwrap_or(0))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default();
        // Ids, numbers and kinds are plain ASCII without separators (the ledger checks
        // them); only the free-text cells need `text`.
        let _ = write!(
            out,
            "{},{},{at},{},{},{},",
            e.id,
            e.seq,
            e.kind.as_str(),
            e.amount_paise,
            e.balance_after_paise
        );
        text(&mut out, &e.actor);
        out.push(',');
        text(&mut out, &e.reason);
        out.push(',');
        text(&mut out, e.call_id.as_deref().unwrap_or(""));
        out.push(',');
        text(&mut out, e.request_id.as_deref().unwrap_or(""));
        out.push_str("\r\n");
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use c2c_billing::{EntryKind, LedgerEntry};

    use super::statement;

    #[test]
    fn text_is_quoted_and_formulas_are_defused() {
        let e = LedgerEntry {
            id: "acme/1".into(),
            seq: 1,
            at_ms: 1_764_806_400_000,
            kind: EntryKind::TopUp,
            amount_paise: 500_000,
            balance_after_paise: 500_000,
            actor: "owner:owner-1".into(),
            reason: "=HYPERLINK(\"x\"), paid".into(),
            call_id: None,
            request_id: Some("t-1".into()),
        };
        let csv = String::from_utf8(statement(&[e]).to_vec()).unwrap_or_default();
        let line = csv.lines().nth(1).unwrap_or_default();
        assert_eq!(
            line,
            "acme/1,1,2025-12-04T00:00:00.000Z,top_up,500000,500000,owner:owner-1,\
             \"'=HYPERLINK(\"\"x\"\"), paid\",,t-1"
        );
    }
}
