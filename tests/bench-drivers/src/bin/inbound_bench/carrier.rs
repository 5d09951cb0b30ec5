//! The carrier: a UDP SIP UAC that dials the DID at a fixed rate and plays each call to
//! its end. `Offer`: the call is cancelled as soon as its agent has the `incoming` event
//! (and the 180 is in): CANCEL, 200, 487, ACK — only the offer path is exercised and no
//! agent stays busy. `Answer`: the agent accepts and joins; LiveKit's 200 comes through
//! the edge, the carrier ACKs, holds, and hangs up (BYE, 200).
//!
//! Requests are retransmitted as RFC 3261 timers would (500 ms doubling, for a request
//! nobody answered), and every retransmission is counted: on loopback, one means a
//! datagram was dropped or something stalled for half a second.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::sip::{self, Answer, Dialog};

/// First retransmission interval (RFC 3261 T1) and its cap (T2).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// A call that has not ended this long after its INVITE (plus the hold) failed.
const CALL_DEADLINE: Duration = Duration::from_secs(40);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Offer,
    Answer { hold: Duration },
}

/// One call, from its INVITE to its end.
struct Call {
    d: Dialog,
    sent: Instant,
    /// A request waiting for a response: (message, when to resend, interval).
    pending: Option<(Vec<u8>, Instant, Duration)>,
    ringing: bool,
    incoming: bool,
    cancel_wanted: bool,
    cancelled: bool,
    /// The 200 and the ACK sent for it (sent again if the 200 is retransmitted).
    answered: Option<(Answer, Vec<u8>)>,
    bye_sent: bool,
    done: bool,
}

/// What one run of calls produced.
#[derive(Default)]
pub struct Stats {
    /// (INVITE sent, INVITE sent -> the agent read its `incoming` event in µs).
    pub incoming: Vec<(Instant, u64)>,
    /// INVITE sent -> the carrier read the 200 OK, µs.
    pub answer_us: Vec<u64>,
    /// Calls that ended as the mode wants (Offer: 487 after the CANCEL; Answer: 200 to
    /// the BYE).
    pub completed: u64,
    /// Calls that ended otherwise, by what ended them.
    pub failed: BTreeMap<String, u64>,
    pub retransmissions: u64,
    /// Anything else worth knowing (a second `incoming` for a call, a retransmitted 200).
    pub notes: BTreeMap<String, u64>,
    pub send_errors: u64,
    /// When the first and the last INVITE went out, and the last call ended.
    pub first_sent: Option<Instant>,
    pub last_sent: Option<Instant>,
    pub last_done: Option<Instant>,
}

pub struct Carrier {
    sock: UdpSocket,
    pub local: SocketAddr,
    edge: SocketAddr,
    run: u32,
    mode: Mode,
    calls: Mutex<HashMap<u64, Call>>,
    stats: Mutex<Stats>,
}

/// A UDP socket on 127.0.0.1 with 4 MiB buffers each way (the SIP edge's own size).
fn socket() -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

