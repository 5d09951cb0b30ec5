//! Structured logs with `tracing`; JSON when `C2C_LOG_FORMAT=json`.
//!
//! Phone numbers never reach a log line unmasked: request code logs
//! `c2c_dialplan::mask(number)`, never the raw value. Keys and secrets are never logged
//! (`Secret` prints as `***`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("C2C_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn"));
    let json = std::env::var("C2C_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second init (tests) is not an error worth dying for.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
