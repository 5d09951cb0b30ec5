//! Shared helpers for the simulator's integration tests.
#![allow(dead_code)]

pub mod uac;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use livekit_protocol as proto;
use livekit_sim::{SimConfig, SimHandle, Simulator};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub const KEY: &str = "APIsimKey";
pub const SECRET: &str = "sim-secret-that-is-long-enough-0123456789";

/// One webhook POST as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

/// A local HTTP endpoint that records every request and answers 200.
pub async fn webhook_sink() -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(512);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let _ = tx.send(Received { headers, body }).await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/webhooks/livekit"), rx)
}

pub fn config() -> SimConfig {
    SimConfig::new(KEY, SECRET)
}

pub async fn start() -> SimHandle {
    Simulator::start(config()).await.unwrap()
}

/// Waits for the next webhook whose event name is `event`, skipping others.
pub async fn next_event(
    rx: &mut mpsc::Receiver<Received>,
    event: &str,
) -> (Received, proto::WebhookEvent) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {event} webhook within 10 s"))
            .expect("sink closed");
        let ev: proto::WebhookEvent = serde_json::from_slice(&got.body).unwrap();
        if ev.event == event {
            return (got, ev);
        }
    }
}

/// Polls the SIP participant until it is gone; returns the distinct
/// `sip.callStatus` values seen, in order.
pub async fn status_sequence(
    sim: &SimHandle,
    room: &str,
    identity: &str,
    within: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen: Vec<String> = Vec::new();
    let mut appeared = false;
    loop {
        let current = sim
            .participants(room)
            .into_iter()
            .find(|p| p.identity == identity)
            .and_then(|p| p.attributes.get("sip.callStatus").cloned());
        match current {
            Some(status) => {
                appeared = true;
                if seen.last() != Some(&status) {
                    seen.push(status);
                }
            }
            None if appeared => return seen,
            None => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "call still up; saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `participant_left` event for `identity` from the simulator's webhook log.
pub async fn left_event(sim: &SimHandle, identity: &str) -> proto::WebhookEvent {
    for _ in 0..200 {
        let found = sim.webhooks().into_iter().rev().find_map(|w| {
            let ev: proto::WebhookEvent = serde_json::from_slice(&w.body).ok()?;
            let is_it = ev.event == "participant_left"
                && ev
                    .participant
                    .as_ref()
                    .is_some_and(|p| p.identity == identity);
            is_it.then_some(ev)
        });
        if let Some(ev) = found {
            return ev;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no participant_left for {identity}");
}
