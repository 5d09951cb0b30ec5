//! The extended call webhook, for tenants that opt in (`[crm_webhook] media_in_payload =
//! true`): the contract's payload exactly, then one more field, `media` — what the SIP
//! edge measured of an anchored call (the object `GET /api/c2c/calls/{id}` shows), or
//! `null` for a call whose trunk is not anchored. Tenants that did not opt in get the
//! contract's payload and nothing else.
//!
//! The relay reports after the dialog ended (its last packet counted), which is after the
//! call ended and its webhook was queued. So the first attempt of an anchored call's
//! webhook waits for the report, at most [`MEDIA_WAIT`] after the end: the runner of
//! `Effect::MediaRecorded` wakes it ([`MediaWaiters`]), and it also re-reads the record
//! every second, for a report recorded by another node of a fleet. A report later than
//! that is not waited for: the webhook goes with `"media": null` and is counted
//! (`c2c_webhook_media_missing_total`); a retry after that carries the report if it has
//! come by then (the body is built per attempt from the record).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_callstate::{is_valid_call_id, CallRecord, CallStore, OutboxEntry};
use c2c_crm_webhooks::PayloadExtension;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::api::contract::extended_webhook_body;
use crate::app::PolicyHandle;
use crate::clock::now_ms;

/// How long after the end a webhook waits for its call's media report. The relay
/// reports once the dialog's BYE is answered, normally well under a second after the
/// gateway deleted the room.
pub const MEDIA_WAIT: Duration = Duration::from_secs(5);

/// How often a waiting webhook re-reads its record (a fleet node that did not record the
/// report is not woken).
const REREAD: Duration = Duration::from_secs(1);

/// Webhooks waiting for their call's media report, by call id.
#[derive(Default)]
pub struct MediaWaiters {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
}

impl MediaWaiters {
    /// The report of `call_id` is on its record (`Effect::MediaRecorded`).
    pub fn recorded(&self, call_id: &str) {
        if let Some(n) = self.waiting.lock().get(call_id) {
            // A permit is kept when the waiter is between its registration and its wait.
            n.notify_one();
        }
    }

    fn register(self: &Arc<Self>, call_id: &str) -> Waiting {
        let notify = self
            .waiting
            .lock()
            .entry(call_id.to_string())
            .or_default()
            .clone();
        Waiting {
            waiters: self.clone(),
            call_id: call_id.to_string(),
            notify,
        }
    }
}

/// One webhook's wait; unregistered when dropped (also when the attempt is cancelled).
struct Waiting {
    waiters: Arc<MediaWaiters>,
    call_id: String,
    notify: Arc<Notify>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.waiters.waiting.lock().remove(&self.call_id);
    }
}

/// The deliverer's [`PayloadExtension`]: the extended body for opted-in tenants.
pub struct MediaPayload {
    store: Arc<dyn CallStore>,
    policy: Arc<PolicyHandle>,
    waiters: Arc<MediaWaiters>,
    missing: prometheus::IntCounterVec,
    /// [`MEDIA_WAIT`] (shorter in tests).
    wait: Duration,
}

impl MediaPayload {
    pub fn new(
        store: Arc<dyn CallStore>,
        policy: Arc<PolicyHandle>,
        waiters: Arc<MediaWaiters>,
        missing: prometheus::IntCounterVec,
    ) -> Self {
        Self {
            store,
            policy,
            waiters,
            missing,
            wait: MEDIA_WAIT,
        }
    }

    /// Whether the call's trunk is anchored under the policy in force (its relay will
    /// report).
    fn anchored(&self, rec: &CallRecord) -> bool {
        self.policy.get().tenant(&rec.tenant).is_some_and(|t| {
            t.trunks
                .iter()
                .any(|tr| tr.label == rec.trunk_label && tr.media == c2c_tenancy::MediaMode::Anchor)
        })
    }

