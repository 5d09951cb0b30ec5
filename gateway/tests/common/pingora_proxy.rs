//! A bare Pingora HTTP proxy (the vendored, patched pingora-proxy and pingora-core) around
//! a test's own `ProxyHttp`, on 127.0.0.1: the guard tests of the vendored patches run
//! Pingora itself, without the gateway's plugins in the way.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::proxy::ProxyHttp;
use pingora::server::configuration::ServerConf;
use tokio::net::TcpListener;

/// Serves `app` on an ephemeral port until the test ends; returns the address.
pub async fn serve<SV>(app: SV) -> SocketAddr
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let proxy = Arc::new(pingora::proxy::http_proxy(
        &Arc::new(ServerConf::default()),
        app,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (_never, shutdown) = tokio::sync::watch::channel(false);
        while let Ok((conn, _)) = listener.accept().await {
            let (proxy, shutdown) = (proxy.clone(), shutdown.clone());
            tokio::spawn(async move {
                let stream: Box<dyn pingora::protocols::IO> = Box::new(L4Stream::from(conn));
                proxy.process_new(stream, &shutdown).await;
            });
        }
    });
    addr
}