impl Carrier {
    /// Binds the socket and starts the receive loop and the retransmission sweeper.
    pub fn start(edge: SocketAddr, mode: Mode) -> Arc<Carrier> {
        let sock = socket().expect("carrier UDP socket");
        let local = sock.local_addr().expect("carrier address");
        let c = Arc::new(Carrier {
            sock,
            local,
            edge,
            run: std::process::id(),
            mode,
            calls: Mutex::new(HashMap::new()),
            stats: Mutex::new(Stats::default()),
        });
        let rx = c.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((len, _)) = rx.sock.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(r) = sip::parse_response(&buf[..len]) {
                    rx.on_response(r);
                } else if let Some(r) = sip::parse_request(&buf[..len]) {
                    rx.on_request(r);
                } else {
                    rx.note("unreadable datagram");
                }
            }
        });
        let sweep = c.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                sweep.sweep();
            }
        });
        c
    }

    fn send(&self, msg: &[u8]) {
        if self.sock.try_send_to(msg, self.edge).is_err() {
            self.stats.lock().unwrap().send_errors += 1;
        }
    }

    fn note(&self, what: &str) {
        *self
            .stats
            .lock()
            .unwrap()
            .notes
            .entry(what.to_owned())
            .or_default() += 1;
    }

    /// Dials calls `first..first + count` at `rate` per second, then waits for all of
    /// them to end (or their deadline); returns what the run measured.
    pub async fn run(self: &Arc<Self>, first: u64, count: u64, rate: f64) -> Stats {
        *self.stats.lock().unwrap() = Stats::default();
        let gap = Duration::from_secs_f64(1.0 / rate);
        let t0 = tokio::time::Instant::now();
        for i in 0..count {
            tokio::time::sleep_until(t0 + gap.mul_f64(i as f64)).await;
            let n = first + i;
            let d = Dialog {
                n,
                local: self.local,
                edge: self.edge,
                run: self.run,
            };
            let invite = d.invite();
            let now = Instant::now();
            self.calls.lock().unwrap().insert(
                n,
                Call {
                    d,
                    sent: now,
                    pending: Some((invite.clone(), now + T1, T1)),
                    ringing: false,
                    incoming: false,
                    cancel_wanted: false,
                    cancelled: false,
                    answered: None,
                    bye_sent: false,
                    done: false,
                },
            );
            {
                let mut s = self.stats.lock().unwrap();
                s.first_sent.get_or_insert(now);
                s.last_sent = Some(now);
            }
            self.send(&invite);
        }
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let open = self
                .calls
                .lock()
                .unwrap()
                .iter()
                .any(|(n, c)| *n >= first && !c.done);
            if !open {
                break;
            }
        }
        std::mem::take(&mut *self.stats.lock().unwrap())
    }

    /// The agent of call `from` read its `incoming` event at `at`.
    pub fn incoming(&self, from: &str, at: Instant) {
        let Some(n) = sip::call_of_caller(from) else {
            return self.note("incoming for a caller this run never dialled");
        };
        let mut calls = self.calls.lock().unwrap();
        let Some(c) = calls.get_mut(&n) else {
            drop(calls);
            return self.note("incoming for a caller this run never dialled");
        };
        if c.incoming {
            drop(calls);
            return self.note("incoming again for the same call (offered to another agent)");
        }
        c.incoming = true;
        let us = at.saturating_duration_since(c.sent).as_micros() as u64;
        self.stats.lock().unwrap().incoming.push((c.sent, us));
        if self.mode == Mode::Offer {
            c.cancel_wanted = true;
            if c.ringing && !c.cancelled && !c.done {
                self.cancel(c);
            }
        }
    }

    fn cancel(&self, c: &mut Call) {
        c.cancelled = true;
        let msg = c.d.cancel();
        self.send(&msg);
        c.pending = Some((msg, Instant::now() + T1, T1));
    }

    fn end(&self, c: &mut Call, failure: Option<String>) {
        if c.done {
            return;
        }
        c.done = true;
        c.pending = None;
        let mut s = self.stats.lock().unwrap();
        match failure {
            None => s.completed += 1,
            Some(f) => *s.failed.entry(f).or_default() += 1,
        }
        s.last_done = Some(Instant::now());
    }

    fn on_response(self: &Arc<Self>, r: sip::Response) {
        let now = Instant::now();
        let Some(n) = sip::call_of_call_id(&r.call_id) else {
            return self.note("response for an unknown Call-ID");
        };
        let mut calls = self.calls.lock().unwrap();
        let Some(c) = calls.get_mut(&n) else {
            drop(calls);
            return self.note("response for an unknown Call-ID");
        };
        match (r.method.as_str(), r.code) {
            ("INVITE", 100..=199) => {
                if !c.cancelled && c.answered.is_none() {
                    c.pending = None;
                }
                if r.code == 180 || r.code == 183 {
                    c.ringing = true;
                    if c.cancel_wanted && !c.cancelled && !c.done {
                        self.cancel(c);
                    }
                }
            }
            ("INVITE", 200..=299) => {
                if let Some((_, ack)) = &c.answered {
                    self.send(ack);
                    drop(calls);
                    return self.note("200 OK retransmitted (ACK sent again)");
                }
                let Some(a) = r.answer() else {
                    let a = Answer {
                        to: r.to.clone(),
                        contact: format!("sip:{}@{}", sip::DID, self.edge),
                        record_route: r.record_route.clone(),
                    };
                    let ack = c.d.in_dialog("ACK", 1, &a);
                    self.send(&ack);
                    self.send(&c.d.in_dialog("BYE", 2, &a));
                    return self.end(c, Some("200 without Contact".into()));
                };
                let us = now.saturating_duration_since(c.sent).as_micros() as u64;
                self.stats.lock().unwrap().answer_us.push(us);
                let ack = c.d.in_dialog("ACK", 1, &a);
                self.send(&ack);
                c.pending = None;
                c.answered = Some((a, ack));
                let hold = match self.mode {
                    Mode::Answer { hold } => hold,
                    // Answered although cancelled: the CANCEL crossed an accept. Hang up.
                    Mode::Offer => Duration::ZERO,
                };
                let me = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(hold).await;
                    me.bye(n);
                });
            }
            ("INVITE", code) => {
                self.send(&c.d.ack_failure(&r.to));
                if code == 487 && c.cancelled && self.mode == Mode::Offer && c.incoming {
                    self.end(c, None);
                } else {
                    self.end(c, Some(format!("INVITE answered {code}")));
                }
            }
            ("CANCEL", _) => {
                if c.cancelled && c.answered.is_none() {
                    c.pending = None;
                }
            }
            ("BYE", code) => {
                c.pending = None;
                if (200..300).contains(&code) && self.mode != Mode::Offer {
                    self.end(c, None);
                } else if (200..300).contains(&code) {
                    self.end(c, Some("answered (the CANCEL crossed an accept)".into()));
                } else {
                    self.end(c, Some(format!("BYE answered {code}")));
                }
            }
            _ => {
                drop(calls);
                self.note("response to an unexpected method");
            }
        }
    }

    /// A BYE from the gateway: 200 and the call ends (not as the carrier wanted) while
    /// it is up; 481 for a dialog the carrier already ended (its BYE crossed this one).
    fn on_request(&self, r: sip::Request) {
        let mut calls = self.calls.lock().unwrap();
        let c = sip::call_of_call_id(&r.call_id).and_then(|n| calls.get_mut(&n));
        match c {
            Some(c) if r.method == "BYE" && c.answered.is_some() && !c.done => {
                self.send(&r.reply(200, "OK"));
                if c.bye_sent {
                    // Both hung up at once: the carrier's BYE decides the call.
                    drop(calls);
                    self.note("BYE from the gateway crossed the carrier's: answered 200");
                } else {
                    self.end(c, Some("BYE from the gateway during the hold".into()));
                }
            }
            _ => {
                drop(calls);
                self.send(&r.reply(481, "Call/Transaction Does Not Exist"));
                self.note(&format!(
                    "{} from the gateway after the call ended: answered 481",
                    r.method
                ));
            }
        }
    }

    fn bye(&self, n: u64) {
        let mut calls = self.calls.lock().unwrap();
        let Some(c) = calls.get_mut(&n) else { return };
        let Some((a, _)) = &c.answered else { return };
        if c.done {
            return;
        }
        let msg = c.d.in_dialog("BYE", 2, a);
        c.bye_sent = true;
        self.send(&msg);
        c.pending = Some((msg, Instant::now() + T1, T1));
    }

    /// Retransmits what is unanswered and fails calls past their deadline.
    fn sweep(&self) {
        let now = Instant::now();
        let hold = match self.mode {
            Mode::Answer { hold } => hold,
            Mode::Offer => Duration::ZERO,
        };
        let mut resent = 0;
        let mut calls = self.calls.lock().unwrap();
        for c in calls.values_mut().filter(|c| !c.done) {
            if now > c.sent + CALL_DEADLINE + hold {
                let why = match (c.ringing, c.incoming, c.answered.is_some()) {
                    (false, _, _) => "no 180 from the edge",
                    (true, false, _) => "no incoming at any agent",
                    (true, true, false) => "no final answer to the INVITE",
                    (true, true, true) => "no answer to the BYE",
                };
                self.end(c, Some(format!("timeout: {why}")));
                continue;
            }
            if let Some((msg, at, every)) = &mut c.pending {
                if now >= *at {
                    if self.sock.try_send_to(msg, self.edge).is_err() {
                        self.stats.lock().unwrap().send_errors += 1;
                    }
                    *every = (*every * 2).min(T2);
                    *at = now + *every;
                    resent += 1;
                }
            }
        }
        if resent > 0 {
            self.stats.lock().unwrap().retransmissions += resent;
        }
    }
}
