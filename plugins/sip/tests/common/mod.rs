//! Shared harness for the SIP edge's socket tests: a policy with two tenants, a running
//! edge on 127.0.0.1, sipp runners, a recording observer and metric readers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use c2c_sip::{
    AllowedRegion, InboundCall, InboundGone, MediaEvent, RelayReport, SipConfig, SipEdge,
    SipEdgeHandle, SipObserver, StaticPolicy,
};
use c2c_tenancy::{DltPolicy, InboundNumber, KeyRing, Policy, Tenant, TenantInbound, Trunk};
use parking_lot::Mutex;
use prometheus::Registry;
use tokio::sync::watch;

pub const NUMBER: &str = "9876543210";
pub const PREFIX: &str = "9911";
pub const DLT_OFF_PREFIX: &str = "7722";

/// What the edge told its observer: events as text, and anchored calls' media reports.
#[derive(Default)]
pub struct Recorder(
    pub Mutex<Vec<String>>,
    pub Mutex<Vec<(String, RelayReport)>>,
);

impl SipObserver for Recorder {
    fn on_response(&self, call_id: &str, code: u16) {
        self.0.lock().push(format!("response {call_id} {code}"));
    }
    fn on_answer(&self, call_id: &str) {
        self.0.lock().push(format!("answer {call_id}"));
    }
    fn on_end(&self, call_id: &str, code: Option<u16>) {
        self.0.lock().push(format!("end {call_id} {code:?}"));
    }
    fn on_inbound(&self, c: InboundCall) {
        self.0.lock().push(format!(
            "inbound {} {} {} {} {} {:?}",
            c.sip_call_id, c.tenant, c.trunk, c.did, c.caller, c.caller_name
        ));
    }
    fn on_inbound_gone(&self, sip_call_id: &str, why: InboundGone) {
        self.0.lock().push(format!("gone {sip_call_id} {why:?}"));
    }
    fn on_media_event(&self, call_id: &str, event: MediaEvent) {
        self.0.lock().push(format!("media {call_id} {event:?}"));
    }
    fn on_media_report(&self, call_id: &str, report: &RelayReport) {
        self.1.lock().push((call_id.to_string(), report.clone()));
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<String> {
        self.0.lock().clone()
    }

    /// The media report of call `call_id`, once its relay has stopped.
    pub fn report(&self, call_id: &str) -> Option<RelayReport> {
        self.1
            .lock()
            .iter()
            .find(|(c, _)| c == call_id)
            .map(|(_, r)| r.clone())
    }
}

pub fn trunk(label: &str, prefix: &str, carrier: &str) -> Trunk {
    Trunk {
        rate: None,
        media: Default::default(),
        category: Default::default(),
        label: label.into(),
        livekit_trunk_id: format!("ST_{label}"),
        prefix: prefix.into(),
        default_did: "+919999999999".into(),
        carrier: carrier.into(),
        default: true,
        enabled: true,
        sources: vec![],
    }
}

/// `policy` with every trunk's media anchored at the edge.
pub fn anchored(policy: Policy) -> Policy {
    edit_tenants(policy, |_, t| {
        for tr in &mut t.trunks {
            tr.media = c2c_tenancy::MediaMode::Anchor;
        }
    })
}

/// `policy` with tenant `id` changed by `edit`.
pub fn edit_tenant(policy: Policy, id: &str, edit: impl FnOnce(&mut Tenant)) -> Policy {
    let mut edit = Some(edit);
    edit_tenants(policy, |tid, t| {
        if tid == id {
            if let Some(edit) = edit.take() {
                edit(t);
            }
        }
    })
}

/// `policy` with `edit` applied to every tenant (its id, the tenant).
fn edit_tenants(mut policy: Policy, mut edit: impl FnMut(&str, &mut Tenant)) -> Policy {
    let gateway = policy.gateway.clone();
    let owned = std::mem::take(&mut policy.tenants);
    // The policy's indexes (DIDs, LiveKit keys) hold the tenants too.
    drop(policy);
    let tenants = owned
        .into_iter()
        .map(|(id, t)| {
            let Ok(mut t) = Arc::try_unwrap(t) else {
                panic!("the policy's tenants have one owner here")
            };
            edit(&id, &mut t);
            (id, Arc::new(t))
        })
        .collect();
    Policy::new(gateway, tenants, KeyRing::default())
}

/// A tenant built on the example policy's `acme` (so new policy fields keep their
/// example values), without inbound numbers.
pub fn tenant(base: &Path, id: &str, outbound: bool, trunks: Vec<Trunk>) -> Arc<Tenant> {
    tenant_with(base, id, outbound, trunks, Vec::new())
}

/// [`tenant`] with these inbound numbers.
pub fn tenant_with(
    base: &Path,
    id: &str,
    outbound: bool,
    trunks: Vec<Trunk>,
    numbers: Vec<InboundNumber>,
) -> Arc<Tenant> {
    let mut p = c2c_tenancy::load_dir(base).expect("example policy loads");
    let acme = p.tenants.remove("acme").expect("example tenant acme");
    // The policy's indexes (DIDs, LiveKit keys) hold the tenant too.
    drop(p);
    let acme = Arc::try_unwrap(acme).expect("sole owner of the example tenant");
    Arc::new(Tenant {
        id: id.into(),
        name: id.into(),
        dlt: DltPolicy::commercial(
            "1101234567890123456",
            outbound,
            trunks.iter().map(|t| t.default_did.clone()).collect(),
        ),
        trunks,
        inbound: TenantInbound {
            numbers,
            ..acme.inbound.clone()
        },
        ..acme
    })
}

/// `acme`'s inbound number (on trunk `airtel-mum`) in [`policy`].
pub const DID: &str = "+918045678901";

/// The repository's example gateway settings with our test tenants: `acme` (DLT on,
/// trunk `airtel-mum`, prefix 9911, inbound number [`DID`]) and `globex` (DLT off,
/// trunk `jio-del`, 7722).
pub fn policy(acme_carrier: &str, globex_carrier: &str) -> Policy {
    inbound_policy(acme_carrier, globex_carrier, &[])
}

/// [`policy`] with `acme`'s trunk taking inbound calls from `sources` (empty: from its
/// carrier address).
pub fn inbound_policy(acme_carrier: &str, globex_carrier: &str, sources: &[&str]) -> Policy {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let base = c2c_tenancy::load_dir(&dir).expect("example policy loads");
    let mut tenants = BTreeMap::new();
    let mut acme = trunk("airtel-mum", PREFIX, acme_carrier);
    acme.sources = sources.iter().map(|s| s.to_string()).collect();
    tenants.insert(
        "acme".into(),
        tenant_with(
            &dir,
            "acme",
            true,
            vec![acme],
            vec![InboundNumber {
                did: DID.into(),
                trunk: "airtel-mum".into(),
            }],
        ),
    );
    tenants.insert(
        "globex".into(),
        tenant(
            &dir,
            "globex",
            false,
            vec![trunk("jio-del", DLT_OFF_PREFIX, globex_carrier)],
        ),
    );
    Policy::new(base.gateway, tenants, KeyRing::default())
}

pub struct Edge {
    pub handle: SipEdgeHandle,
    /// The edge's DLT gate and policy: a test reloads the DND lists through them.
    pub dlt: Arc<c2c_dlt::DltRegistry>,
    pub policy: Arc<Policy>,
    pub registry: Registry,
    pub observer: Arc<Recorder>,
    pub shutdown: watch::Sender<bool>,
    pub dir: tempfile::TempDir,
}

impl Edge {
    pub fn addr(&self) -> SocketAddr {
        self.handle.udp_addr()
    }

