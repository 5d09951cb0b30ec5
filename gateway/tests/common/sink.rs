//! A CRM webhook receiver on 127.0.0.1 that records what it got and can be told to fail.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

use c2c_test_support::receiver::{Receiver, Reply};
use parking_lot::Mutex;

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
    /// How long to take over each answer, in ms (a slow CRM).
    pub delay_ms: Arc<AtomicU64>,
}

impl Sink {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (rec, st, slow) = (received.clone(), status.clone(), delay_ms.clone());
        let receiver = Receiver::start(move |req| {
            let status = st.load(Ordering::SeqCst);
            let delay = std::time::Duration::from_millis(slow.load(Ordering::SeqCst));
            rec.lock().push(Received {
                headers: req.headers.into_iter().collect(),
                body: serde_json::from_slice(&req.body).unwrap_or(serde_json::Value::Null),
                raw: req.body,
                status_sent: status,
            });
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Reply::status(status)
            }
        })
        .await
        .unwrap();
        Self {
            url: format!("http://{}/c2c/webhook", receiver.detach()),
            received,
            status,
            delay_ms,
        }
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
