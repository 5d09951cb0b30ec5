//! Start-up: load policy, open the store, assemble the Pingora server, run it.

use std::path::PathBuf;
use std::sync::Arc;

use c2c_agents::{AgentStore, AgentStoreError};
use c2c_metrics::GatewayMetrics;
use pingora::listeners::tls::TlsSettings;
use pingora::proxy::http_proxy_service;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;

use c2c_tenancy::AnswerDetection;

use crate::agents::AgentService;
use crate::app::{App, AppParts, PolicyHandle};
use crate::calls::livekit_pool::LiveKitPool;
use crate::calls::services::{deliverer, DeliveryService};
use crate::calls::signals::poller::Poller;
use crate::calls::signals::timers::TimerService;
use crate::edge::Regions;
use crate::error::StartError;
use crate::proxy::GatewayProxy;
use crate::reload::PolicyReloader;
use crate::sip::{SipService, SipStart};
pub use crate::stores::StoreBackend;

/// Arguments of `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Policy directory (gateway.toml + tenants/*.toml).
    #[arg(long, env = "C2C_POLICIES", default_value = "./policies")]
    pub policies: PathBuf,
    /// Data directory (the embedded sled store).
    #[arg(long, env = "C2C_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Listen address; overrides `server.listen` in gateway.toml (default 127.0.0.1:8080).
    #[arg(long, env = "C2C_LISTEN")]
    pub listen: Option<String>,
    /// SIP edge listen address, UDP and TCP on the same port.
    #[arg(long, env = "C2C_SIP_LISTEN", default_value = "127.0.0.1:5060")]
    pub sip_listen: std::net::SocketAddr,
    /// The address the SIP edge puts in its Via and Record-Route headers, the one LiveKit
    /// and carriers reach it at. Required when --sip-listen is 0.0.0.0 or [::]; defaults
    /// to the --sip-listen address otherwise.
    #[arg(long, env = "C2C_SIP_ADVERTISE")]
    pub sip_advertise: Option<std::net::IpAddr>,
    /// `memory` keeps calls, the webhook outbox, DLT overrides and webhook ids in process
    /// memory (lost at exit: for tests and demos only); `policy` (the default) uses the
    /// backend `[store] kind` of gateway.toml names (sled in the data directory, or
    /// PostgreSQL).
    #[arg(long, env = "C2C_STORE", value_enum, default_value_t = StoreBackend::Policy, hide = true)]
    pub store: StoreBackend,
}

/// Loads the agent registry and the presence secret. The store trait is async and no
/// runtime runs yet: a one-off current-thread runtime does it (the registry is people,
/// not calls: small).
fn open_agents(
    store: Arc<dyn AgentStore>,
    metrics: &GatewayMetrics,
) -> Result<AgentService, StartError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Agents(AgentStoreError::Backend(Box::new(e))))?;
    rt.block_on(AgentService::open(store, metrics.clone()))
        .map_err(StartError::Agents)
}

/// Everything `serve` needs before Pingora takes over.
pub struct Prepared {
    pub app: Arc<App>,
    pub listen: String,
    /// One active health-check service per LiveKit region.
    pub health_checks: Vec<crate::edge::HealthCheckService>,
    /// The SIP edge's sockets, bound, and its checked configuration.
    pub sip: SipStart,
    /// The HTTP (and TLS) listen addresses, bound to prove they are free; released just
    /// before Pingora binds them itself (it has no way to adopt a bound socket).
    pub http_probes: Vec<std::net::TcpListener>,
    /// The shared database of this fleet node (`None`: the gateway is alone on its
    /// store).
    pub fleet: Option<Arc<c2c_store_pg::PgStore>>,
}

/// Binds `addr` for TCP to find out now, with a clear message, whether Pingora will be
/// able to. Pingora itself retries a taken address for 30 s, then panics in its service
/// thread and leaves the process running without the listener.
fn probe_http(
    what: &'static str,
    addr: &str,
    flag: &'static str,
) -> Result<std::net::TcpListener, StartError> {
    std::net::TcpListener::bind(addr).map_err(|e| StartError::listen(what, addr, "TCP", &e, flag))
}

