//! Signed webhooks exactly as LiveKit's `webhook.URLNotifier` sends them:
//!
//! * body: `protojson.Marshal(event)` — lowerCamelCase names, enums by name
//!   (`"kind":"SIP"`), int64 as strings, default values omitted;
//! * `Content-Type: application/webhook+json`;
//! * `Authorization: <JWT>` — the raw token, no `Bearer` — HS256 with the API secret,
//!   claims `iss` (API key), `nbf`, `iat`, `exp` (5 minutes) and
//!   `sha256` = base64 (standard, padded) of SHA-256 over the exact body bytes;
//! * event `id` = `EV_` + 12 base62 chars, `createdAt` = Unix seconds at emit time;
//! * a bounded queue: when it is full the event is dropped and counted, and the next
//!   event carries `numDropped`, as LiveKit does.
//!
//! Also here: helpers that forge webhooks a receiver must reject.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use bytes::Bytes;
use livekit_protocol as proto;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::core::Counters;
use crate::http_client;
use crate::ids::{guid, WEBHOOK_EVENT_PREFIX};
use crate::jwt::{now_unix, sign_hs256};
use crate::SimError;

pub const CONTENT_TYPE: &str = "application/webhook+json";
/// `SetValidFor(5 * time.Minute)` in the Go notifier.
pub const TOKEN_VALIDITY: Duration = Duration::from_secs(300);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
const DELIVERY_ATTEMPTS: u32 = 3;

/// Webhook event names used by the simulator.
pub mod event {
    pub const ROOM_STARTED: &str = "room_started";
    pub const ROOM_FINISHED: &str = "room_finished";
    pub const PARTICIPANT_JOINED: &str = "participant_joined";
    pub const PARTICIPANT_LEFT: &str = "participant_left";
    pub const TRACK_PUBLISHED: &str = "track_published";
}

/// A webhook ready to send: the exact body bytes and the `Authorization` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedWebhook {
    pub body: Vec<u8>,
    pub authorization: String,
}

impl SignedWebhook {
    /// The body as text (it is always UTF-8 JSON when produced here).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Ways to spoil a webhook, for negative tests of receivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forgery {
    /// Signed with a different secret.
    WrongSecret,
    /// Valid signature, `exp` an hour ago.
    Expired,
    /// Valid signature, `nbf` an hour ahead.
    NotYetValid,
    /// Token signed for the original body, body altered afterwards.
    TamperedBody,
    /// Valid signature but no `sha256` claim.
    MissingHash,
    /// Signed with the right secret but naming another API key.
    WrongIssuer,
    /// `alg: none`, empty signature.
    Unsigned,
}

#[derive(Serialize)]
struct WebhookClaims<'a> {
    iss: &'a str,
    nbf: u64,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    sha256: &'a str,
}

/// base64 (standard alphabet, padded) of SHA-256 over `body`.
pub fn body_sha256(body: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(body))
}

/// protojson encoding of an event (what LiveKit puts on the wire).
pub fn encode_event(ev: &proto::WebhookEvent) -> Result<Vec<u8>, SimError> {
    serde_json::to_vec(ev).map_err(|e| SimError::Encode(e.to_string()))
}

/// Signs `body` like LiveKit: valid now, for [`TOKEN_VALIDITY`].
pub fn sign_webhook(
    body: Vec<u8>,
    api_key: &str,
    api_secret: &str,
) -> Result<SignedWebhook, SimError> {
    let now = now_unix();
    sign_at(
        body,
        api_key,
        api_secret,
        now,
        now + TOKEN_VALIDITY.as_secs(),
    )
}

fn sign_at(
    body: Vec<u8>,
    api_key: &str,
    api_secret: &str,
    nbf: u64,
    exp: u64,
) -> Result<SignedWebhook, SimError> {
    let hash = body_sha256(&body);
    let claims = WebhookClaims {
        iss: api_key,
        nbf,
        iat: nbf,
        exp,
        sha256: &hash,
    };
    Ok(SignedWebhook {
        authorization: sign_hs256(&claims, api_secret)?,
        body,
    })
}

