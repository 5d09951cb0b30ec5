//! Start-up: load policy, open the store, assemble the Pingora server, run it.

use std::sync::Arc;

use c2c_dlt::DltRegistry;
use c2c_metrics::GatewayMetrics;
use pingora::proxy::http_proxy_service;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;

use crate::app::{App, PolicyHandle};
use crate::cli::ServeArgs;
use crate::proxy::GatewayProxy;
use crate::reload::PolicyReloader;

/// Everything `serve` needs before Pingora takes over.
pub struct Prepared {
    pub app: Arc<App>,
    pub listen: String,
}

/// Loads policy and opens the store. Errors are start-up errors: printed, exit 1.
pub fn prepare(args: &ServeArgs) -> Result<Prepared, String> {
    // reqwest is built without a bundled TLS provider; use ring, which Pingora's rustls
    // already links. Installing twice (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = c2c_tenancy::load_dir(&args.policies)
        .map_err(|e| format!("invalid policy in {}:\n{e}", args.policies.display()))?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| policy.gateway.listen.to_string());
    listen
        .parse::<std::net::SocketAddr>()
        .map_err(|_| format!("--listen {listen:?} is not an address like 127.0.0.1:8080"))?;
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("cannot create data directory {}: {e}", args.data.display()))?;
    let db = sled::Config::new()
        .path(args.data.join("store"))
        // sled defaults to a 1 GiB cache; the working set here is open calls + indexes.
        .cache_capacity(64 * 1024 * 1024)
        .flush_every_ms(Some(500))
        .open()
        .map_err(|e| {
            format!(
                "cannot open the store in {} (is another gateway using it?): {e}",
                args.data.display()
            )
        })?;
    let dlt = DltRegistry::open(&db).map_err(|e| format!("cannot open DLT state: {e}"))?;
    let registry = prometheus::default_registry().clone();
    let metrics =
        GatewayMetrics::register(&registry).map_err(|e| format!("metrics registration: {e}"))?;
    let app = App::new(
        PolicyHandle::new(args.policies.clone(), policy),
        db,
        dlt,
        metrics,
        registry,
    );
    Ok(Prepared { app, listen })
}

/// Runs the gateway until SIGTERM (graceful) or SIGINT (fast).
pub fn serve(args: ServeArgs) -> Result<(), String> {
    let Prepared { app, listen } = prepare(&args)?;
    let gw = app.policy.get().gateway.clone();
    let conf = ServerConf {
        threads: gw.threads,
        // Pingora's default is 300 s; a sidecar should hand over in seconds.
        grace_period_seconds: Some(gw.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = http_proxy_service(
        &server.configuration,
        GatewayProxy::new(crate::plugins::chain(&app)),
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.add_service(background_service("policy reload", PolicyReloader::new(app.clone())));

    app.set_ready(true);
    tracing::info!(%listen, policies = %args.policies.display(), data = %args.data.display(), "c2c-gateway serving");
    server.run(RunArgs::default());
    app.set_ready(false);
    if let Err(e) = app.db.flush() {
        tracing::error!(error = %e, "final store flush failed");
    }
    tracing::info!("c2c-gateway stopped");
    Ok(())
}