    async fn read(&self, call_id: &str) -> Option<CallRecord> {
        match self.store.get(call_id).await {
            Ok(rec) => rec,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the call for its extended webhook; sent with media null");
                None
            }
        }
    }

    /// The record once its media report is on it, or as it is at the wait's end.
    async fn with_media(&self, job: &OutboxEntry) -> Option<CallRecord> {
        // Registered before the first read, so a report recorded in between still wakes us.
        let waiting = self.waiters.register(&job.call_id);
        let mut rec = self.read(&job.call_id).await?;
        if rec.media.is_some() || !self.anchored(&rec) {
            return Some(rec);
        }
        let ended = rec.ended_ms.unwrap_or(job.created_ms);
        let deadline = ended.saturating_add(u64::try_from(self.wait.as_millis()).unwrap_or(0));
        loop {
            let left = deadline.saturating_sub(now_ms());
            if left == 0 {
                break;
            }
            let nap = REREAD.min(Duration::from_millis(left));
            tokio::select! {
                _ = waiting.notify.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
            match self.read(&job.call_id).await {
                Some(r) if r.media.is_some() => return Some(r),
                Some(r) => rec = r,
                None => break,
            }
        }
        // Counted and logged once per webhook, at its first attempt: a retry finds the
        // wait over and says nothing new.
        if job.attempts == 0 {
            self.missing.with_label_values(&[&rec.tenant]).inc();
            tracing::info!(tenant = %rec.tenant, trunk = %rec.trunk_label, "extended webhook sent without media: the SIP edge's report did not come in time");
        }
        Some(rec)
    }
}

