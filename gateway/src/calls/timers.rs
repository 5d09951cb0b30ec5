//! Call timers (ring timeout, agent-drop grace, max duration, unconnected expiry).
//!
//! Deadlines live in the call record (so they survive a crash); this wheel is the
//! in-memory schedule rebuilt from open calls at start. One task sleeps until the
//! earliest deadline; memory and work grow with open calls only.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use c2c_callstate::{CallEvent, TimerKind};
use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
struct Schedule {
    by_due: BTreeSet<(u64, Arc<str>, TimerKind)>,
    by_call: HashMap<(Arc<str>, TimerKind), u64>,
}

/// Shared handle: effect runners arm/cancel, the timer service fires.
#[derive(Clone, Default)]
pub struct Timers {
    inner: Arc<Mutex<Schedule>>,
    wake: Arc<Notify>,
}

impl Timers {
    pub fn arm(&self, call_id: &str, kind: TimerKind, at_ms: u64) {
        let id: Arc<str> = Arc::from(call_id);
        let mut s = self.inner.lock();
        if let Some(old) = s.by_call.insert((id.clone(), kind), at_ms) {
            s.by_due.remove(&(old, id.clone(), kind));
        }
        let key = (at_ms, id, kind);
        // Wake the runner only if this deadline is now the earliest: otherwise it already
        // sleeps until an earlier one and sees this one when it looks again. Deadlines are
        // armed mostly in time order, so most arms wake nobody (one thread hop saved per
        // call on the request path).
        let earliest = s.by_due.first().is_none_or(|first| key < *first);
        s.by_due.insert(key);
        drop(s);
        if earliest {
            self.wake.notify_one();
        }
    }

    pub fn cancel(&self, call_id: &str, kind: TimerKind) {
        let id: Arc<str> = Arc::from(call_id);
        let mut s = self.inner.lock();
        if let Some(at) = s.by_call.remove(&(id.clone(), kind)) {
            s.by_due.remove(&(at, id, kind));
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_call.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns every timer due at `now_ms`, or the next deadline.
    fn take_due(&self, now_ms: u64) -> (Vec<(Arc<str>, TimerKind)>, Option<u64>) {
        let mut s = self.inner.lock();
        let mut due = Vec::new();
        while let Some((at, id, kind)) = s.by_due.first().cloned() {
            if at > now_ms {
                return (due, Some(at));
            }
            s.by_due.pop_first();
            s.by_call.remove(&(id.clone(), kind));
            due.push((id, kind));
        }
        (due, None)
    }

    /// Runs until `shutdown` flips, sending each due timer to `fire`.
    pub async fn run<F, Fut>(&self, mut shutdown: tokio::sync::watch::Receiver<bool>, fire: F)
    where
        F: Fn(Arc<str>, CallEvent) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        loop {
            let (due, next) = self.take_due(crate::clock::now_ms());
            for (id, kind) in due {
                fire(id, CallEvent::Timer(kind)).await;
            }
            let sleep = match next {
                Some(at) => {
                    std::time::Duration::from_millis(at.saturating_sub(crate::clock::now_ms()))
                }
                // Nothing armed: wait for an arm (or re-check now and then).
                None => std::time::Duration::from_secs(60),
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rearm_replaces_and_cancel_removes() {
        let t = Timers::default();
        t.arm("a", TimerKind::RingTimeout, 100);
        t.arm("a", TimerKind::RingTimeout, 200);
        t.arm("b", TimerKind::MaxDuration, 150);
        assert_eq!(t.len(), 2);
        let (due, next) = t.take_due(160);
        assert_eq!(due.len(), 1);
        assert_eq!(&*due[0].0, "b");
        assert_eq!(next, Some(200));
        t.cancel("a", TimerKind::RingTimeout);
        assert!(t.is_empty());
        assert_eq!(t.take_due(1000), (vec![], None));
    }

    /// `arm` wakes the runner only for a new earliest deadline; a later one must still fire
    /// on time, and an earlier one must cut the runner's sleep short.
    #[tokio::test]
    async fn later_arms_need_no_wake_and_earlier_arms_cut_the_sleep_short() {
        let t = Timers::default();
        let (fired_tx, mut fired) = tokio::sync::mpsc::unbounded_channel();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let runner = t.clone();
        let task = tokio::spawn(async move {
            runner
                .run(stop, |id, _| {
                    let _ = fired_tx.send(id);
                    async {}
                })
                .await
        });
        let now = crate::clock::now_ms();
        t.arm("late", TimerKind::MaxDuration, now + 60_000);
        t.arm("first", TimerKind::RingTimeout, now + 50);
        t.arm("second", TimerKind::RingTimeout, now + 100);
        let limit = std::time::Duration::from_secs(5);
        let first = tokio::time::timeout(limit, fired.recv()).await.unwrap();
        assert_eq!(first.as_deref(), Some("first"));
        let second = tokio::time::timeout(limit, fired.recv()).await.unwrap();
        assert_eq!(second.as_deref(), Some("second"));
        assert!(crate::clock::now_ms() < now + 60_000);
        assert_eq!(t.len(), 1, "only the late timer is left");
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }
}
