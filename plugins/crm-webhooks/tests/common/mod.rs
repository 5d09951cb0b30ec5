//! Test fixtures: a real HTTP/1.1 sink on 127.0.0.1 (c2c-test-support's receiver), an
//! in-memory outbox and a map-backed endpoint resolver.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use c2c_callstate::{OutboxBacklog, OutboxEntry, OutboxState};
use c2c_crm_webhooks::{
    Admit, DeliveryPolicy, Eligible, Endpoint, EndpointResolver, OutboxSource, SourceError,
};
use c2c_test_support::receiver::Receiver;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One process-wide style client, as the gateway builds it. reqwest is compiled
/// with rustls-no-provider, so a crypto provider must be installed first.
pub fn client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .unwrap()
}

pub fn fast_policy() -> DeliveryPolicy {
    DeliveryPolicy {
        schedule: vec![
            Duration::from_millis(10),
            Duration::from_millis(20),
            Duration::from_millis(40),
        ],
        max_age: Duration::from_secs(72 * 3600),
        per_tenant_concurrency: 4,
        batch: 16,
        request_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(20),
        retry_after_cap: Duration::from_secs(10),
        park_interval: Duration::from_secs(60),
        stats_interval: Duration::from_millis(50),
        allow_private_targets: true,
        catch_up: true,
    }
}

pub fn job(seq: u64, tenant: &str) -> OutboxEntry {
    let hex = format!("{seq:032x}");
    let now = now_ms();
    OutboxEntry {
        seq,
        webhook_id: format!("msg_{hex}"),
        call_id: format!("c2c_{hex}"),
        tenant: tenant.to_owned(),
        payload_json: format!(
            r#"{{"call_id":"c2c_{hex}","case_id":"CASE-1","customer_crm_id":"CUST-9","phone_to":"9530251797","phone_from":"+918000000000","call_status":"ANSWERED","duration_seconds":42,"agent_id":"agent-7"}}"#
        ),
        created_ms: now,
        attempts: 0,
        next_attempt_ms: now,
        state: OutboxState::Pending,
        last_error: None,
        delivered_ms: None,
        replayed_ms: None,
        retry_after: false,
    }
}

pub async fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------- outbox

#[derive(Default)]
pub struct MemOutbox {
    jobs: Mutex<BTreeMap<u64, OutboxEntry>>,
    pub updates: AtomicUsize,
    pub fail_updates: AtomicBool,
    /// Every bring_forward call: (tenant, limit, seqs moved).
    pub brought: Mutex<Vec<(String, usize, Vec<u64>)>>,
}