/// Builds a webhook for `body` spoiled by `forgery`.
pub fn forge_webhook(
    body: Vec<u8>,
    api_key: &str,
    api_secret: &str,
    forgery: Forgery,
) -> Result<SignedWebhook, SimError> {
    let now = now_unix();
    let valid_until = now + TOKEN_VALIDITY.as_secs();
    match forgery {
        Forgery::WrongSecret => sign_at(
            body,
            api_key,
            &format!("{api_secret}-forged"),
            now,
            valid_until,
        ),
        Forgery::Expired => sign_at(body, api_key, api_secret, now - 7200, now - 3600),
        Forgery::NotYetValid => sign_at(body, api_key, api_secret, now + 3600, now + 7200),
        Forgery::WrongIssuer => sign_at(
            body,
            &format!("{api_key}-other"),
            api_secret,
            now,
            valid_until,
        ),
        Forgery::TamperedBody => {
            let mut signed = sign_at(body, api_key, api_secret, now, valid_until)?;
            signed.body = tamper(&signed.body);
            Ok(signed)
        }
        Forgery::MissingHash => {
            let claims = WebhookClaims {
                iss: api_key,
                nbf: now,
                iat: now,
                exp: valid_until,
                sha256: "",
            };
            Ok(SignedWebhook {
                authorization: sign_hs256(&claims, api_secret)?,
                body,
            })
        }
        Forgery::Unsigned => {
            let claims = WebhookClaims {
                iss: api_key,
                nbf: now,
                iat: now,
                exp: valid_until,
                sha256: &body_sha256(&body),
            };
            let payload =
                serde_json::to_vec(&claims).map_err(|e| SimError::Encode(e.to_string()))?;
            let token = format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
                URL_SAFE_NO_PAD.encode(payload)
            );
            Ok(SignedWebhook {
                authorization: token,
                body,
            })
        }
    }
}

/// Changes the body while keeping it valid JSON when possible.
fn tamper(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let swapped = text.replacen("participant_left", "participant_joined", 1);
    if swapped != text {
        return swapped.into_bytes();
    }
    let mut out = body.to_vec();
    out.extend_from_slice(b" ");
    out
}

/// A LiveKit webhook event without id/timestamp (the sink stamps those).
pub(crate) fn event(
    name: &str,
    room: &proto::Room,
    participant: Option<proto::ParticipantInfo>,
) -> proto::WebhookEvent {
    proto::WebhookEvent {
        event: name.to_owned(),
        room: Some(room.clone()),
        participant,
        ..Default::default()
    }
}

/// Non-blocking producer side of the webhook queue.
#[derive(Clone)]
pub(crate) struct WebhookSink {
    tx: mpsc::Sender<proto::WebhookEvent>,
    dropped: Arc<AtomicI32>,
    counters: Arc<Counters>,
}

impl WebhookSink {
    /// Stamps and queues an event; drops (and counts) it when the queue is full.
    pub(crate) fn emit(&self, mut ev: proto::WebhookEvent) {
        ev.id = guid(WEBHOOK_EVENT_PREFIX);
        ev.created_at = i64::try_from(now_unix()).unwrap_or(i64::MAX);
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(ev) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.webhook_dropped();
        }
    }
}

/// The most recent signed webhooks, oldest first (bounded).
pub(crate) struct WebhookLog {
    entries: Mutex<VecDeque<SignedWebhook>>,
    capacity: usize,
}

impl WebhookLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
        }
    }

    fn push(&self, w: SignedWebhook) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(w);
    }

    pub(crate) fn snapshot(&self) -> Vec<SignedWebhook> {
        self.entries.lock().iter().cloned().collect()
    }

    pub(crate) fn last(&self) -> Option<SignedWebhook> {
        self.entries.lock().back().cloned()
    }
}

/// Where and as whom the worker sends.
pub(crate) struct WorkerConfig {
    pub url: Option<String>,
    pub api_key: String,
    pub api_secret: String,
}

/// Creates the queue; returns the sink and the worker future's inputs.
pub(crate) fn channel(
    capacity: usize,
    counters: Arc<Counters>,
) -> (
    WebhookSink,
    mpsc::Receiver<proto::WebhookEvent>,
    Arc<AtomicI32>,
) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicI32::new(0));
    (
        WebhookSink {
            tx,
            dropped: dropped.clone(),
            counters,
        },
        rx,
        dropped,
    )
}

/// Signs and delivers queued events in order until shutdown.
pub(crate) async fn run_worker(
    mut rx: mpsc::Receiver<proto::WebhookEvent>,
    cfg: WorkerConfig,
    log: Arc<WebhookLog>,
    counters: Arc<Counters>,
    dropped: Arc<AtomicI32>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        if cfg.url.is_none() && log.capacity == 0 {
            // Nobody would ever see this event: skip encoding and signing it (about 9 % of
            // the simulator's CPU under benchmark load).
            continue;
        }
        let mut ev = ev;
        // Deprecated in the proto, but LiveKit's URLNotifier still fills it.
        #[allow(deprecated)]
        {
            ev.num_dropped = dropped.swap(0, Ordering::Relaxed);
        }
        let signed = match encode_event(&ev)
            .and_then(|body| sign_webhook(body, &cfg.api_key, &cfg.api_secret))
        {
            Ok(signed) => signed,
            Err(e) => {
                tracing::warn!(error = %e, event = %ev.event, "livekit-sim: cannot sign webhook");
                continue;
            }
        };
        log.push(signed.clone());
        let Some(url) = cfg.url.as_deref() else {
            continue;
        };
        match deliver_with_retries(url, &signed).await {
            Ok(status) if (200..300).contains(&status) => counters.webhook_sent(),
            Ok(status) => {
                counters.webhook_failed();
                tracing::warn!(status, event = %ev.event, "livekit-sim: webhook rejected");
            }
            Err(e) => {
                counters.webhook_failed();
                tracing::warn!(error = %e, event = %ev.event, "livekit-sim: webhook delivery failed");
            }
        }
    }
}

