//! The floor for the LiveKit edge benchmark (issue 4): Pingora's HTTP/1 proxy with no
//! plugins at all — every request goes to one fixed upstream, nothing is checked,
//! nothing is logged or counted. `tests/bench/edge.sh` runs it beside the gateway and
//! nginx so the table separates what Pingora itself costs from what the gateway adds.
//!
//! Usage: bare-pingora --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--threads 1]

use async_trait::async_trait;
use clap::Parser;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

// The gateway's allocator, so the comparison isolates the gateway's own work.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: String,
    #[arg(long)]
    upstream: std::net::SocketAddr,
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

struct Bare {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let a = Args::parse();
    let conf = ServerConf {
        threads: a.threads,
        // As the gateway sets it: work stealing only with more than one thread.
        work_stealing: a.threads > 1,
        // A benchmark fixture: stop at once on SIGTERM (Pingora's default grace is 300 s).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Bare {
            upstream: a.upstream,
        },
    );
    proxy.add_tcp(&a.listen);
    server.add_service(proxy);
    server.run_forever();
}
