//! A minimal HTTP/1.1 keep-alive client for the load generator.
//!
//! Why not reqwest (used before): the load generator shares the machine's two cores with the
//! gateway it measures, and reqwest's per-request work (URL parsing, header maps, pool
//! checkout, `serde_json::Value` bodies) cost the load generator ~0.35 ms of CPU per
//! lifecycle, a sixth of the whole run. Each benchmark task owns one connection and sends
//! its requests on it one after another, so a client needs no pool: write a request, read
//! one response. The gateway still parses everything in full; only the measuring side got
//! cheaper.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head or body the benchmark accepts (its responses are a few hundred
/// bytes; anything this big means something is wrong).
const MAX_RESPONSE: usize = 1 << 20;

/// One persistent connection to one server, reopened when the server closes it.
pub struct Conn {
    addr: SocketAddr,
    host: String,
    wire: Option<Wire>,
    /// The request being sent, reused so a request costs no allocation.
    req: Vec<u8>,
}

/// An open connection and the bytes read from it but not yet consumed.
struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response: status, the `Server-Timing: livekit;dur=<ms>` figure in microseconds (0
/// without one), and the body.
pub struct Response {
    pub status: u16,
    pub livekit_us: u64,
    pub body: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            host: addr.to_string(),
            wire: None,
            req: Vec::with_capacity(512),
        }
    }

    /// Sends `POST path` (JSON body if any, `X-Api-Key` if given) and reads the response.
    /// Reconnects once if a kept-alive connection turns out closed before any response
    /// byte arrived (a server may close idle connections; nothing was processed then).
    pub async fn post(
        &mut self,
        path: &str,
        body: Option<&[u8]>,
        api_key: Option<&str>,
    ) -> std::io::Result<Response> {
        self.req.clear();
        self.req.extend_from_slice(b"POST ");
        self.req.extend_from_slice(path.as_bytes());
        self.req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        self.req.extend_from_slice(self.host.as_bytes());
        self.req.extend_from_slice(b"\r\n");
        if let Some(k) = api_key {
            self.req.extend_from_slice(b"X-Api-Key: ");
            self.req.extend_from_slice(k.as_bytes());
            self.req.extend_from_slice(b"\r\n");
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() {
            self.req
                .extend_from_slice(b"Content-Type: application/json\r\n");
        }
        self.req.extend_from_slice(b"Content-Length: ");
        self.req
            .extend_from_slice(body.len().to_string().as_bytes());
        self.req.extend_from_slice(b"\r\n\r\n");
        self.req.extend_from_slice(body);
        let mut retried = false;
        loop {
            let (mut wire, reused) = match self.wire.take() {
                Some(w) => (w, true),
                None => (Wire::connect(self.addr).await?, false),
            };
            match wire.exchange(&self.req).await {
                Ok((response, keep_alive)) => {
                    if keep_alive {
                        self.wire = Some(wire);
                    }
                    return Ok(response);
                }
                Err(e) if reused && !retried && is_stale(&e) => retried = true,
                Err(e) => return Err(e),
            }
        }
    }
}

/// How a kept-alive connection the server already closed fails before any response byte.
fn is_stale(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
    )
}

impl Wire {
    async fn connect(addr: SocketAddr) -> std::io::Result<Wire> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Wire {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Writes `req` and reads one response. Returns it with whether the connection can
    /// carry the next request.
    async fn exchange(&mut self, req: &[u8]) -> std::io::Result<(Response, bool)> {
        self.stream.write_all(req).await?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if read_more(&mut self.stream, &mut self.buf).await? == 0 {
                // Closed before a full head: a stale keep-alive connection if nothing came.
                let kind = if self.buf.is_empty() {
                    std::io::ErrorKind::ConnectionReset
                } else {
                    std::io::ErrorKind::UnexpectedEof
                };
                return Err(std::io::Error::new(kind, "connection closed mid-response"));
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| invalid("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let (mut length, mut chunked, mut close, mut livekit_us) = (None, false, false, 0);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid("bad header line"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| invalid("bad length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("server-timing") {
                livekit_us = value
                    .strip_prefix("livekit;dur=")
                    .and_then(|ms| ms.parse::<f64>().ok())
                    .map_or(0, |ms| (ms * 1000.0) as u64);
            }
        }
        self.buf.drain(..head_end + 4);
        let body = if chunked {
            self.read_chunked().await?
        } else {
            let n = length.ok_or_else(|| invalid("response without a length"))?;
            if n > MAX_RESPONSE {
                return Err(invalid("response too large"));
            }
            self.read_exact(n).await?
        };
        let response = Response {
            status,
            livekit_us,
            body,
        };
        Ok((response, !close))
    }

    /// Takes `n` bytes off the front of the buffer, reading until they are there.
    async fn read_exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if read_more(&mut self.stream, &mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_RESPONSE {
                return Err(invalid("chunk line too long"));
            }
            if read_more(&mut self.stream, &mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers (none expected), up to the empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_RESPONSE {
                return Err(invalid("response too large"));
            }
            let chunk = self.read_exact(size + 2).await?;
            if !chunk.ends_with(b"\r\n") {
                return Err(invalid("chunk without its CRLF"));
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.len() > MAX_RESPONSE {
        return Err(invalid("response head too large"));
    }
    buf.reserve(4096);
    stream.read_buf(buf).await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves the given raw responses, one per request head received, on one connection.
    async fn serve(responses: Vec<&'static [u8]>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            for r in responses {
                while find(&buf, b"\r\n\r\n").is_none() {
                    s.read_buf(&mut buf).await.unwrap();
                }
                let end = find(&buf, b"\r\n\r\n").unwrap() + 4;
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while buf.len() < end + len {
                    s.read_buf(&mut buf).await.unwrap();
                }
                buf.drain(..end + len);
                s.write_all(r).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_sized_and_chunked_responses_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer-Timing: livekit;dur=1.5\r\n\r\n{}",
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
        ])
        .await;
        let mut c = Conn::new(addr);
        let r = c.post("/a", Some(b"{\"x\":1}"), Some("k")).await.unwrap();
        assert_eq!(
            (r.status, r.livekit_us, &r.body[..]),
            (200, 1500, &b"{}"[..])
        );
        let r = c.post("/b", None, None).await.unwrap();
        assert_eq!(
            (r.status, r.livekit_us, &r.body[..]),
            (202, 0, &b"abcde"[..])
        );
        let r = c.post("/c", None, None).await.unwrap();
        assert_eq!((r.status, r.body.len()), (404, 0));
    }

    /// A server that answers one request per connection and closes: the client notices
    /// `Connection: close` and opens a new connection for the next request.
    #[tokio::test]
    async fn connection_close_opens_a_new_connection() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = Vec::new();
                while find(&buf, b"\r\n\r\n").is_none() {
                    s.read_buf(&mut buf).await.unwrap();
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")
                    .await
                    .unwrap();
            }
        });
        let mut c = Conn::new(addr);
        for _ in 0..2 {
            let r = c.post("/", None, None).await.unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"x"[..]));
        }
    }

    #[tokio::test]
    async fn a_malformed_status_line_is_an_error() {
        let addr = serve(vec![b"HTTP/1.1 abc\r\n\r\n"]).await;
        let err = Conn::new(addr).post("/", None, None).await.err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
