//! The io_uring engine: every relay on one media thread driving one ring.
//!
//! Each call has four sockets (RTP and RTCP facing each side), each with two buffers
//! and one `recvmsg` in the ring at a time. What a socket reads is sent out of the
//! other side's socket from the same buffer (no copy) while the socket reads on into
//! its other buffer; a buffer is read into again once its send completes. A packet
//! that goes nowhere (a stranger, not RTP, nobody to send to) is counted and the
//! socket reads again into the same buffer.
//!
//! The ring runs its completions' work only when this thread waits in it
//! (`IORING_SETUP_DEFER_TASKRUN`), and wakes it only when as many completions are due
//! as it asked for. That is how it batches: while packets flow fast, each round hands
//! the kernel what it queued (the sends leave now) and waits for 8 completions or the
//! rest of the `batch` window, whichever comes first, then takes everything that
//! completed. When they flow slowly, the first completion wakes the thread: a lone
//! packet is not held. The ring belongs to this thread alone
//! (`IORING_SETUP_SINGLE_ISSUER`, which is why the thread creates it).
//!
//! Commands (a call's start, its answer, new SDP, a report, its stop) come through one
//! bounded queue and an `eventfd` the ring reads; a stop cancels the call's operations
//! and answers once their completions are in and the sockets are closed, so no buffer
//! is freed while the kernel may write into it and no port goes back to the pool open.
//!
//! Latching, counting, early media and the timers are [`State`]'s, as on the runtime.
//!
//! Modules: [`port`] (one socket and the memory the kernel reads and writes for it),
//! [`event_loop`] (the thread: completions, commands, timers).

mod event_loop;
mod port;

use std::collections::VecDeque;
use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use io_uring::{opcode, IoUring};
use tokio::sync::{mpsc, oneshot};

use crate::relay::{Control, Endpoint, MediaEvent, Relay, RelayConfig, RelayReport, EVENTS};

/// Submission queue: the most operations queued between two enters before the thread
/// submits early (it never drops one: a full queue is submitted and refilled).
const SQ_ENTRIES: u32 = 4096;
/// Completion queue: each socket has at most one operation in flight, so this many
/// sockets (a quarter as many calls) complete without the kernel's overflow list.
const CQ_ENTRIES: u32 = 65_536;
/// Commands queued for the thread (starts, answers, SDP changes, reports); a stop is
/// never refused, and there is one per call.
const COMMANDS: usize = 65_536;

pub(super) enum Cmd {
    Start {
        id: u64,
        sockets: [UdpSocket; 4],
        cfg: RelayConfig,
        raise: mpsc::Sender<MediaEvent>,
    },
    Control {
        id: u64,
        control: Control,
    },
    Stop {
        id: u64,
        reply: Option<oneshot::Sender<RelayReport>>,
    },
    Shutdown,
}

/// What the handles and the thread share: the command queue and the `eventfd` that
/// wakes the thread when the queue stops being empty.
pub(super) struct Shared {
    queue: Mutex<Queue>,
    pub(super) wake: OwnedFd,
}

pub(super) struct Queue {
    pub(super) cmds: VecDeque<Cmd>,
    /// False once the thread has ended: commands are refused (and a stop answers None
    /// at once) instead of waiting for a thread that is gone.
    pub(super) alive: bool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `cmd`; false when the thread is gone, or (`bounded`) the queue is full.
    fn push(&self, cmd: Cmd, bounded: bool) -> bool {
        let was_empty = {
            let mut q = self.lock();
            if !q.alive || (bounded && q.cmds.len() >= COMMANDS) {
                return false;
            }
            let was_empty = q.cmds.is_empty();
            q.cmds.push_back(cmd);
            was_empty
        };
        // The thread takes the whole queue after each read of the eventfd, so only the
        // first command of a batch needs to wake it.
        if was_empty {
            let one = 1u64;
            // SAFETY: an 8-byte write from a live u64 to our own eventfd. It cannot
            // block: the counter would need 2^64 - 2 writes without a read.
            let _ =
                unsafe { libc::write(self.wake.as_raw_fd(), std::ptr::from_ref(&one).cast(), 8) };
        }
        true
    }
}

/// The io_uring engine; dropping the last handle (the [`crate::MediaEngine`] clones and
/// the relays) stops its thread.
pub(crate) struct Engine {
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

impl Engine {
    /// Starts the media thread; fails where the kernel has no usable io_uring (too old,
    /// disabled, or forbidden by seccomp).
    pub(crate) fn start(batch: Duration) -> io::Result<Arc<Engine>> {
        // SAFETY: eventfd(2) with valid flags; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                cmds: VecDeque::new(),
                alive: true,
            }),
            wake,
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("c2c-media".into())
            .spawn(move || {
                // The ring must be created by the thread that submits to it.
                let ring = match new_ring() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut lp = event_loop::Loop::new(ring, thread_shared.clone(), batch);
                lp.run();
                // Refuse new commands, and drop the queued ones (their stops answer None).
                let left = {
                    let mut q = thread_shared.lock();
                    q.alive = false;
                    std::mem::take(&mut q.cmds)
                };
                drop(left);
                lp.leak_if_busy();
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("the media thread ended while starting"))??;
        Ok(Arc::new(Engine {
            shared,
            next_id: AtomicU64::new(0),
        }))
    }

    pub(crate) fn start_call(
        self: &Arc<Self>,
        carrier: Endpoint,
        livekit: Endpoint,
        cfg: RelayConfig,
    ) -> io::Result<Relay> {
        let sockets = [carrier.rtp, livekit.rtp, carrier.rtcp, livekit.rtcp];
        // io_uring answers EAGAIN instead of waiting for data on a non-blocking socket.
        for s in &sockets {
            s.set_nonblocking(false)?;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (raise, events) = mpsc::channel(EVENTS);
        let start = Cmd::Start {
            id,
            sockets,
            cfg,
            raise,
        };
        if !self.shared.push(start, true) {
            return Err(io::Error::other(
                "the media thread is gone or its command queue is full",
            ));
        }
        let call = CallHandle {
            id,
            engine: self.clone(),
            stopped: false,
        };
        Ok(Relay::on_uring(call, events))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.push(Cmd::Shutdown, false);
    }
}

/// A relay's way to its call on the media thread.
pub(crate) struct CallHandle {
    id: u64,
    engine: Arc<Engine>,
    stopped: bool,
}

impl CallHandle {
    pub(crate) fn control(&self, control: Control) {
        let cmd = Cmd::Control {
            id: self.id,
            control,
        };
        if !self.engine.shared.push(cmd, true) {
            tracing::warn!(
                "media thread's command queue full or thread gone; relay command dropped"
            );
        }
    }

    pub(crate) async fn stop(mut self) -> Option<RelayReport> {
        self.stopped = true;
        let (tx, rx) = oneshot::channel();
        let cmd = Cmd::Stop {
            id: self.id,
            reply: Some(tx),
        };
        if !self.engine.shared.push(cmd, false) {
            return None;
        }
        rx.await.ok()
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        if !self.stopped {
            self.engine.shared.push(
                Cmd::Stop {
                    id: self.id,
                    reply: None,
                },
                false,
            );
        }
    }
}

fn new_ring() -> io::Result<IoUring> {
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_submit_all()
        .setup_cqsize(CQ_ENTRIES)
        .build(SQ_ENTRIES)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::RecvMsg::CODE, "recvmsg"),
        (opcode::Send::CODE, "send"),
        (opcode::Read::CODE, "read"),
        (opcode::AsyncCancel::CODE, "async cancel"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("io_uring without {name}"),
            ));
        }
    }
    Ok(ring)
}
