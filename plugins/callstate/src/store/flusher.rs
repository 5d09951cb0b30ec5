//! Group commit: writers apply their batch (in memory), take a ticket, and wait until a flush
//! that *started after* their batch completes. One flusher serves everyone, so N concurrent
//! writers cost about one fsync instead of N.
//!
//! Under concurrent load the flusher lingers a little before each flush (see [`linger`]):
//! writers that arrive during that pause share the flush instead of queueing for the next
//! one. Each flush costs a disk write, a device kick and its completion interrupt; at 32
//! concurrent call lifecycles this cut flushes from ~1.4 to ~1.0 per lifecycle and raised
//! throughput (BENCHMARKS.md). A lone writer never waits: the pause only follows a flush
//! that already served several writers.
//!
//! The flusher is a dedicated OS thread calling the blocking `Tree::flush` rather than a tokio
//! task: fsync is blocking work anyway, and the store then works from any runtime (or several,
//! as in tests) and needs no runtime at open time. Writers still wait asynchronously.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::StoreError;

#[derive(Default)]
struct Pending {
    /// Tickets handed out (one per applied batch).
    applied: u64,
    shutdown: bool,
}

#[derive(Clone, Default)]
struct Done {
    /// Every ticket `<= upto` was covered by the last finished flush.
    upto: u64,
    error: Option<Arc<str>>,
}

/// Told of every flush: how long it took and whether it succeeded (metrics).
pub(crate) type FlushObserver = Box<dyn Fn(Duration, bool) + Send + Sync>;

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    done: watch::Sender<Done>,
    flushes: AtomicU64,
    /// Set once, after start (the gateway registers its metrics after opening the store).
    observer: OnceLock<FlushObserver>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The guarded data is two plain fields; a panic elsewhere cannot leave it torn.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub(crate) fn start(tree: sled::Tree) -> Result<Self, StoreError> {
        Self::start_with(move || tree.flush().map(drop))
    }

    /// `flush` is the durability barrier; tests substitute a slower one to model a real disk.
    pub(crate) fn start_with<F>(mut flush: F) -> Result<Self, StoreError>
    where
        F: FnMut() -> sled::Result<()> + Send + 'static,
    {
        let (done, _) = watch::channel(Done::default());
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            done,
            flushes: AtomicU64::new(0),
            observer: OnceLock::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("c2c-callstate-flush".into())
            .spawn(move || run(&worker, &mut flush))
            .map_err(StoreError::Spawn)?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// Call right after a batch was applied; returns the ticket to wait for.
    pub(crate) fn ticket(&self) -> u64 {
        let mut p = self.shared.lock();
        p.applied += 1;
        self.shared.wake.notify_one();
        p.applied
    }

    /// The newest ticket handed out so far, without taking a new one. Waiting for it makes
    /// anything this caller has *read* durable (e.g. before acknowledging a no-op).
    pub(crate) fn current(&self) -> u64 {
        self.shared.lock().applied
    }

    /// Waits until a flush covering `ticket` has finished.
    pub(crate) async fn wait(&self, ticket: u64) -> Result<(), StoreError> {
        let mut rx = self.shared.done.subscribe();
        let done = match rx.wait_for(|d| d.upto >= ticket).await {
            Ok(d) => d.clone(),
            Err(_) => return Err(StoreError::FlusherStopped),
        };
        match done.error {
            Some(e) => Err(StoreError::Flush(e.to_string())),
            None => Ok(()),
        }
    }

    /// Ticket + wait: the durable tail of every write path.
    pub(crate) async fn commit(&self) -> Result<(), StoreError> {
        let t = self.ticket();
        self.wait(t).await
    }

    /// Installs the flush observer; false if one is installed already.
    pub(crate) fn observe(&self, f: FlushObserver) -> bool {
        self.shared.observer.set(f).is_ok()
    }

    pub(crate) fn flush_count(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            // Joining makes the final flush happen and releases the thread's tree handle (inside `flush`), so
            // the database can be reopened as soon as the store is dropped.
            let _ = t.join();
        }
    }
}

/// Longest pause before a flush, whatever the disk's speed.
const MAX_LINGER: Duration = Duration::from_micros(250);

/// How long to wait for more writers before the next flush, given how many batches the
/// previous flush covered and how long it took. A flush that covered one batch means no
/// concurrency to harvest: flush at once. Otherwise wait half a flush time (capped): if
/// writers keep arriving as they did during the last flush, the pause adds about half a
/// batch to this one, and the latency it adds is a fraction of the flush every writer
/// waits for anyway.
fn linger(last_batches: u64, last_flush: Duration) -> Duration {
    if last_batches < 2 {
        return Duration::ZERO;
    }
    (last_flush / 2).min(MAX_LINGER)
}

fn run(shared: &Shared, flush: &mut dyn FnMut() -> sled::Result<()>) {
    let mut flushed = 0u64;
    let mut last_batches = 0u64;
    let mut last_flush = Duration::ZERO;
    loop {
        let shutdown = {
            let mut p = shared.lock();
            while p.applied == flushed && !p.shutdown {
                p = shared.wake.wait(p).unwrap_or_else(PoisonError::into_inner);
            }
            p.shutdown
        };
        let pause = linger(last_batches, last_flush);
        if !shutdown && !pause.is_zero() {
            // A plain sleep, not a wait on the condition variable: writers arriving now
            // must not wake this thread one by one.
            std::thread::sleep(pause);
        }
        let target = {
            let p = shared.lock();
            if p.applied == flushed {
                return; // shutdown with nothing left to flush
            }
            p.applied
        };
        last_batches = target - flushed;
        // Every ticket <= target belongs to a batch applied before this flush starts.
        let started = Instant::now();
        let result = flush();
        last_flush = started.elapsed();
        if let Some(observe) = shared.observer.get() {
            observe(last_flush, result.is_ok());
        }
        let error = match result {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "callstate: sled flush failed");
                Some(Arc::<str>::from(e.to_string()))
            }
        };
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        flushed = target;
        shared.done.send_replace(Done {
            upto: target,
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lingers_only_after_a_shared_flush_and_never_long() {
        let ms = Duration::from_millis;
        // A lone writer (or the first flush) is flushed at once.
        assert_eq!(linger(0, ms(5)), Duration::ZERO);
        assert_eq!(linger(1, ms(5)), Duration::ZERO);
        // After a flush that served several writers: half a flush time...
        assert_eq!(
            linger(3, Duration::from_micros(300)),
            Duration::from_micros(150)
        );
        // ...but never more than MAX_LINGER, however slow the disk.
        assert_eq!(linger(8, ms(40)), MAX_LINGER);
    }
}