impl MemOutbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn insert(&self, job: OutboxEntry) {
        self.jobs.lock().unwrap().insert(job.seq, job);
    }
    pub fn get(&self, seq: u64) -> OutboxEntry {
        self.jobs.lock().unwrap()[&seq].clone()
    }
    pub fn state(&self, seq: u64) -> OutboxState {
        self.get(seq).state
    }
    pub fn all(&self) -> Vec<OutboxEntry> {
        self.jobs.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl OutboxSource for MemOutbox {
    async fn due(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut Admit<'_>,
    ) -> Result<Vec<OutboxEntry>, SourceError> {
        Ok(self
            .jobs
            .lock()
            .unwrap()
            .values()
            .filter(|j| j.is_due(now_ms) && admit(j.seq, &j.tenant))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn update(&self, job: &OutboxEntry) -> Result<(), SourceError> {
        if self.fail_updates.load(Ordering::SeqCst) {
            return Err(SourceError::msg("disk on fire"));
        }
        self.updates.fetch_add(1, Ordering::SeqCst);
        self.jobs.lock().unwrap().insert(job.seq, job.clone());
        Ok(())
    }

    async fn stats(&self) -> Result<OutboxBacklog, SourceError> {
        let jobs = self.jobs.lock().unwrap();
        let pending: Vec<&OutboxEntry> = jobs
            .values()
            .filter(|j| j.state == OutboxState::Pending)
            .collect();
        let mut by_tenant = BTreeMap::new();
        for j in &pending {
            let o = by_tenant.entry(j.tenant.clone()).or_insert(j.created_ms);
            *o = (*o).min(j.created_ms);
        }
        Ok(OutboxBacklog {
            pending: pending.len() as u64,
            oldest_created_ms: pending.iter().map(|j| j.created_ms).min(),
            oldest_by_tenant: by_tenant,
        })
    }

    async fn bring_forward(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut Eligible<'_>,
    ) -> Result<Vec<u64>, SourceError> {
        let mut jobs = self.jobs.lock().unwrap();
        let mut moved = Vec::new();
        for j in jobs.values_mut() {
            if moved.len() >= limit {
                break;
            }
            if j.tenant == tenant
                && j.state == OutboxState::Pending
                && j.next_attempt_ms > now_ms
                && !j.retry_after
                && eligible(j.seq)
            {
                j.next_attempt_ms = now_ms;
                moved.push(j.seq);
            }
        }
        self.brought
            .lock()
            .unwrap()
            .push((tenant.to_owned(), limit, moved.clone()));
        Ok(moved)
    }
}

// ---------------------------------------------------------------- resolver

#[derive(Default)]
pub struct MapResolver {
    eps: Mutex<HashMap<String, Endpoint>>,
    pub gone: Mutex<Vec<String>>,
}

impl MapResolver {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn set(&self, tenant: &str, ep: Endpoint) {
        self.eps.lock().unwrap().insert(tenant.to_owned(), ep);
    }
}

impl EndpointResolver for MapResolver {
    fn resolve(&self, tenant: &str) -> Option<Endpoint> {
        self.eps.lock().unwrap().get(tenant).cloned()
    }
    fn endpoint_gone(&self, tenant: &str) {
        self.gone.lock().unwrap().push(tenant.to_owned());
        if let Some(ep) = self.eps.lock().unwrap().get_mut(tenant) {
            ep.disabled = true;
        }
    }
}

pub fn endpoint(url: String, key: &str) -> Endpoint {
    Endpoint {
        url,
        outbound_key: key.to_owned(),
        signing_secret: None,
        disabled: false,
    }
}

// ---------------------------------------------------------------- HTTP sink
// A CRM on 127.0.0.1: c2c-test-support's hyper receiver, with the reply scripted per
// request and what the tests assert on recorded (requests, replies, in-flight maxima).

pub use c2c_test_support::receiver::{Reply, Request};

/// Decides the reply for the n-th request (0-based, arrival order).
pub type Script = Box<dyn Fn(usize, &Request) -> Reply + Send + Sync>;

struct SinkState {
    script: Script,
    requests: Mutex<Vec<Request>>,
    replies: Mutex<Vec<u16>>,
    // in flight: total and per X-api-key, plus the maxima seen.
    inflight: Mutex<(usize, HashMap<String, usize>)>,
    max_total: AtomicUsize,
    max_by_key: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<SinkState>,
    // Stops accepting when the sink is dropped.
    _receiver: Receiver,
}

impl Sink {
    pub async fn start(script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Sink {
        let state = Arc::new(SinkState {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            replies: Mutex::new(Vec::new()),
            inflight: Mutex::new((0, HashMap::new())),
            max_total: AtomicUsize::new(0),
            max_by_key: Mutex::new(HashMap::new()),
        });
        let st = Arc::clone(&state);
        let receiver = Receiver::start(move |req| answer(Arc::clone(&st), req))
            .await
            .unwrap();
        Sink {
            addr: receiver.addr,
            state,
            _receiver: receiver,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.requests).clone()
    }
    /// Status codes of the replies handed over for writing (a client that gave up
    /// before has none recorded).
    pub fn replies(&self) -> Vec<u16> {
        lock(&self.state.replies).clone()
    }
    pub fn max_in_flight(&self) -> usize {
        self.state.max_total.load(Ordering::SeqCst)
    }
    pub fn max_in_flight_for(&self, api_key: &str) -> usize {
        *lock(&self.state.max_by_key).get(api_key).unwrap_or(&0)
    }
}

/// One request in flight (total and for its X-api-key) for as long as it lives: until
/// its reply is about to be written, or until the client gives up (hyper then drops
/// the handler).
struct InFlight {
    st: Arc<SinkState>,
    key: String,
}

impl InFlight {
    fn enter(st: &Arc<SinkState>, key: String) -> Self {
        let mut inf = lock(&st.inflight);
        inf.0 += 1;
        let per = inf.1.entry(key.clone()).or_insert(0);
        *per += 1;
        let per = *per;
        st.max_total.fetch_max(inf.0, Ordering::SeqCst);
        let mut mx = lock(&st.max_by_key);
        let e = mx.entry(key.clone()).or_insert(0);
        *e = (*e).max(per);
        Self {
            st: Arc::clone(st),
            key,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inf = lock(&self.st.inflight);
        inf.0 -= 1;
        if let Some(per) = inf.1.get_mut(&self.key) {
            *per -= 1;
        }
    }
}

async fn answer(st: Arc<SinkState>, req: Request) -> Reply {
    let key = req.header("x-api-key").unwrap_or("").to_owned();
    let reply = {
        let mut reqs = lock(&st.requests);
        let n = reqs.len();
        reqs.push(req.clone());
        (st.script)(n, &req)
    };
    let in_flight = InFlight::enter(&st, key);
    tokio::time::sleep(reply.delay).await;
    // Count in-flight down before the reply is written: once the client sees it, it
    // may start the next request for this tenant immediately.
    drop(in_flight);
    lock(&st.replies).push(reply.status);
    // One request per connection, as a CRM closing after each answer.
    Reply {
        delay: Duration::ZERO,
        ..reply
    }
    .header("connection", "close")
    .body("ok")
}
