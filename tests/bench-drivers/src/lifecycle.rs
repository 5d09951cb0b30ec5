//! What the lifecycle drivers (`lifecycle-bench`, `fleet-bench`) share: the bench key,
//! one checked request, the click2call answer's ids, and a CRM webhook sink.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http1;

/// The bench tenant's API key in `./policies` (a test key, not a secret).
pub const KEY: &str = "c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0";

/// Sends one request on `conn` (with [`KEY`] when `key`) and returns (latency µs,
/// response). Panics on a transport error or a non-2xx status: a benchmark of failing
/// requests measures nothing.
pub async fn post(
    conn: &mut http1::Conn,
    path: &str,
    body: Option<&[u8]>,
    key: bool,
) -> (u64, http1::Response) {
    let t = Instant::now();
    let r = conn
        .post(path, body, key.then_some(KEY))
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    assert!(
        (200..300).contains(&r.status),
        "POST {path} failed with {}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    (t.elapsed().as_micros() as u64, r)
}

/// `call_id` and `room` from a click2call response.
pub fn created(r: &http1::Response) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("click2call JSON");
    let field = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("click2call response without {k}: {v}"))
            .to_string()
    };
    (field("call_id"), field("room"))
}

/// A CRM webhook sink on 127.0.0.1: answers 200 to everything, counts the requests in
/// `count`, and returns its URL.
pub async fn crm_sink(count: Arc<AtomicU64>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut tmp = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut tmp).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            break;
                        }
                        buf.drain(..end + 4 + len);
                        count.fetch_add(1, Ordering::Relaxed);
                        if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    url
}
