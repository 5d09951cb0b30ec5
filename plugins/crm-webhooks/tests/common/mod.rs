//! Test fixtures: a real HTTP/1.1 sink on 127.0.0.1, an in-memory outbox and a
//! map-backed endpoint resolver.
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

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

pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<SinkState>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start(script: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(SinkState {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            replies: Mutex::new(Vec::new()),
            inflight: Mutex::new((0, HashMap::new())),
            max_total: AtomicUsize::new(0),
            max_by_key: Mutex::new(HashMap::new()),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = Arc::clone(&st);
                tokio::spawn(async move { serve(sock, st).await });
            }
        });
        Sink { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }
    /// Status codes actually written back.
    pub fn replies(&self) -> Vec<u16> {
        self.state.replies.lock().unwrap().clone()
    }
    pub fn max_in_flight(&self) -> usize {
        self.state.max_total.load(Ordering::SeqCst)
    }
    pub fn max_in_flight_for(&self, api_key: &str) -> usize {
        *self
            .state
            .max_by_key
            .lock()
            .unwrap()
            .get(api_key)
            .unwrap_or(&0)
    }
}

async fn serve(mut sock: TcpStream, st: Arc<SinkState>) {
    // One request per connection (we answer `Connection: close`).
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    let key = req.header("x-api-key").unwrap_or("").to_owned();
    let reply = {
        let mut reqs = st.requests.lock().unwrap();
        let n = reqs.len();
        reqs.push(req.clone());
        (st.script)(n, &req)
    };
    {
        let mut inf = st.inflight.lock().unwrap();
        inf.0 += 1;
        let per = inf.1.entry(key.clone()).or_insert(0);
        *per += 1;
        let per = *per;
        st.max_total.fetch_max(inf.0, Ordering::SeqCst);
        let mut mx = st.max_by_key.lock().unwrap();
        let e = mx.entry(key.clone()).or_insert(0);
        *e = (*e).max(per);
    }
    tokio::time::sleep(reply.delay).await;
    let mut out = format!(
        "HTTP/1.1 {} X\r\ncontent-length: 2\r\nconnection: close\r\n",
        reply.status
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\nok");
    // Count in-flight down before writing: once the client sees the response it
    // may start the next request for this tenant immediately.
    {
        let mut inf = st.inflight.lock().unwrap();
        inf.0 -= 1;
        if let Some(per) = inf.1.get_mut(&key) {
            *per -= 1;
        }
    }
    if sock.write_all(out.as_bytes()).await.is_ok() {
        st.replies.lock().unwrap().push(reply.status);
    }
    let _ = sock.shutdown().await;
}

async fn read_request(sock: &mut TcpStream) -> Option<Request> {
    const MAX: usize = 1 << 20;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX {
            return None;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?.to_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > MAX {
        return None;
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    body.truncate(len);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}