    /// Value of a counter/gauge series with exactly these labels (0 if absent).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        use prometheus::proto::MetricType;
        for mf in self.registry.gather() {
            if mf.get_name() != name {
                continue;
            }
            // The family says the kind: prometheus is built without its protobuf model,
            // whose per-metric has_counter()/has_gauge() the plain model lacks.
            let kind = mf.get_field_type();
            for m in mf.get_metric() {
                let ok = labels.len() == m.get_label().len()
                    && labels.iter().all(|(k, v)| {
                        m.get_label()
                            .iter()
                            .any(|l| l.get_name() == *k && l.get_value() == *v)
                    });
                if ok {
                    match kind {
                        MetricType::COUNTER => return m.get_counter().get_value(),
                        MetricType::GAUGE => return m.get_gauge().get_value(),
                        MetricType::HISTOGRAM => {
                            return m.get_histogram().get_sample_count() as f64;
                        }
                        _ => {}
                    }
                }
            }
        }
        0.0
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.handle.stopped())
            .await
            .expect("edge stops on shutdown");
    }
}

/// Starts an edge on 127.0.0.1 (ephemeral port) allowing `allow` as LiveKit sources.
pub async fn start_edge(
    policy: Policy,
    allow: &[&str],
    tweak: impl FnOnce(&mut SipConfig),
) -> Edge {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path().join("db")).expect("sled");
    let dlt = Arc::new(c2c_dlt::DltRegistry::open(&db).expect("dlt registry"));
    // The DND and consent lists the policy names, as the gateway reads them at start.
    for r in dlt
        .lists()
        .reload(&policy, policy.gateway.dlt.max_list_numbers)
    {
        assert!(r.outcome.is_ok(), "list {r:?}");
    }
    let mut cfg = SipConfig::new("127.0.0.1:0".parse().expect("addr"));
    cfg.allow = vec![AllowedRegion {
        region: "singapore".into(),
        sources: allow.iter().map(|s| s.parse().expect("cidr")).collect(),
    }];
    tweak(&mut cfg);
    let registry = Registry::new();
    let observer = Arc::new(Recorder::default());
    let (tx, rx) = watch::channel(false);
    let policy = Arc::new(policy);
    let handle = SipEdge::start(
        cfg,
        Arc::new(StaticPolicy(policy.clone())),
        dlt.clone(),
        observer.clone(),
        &registry,
        rx,
    )
    .await
    .expect("edge starts");
    Edge {
        handle,
        dlt,
        policy,
        registry,
        observer,
        shutdown: tx,
        dir,
    }
}

