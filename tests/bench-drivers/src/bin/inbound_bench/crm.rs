//! The CRM: the tenant's lead lookup (`POST /lead-lookup`, answered at once with a lead
//! naming the caller) and its webhook receiver (`POST /hook`, 200, counted). HTTP/1.1
//! keep-alive, one task per connection, no framework: it shares the cores with what it
//! measures.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request accepted (a webhook is under 1 KiB).
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Default)]
pub struct Crm {
    pub lookups: AtomicU64,
    pub webhooks: AtomicU64,
    /// Webhooks by `direction` and `call_status` (`inbound ANSWERED`, ...).
    pub outcomes: Mutex<BTreeMap<String, u64>>,
}

/// Starts the server; returns it and its base URL.
pub async fn start() -> (Arc<Crm>, String) {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("CRM listener");
    let url = format!("http://{}", l.local_addr().expect("CRM address"));
    let crm = Arc::new(Crm::default());
    let c = crm.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(serve(s, c.clone()));
        }
    });
    (crm, url)
}

async fn serve(mut s: TcpStream, crm: Arc<Crm>) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let Some(end) = find(&buf, b"\r\n\r\n") else {
            if buf.len() > MAX_REQUEST {
                return;
            }
            buf.reserve(4096);
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if end + 4 + len > MAX_REQUEST {
            return;
        }
        while buf.len() < end + 4 + len {
            buf.reserve(4096);
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let lookup = head.starts_with("post /lead-lookup ");
        let answer = if lookup {
            crm.lookups.fetch_add(1, Ordering::Relaxed);
            lead(&buf[end + 4..end + 4 + len])
        } else {
            crm.note_webhook(&buf[end + 4..end + 4 + len]);
            crm.webhooks.fetch_add(1, Ordering::Relaxed);
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec()
        };
        buf.drain(..end + 4 + len);
        if s.write_all(&answer).await.is_err() {
            return;
        }
    }
}

impl Crm {
    fn note_webhook(&self, body: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Hook<'a> {
            #[serde(default)]
            direction: &'a str,
            #[serde(default)]
            call_status: &'a str,
        }
        let what = serde_json::from_slice::<Hook>(body).map_or_else(
            |_| "unreadable".to_owned(),
            |h| format!("{} {}", h.direction, h.call_status),
        );
        *self.outcomes.lock().unwrap().entry(what).or_default() += 1;
    }
}

/// The lead of the caller in a lookup body: `{"lead_id", "phone", ...}`, where `phone`
/// is the caller, so an agent can tell its lead from another call's.
fn lead(body: &[u8]) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Ask<'a> {
        phone_from: &'a str,
    }
    let phone = serde_json::from_slice::<Ask>(body).map_or("", |a| a.phone_from);
    let json = format!(
        r#"{{"lead_id":"L{phone}","phone":"{phone}","name":"Bench Lead","stage":"demo booked","owner":"ib-0000"}}"#
    );
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
        json.len()
    )
    .into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
