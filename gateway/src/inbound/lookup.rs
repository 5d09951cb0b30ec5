//! The CRM lead lookup of an inbound call (docs/inbound.md, "Lead lookup").
//!
//! `POST <lookup_url>` with the tenant's outbound key (`X-api-key`, as on webhooks) and
//! `{"call_id", "phone_from", "phone_to"}`; the CRM answers `200` with the lead as a
//! JSON object (its `lead_id`, or `id`, names it on the call record and the webhook),
//! or `404` / `204` / `null` for no lead. Bounded in time (`lookup_timeout_ms`) and in
//! size; every failure just means no lead: the call rings anyway.

use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;

/// Largest lead body accepted: a lead card, not a database dump.
pub const MAX_LEAD_BYTES: usize = 16 * 1024;

/// The client lookups use: no redirects (a moved endpoint is re-configured, and a
/// redirect could point inside), and with `allow_private` off the same DNS guard as
/// webhooks.
pub fn client(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(16);
    if !allow_private {
        b = b.dns_resolver(c2c_crm_webhooks::SsrfGuardResolver::shared());
    }
    b.build()
}

#[derive(Serialize)]
struct LookupRequest<'a> {
    call_id: &'a str,
    phone_from: &'a str,
    phone_to: &'a str,
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum LeadOutcome {
    Found {
        lead: Box<RawValue>,
        lead_id: Option<String>,
    },
    None,
    Timeout,
    Error(String),
}

impl LeadOutcome {
    /// The bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            LeadOutcome::Found { .. } => "found",
            LeadOutcome::None => "none",
            LeadOutcome::Timeout => "timeout",
            LeadOutcome::Error(_) => "error",
        }
    }
}

/// One lookup.
pub struct Lookup<'a> {
    pub url: &'a str,
    pub outbound_key: &'a str,
    pub allow_private: bool,
    pub timeout: Duration,
    pub call_id: &'a str,
    pub caller: &'a str,
    pub did: &'a str,
}

pub async fn lookup(client: &reqwest::Client, l: Lookup<'_>) -> LeadOutcome {
    if let Err(e) = c2c_crm_webhooks::guard::check_target(l.url, l.allow_private) {
        return LeadOutcome::Error(format!("lookup_url refused: {}", e.as_str()));
    }
    let body = LookupRequest {
        call_id: l.call_id,
        phone_from: l.caller,
        phone_to: l.did,
    };
    let request = client
        .post(l.url)
        .header("X-api-key", l.outbound_key)
        .json(&body)
        .send();
    match tokio::time::timeout(l.timeout, async {
        let resp = request.await.map_err(|e| e.without_url().to_string())?;
        read(resp).await
    })
    .await
    {
        Err(_) => LeadOutcome::Timeout,
        Ok(Err(e)) => LeadOutcome::Error(e),
        Ok(Ok(o)) => o,
    }
}

async fn read(mut resp: reqwest::Response) -> Result<LeadOutcome, String> {
    match resp.status().as_u16() {
        200 => {}
        204 | 404 => return Ok(LeadOutcome::None),
        s => return Err(format!("status {s}")),
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > MAX_LEAD_BYTES {
            return Err(format!("lead larger than {MAX_LEAD_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    parse(&body)
}

/// A lookup answer: a JSON object is the lead, `null` (or empty) none, anything else
/// an error.
pub fn parse(body: &[u8]) -> Result<LeadOutcome, String> {
    let text = std::str::from_utf8(body).map_err(|_| "lead is not UTF-8".to_owned())?;
    if text.trim().is_empty() || text.trim() == "null" {
        return Ok(LeadOutcome::None);
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("lead is not JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("lead is not a JSON object".to_owned());
    };
    let lead_id = ["lead_id", "id"].iter().find_map(|k| match obj.get(*k) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    let lead = RawValue::from_string(text.trim().to_owned()).map_err(|e| e.to_string())?;
    Ok(LeadOutcome::Found { lead, lead_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lead_is_a_json_object_named_by_lead_id_or_id() {
        match parse(br#"{"lead_id":"L-7","name":"Asha"}"#).unwrap() {
            LeadOutcome::Found { lead, lead_id } => {
                assert_eq!(lead_id.as_deref(), Some("L-7"));
                assert!(lead.get().contains("Asha"));
            }
            o => panic!("{o:?}"),
        }
        match parse(br#"{"id":42}"#).unwrap() {
            LeadOutcome::Found { lead_id, .. } => assert_eq!(lead_id.as_deref(), Some("42")),
            o => panic!("{o:?}"),
        }
        assert!(matches!(parse(b"null").unwrap(), LeadOutcome::None));
        assert!(matches!(parse(b"").unwrap(), LeadOutcome::None));
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{oops").is_err());
    }
}