#[async_trait]
impl PayloadExtension for MediaPayload {
    async fn body(&self, job: &OutboxEntry) -> Option<String> {
        let opted_in = self
            .policy
            .get()
            .tenant(&job.tenant)
            .and_then(|t| t.crm_webhook.as_ref())
            .is_some_and(|h| h.media_in_payload);
        // Tenant events (a low balance) have their own shape: only call webhooks grow.
        if !opted_in || !is_valid_call_id(&job.call_id) {
            return None;
        }
        let rec = self.with_media(job).await;
        extended_webhook_body(
            &job.payload_json,
            rec.as_ref().and_then(|r| r.media.as_ref()),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use c2c_callstate::{CallKnobs, CallMedia, CallStatus, MemCallStore, NewCall, Phase};
    use c2c_tenancy::MediaMode;

    use super::*;

    const CALL: &str = "c2c_0123456789abcdef0123456789abcdef";

    /// The example policy with acme's trunk `media` and `media_in_payload` as given.
    fn policy(opted_in: bool, media: MediaMode) -> (tempfile::TempDir, Arc<PolicyHandle>) {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).expect("mkdir");
            for e in std::fs::read_dir(from).expect("read_dir") {
                let e = e.expect("entry");
                let dest = to.join(e.file_name());
                if e.file_type().expect("type").is_dir() {
                    copy(&e.path(), &dest);
                } else {
                    std::fs::copy(e.path(), dest).expect("copy");
                }
            }
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        copy(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
            &dir,
        );
        let acme = dir.join("tenants/acme.toml");
        let text = std::fs::read_to_string(&acme).expect("acme.toml");
        let text = text
            .replace(
                "\nmedia = \"direct\"",
                &format!("\nmedia = \"{}\"", media.as_str()),
            )
            .replace(
                "[crm_webhook]\n",
                &format!("[crm_webhook]\nmedia_in_payload = {opted_in}\n"),
            );
        std::fs::write(&acme, text).expect("write acme.toml");
        let p = c2c_tenancy::load_dir(&dir).expect("the edited example policy is valid");
        let t = p.tenant("acme").expect("acme");
        assert_eq!(t.trunks[0].media, media);
        assert_eq!(
            t.crm_webhook.as_ref().map(|h| h.media_in_payload),
            Some(opted_in)
        );
        (tmp, Arc::new(PolicyHandle::new(dir, p)))
    }

    /// An ENDED call of acme on its first trunk, stored, and its webhook job.
    async fn ended(store: &MemCallStore, p: &PolicyHandle) -> (CallRecord, OutboxEntry) {
        let trunk = p.get().tenant("acme").expect("acme").trunks[0]
            .label
            .clone();
        let (mut rec, _) = CallRecord::new(
            NewCall {
                call_id: CALL.into(),
                room: "room".into(),
                tenant: "acme".into(),
                case_id: "case-1".into(),
                customer_crm_id: "cust-1".into(),
                agent_id: "agent-42".into(),
                customer_number: "9530251797".into(),
                phone_from: "+914000000000".into(),
                trunk_label: trunk,
            },
            &CallKnobs::default(),
            now_ms(),
        );
        rec.phase = Phase::Ended;
        rec.call_status = Some(CallStatus::Answered);
        rec.ended_ms = Some(now_ms());
        store.create(&rec).await.expect("create");
        let job = OutboxEntry::for_call(&rec, 1).expect("job");
        (rec, job)
    }

    fn extension(store: Arc<MemCallStore>, p: Arc<PolicyHandle>, wait_ms: u64) -> MediaPayload {
        let missing = prometheus::IntCounterVec::new(prometheus::Opts::new("m", "m"), &["tenant"])
            .expect("counter");
        let mut x = MediaPayload::new(store, p, Arc::default(), missing);
        x.wait = Duration::from_millis(wait_ms);
        x
    }

    fn media() -> CallMedia {
        CallMedia {
            media_timeout: true,
            strangers: 2,
            ..CallMedia::default()
        }
    }

    #[tokio::test]
    async fn tenants_that_did_not_opt_in_get_the_contract_payload() {
        let store = Arc::new(MemCallStore::new());
        let (_dir, p) = policy(false, MediaMode::Anchor);
        let (_, job) = ended(&store, &p).await;
        assert_eq!(extension(store, p, 50).body(&job).await, None);
    }

    #[tokio::test]
    async fn the_contract_fields_come_first_then_media() {
        let store = Arc::new(MemCallStore::new());
        let (_dir, p) = policy(true, MediaMode::Anchor);
        let (mut rec, job) = ended(&store, &p).await;
        let prev = rec.version;
        rec.media = Some(media());
        rec.version += 1;
        store.apply(prev, &rec, None).await.expect("apply");
        let body = extension(store, p, 5_000)
            .body(&job)
            .await
            .expect("extended");
        let contract = job.payload_json.strip_suffix('}').expect("object");
        assert!(body.starts_with(contract), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["media"]["media_timeout"], true, "{body}");
        assert_eq!(v["media"]["dropped_strangers"], 2, "{body}");
        assert_eq!(v.as_object().expect("object").len(), 9, "{body}");
    }

    #[tokio::test]
    async fn a_direct_trunk_call_has_media_null_at_once() {
        let store = Arc::new(MemCallStore::new());
        let (_dir, p) = policy(true, MediaMode::Direct);
        let (_, job) = ended(&store, &p).await;
        let x = extension(store, p, 60_000);
        let started = std::time::Instant::now();
        let body = x.body(&job).await.expect("extended");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no wait for a report that never comes"
        );
        assert!(body.ends_with(r#","media":null}"#), "{body}");
        assert_eq!(x.missing.with_label_values(&["acme"]).get(), 0);
    }

    #[tokio::test]
    async fn an_anchored_call_waits_for_its_report() {
        let store = Arc::new(MemCallStore::new());
        let (_dir, p) = policy(true, MediaMode::Anchor);
        let (rec, job) = ended(&store, &p).await;
        let x = Arc::new(extension(store.clone(), p, 60_000));
        let waiting = tokio::spawn({
            let x = x.clone();
            async move { x.body(&job).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        let mut next = rec.clone();
        next.media = Some(media());
        next.version += 1;
        store.apply(rec.version, &next, None).await.expect("apply");
        x.waiters.recorded(CALL);
        let body = tokio::time::timeout(Duration::from_millis(500), waiting)
            .await
            .expect("woken by the runner, not the re-read")
            .expect("task")
            .expect("extended");
        assert!(body.contains(r#""media_timeout":true"#), "{body}");
        assert!(x.waiters.waiting.lock().is_empty(), "unregistered");
    }

    #[tokio::test]
    async fn a_report_that_does_not_come_is_counted_once() {
        let store = Arc::new(MemCallStore::new());
        let (_dir, p) = policy(true, MediaMode::Anchor);
        let (_, mut job) = ended(&store, &p).await;
        let x = extension(store, p, 300);
        let body = x.body(&job).await.expect("extended");
        assert!(body.ends_with(r#","media":null}"#), "{body}");
        assert_eq!(x.missing.with_label_values(&["acme"]).get(), 1);
        // A retry neither waits again nor counts again.
        job.attempts = 1;
        x.body(&job).await.expect("extended");
        assert_eq!(x.missing.with_label_values(&["acme"]).get(), 1);
    }
}