/// A port free for both UDP and TCP on `ip`, taken below the kernel's ephemeral range
/// (32768-60999 by default): a port from that range can be grabbed by an outgoing socket
/// between this check and sipp's bind (seen in CI as sipp's "Unable to bind main socket,
/// errno = 98"). A per-process counter keeps parallel tests apart.
pub fn free_port(ip: &str) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..4096 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 12_000 + (seed.wrapping_add(n.wrapping_mul(4099)) % 20_000) as u16;
        if UdpSocket::bind((ip, port)).is_ok() && TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// Writes a copy of scenario `name` with `@KEY@` placeholders replaced.
pub fn scenario_with(dir: &Path, name: &str, subs: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(scenario(name)).expect("scenario");
    for (k, v) in subs {
        text = text.replace(&format!("@{k}@"), v);
    }
    let out = dir.join(format!(
        "{}-{}",
        subs.iter()
            .map(|(_, v)| v.replace(' ', "_"))
            .collect::<Vec<_>>()
            .join("-"),
        name
    ));
    std::fs::write(&out, text).expect("write scenario");
    out
}

pub fn sipp_installed() -> bool {
    std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

pub fn require_sipp() {
    assert!(
        sipp_installed(),
        "sipp is required for the SIP edge tests: apt-get install -y sip-tester"
    );
}

/// `-t u1` or `-t t1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tp {
    Udp,
    Tcp,
}

impl Tp {
    pub fn flag(self) -> &'static str {
        match self {
            Tp::Udp => "u1",
            Tp::Tcp => "t1",
        }
    }
    pub fn carrier(self, port: u16) -> String {
        match self {
            Tp::Udp => format!("sip:127.0.0.1:{port}"),
            Tp::Tcp => format!("sip:127.0.0.1:{port};transport=tcp"),
        }
    }
}

/// What a sipp UAC (the LiveKit side) dials, for [`Sipp::uac`].
pub struct Uac<'a> {
    pub scenario: &'a Path,
    pub tp: Tp,
    /// Local address to send from (an allowed LiveKit node, or not).
    pub ip: &'a str,
    /// The SIP edge.
    pub edge: SocketAddr,
    /// Request-URI user.
    pub user: &'a str,
    /// `X-C2C-Call-Id` (scenario key `c2c_call`).
    pub call_id: &'a str,
    /// `X-C2C-Tenant` (scenario key `c2c_tenant`).
    pub tenant: &'a str,
}

pub struct Sipp {
    child: tokio::process::Child,
    pub name: String,
    log_dir: PathBuf,
}

impl Sipp {
    /// The carrier: sipp UAS on 127.0.0.1:`port`.
    pub fn uas(dir: &Path, scenario: &Path, tp: Tp, port: u16) -> Sipp {
        Self::spawn(
            dir,
            "uas",
            &[
                "-sf",
                &scenario.to_string_lossy(),
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                tp.flag(),
            ],
        )
    }

    /// A sipp UAS on `ip`:`port` (LiveKit SIP for inbound calls, on an allowed node).
    pub fn uas_on(dir: &Path, scenario: &Path, tp: Tp, ip: &str, port: u16) -> Sipp {
        Self::spawn(
            dir,
            "uas",
            &[
                "-sf",
                &scenario.to_string_lossy(),
                "-i",
                ip,
                "-p",
                &port.to_string(),
                "-t",
                tp.flag(),
            ],
        )
    }

