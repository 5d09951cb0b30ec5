//! Where anchored calls' relays run: [`MediaEngine`].
//!
//! - **runtime**: one task per call on the tokio runtime that starts it. Each datagram
//!   costs a `recvfrom` and a `sendto` system call, and the runtime's `epoll_wait` wakes
//!   the thread for every few packets.
//! - **io_uring** (Linux 6.1 and later): every call on one media thread driving one
//!   `io_uring`. Receives and sends are queued in the ring and handed to the kernel
//!   together; while packets flow fast the thread wakes once per 8 completions or per
//!   `batch` (default 200 µs), whichever comes first, and takes every packet that came
//!   meanwhile, instead of once per packet. Packets go out from the buffer they came
//!   in: no copy.
//!
//! `auto` takes io_uring when the kernel allows it (containers often forbid it with
//! seccomp, and `kernel.io_uring_disabled` can) and the runtime otherwise, and says which
//! and why ([`MediaEngine::fallback`]).

use std::time::Duration;

use crate::relay::{Endpoint, Relay, RelayConfig};

/// Which engine the configuration asks for (`[sip.media] io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaIo {
    /// io_uring where the kernel allows it, the runtime otherwise.
    #[default]
    Auto,
    /// io_uring, or the edge does not start.
    IoUring,
    /// A task per call on the runtime.
    Runtime,
}

impl std::str::FromStr for MediaIo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "io_uring" => Ok(Self::IoUring),
            "runtime" => Ok(Self::Runtime),
            other => Err(format!(
                "unknown media io {other:?}: expected \"auto\", \"io_uring\" or \"runtime\""
            )),
        }
    }
}

/// How long the io_uring media thread may hold a packet by default, so one wake-up
/// serves several. A voice packet carries 20 ms of audio and jitter buffers hold 20-60
/// ms; 200 µs is 1 % of one packet's interval.
pub const DEFAULT_BATCH: Duration = Duration::from_micros(200);

/// Runs relays (cheap to clone: the io_uring engine is shared, and stops with its last
/// relay and clone).
#[derive(Clone)]
pub struct MediaEngine {
    kind: Kind,
    fallback: Option<String>,
}

#[derive(Clone)]
enum Kind {
    Runtime,
    #[cfg(target_os = "linux")]
    Uring(std::sync::Arc<crate::uring::Engine>),
}

impl MediaEngine {
    /// The runtime engine.
    pub fn runtime() -> Self {
        Self {
            kind: Kind::Runtime,
            fallback: None,
        }
    }

    /// The io_uring engine and its media thread; `batch` as [`DEFAULT_BATCH`] (zero: no
    /// waiting for a batch). Fails where the kernel has no usable io_uring.
    pub fn io_uring(batch: Duration) -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            Ok(Self {
                kind: Kind::Uring(crate::uring::Engine::start(batch)?),
                fallback: None,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = batch;
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "io_uring is Linux only",
            ))
        }
    }

    /// The engine `io` asks for. `Auto` never fails: without io_uring it is the runtime,
    /// with the reason in [`Self::fallback`].
    pub fn new(io: MediaIo, batch: Duration) -> std::io::Result<Self> {
        match io {
            MediaIo::Runtime => Ok(Self::runtime()),
            MediaIo::IoUring => Self::io_uring(batch),
            MediaIo::Auto => Ok(Self::io_uring(batch).unwrap_or_else(|e| Self {
                kind: Kind::Runtime,
                fallback: Some(format!(
                    "io_uring unavailable ({e}); relays run on the runtime"
                )),
            })),
        }
    }

    /// `"io_uring"` or `"runtime"`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Runtime => "runtime",
            #[cfg(target_os = "linux")]
            Kind::Uring(_) => "io_uring",
        }
    }

    /// Why `auto` fell back to the runtime, if it did.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Starts relaying between `carrier` and `livekit`. The runtime engine needs to be
    /// called on a tokio runtime; either fails only on a socket it cannot take, or (io_uring)
    /// when its command queue is full.
    pub fn start(
        &self,
        carrier: Endpoint,
        livekit: Endpoint,
        cfg: RelayConfig,
    ) -> std::io::Result<Relay> {
        match &self.kind {
            Kind::Runtime => crate::relay::task::start(carrier, livekit, cfg),
            #[cfg(target_os = "linux")]
            Kind::Uring(engine) => engine.start_call(carrier, livekit, cfg),
        }
    }
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("kind", &self.name())
            .field("fallback", &self.fallback)
            .finish()
    }
}
