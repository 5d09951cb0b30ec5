//! The media thread: it submits and waits, hands completions to their calls, carries out
//! commands and fires the calls' timers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::port::{read_sockaddr, transient, Op, Port, BUFFERS};
use super::{Cmd, Shared};
use crate::relay::state::{State, MAX_DATAGRAM};
use crate::relay::{Control, MediaEvent, RelayReport, Side};

/// Completions that end a batching round's wait (before its window ends). Measured
/// at 500 calls: 8 gave p50/p99 65/145 µs through the relay, 32 gave 165/300 µs, for
/// the same CPU.
const BATCH_WANT: usize = 8;
/// Items of completion work the kernel runs per enter that asks for fewer
/// (`IO_LOCAL_TW_DEFAULT_MAX`).
const LOCAL_WORK_PER_ENTER: usize = 20;
/// Enters a batching round makes at most to take what gathered (the rest waits for
/// the next round): 4,096 completions.
const DRAIN_ENTERS: usize = 205;
/// Completions a second from which rounds gather batches, and below which they stop
/// again. Measured (BENCHMARKS, with rounds that slept the window): at 100 calls
/// (20,000 a second) a wake-up per completion cost 30 % less CPU than batching rounds,
/// at 250 (50,000) 16 % more.
const BATCH_FROM_RATE: u64 = 40_000;
const BATCH_UNTIL_RATE: u64 = 30_000;
/// How often the completion rate is looked at.
const RATE_WINDOW: Duration = Duration::from_millis(50);
/// Longest sleep with nothing due, so a lost wake-up could not stall the thread.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// After the engine is dropped, how long its calls' cancellations may take.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// `user_data` of the `eventfd` read and of cancellations (a call's operations carry
/// [`user_data`]).
const WAKE: u64 = u64::MAX;
const CANCEL: u64 = u64::MAX - 1;

/// A socket's index in its call: carrier RTP, LiveKit RTP, carrier RTCP, LiveKit RTCP.
/// What one reads goes out of the other of its pair (`port ^ 1`).
fn side(port: usize) -> Side {
    if port & 1 == 0 {
        Side::Carrier
    } else {
        Side::Livekit
    }
}

struct Call {
    id: u64,
    state: State,
    ports: [Box<Port>; 4],
    raise: mpsc::Sender<MediaEvent>,
    /// Operations in the ring (at most one per buffer).
    inflight: u8,
    stopping: bool,
    reply: Option<oneshot::Sender<RelayReport>>,
    /// The deadline the timer heap holds for this call, if any.
    armed: Option<Instant>,
}

/// A buffer's operation: the call's slot, the port (0..4), the buffer (0..2).
fn user_data(slot: usize, port: usize, buf: usize) -> u64 {
    (slot as u64) << 3 | (port as u64) << 1 | buf as u64
}

/// An enter that failed for a reason other than its timeout or a signal (the ring is
/// unusable, or the kernel is short of memory): logged, and a short pause so a lasting
/// failure does not spin.
fn enter_failed(e: &std::io::Error) {
    if matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EAGAIN | libc::EBUSY)
    ) {
        return;
    }
    tracing::error!(error = %e, "media thread's io_uring_enter failed");
    std::thread::sleep(Duration::from_millis(1));
}

