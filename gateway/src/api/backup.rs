//! `GET /api/c2c/owner/backup` (owner key): a consistent copy of the running gateway's
//! whole store, streamed (`c2c-gateway db backup`).
//!
//! The one local route whose body is not built whole: a store can be gigabytes. The
//! handler answers the head ([`head`]); the proxy then calls [`start`] and writes the
//! chunks as the store produces them. The copy runs on a blocking thread and reaches
//! the connection through a bounded channel, so memory stays at a few chunks however
//! big the store, and a client that goes away stops the copy (its next send fails).
//! What the stream contains, and why it is consistent while calls go on, is
//! `c2c_callstate`'s `backup.rs`.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use c2c_callstate::BackupError;
use c2c_plugin_api::{ApiError, JsonResponse};
use http::{HeaderValue, StatusCode};
use tokio::sync::mpsc;

use crate::app::App;

/// The media type of a backup stream.
pub const CONTENT_TYPE: &str = "application/vnd.c2c-gateway.backup";
/// Bytes per chunk sent to the connection.
const CHUNK: usize = 64 * 1024;
/// Chunks queued between the copy and the connection.
const QUEUE: usize = 4;
/// Test-only: sleep this many milliseconds after each frame of the stream, so a test
/// can interrupt a backup of a small store mid-way. Never set in production.
const PACE_ENV: &str = "C2C_TEST_BACKUP_PACE_MS";

/// The head of the answer: the proxy streams the body (see the module docs).
pub fn head() -> JsonResponse {
    let mut r = JsonResponse::empty(StatusCode::OK);
    r.headers.push((
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    ));
    r.headers.push((
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    r
}

/// Starts the copy (changes are recorded from this moment) and returns the stream of
/// its chunks. Fails with `409 backup_in_progress` when another backup runs.
pub fn start(app: &App) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let job = app.store().begin_backup().map_err(|e| match e {
        BackupError::Busy => {
            ApiError::new(StatusCode::CONFLICT, "backup_in_progress", e.to_string())
        }
        e => {
            tracing::error!(error = %e, "cannot start a backup");
            ApiError::unavailable(
                "store_unavailable",
                "the store cannot be backed up now; try again",
                5,
            )
        }
    })?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let pace = std::env::var(PACE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            pace,
        };
        match job.write(&mut out).and_then(|info| {
            out.flush()?;
            Ok(info)
        }) {
            Ok(info) => tracing::info!(
                trees = info.trees,
                entries = info.entries,
                changes_during_copy = info.changes,
                bytes = info.bytes,
                took_ms = started.elapsed().as_millis() as u64,
                "store backup streamed"
            ),
            Err(e) => tracing::warn!(error = %e, "store backup not completed"),
        }
    });
    tracing::info!("store backup started");
    Ok(rx)
}

/// `Write` into the bounded channel, [`CHUNK`] bytes at a time.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    pace: Option<Duration>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        // Blocks this (blocking) thread while the connection is behind; fails when the
        // client is gone, which ends the copy.
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if let Some(p) = self.pace {
            self.send()?;
            std::thread::sleep(p);
        } else if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
