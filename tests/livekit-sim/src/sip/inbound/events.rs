//! What an inbound call's task waits on: its SIP messages, one deadline, its
//! participant leaving, room changes (someone published audio) and shutdown.

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::super::Inbound;

pub(super) enum Event {
    Msg(Inbound),
    /// The deadline passed.
    Timer,
    /// The SIP participant left its room (DeleteRoom, RemoveParticipant, evicted...).
    AliveGone,
    /// Some room changed: time to re-check whether the call can be answered.
    Changed,
    Shutdown,
    /// The UA unregistered the call (evicted while lingering): nothing more arrives.
    Closed,
}

pub(super) struct Events {
    pub rx: mpsc::Receiver<Inbound>,
    pub shutdown: watch::Receiver<bool>,
    /// Set once the participant has joined; resolves (Err) when it is dropped.
    pub alive: Option<oneshot::Receiver<()>>,
    /// Set while the call waits for the room to be ready.
    pub changes: Option<watch::Receiver<u64>>,
}

impl Events {
    pub(super) async fn next(&mut self, deadline: Option<Instant>) -> Event {
        // (event, the rooms' sender is gone) — decided inside the block so that the
        // futures borrowing `self` are dropped before `self` is changed.
        let (event, rooms_gone) = {
            let Events {
                rx,
                shutdown,
                alive,
                changes,
            } = &mut *self;
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let gone = async {
                match alive.as_mut() {
                    Some(rx) => {
                        let _ = rx.await;
                    }
                    None => std::future::pending().await,
                }
            };
            let changed = async {
                match changes.as_mut() {
                    Some(rx) => rx.changed().await.is_err(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => (Event::Shutdown, false),
                _ = gone => (Event::AliveGone, false),
                m = rx.recv() => match m {
                    Some(m) => (Event::Msg(m), false),
                    None => (Event::Closed, false),
                },
                closed = changed => (Event::Changed, closed),
                _ = sleep => (Event::Timer, false),
            }
        };
        if rooms_gone {
            // The rooms are gone (simulator shutdown): stop watching.
            self.changes = None;
        }
        if matches!(event, Event::AliveGone) {
            self.alive = None;
        }
        event
    }
}

/// The earliest of some optional deadlines.
pub(super) fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}
