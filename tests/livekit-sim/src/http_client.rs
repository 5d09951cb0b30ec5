//! A minimal HTTP/1.1 POST client over hyper, for webhook delivery and tests.
//!
//! Why not reqwest: the workspace builds reqwest with `rustls-no-provider`, which
//! panics on `Client::build()` unless the process installed a crypto provider — the
//! simulator must not impose that on whoever embeds it. Webhook targets are local
//! test endpoints, so plain `http://` is all that is supported.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::SimError;

/// Responses larger than this are cut off with an error.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A fully read response.
#[derive(Clone, Debug)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// POSTs `body` to an `http://` URL with the given headers; one connection per call.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> Result<ClientResponse, SimError> {
    tokio::time::timeout(timeout, post_inner(url, headers, body))
        .await
        .map_err(|_| SimError::Http(format!("timed out after {timeout:?}")))?
}

async fn post_inner(
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<ClientResponse, SimError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| SimError::Http(format!("bad url: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(SimError::Http("only http:// urls are supported".to_owned()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| SimError::Http("url has no host".to_owned()))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| SimError::Http(format!("connect: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SimError::Http(format!("handshake: {e}")))?;
    let conn_task = tokio::spawn(conn);

    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let mut builder = Request::post(path).header(header::HOST, authority.as_str());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder
        .body(Full::new(body))
        .map_err(|e| SimError::Http(format!("request: {e}")))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| SimError::Http(format!("send: {e}")))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| SimError::Http(format!("body: {e}")))?
            .to_bytes();
        Ok(ClientResponse {
            status,
            headers,
            body,
        })
    }
    .await;
    conn_task.abort();
    result
}