async fn deliver_with_retries(url: &str, signed: &SignedWebhook) -> Result<u16, SimError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = deliver(url, signed).await;
        let retryable = match &result {
            Ok(status) => *status >= 500 && *status != 501,
            Err(_) => true,
        };
        if !retryable || attempt >= DELIVERY_ATTEMPTS {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
}

/// POSTs one webhook (single attempt) and returns the HTTP status.
pub async fn deliver(url: &str, signed: &SignedWebhook) -> Result<u16, SimError> {
    let headers = [
        ("content-type", CONTENT_TYPE),
        ("authorization", signed.authorization.as_str()),
        ("user-agent", "livekit-sim"),
    ];
    let resp = http_client::post(
        url,
        &headers,
        Bytes::from(signed.body.clone()),
        DELIVERY_TIMEOUT,
    )
    .await?;
    Ok(resp.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::access_token::TokenVerifier;
    use livekit_api::webhooks::WebhookReceiver;

    fn sample_body() -> Vec<u8> {
        let mut p = proto::ParticipantInfo {
            identity: "sip-customer".into(),
            kind: proto::participant_info::Kind::Sip as i32,
            disconnect_reason: proto::DisconnectReason::UserRejected as i32,
            ..Default::default()
        };
        p.attributes
            .insert("sip.callStatus".into(), "ringing".into());
        let mut ev = event(
            event::PARTICIPANT_LEFT,
            &proto::Room {
                name: "c2c-room".into(),
                creation_time: 1_700_000_000,
                ..Default::default()
            },
            Some(p),
        );
        ev.id = "EV_test".into();
        ev.created_at = 1_700_000_001;
        encode_event(&ev).unwrap()
    }

    #[test]
    fn body_is_protojson() {
        let v: serde_json::Value = serde_json::from_slice(&sample_body()).unwrap();
        assert_eq!(v["event"], "participant_left");
        assert_eq!(v["createdAt"], "1700000001");
        assert_eq!(v["room"]["creationTime"], "1700000000");
        assert_eq!(v["participant"]["kind"], "SIP");
        assert_eq!(v["participant"]["disconnectReason"], "USER_REJECTED");
        assert_eq!(v["participant"]["attributes"]["sip.callStatus"], "ringing");
        assert!(v.get("created_at").is_none());
    }

    #[test]
    fn signed_verifies_with_sdk_receiver_and_forgeries_do_not() {
        let receiver = WebhookReceiver::new(TokenVerifier::with_api_key("APIkey", "secret"));
        let good = sign_webhook(sample_body(), "APIkey", "secret").unwrap();
        let ev = receiver
            .receive(&good.body_text(), &good.authorization)
            .unwrap();
        assert_eq!(ev.event, "participant_left");
        for forgery in [
            Forgery::WrongSecret,
            Forgery::Expired,
            Forgery::NotYetValid,
            Forgery::TamperedBody,
            Forgery::MissingHash,
            Forgery::WrongIssuer,
            Forgery::Unsigned,
        ] {
            let bad = forge_webhook(sample_body(), "APIkey", "secret", forgery).unwrap();
            assert!(
                receiver
                    .receive(&bad.body_text(), &bad.authorization)
                    .is_err(),
                "{forgery:?} was accepted"
            );
        }
    }

    /// Runs the worker (no URL) over `n` events with a log of `capacity`; returns the log.
    async fn log_after(n: usize, capacity: usize) -> Vec<SignedWebhook> {
        let counters = Arc::new(Counters::default());
        let (sink, rx, dropped) = channel(16, counters.clone());
        for i in 0..n {
            let ev = proto::WebhookEvent {
                event: "room_started".into(),
                id: format!("EV_{i}"),
                ..Default::default()
            };
            sink.tx.send(ev).await.unwrap();
        }
        drop(sink);
        let log = Arc::new(WebhookLog::new(capacity));
        let cfg = WorkerConfig {
            url: None,
            api_key: "APIkey".into(),
            api_secret: "secret-secret-secret-secret-secret".into(),
        };
        let (_stop, shutdown) = watch::channel(false);
        run_worker(rx, cfg, log.clone(), counters, dropped, shutdown).await;
        log.snapshot()
    }

    #[tokio::test]
    async fn the_log_keeps_the_newest_events_and_a_zero_log_keeps_none() {
        assert_eq!(log_after(3, 2).await.len(), 2);
        assert!(log_after(3, 0).await.is_empty());
    }

    #[test]
    fn hash_is_standard_base64() {
        assert_eq!(
            body_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
