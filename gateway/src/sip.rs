//! The SIP edge as a service of the gateway process: LiveKit's outbound trunks point at
//! it, it forwards to each tenant's carrier (adding the dial prefix, enforcing DLT a
//! second time), and what it sees becomes call events: the exact SIP code on the call
//! record, and with `answer_detection = "sip"` the answer and the end of the call.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use c2c_sip::{AllowedRegion, Cidr, SipConfig, SipEdge, SipError, SipSockets};
use c2c_tenancy::{AnswerDetection, Policy};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::app::App;
use crate::calls::signals::sip::{Observer, EVENT_QUEUE};
use crate::error::StartError;

/// The SIP edge configuration from policy and the command line.
pub fn config(
    listen: SocketAddr,
    advertise: Option<IpAddr>,
    policy: &Policy,
) -> Result<SipConfig, StartError> {
    let mut c = SipConfig::new(listen);
    c.advertise = advertise;
    let k = policy.gateway.sip;
    // A fleet shares the rate: each node's edge takes its share (docs/fleet.md).
    c.calls.default.calls_per_second = policy.gateway.node_share(k.calls_per_second);
    c.calls.default.max_concurrent = k.max_concurrent_calls;
    c.max_transactions = k.max_transactions;
    c.media = c2c_sip::MediaConfig {
        address: k.media.address,
        port_min: k.media.port_min,
        port_max: k.media.port_max,
        relay: relay_config(&k.media),
        io: match k.media.io {
            c2c_tenancy::RelayIo::Auto => c2c_sip::MediaIo::Auto,
            c2c_tenancy::RelayIo::IoUring => c2c_sip::MediaIo::IoUring,
            c2c_tenancy::RelayIo::Runtime => c2c_sip::MediaIo::Runtime,
        },
        batch: k.media.batch,
    };
    for r in &policy.gateway.regions {
        let sources = r
            .sip_sources
            .iter()
            .map(|s| {
                s.parse::<Cidr>().map_err(|source| StartError::SipSources {
                    region: r.name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        c.allow.push(AllowedRegion {
            region: r.name.clone(),
            sources,
        });
    }
    Ok(c)
}

fn relay_config(m: &c2c_tenancy::SipMediaKnobs) -> c2c_sip::RelayConfig {
    c2c_sip::RelayConfig {
        media_timeout: m.media_timeout,
        one_way_after: m.one_way_after,
    }
}

/// The SIP edge's configuration checked and its sockets bound, during start-up: a port
/// that is taken or a configuration the edge would refuse stops the gateway there, with
/// a message naming the address, instead of leaving it running (and `/livez` green)
/// without its SIP edge. Holding the bound sockets from then on means no other process
/// can take the port before the edge starts.
pub struct SipStart {
    config: SipConfig,
    sockets: SipSockets,
}

impl SipStart {
    pub fn prepare(
        listen: SocketAddr,
        advertise: Option<IpAddr>,
        policy: &Policy,
    ) -> Result<Self, StartError> {
        let config = config(listen, advertise, policy)?;
        config.advertised_ip().map_err(|e| match e {
            SipError::NoAdvertiseAddress(addr) => StartError::SipAdvertise(addr),
            other => StartError::Sip(other),
        })?;
        let sockets = SipSockets::bind(listen).map_err(|e| match e {
            SipError::Bind {
                transport,
                addr,
                source,
            } => StartError::listen(
                "SIP edge",
                addr,
                &transport.to_ascii_uppercase(),
                &source,
                "--sip-listen (C2C_SIP_LISTEN)",
            ),
            other => StartError::Sip(other),
        })?;
        Ok(Self { config, sockets })
    }

    /// The bound address (the actual port when `--sip-listen` asked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sockets.local_addr().ok()
    }
}

/// The SIP edge's DLT gate: the registry's checks, with refusals of the per-call rules
/// counted in `c2c_dlt_refusals_total` and recorded like the API's.
struct CountingGate(Arc<App>);

impl c2c_sip::OutboundGate for CountingGate {
    fn check(&self, tenant: &c2c_tenancy::Tenant) -> Result<(), c2c_dlt::DltPending> {
        self.0.dlt().check(tenant)
    }

    fn check_call(
        &self,
        rules: &c2c_tenancy::DltRules,
        tenant: &c2c_tenancy::Tenant,
        call: &c2c_dlt::CallFacts<'_>,
    ) -> Result<(), c2c_dlt::DltRefusal> {
        let checked = self
            .0
            .dlt()
            .check_call(rules, tenant, call, crate::clock::now_ms());
        match checked {
            Ok(_) => Ok(()),
            Err(r) => {
                crate::api::dlt_rules::record(&self.0, tenant, call, &r, "sip");
                Err(r)
            }
        }
    }
}

pub struct SipService {
    pub app: Arc<App>,
    /// Taken by the one `start` Pingora makes.
    start: parking_lot::Mutex<Option<SipStart>>,
}

impl SipService {
    pub fn new(app: Arc<App>, start: SipStart) -> Self {
        Self {
            app,
            start: parking_lot::Mutex::new(Some(start)),
        }
    }
}

#[async_trait]
impl BackgroundService for SipService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let Some(SipStart {
            config: cfg,
            sockets,
        }) = self.start.lock().take()
        else {
            tracing::error!("SIP edge started twice; the second start is ignored");
            return;
        };
        let listen = cfg.listen;
        let policy = self.app.policy().get();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let observer = Arc::new(Observer {
            tx,
            sip_mode: policy.gateway.answer_detection == AnswerDetection::Sip,
            app: self.app.clone(),
        });
        let handle = self.app.policy().clone();
        let source: Arc<dyn c2c_sip::PolicySource> = Arc::new(move || handle.get());
        // Checked and bound in `SipStart::prepare`; what can still fail here is
        // adopting the sockets into the runtime or registering the metrics.
        let edge = match SipEdge::start_on(
            sockets,
            cfg,
            source,
            Arc::new(CountingGate(self.app.clone())),
            observer,
            self.app.registry(),
            shutdown.clone(),
        )
        .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, %listen, "SIP edge failed to start");
                return;
            }
        };
        tracing::info!(udp = %edge.udp_addr(), tcp = %edge.tcp_addr(), "SIP edge listening");
        self.app.inbound().set_edge(edge.inbound());
        self.app.inbound().set_edge_addr(edge.udp_addr());
        let dispatcher = {
            let app = self.app.clone();
            tokio::spawn(async move {
                // Held calls wait (bounded queue) until the store is fully open.
                app.until_serving().await;
                crate::inbound::InboundService::run(app).await;
            })
        };
        let app = self.app.clone();
        let applier = tokio::spawn(async move {
            // Observations wait (bounded queue) until the store is fully open.
            app.until_serving().await;
            while let Some((call_id, ev)) = rx.recv().await {
                if !c2c_callstate::is_valid_call_id(&call_id) {
                    continue;
                }
                let span = crate::calls::span(&call_id);
                if let Err(e) = crate::calls::apply(&app, &call_id, ev)
                    .instrument(span)
                    .await
                {
                    tracing::debug!(call_id = %call_id, error = %e, "SIP event not applied");
                }
            }
        });
        edge.stopped().await;
        applier.abort();
        dispatcher.abort();
    }
}
