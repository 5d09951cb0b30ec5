//! `c2c-gateway dev crm-sink`: a stand-in for a CRM's webhook endpoint, for local
//! development and the README walkthrough. It answers every well-formed POST with 200
//! (401 when `--expect-key-file` is given and `X-api-key` differs) and prints one JSON
//! line per webhook on stdout: the headers a CRM developer checks (`webhook-id`,
//! `webhook-timestamp`, the `X-api-key` masked, whether a signature came and, with
//! `--signing-secret-file`, whether it verifies) and the JSON body.
//!
//! Must not: grow into a general HTTP server. It reads HTTP/1.1 with `Content-Length`
//! only (what the gateway's deliverer sends), bounded: 16 KiB of head, 1 MiB of body,
//! 64 connections, 30 s idle.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::common::{block_on, CliResult, Failure};

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const MAX_CONNECTIONS: usize = 64;
const IDLE: Duration = Duration::from_secs(30);

/// Arguments of `dev crm-sink`.
#[derive(Debug, Args)]
pub struct CrmSinkArgs {
    /// Address to listen on: the host and port of the tenant's `[crm_webhook] url`
    /// (the example tenant `acme` posts to http://127.0.0.1:8090/c2c/webhook).
    #[arg(long, env = "C2C_SINK_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// File holding the outbound key the gateway must send as `X-api-key` (the tenant's
    /// `crm_webhook.outbound_key_file`); a request without it or with another key gets 401.
    #[arg(long, env = "C2C_SINK_EXPECT_KEY_FILE")]
    pub expect_key_file: Option<PathBuf>,
    /// File holding the tenant's `crm_webhook.signing_secret`: `webhook-signature` is
    /// then verified (reported as `valid` or `invalid`; the answer stays 200).
    #[arg(long, env = "C2C_SINK_SIGNING_SECRET_FILE")]
    pub signing_secret_file: Option<PathBuf>,
}

/// What the sink checks requests against.
struct Expect {
    /// SHA-256 of the expected key: comparing digests leaks nothing about the key.
    key_digest: Option<[u8; 32]>,
    signing_secret: Option<Vec<u8>>,
}

fn read_secret(path: &Path, what: &str) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read {what} {}: {e}", path.display())))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Failure::Usage(format!(
            "{what} {} is empty",
            path.display()
        )));
    }
    Ok(text.to_string())
}

/// Runs the sink until the process is stopped.
pub fn run(args: CrmSinkArgs) -> CliResult {
    let key_digest = match &args.expect_key_file {
        Some(p) => Some(Sha256::digest(read_secret(p, "key file")?.as_bytes()).into()),
        None => None,
    };
    let signing_secret = match &args.signing_secret_file {
        // The gateway's rule: `whsec_<base64>` is decoded, anything else is raw bytes.
        Some(p) => {
            let text = read_secret(p, "signing secret file")?;
            Some(c2c_crm_webhooks::sign::decode_secret(&text).unwrap_or_else(|_| text.into_bytes()))
        }
        None => None,
    };
    let expect = Arc::new(Expect {
        key_digest,
        signing_secret,
    });
    block_on(async move {
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| Failure::failed(format!("cannot listen on {}: {e}", args.listen)))?;
        eprintln!(
            "crm-sink listening on http://{} (one JSON line per webhook on stdout)",
            args.listen
        );
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return Ok(());
            };
            let (sock, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("crm-sink: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let expect = expect.clone();
            tokio::spawn(async move {
                let _permit = permit;
                serve_connection(sock, &expect).await;
            });
        }
    })
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a connection's next request could not be read.
enum ReadError {
    /// Closed, timed out or unreadable: just drop the connection.
    Gone,
    /// Answer with this status and close.
    Reject(u16, &'static str),
}

async fn serve_connection(mut sock: TcpStream, expect: &Expect) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let req = match read_request(&mut sock, &mut buf).await {
            Ok(r) => r,
            Err(ReadError::Gone) => return,
            Err(ReadError::Reject(status, why)) => {
                let _ = respond(&mut sock, status, &json!({ "error": why }), false).await;
                return;
            }
        };
        let (status, answer, line) = handle(&req, expect);
        // A closed stdout (the reader went away) must not end the sink: println! would
        // panic.
        {
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        if respond(&mut sock, status, &answer, req.keep_alive)
            .await
            .is_err()
            || !req.keep_alive
        {
            return;
        }
    }
}

async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Request, ReadError> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Reject(431, "request head too large"));
        }
        fill(sock, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| ReadError::Reject(400, "request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, path, version) = match (first.next(), first.next(), first.next()) {
        (Some(m), Some(p), Some(v)) => (m.to_string(), p.to_string(), v.to_string()),
        _ => return Err(ReadError::Reject(400, "malformed request line")),
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if get("transfer-encoding").is_some() {
        return Err(ReadError::Reject(411, "send a Content-Length body"));
    }
    let len = match get("content-length").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n <= MAX_BODY => n,
        Some(Ok(_)) => return Err(ReadError::Reject(413, "body over 1 MiB")),
        Some(Err(_)) => return Err(ReadError::Reject(400, "bad Content-Length")),
    };
    let keep_alive = version == "HTTP/1.1"
        && !get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
    let body_start = head_end + 4;
    while buf.len() < body_start + len {
        fill(sock, buf).await?;
    }
    let body = buf[body_start..body_start + len].to_vec();
    buf.drain(..body_start + len);
    Ok(Request {
        method,
        path,
        headers,
        body,
        keep_alive,
    })
}