/// Loads policy, binds or checks every listener, opens the store. Errors are start-up
/// errors: printed, exit 1.
pub fn prepare(args: &ServeArgs) -> Result<Prepared, StartError> {
    // reqwest is built without a bundled TLS provider; use ring, which Pingora's rustls
    // already links. Installing twice (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = c2c_tenancy::load_dir(&args.policies).map_err(|errors| StartError::Policy {
        dir: args.policies.clone(),
        errors,
    })?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| policy.gateway.listen.to_string());
    listen
        .parse::<std::net::SocketAddr>()
        .map_err(|_| StartError::ListenAddress(listen.clone()))?;
    // Every listener before anything else starts: a second gateway on the same host
    // stops here, naming the address, instead of running half-bound.
    let mut http_probes = vec![probe_http(
        "HTTP listener",
        &listen,
        "--listen (C2C_LISTEN) or server.listen",
    )?];
    if let Some(tls) = &policy.gateway.tls {
        http_probes.push(probe_http(
            "TLS listener",
            &tls.listen.to_string(),
            "server.tls.listen",
        )?);
    }
    let sip = SipStart::prepare(args.sip_listen, args.sip_advertise, &policy)?;
    std::fs::create_dir_all(&args.data).map_err(|source| StartError::DataDir {
        dir: args.data.clone(),
        source,
    })?;
    let registry = prometheus::default_registry().clone();
    let metrics = GatewayMetrics::register(&registry)?;
    metrics.set_build_info(crate::build::VERSION, crate::build::REVISION);
    let stores = crate::stores::open(args, &policy, &metrics)?;
    let fleet = stores.shared.clone();
    // In webhook mode the bundled simulator posts its signed webhooks to us.
    let webhook_url = (policy.gateway.answer_detection == AnswerDetection::Webhook)
        .then(|| format!("http://{listen}/webhooks/livekit"));
    let livekit = LiveKitPool::start(&policy, webhook_url, metrics.livekit_requests.clone())?;
    let (edge, health_checks) = Regions::build(&policy, &metrics)?;
    let agents = open_agents(stores.agents, &metrics)?;
    let inbound = crate::inbound::InboundService::new(
        &registry,
        policy.gateway.webhooks.allow_private_targets,
    )?;
    let app = App::new(AppParts {
        policy: Arc::new(PolicyHandle::new(args.policies.clone(), policy)),
        dlt: stores.dlt,
        metrics,
        registry,
        store: stores.store,
        seen: stores.seen,
        wallets: stores.wallets,
        agents,
        inbound,
        livekit,
        edge,
        data_dir: args.data.clone(),
    });
    Ok(Prepared {
        app,
        listen,
        health_checks,
        sip,
        http_probes,
        fleet,
    })
}