    /// The LiveKit side: sipp UAC on `u.ip`, dialling `u.user` at the edge for
    /// `u.tenant`. For inbound tests the carrier, dialling a DID.
    pub fn uac(dir: &Path, u: Uac<'_>) -> Sipp {
        let port = free_port(u.ip).to_string();
        Self::spawn(
            dir,
            "uac",
            &[
                &u.edge.to_string(),
                "-sf",
                &u.scenario.to_string_lossy(),
                "-i",
                u.ip,
                "-p",
                &port,
                "-t",
                u.tp.flag(),
                "-s",
                u.user,
                "-key",
                "c2c_call",
                u.call_id,
                "-key",
                "c2c_tenant",
                u.tenant,
            ],
        )
    }

    /// A sipp UAS on 127.0.0.1:`port` (the carrier) with `extra` arguments (`-mi`, `-mp`).
    pub fn uas_with(dir: &Path, scenario: &Path, port: u16, extra: &[&str]) -> Sipp {
        Self::uas_on_with(dir, scenario, "127.0.0.1", port, extra)
    }

    /// A sipp UAS on `ip`:`port` over UDP with `extra` arguments.
    pub fn uas_on_with(dir: &Path, scenario: &Path, ip: &str, port: u16, extra: &[&str]) -> Sipp {
        let port = port.to_string();
        let mut args = vec![
            "-sf",
            scenario.to_str().expect("utf-8 path"),
            "-i",
            ip,
            "-p",
            &port,
            "-t",
            "u1",
        ];
        args.extend_from_slice(extra);
        Self::spawn(dir, "uas", &args)
    }

    /// [`Self::uac`] over UDP with `extra` arguments (`-mi`, `-mp`).
    pub fn uac_with(dir: &Path, u: Uac<'_>, extra: &[&str]) -> Sipp {
        let port = free_port(u.ip).to_string();
        let edge = u.edge.to_string();
        let mut args = vec![
            edge.as_str(),
            "-sf",
            u.scenario.to_str().expect("utf-8 path"),
            "-i",
            u.ip,
            "-p",
            &port,
            "-t",
            "u1",
            "-s",
            u.user,
            "-key",
            "c2c_call",
            u.call_id,
            "-key",
            "c2c_tenant",
            u.tenant,
        ];
        args.extend_from_slice(extra);
        Self::spawn(dir, "uac", &args)
    }

    fn spawn(dir: &Path, name: &str, args: &[&str]) -> Sipp {
        let log_dir = dir.join(format!("{name}-{}", rand_suffix()));
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let stdout = std::fs::File::create(log_dir.join("stdout")).expect("stdout file");
        let child = tokio::process::Command::new("sipp")
            .args(args)
            .args([
                "-nostdin",
                "-trace_err",
                "-timeout",
                "20",
                "-timeout_error",
                "-m",
                "1",
            ])
            .current_dir(&log_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sipp");
        Sipp {
            child,
            name: name.into(),
            log_dir,
        }
    }

    /// Exit code (0 = all calls succeeded); prints sipp's error log on failure.
    pub async fn wait(mut self) -> i32 {
        let status = tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("sipp finishes")
            .expect("sipp status");
        let code = status.code().unwrap_or(-1);
        if code != 0 {
            eprintln!(
                "--- sipp {} exited {code}; logs in {}",
                self.name,
                self.log_dir.display()
            );
            if let Ok(rd) = std::fs::read_dir(&self.log_dir) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().ends_with("errors.log") {
                        eprintln!("{}", std::fs::read_to_string(e.path()).unwrap_or_default());
                    }
                }
            }
        }
        code
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits until `f` holds (or panics after `secs`).
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < end,
            "condition not reached in {secs}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fake carrier that only counts what reaches it (UDP and TCP on one port).
pub struct Sink {
    pub port: u16,
    pub received: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sink {
    pub async fn start() -> Sink {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let port = free_port("127.0.0.1");
        let udp = tokio::net::UdpSocket::bind(("127.0.0.1", port))
            .await
            .expect("sink udp");
        let tcp = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("sink tcp");
        let received = Arc::new(AtomicUsize::new(0));
        let r1 = received.clone();
        let r2 = received.clone();
        let tasks = vec![
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, _)) = udp.recv_from(&mut buf).await {
                    r1.fetch_add(n.max(1), Ordering::SeqCst);
                }
            }),
            tokio::spawn(async move {
                while let Ok((_s, _)) = tcp.accept().await {
                    r2.fetch_add(1, Ordering::SeqCst);
                }
            }),
        ];
        Sink {
            port,
            received,
            tasks,
        }
    }

    pub fn count(&self) -> usize {
        self.received.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
