//! One HTTP attempt: the Standard Webhooks request for a job and what came back.
//! Nothing here decides a job's next state (that is [`crate::deliver`]'s outcome table).

use std::time::SystemTime;

use c2c_callstate::OutboxEntry;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};

use crate::backoff;
use crate::deliver::now_ms;
use crate::guard::check_target;
use crate::policy::DeliveryPolicy;
use crate::sign::sign;
use crate::source::Endpoint;

/// At most this much of a response body is read (and discarded) so the
/// connection can be reused; the CRM's body is never interpreted or logged.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Result of talking to the endpoint (or not getting that far).
pub(crate) enum Attempt {
    Status {
        code: u16,
        retry_after: Option<std::time::Duration>,
    },
    /// No HTTP response; short PII-free reason.
    Transport(&'static str),
    /// Refused before sending (configuration problem); short PII-free reason.
    NotSent(&'static str),
}

/// One HTTP POST of `body` (the job's stored payload, or what a
/// [`crate::PayloadExtension`] made of it). Never logs or returns payload, key, secret or
/// URL details.
pub(crate) async fn post(
    client: &reqwest::Client,
    policy: &DeliveryPolicy,
    job: &OutboxEntry,
    body: &str,
    ep: &Endpoint,
) -> Attempt {
    let url = match check_target(&ep.url, policy.allow_private_targets) {
        Ok(url) => url,
        Err(refused) => return Attempt::NotSent(refused.as_str()),
    };
    let ts = now_ms() / 1000;
    let headers = match build_headers(job, body, ep, ts) {
        Ok(h) => h,
        Err(reason) => return Attempt::NotSent(reason),
    };
    let request = client
        .post(url)
        .headers(headers)
        .timeout(policy.request_timeout)
        .body(body.to_owned());
    match request.send().await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| backoff::parse_retry_after(v, SystemTime::now()));
            drain(resp).await;
            Attempt::Status { code, retry_after }
        }
        Err(e) => Attempt::Transport(classify(&e)),
    }
}

fn build_headers(
    job: &OutboxEntry,
    body: &str,
    ep: &Endpoint,
    ts: u64,
) -> Result<HeaderMap, &'static str> {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut key = HeaderValue::from_str(&ep.outbound_key)
        .map_err(|_| "outbound key is not a valid header value")?;
    key.set_sensitive(true);
    h.insert(HeaderName::from_static("x-api-key"), key);
    let id = HeaderValue::from_str(&job.webhook_id)
        .map_err(|_| "webhook id is not a valid header value")?;
    h.insert(HeaderName::from_static("webhook-id"), id);
    h.insert(
        HeaderName::from_static("webhook-timestamp"),
        HeaderValue::from(ts),
    );
    // An empty secret would be a signature anyone can forge: send none instead.
    if let Some(secret) = ep.signing_secret.as_deref().filter(|s| !s.is_empty()) {
        let sig = sign(secret, &job.webhook_id, ts, body.as_bytes());
        let sig = HeaderValue::from_str(&sig).map_err(|_| "signature header invalid")?;
        h.insert(HeaderName::from_static("webhook-signature"), sig);
    }
    Ok(h)
}

/// Read and discard a bounded amount of the body so keep-alive can reuse the
/// connection; anything larger is cut off by dropping the response.
async fn drain(mut resp: reqwest::Response) {
    let mut seen = 0usize;
    while seen < DRAIN_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => seen = seen.saturating_add(chunk.len()),
            _ => break,
        }
    }
}

fn classify(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_redirect() {
        "redirect error"
    } else if e.is_body() || e.is_request() {
        "request error"
    } else {
        "http client error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2c_callstate::OutboxState;

    #[test]
    fn headers_carry_id_timestamp_key_and_signature() {
        let job = OutboxEntry {
            seq: 1,
            webhook_id: "msg_0123".into(),
            call_id: "c2c_0123".into(),
            tenant: "acme".into(),
            payload_json: r#"{"x":1}"#.into(),
            created_ms: 0,
            attempts: 0,
            next_attempt_ms: 0,
            state: OutboxState::Pending,
            last_error: None,
            delivered_ms: None,
            replayed_ms: None,
            retry_after: false,
        };
        let mut ep = Endpoint {
            url: "https://crm.example/h".into(),
            outbound_key: "key-1".into(),
            signing_secret: Some(b"s3cret".to_vec()),
            disabled: false,
        };
        let h = build_headers(&job, &job.payload_json, &ep, 1_700_000_000).unwrap();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-api-key"], "key-1");
        assert!(h["x-api-key"].is_sensitive());
        assert_eq!(h["webhook-id"], "msg_0123");
        assert_eq!(h["webhook-timestamp"], "1700000000");
        let sig = h["webhook-signature"].to_str().unwrap();
        assert!(crate::sign::verify(
            b"s3cret",
            "msg_0123",
            1_700_000_000,
            br#"{"x":1}"#,
            sig
        ));
        ep.signing_secret = Some(Vec::new());
        assert!(!build_headers(&job, &job.payload_json, &ep, 1)
            .unwrap()
            .contains_key("webhook-signature"));
        ep.signing_secret = None;
        assert!(!build_headers(&job, &job.payload_json, &ep, 1)
            .unwrap()
            .contains_key("webhook-signature"));
        ep.outbound_key = "bad\nkey".into();
        assert!(build_headers(&job, &job.payload_json, &ep, 1).is_err());
    }
}