/// Queues `e`, submitting what is queued first when the submission queue is full.
fn push(ring: &mut IoUring, e: &squeue::Entry) {
    loop {
        // SAFETY: every entry points into a boxed `Port` (or the loop's wake buffer)
        // that stays alive until its completion has been reaped.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return;
        }
        if let Err(err) = ring.submit() {
            tracing::error!(error = %err, "media thread could not submit to its ring");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

pub(super) struct Loop {
    ring: IoUring,
    shared: Arc<Shared>,
    batch: Duration,
    calls: Vec<Option<Call>>,
    free: Vec<usize>,
    ids: HashMap<u64, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    wake_buf: Box<u64>,
    cqes: Vec<(u64, i32)>,
    /// The last wait brought completions.
    flowing: bool,
    /// When the last wait returned.
    looked: Instant,
    /// Completions come fast enough for batching rounds to pay (see BATCH_FROM_RATE).
    batching: bool,
    /// Completions counted since `rate_since`.
    rate_count: u64,
    rate_since: Instant,
    shutdown_at: Option<Instant>,
}

impl Loop {
    pub(super) fn new(ring: IoUring, shared: Arc<Shared>, batch: Duration) -> Self {
        Self {
            ring,
            shared,
            batch,
            calls: Vec::new(),
            free: Vec::new(),
            ids: HashMap::new(),
            timers: BinaryHeap::new(),
            wake_buf: Box::new(0),
            cqes: Vec::with_capacity(1024),
            flowing: false,
            looked: Instant::now(),
            batching: false,
            rate_count: 0,
            rate_since: Instant::now(),
            shutdown_at: None,
        }
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(
            types::Fd(self.shared.wake.as_raw_fd()),
            std::ptr::from_mut(&mut *self.wake_buf).cast(),
            8,
        )
        .build()
        .user_data(WAKE);
        push(&mut self.ring, &e);
    }

    pub(super) fn run(&mut self) {
        self.arm_wake();
        loop {
            self.wait();
            self.cqes.clear();
            let cqes = &mut self.cqes;
            self.ring
                .completion()
                .for_each(|c| cqes.push((c.user_data(), c.result())));
            self.flowing = !self.cqes.is_empty();
            self.count_rate();
            for i in 0..self.cqes.len() {
                let (ud, res) = self.cqes[i];
                self.complete(ud, res);
            }
            self.fire_timers(Instant::now());
            if let Some(at) = self.shutdown_at {
                if self.ids.is_empty() || Instant::now() >= at {
                    return;
                }
            }
        }
    }

    /// Submits what is queued and waits: for the batch window while packets flow fast,
    /// else for the first completion, the next timer or a command.
    fn wait(&mut self) {
        let now = Instant::now();
        let timer = self
            .timers
            .peek()
            .map_or(MAX_WAIT, |Reverse((t, _, _))| {
                t.saturating_duration_since(now)
            })
            .min(MAX_WAIT);
        if self.flowing && self.batching && !self.batch.is_zero() {
            self.gather(timer);
        } else {
            // The first completion wakes the thread at once: a lone packet is not held.
            let ts = types::Timespec::from(timer);
            let args = types::SubmitArgs::new().timespec(&ts);
            if let Err(e) = self.ring.submitter().submit_with_args(1, &args) {
                enter_failed(&e);
            }
        }
        self.looked = Instant::now();
    }

    /// One batching round: hand the kernel what is queued (the sends go out now) and
    /// wait in the ring until BATCH_WANT completions are in or what is left of the
    /// window since the last look has passed (nothing, after a round that took that
    /// long: a deep backlog is looked at again at once); then take what completed.
    /// The ring runs its completions' work only when this thread waits in it, and wakes
    /// it only once BATCH_WANT are due, so one wake-up serves several packets.
    ///
    /// Why not simply sleep the window: measured here, a thread that slept on a timer
    /// was now and then woken 3-100 ms late (the VM's idle CPU), and its packets with
    /// it; a wait that arriving packets end does not depend on the timer.
    ///
    /// What gathered is taken with enters that do not wait (`min_complete` 0), each of
    /// which runs at most LOCAL_WORK_PER_ENTER items of the kernel's completion work,
    /// until one finds less than that. An enter that waits for many more completions
    /// than are due keeps running the work that arrives while it waits instead of
    /// timing out, so the wait above asks for a few.
    fn gather(&mut self, timer: Duration) {
        let rest = self.batch.saturating_sub(self.looked.elapsed());
        let ts = types::Timespec::from(timer.min(rest));
        let args = types::SubmitArgs::new().timespec(&ts);
        if let Err(e) = self.ring.submitter().submit_with_args(BATCH_WANT, &args) {
            enter_failed(&e);
        }
        for _ in 0..DRAIN_ENTERS {
            let before = self.ring.completion().len();
            // SAFETY: a plain GETEVENTS enter: nothing submitted, no argument.
            let r = unsafe {
                self.ring.submitter().enter::<libc::sigset_t>(
                    0,
                    0,
                    io_uring::EnterFlags::GETEVENTS.bits(),
                    None,
                )
            };
            if let Err(e) = r {
                enter_failed(&e);
                return;
            }
            if self.ring.completion().len() - before < LOCAL_WORK_PER_ENTER {
                return;
            }
        }
    }

    /// Decides, every RATE_WINDOW, whether rounds gather batches.
    fn count_rate(&mut self) {
        self.rate_count += self.cqes.len() as u64;
        let elapsed = self.rate_since.elapsed();
        if elapsed < RATE_WINDOW {
            return;
        }
        let per_sec = self.rate_count * 1_000_000 / (elapsed.as_micros().max(1) as u64);
        self.batching = if self.batching {
            per_sec >= BATCH_UNTIL_RATE
        } else {
            per_sec >= BATCH_FROM_RATE
        };
        self.rate_count = 0;
        self.rate_since = Instant::now();
    }

    fn complete(&mut self, ud: u64, res: i32) {
        match ud {
            WAKE => {
                self.arm_wake();
                let cmds = std::mem::take(&mut self.shared.lock().cmds);
                for c in cmds {
                    self.command(c);
                }
            }
            CANCEL => {}
            _ => self.buffer_done(
                (ud >> 3) as usize,
                (ud >> 1 & 3) as usize,
                (ud & 1) as usize,
                res,
            ),
        }
    }

    /// An operation on port `i`'s buffer `b` completed with `res` (bytes, or a negative
    /// errno).
    fn buffer_done(&mut self, slot: usize, i: usize, b: usize, res: i32) {
        let Some(Some(call)) = self.calls.get_mut(slot) else {
            return;
        };
        call.inflight -= 1;
        let op = std::mem::replace(&mut call.ports[i].bufs[b].op, Op::Idle);
        if call.stopping {
            if call.inflight == 0 {
                self.close(slot);
            }
            return;
        }
        if op == Op::Send {
            // The buffer is free: the socket reads into it if it was waiting for one.
            let port = &mut call.ports[i];
            if !port.reading && !port.dead {
                let e = port.recv(b, user_data(slot, i, b));
                call.inflight += 1;
                push(&mut self.ring, &e);
            }
            return;
        }
        call.ports[i].reading = false;
        if res < 0 && !transient(-res) {
            // A socket that cannot be read (closed under us, or worse): leave it
            // unread rather than spin on its error.
            call.ports[i].dead = true;
            tracing::warn!(errno = -res, "media socket read failed; the socket stops");
            return;
        }
        let to = if res >= 0 {
            let n = (res as usize).min(MAX_DATAGRAM);
            let buf = &call.ports[i].bufs[b];
            read_sockaddr(&buf.from, buf.msg.msg_namelen).and_then(|src| {
                let data = &buf.data[..n];
                let at = if i < 2 {
                    call.state.on_rtp(side(i), src, data, Instant::now())
                } else {
                    call.state.on_rtcp(side(i), src, data)
                };
                at.map(|to| (to, n))
            })
        } else {
            None
        };
        let next = match to {
            Some((to, n)) => {
                let out = call.ports[i ^ 1].sock.as_raw_fd();
                let e = call.ports[i].send(b, out, n, to, user_data(slot, i, b));
                call.inflight += 1;
                push(&mut self.ring, &e);
                // Read on into the other buffer, unless it is still being sent: then
                // the first send to finish hands its buffer back for the read.
                call.ports[i].idle_buffer()
            }
            // Nothing to send (a stranger, not RTP, nowhere to go, an ICMP error):
            // read again into the same buffer.
            None => Some(b),
        };
        if let Some(nb) = next {
            let e = call.ports[i].recv(nb, user_data(slot, i, nb));
            call.inflight += 1;
            push(&mut self.ring, &e);
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Start {
                id,
                sockets,
                cfg,
                raise,
            } => {
                if self.shutdown_at.is_some() {
                    return; // the sockets close; the relay's events end
                }
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.calls.push(None);
                    self.calls.len() - 1
                });
                let ports = sockets.map(Port::new);
                let mut call = Call {
                    id,
                    state: State::new(cfg),
                    ports,
                    raise,
                    inflight: 0,
                    stopping: false,
                    reply: None,
                    armed: None,
                };
                for i in 0..4 {
                    let e = call.ports[i].recv(0, user_data(slot, i, 0));
                    call.inflight += 1;
                    push(&mut self.ring, &e);
                }
                self.calls[slot] = Some(call);
                self.ids.insert(id, slot);
            }
            Cmd::Control { id, control } => {
                let Some(&slot) = self.ids.get(&id) else {
                    return; // stopped: a report's reply drops, and it answers None
                };
                let Some(call) = self.calls[slot].as_mut() else {
                    return;
                };
                let now = Instant::now();
                match control {
                    Control::Answered => call.state.answered(now),
                    Control::Remote(side, target) => call.state.set_remote(side, target, now),
                    Control::Report(reply) => {
                        let _ = reply.send(call.state.report());
                        return;
                    }
                }
                arm_timer(&mut self.timers, call, slot);
            }
            Cmd::Stop { id, reply } => self.stop(id, reply),
            Cmd::Shutdown => {
                self.shutdown_at = Some(Instant::now() + SHUTDOWN_GRACE);
                let ids: Vec<u64> = self.ids.keys().copied().collect();
                for id in ids {
                    self.stop(id, None);
                }
            }
        }
    }

    fn stop(&mut self, id: u64, reply: Option<oneshot::Sender<RelayReport>>) {
        let Some(&slot) = self.ids.get(&id) else {
            return;
        };
        let Some(call) = self.calls[slot].as_mut() else {
            return;
        };
        if reply.is_some() {
            call.reply = reply;
        }
        if call.stopping {
            return;
        }
        call.stopping = true;
        if call.inflight == 0 {
            self.close(slot);
            return;
        }
        for i in 0..4 {
            for b in 0..BUFFERS {
                if call.ports[i].bufs[b].op != Op::Idle {
                    let e = opcode::AsyncCancel::new(user_data(slot, i, b))
                        .build()
                        .user_data(CANCEL);
                    push(&mut self.ring, &e);
                }
            }
        }
    }

    /// Frees a stopped call whose operations have all completed: closes its sockets,
    /// then answers its report.
    fn close(&mut self, slot: usize) {
        let Some(call) = self.calls[slot].take() else {
            return;
        };
        self.free.push(slot);
        self.ids.remove(&call.id);
        let report = call.state.report();
        let Call { ports, reply, .. } = call;
        drop(ports);
        if let Some(reply) = reply {
            let _ = reply.send(report);
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((t, slot, id))) = self.timers.peek() {
            if t > now {
                return;
            }
            self.timers.pop();
            let Some(Some(call)) = self.calls.get_mut(slot) else {
                continue;
            };
            if call.id != id || call.armed != Some(t) {
                continue; // a call since freed, or a deadline since replaced
            }
            call.armed = None;
            if call.stopping {
                continue;
            }
            for e in call.state.due(now) {
                // A full queue means nobody reads events: the report still has them.
                let _ = call.raise.try_send(e);
            }
            arm_timer(&mut self.timers, call, slot);
        }
    }

    /// After the loop: calls whose operations never completed within the grace keep
    /// their memory (leaked, never freed under the kernel), and the ring closes.
    pub(super) fn leak_if_busy(self) {
        let Loop { ring, calls, .. } = self;
        let busy: Vec<Call> = calls
            .into_iter()
            .flatten()
            .filter(|c| c.inflight > 0)
            .collect();
        drop(ring);
        if !busy.is_empty() {
            tracing::warn!(
                calls = busy.len(),
                "media thread ended with operations in flight; their buffers are kept"
            );
            std::mem::forget(busy);
        }
    }
}

/// Arms the call's timer at its next deadline when that is earlier than the armed one
/// (packets only move deadlines later: a timer that fires early finds nothing due and
/// is armed again at the deadline as it then stands).
fn arm_timer(
    timers: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
    call: &mut Call,
    slot: usize,
) {
    if let Some(d) = call.state.next_deadline() {
        if call.armed.is_none_or(|a| d < a) {
            call.armed = Some(d);
            timers.push(Reverse((d, slot, call.id)));
        }
    }
}