/// Reads more bytes into `buf`; an idle, closed or failed connection is gone.
async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), ReadError> {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout(IDLE, sock.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        _ => Err(ReadError::Gone),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks one request: the status and body to answer, and the line to print.
fn handle(req: &Request, expect: &Expect) -> (u16, Value, Value) {
    if req.method != "POST" {
        let line = json!({ "path": req.path, "method": req.method, "answered": 405 });
        return (405, json!({ "error": "POST webhooks here" }), line);
    }
    let key = req.header("x-api-key");
    let key_check = match (&expect.key_digest, key) {
        (None, _) => "unchecked",
        (Some(_), None) => "missing",
        (Some(want), Some(k)) if Sha256::digest(k.as_bytes()).as_slice() == want => "ok",
        (Some(_), Some(_)) => "wrong",
    };
    let id = req.header("webhook-id");
    let ts = req.header("webhook-timestamp");
    let sig = req.header("webhook-signature");
    let signature = match (sig, &expect.signing_secret) {
        (None, _) => "absent",
        (Some(_), None) => "present",
        (Some(s), Some(secret)) => {
            let ts = ts.and_then(|t| t.parse::<u64>().ok());
            match (id, ts) {
                (Some(id), Some(ts))
                    if c2c_crm_webhooks::sign::verify(secret, id, ts, &req.body, s) =>
                {
                    "valid"
                }
                _ => "invalid",
            }
        }
    };
    let status = if matches!(key_check, "missing" | "wrong") {
        401
    } else {
        200
    };
    let body = serde_json::from_slice::<Value>(&req.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&req.body).into_owned()));
    let line = json!({
        "received_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "path": req.path,
        "webhook_id": id,
        "webhook_timestamp": ts,
        "x_api_key": key.map(mask_key),
        "key": key_check,
        "signature": signature,
        "answered": status,
        "body": body,
    });
    let answer = if status == 200 {
        json!({ "ok": true })
    } else {
        json!({ "error": "X-api-key is missing or not the expected key" })
    };
    (status, answer, line)
}

/// First and last four characters: enough to tell keys apart, useless to an onlooker.
fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

async fn respond(
    sock: &mut TcpStream,
    status: u16,
    body: &Value,
    keep_alive: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        _ => "Request Header Fields Too Large",
    };
    let body = body.to_string();
    let conn = if keep_alive { "keep-alive" } else { "close" };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {conn}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(msg.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: "POST".into(),
            path: "/c2c/webhook".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            keep_alive: true,
        }
    }

    #[test]
    fn masks_keys() {
        assert_eq!(mask_key("acme-crm-outbound-dev-key"), "acme…-key");
        assert_eq!(mask_key("short"), "*****");
    }

    #[test]
    fn checks_key_and_signature() {
        let secret = b"whsec-acme-dev-signing-secret".to_vec();
        let expect = Expect {
            key_digest: Some(Sha256::digest(b"k-0123456789").into()),
            signing_secret: Some(secret.clone()),
        };
        let body = r#"{"call_id":"c2c_1"}"#;
        let sig = c2c_crm_webhooks::sign(&secret, "msg_1", 1_700_000_000, body.as_bytes());
        let good = [
            ("X-api-key", "k-0123456789"),
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", sig.as_str()),
        ];
        let (status, _, line) = handle(&req(&good, body), &expect);
        assert_eq!(status, 200);
        assert_eq!(line["key"], "ok");
        assert_eq!(line["signature"], "valid");
        assert_eq!(line["webhook_id"], "msg_1");
        assert_eq!(line["x_api_key"], "k-01…6789");
        assert_eq!(line["body"]["call_id"], "c2c_1");

        let mut wrong = good;
        wrong[0].1 = "k-other-key-9";
        let (status, _, line) = handle(&req(&wrong, body), &expect);
        assert_eq!((status, line["key"].as_str()), (401, Some("wrong")));
        let (status, _, line) = handle(&req(&good[1..], body), &expect);
        assert_eq!((status, line["key"].as_str()), (401, Some("missing")));
        // A tampered body is reported, and still answered 200: the sink shows, the CRM
        // decides.
        let (status, _, line) = handle(&req(&good, r#"{"call_id":"c2c_2"}"#), &expect);
        assert_eq!((status, line["signature"].as_str()), (200, Some("invalid")));

        let lax = Expect {
            key_digest: None,
            signing_secret: None,
        };
        let (status, _, line) = handle(&req(&good, body), &lax);
        assert_eq!(status, 200);
        assert_eq!(line["key"], "unchecked");
        assert_eq!(line["signature"], "present");
    }
}
