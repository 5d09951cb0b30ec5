//! The comparison: idle HTTP/1.1 keep-alive connections held inside Pingora, each after
//! one `GET /livez` whose answer was read in full.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Opens `n` connections (at most `concurrency` at once), sends `GET /livez` on each and
/// reads the answer, and keeps them. Returns the open ones and the failures.
pub async fn open(addr: SocketAddr, n: usize, concurrency: usize) -> (Vec<TcpStream>, Vec<String>) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let _p = permits.acquire_owned().await;
            tokio::time::timeout(Duration::from_secs(30), one(addr))
                .await
                .unwrap_or_else(|_| Err("no answer in 30 s".into()))
        }));
    }
    let (mut open, mut failed) = (Vec::with_capacity(n), Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) => open.push(s),
            Err(e) => failed.push(e),
        }
    }
    (open, failed)
}

async fn one(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let req = format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if s.read_buf(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("closed before the answer".into());
        }
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(format!(
                "answer: {}",
                head.lines().next().unwrap_or_default()
            ));
        }
        if head.contains("connection: close") {
            return Err("the gateway closes the connection after /livez".into());
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("answer without content-length")?;
        if buf.len() >= end + 4 + len {
            return Ok(s);
        }
    }
}

/// How many of `conns` the gateway still holds open: a read that would block is an open,
/// idle connection; end of stream or an error means the gateway closed it.
pub fn still_open(conns: &[TcpStream]) -> usize {
    let mut b = [0u8; 64];
    conns
        .iter()
        .filter(
            |s| matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        )
        .count()
}
