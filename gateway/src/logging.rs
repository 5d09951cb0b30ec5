//! Structured logs with `tracing`; JSON when `C2C_LOG_FORMAT=json`.
//!
//! Phone numbers never reach a log line unmasked: request code logs
//! `c2c_dialplan::mask(number)`, never the raw value. Keys and secrets are never logged
//! (`Secret` prints as `***`). Lines about a call carry its `call_id` (the `call` span,
//! `crate::calls::span`).
//!
//! Lines are written by a dedicated thread from a bounded queue
//! ([`QUEUE_LINES`]): an access log line per API request must not turn a slow or blocked
//! stderr (a full pipe, a stalled log shipper) into stalled Pingora workers. When the
//! queue is full, lines are dropped rather than waited for.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines buffered for the writer thread before new ones are dropped.
pub const QUEUE_LINES: usize = 65_536;

/// Installs the subscriber. Keep the returned guard alive until exit: dropping it
/// flushes the queued lines.
pub fn init() -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_env("C2C_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn"));
    let json = std::env::var("C2C_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUE_LINES)
        .lossy(true)
        .thread_name("c2c-log-writer")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // try_init: a second init (tests) is not an error worth dying for.
    let installed = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    installed.is_ok().then_some(guard)
}
