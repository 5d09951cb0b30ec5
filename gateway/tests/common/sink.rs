//! A CRM webhook receiver on 127.0.0.1 that records what it got and can be told to fail.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
    pub status_sent: u16,
}

#[derive(Clone)]
pub struct Sink {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Status to answer with (200 = accept).
    pub status: Arc<AtomicU16>,
}

impl Sink {
    pub async fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/c2c/webhook", l.local_addr().unwrap());
        let sink = Self {
            url,
            received: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(AtomicU16::new(200)),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = l.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    loop {
                        let Ok(n) = sock.read(&mut tmp).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                        let Some(end) = find(&buf, b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let mut headers = HashMap::new();
                        for line in head.lines().skip(1) {
                            if let Some((k, v)) = line.split_once(':') {
                                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                            }
                        }
                        let len: usize = headers
                            .get("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            continue;
                        }
                        let raw = buf[end + 4..end + 4 + len].to_vec();
                        buf.drain(..end + 4 + len);
                        let status = s.status.load(Ordering::SeqCst);
                        s.received.lock().push(Received {
                            headers,
                            body: serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
                            raw,
                            status_sent: status,
                        });
                        let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        sink
    }

    pub fn delivered(&self) -> Vec<Received> {
        self.received
            .lock()
            .iter()
            .filter(|r| r.status_sent < 300)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().clone()
    }

    pub fn for_call(&self, call_id: &str) -> Vec<Received> {
        self.delivered()
            .into_iter()
            .filter(|r| r.body["call_id"] == call_id)
            .collect()
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}