/// Runs the gateway until SIGTERM (graceful) or SIGINT (fast).
pub fn serve(args: ServeArgs) -> Result<(), StartError> {
    let Prepared {
        app,
        listen,
        health_checks,
        sip,
        http_probes,
        fleet,
    } = prepare(&args)?;
    let gw = app.policy().get().gateway.clone();
    let conf = ServerConf {
        threads: gw.threads,
        // With one thread there is nothing to steal from, and a current-thread runtime
        // skips the multi-thread scheduler's cross-thread wake-ups: ~15 % more proxied
        // requests per second in `tests/bench/edge.sh` (bare Pingora, same run).
        work_stealing: gw.threads > 1,
        // After SIGTERM the gateway first drains for `server.grace_period_seconds` with the
        // listener open (DrainThenTerminate); by the time Pingora closes it, load balancers
        // have stopped sending work, so Pingora's own grace (a fixed wait for requests in
        // flight) can be short. Its default is 300 s.
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = http_proxy_service(
        &server.configuration,
        GatewayProxy::new(
            crate::chain::chain(&app),
            app.clone(),
            Some(pingora::connectors::ConnectorOptions::from_server_conf(
                &server.configuration,
            )),
        ),
    );
    proxy.add_tcp(&listen);
    if let Some(tls) = &gw.tls {
        let cert = tls.cert_file.to_string_lossy();
        let key = tls.key_file.to_string_lossy();
        let mut settings = TlsSettings::intermediate(&cert, &key).map_err(|e| StartError::Tls {
            listen: tls.listen,
            reason: e.to_string(),
        })?;
        settings.enable_h2();
        proxy.add_tls_with_settings(&tls.listen.to_string(), None, settings);
        tracing::info!(listen = %tls.listen, "TLS listener (HTTP/1.1 and HTTP/2)");
    }
    server.add_service(proxy);
    server.add_service(background_service(
        "lifecycle",
        crate::lifecycle::LifecycleService { app: app.clone() },
    ));
    server.add_service(background_service(
        "policy reload",
        PolicyReloader::new(app.clone()),
    ));
    for hc in health_checks {
        server.add_service(hc);
    }
    server.add_service(background_service(
        "call timers",
        TimerService { app: app.clone() },
    ));
    server.add_service(background_service(
        "crm webhooks",
        DeliveryService {
            app: app.clone(),
            deliverer: deliverer(&app)?,
        },
    ));
    server.add_service(background_service(
        "wallet sweep",
        crate::calls::billing::WalletService {
            app: app.clone(),
            notices: Default::default(),
        },
    ));
    server.add_service(background_service(
        "call retention",
        crate::retention::RetentionService::new(app.clone())?,
    ));
    server.add_service(background_service(
        "sip edge",
        SipService::new(app.clone(), sip),
    ));
    if let Some(pg) = fleet {
        let fleet =
            crate::fleet::FleetService::new(app.clone(), pg).map_err(StartError::Metrics)?;
        server.add_service(background_service("fleet", fleet));
    }
    if gw.answer_detection == AnswerDetection::Poll {
        server.add_service(background_service(
            "livekit poller",
            Poller { app: app.clone() },
        ));
    }

    tracing::info!(%listen, policies = %args.policies.display(), data = %args.data.display(), "c2c-gateway listening");
    // Pingora binds in its service threads right after `run`; the window between this
    // release and that bind is milliseconds, and the panic hook covers losing it.
    drop(http_probes);
    exit_if_a_listener_fails();
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainThenTerminate {
            app: app.clone(),
            drain: gw.grace_period,
        }),
    });
    app.set_draining();
    if let Err(e) = app.flush() {
        tracing::error!(error = %e, "final store flush failed");
    }
    tracing::info!("c2c-gateway stopped");
    Ok(())
}

/// If another process takes the HTTP address between the probe in `prepare` and
/// Pingora's own bind, Pingora retries for 30 s and then panics in its service thread
/// ("Failed to build listeners"), which would leave this process running with every
/// other service up and no HTTP listener. That panic stops the process instead.
fn exit_if_a_listener_fails() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.starts_with("Failed to build listeners") {
            eprintln!("c2c-gateway: an HTTP or TLS listener could not be bound; stopping ({msg})");
            std::process::exit(1);
        }
    }));
}

/// Pingora's shutdown signals with a drain first. Pingora closes its listener the moment
/// it is told to stop, so a load balancer still sending traffic would see refused
/// connections until it noticed. Instead, SIGTERM turns `/readyz` to 503 at once and
/// keeps serving for the drain (`server.grace_period_seconds`), and only then hands
/// Pingora its graceful terminate. SIGINT stops at once (also during a drain); SIGQUIT
/// is Pingora's graceful upgrade.
struct DrainThenTerminate {
    app: Arc<App>,
    drain: std::time::Duration,
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for DrainThenTerminate {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (term, quit, int) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::quit()),
            signal(SignalKind::interrupt()),
        );
        let (Ok(mut term), Ok(mut quit), Ok(mut int)) = (term, quit, int) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = quit.recv() => {
                self.app.set_draining();
                return ShutdownSignal::GracefulUpgrade;
            }
            _ = int.recv() => return ShutdownSignal::FastShutdown,
        }
        self.app.set_draining();
        tracing::info!(
            drain_seconds = self.drain.as_secs(),
            "SIGTERM: draining; /readyz answers 503 and the listener closes after the drain"
        );
        tokio::select! {
            _ = tokio::time::sleep(self.drain) => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::FastShutdown,
        }
    }
}
