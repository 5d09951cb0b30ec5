//! The runtime engine: one task per call on the caller's tokio runtime, waiting on its
//! four sockets, its commands and one timer.

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::state::{State, MAX_DATAGRAM};
use super::{Control, Endpoint, MediaEvent, Relay, RelayConfig, RelayReport, Side, EVENTS};

/// Commands queued per relay; a call gets a handful in its life.
const COMMANDS: usize = 16;

/// An endpoint's sockets as the runtime's (non-blocking, registered with its reactor).
struct Sockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

fn adopt(e: Endpoint) -> std::io::Result<Sockets> {
    e.rtp.set_nonblocking(true)?;
    e.rtcp.set_nonblocking(true)?;
    Ok(Sockets {
        rtp: UdpSocket::from_std(e.rtp)?,
        rtcp: UdpSocket::from_std(e.rtcp)?,
    })
}

/// Starts relaying between `carrier` and `livekit` on the current runtime (fails outside
/// one, or with a socket the runtime cannot take).
pub(crate) fn start(
    carrier: Endpoint,
    livekit: Endpoint,
    cfg: RelayConfig,
) -> std::io::Result<Relay> {
    let (carrier, livekit) = (adopt(carrier)?, adopt(livekit)?);
    let (control, inbox) = mpsc::channel(COMMANDS);
    let (raise, events) = mpsc::channel(EVENTS);
    let done = tokio::spawn(run(carrier, livekit, cfg, inbox, raise));
    Ok(Relay::on_task(control, done, events))
}

async fn run(
    carrier: Sockets,
    livekit: Sockets,
    cfg: RelayConfig,
    mut inbox: mpsc::Receiver<Control>,
    raise: mpsc::Sender<MediaEvent>,
) -> RelayReport {
    let mut s = State::new(cfg);
    let (mut b0, mut b1, mut b2, mut b3) = (
        [0u8; MAX_DATAGRAM],
        [0u8; MAX_DATAGRAM],
        [0u8; MAX_DATAGRAM],
        [0u8; MAX_DATAGRAM],
    );
    // One timer for both checks, armed at the earliest deadline known. A packet only
    // moves a deadline later, so the timer is not reset per packet: when it fires early
    // nothing is due and it is armed again at the deadline as it now stands.
    let far = || Instant::now() + Duration::from_secs(86_400);
    let mut armed = far();
    let timer = tokio::time::sleep_until(armed);
    tokio::pin!(timer);
    loop {
        if let Some(d) = s.next_deadline().filter(|d| *d < armed) {
            armed = d;
            timer.as_mut().reset(d);
        }
        tokio::select! {
            r = carrier.rtp.recv_from(&mut b0) => if let Ok((n, src)) = r {
                if let Some(to) = s.on_rtp(Side::Carrier, src, &b0[..n], Instant::now()) {
                    let _ = livekit.rtp.send_to(&b0[..n], to).await;
                }
            },
            r = livekit.rtp.recv_from(&mut b1) => if let Ok((n, src)) = r {
                if let Some(to) = s.on_rtp(Side::Livekit, src, &b1[..n], Instant::now()) {
                    let _ = carrier.rtp.send_to(&b1[..n], to).await;
                }
            },
            r = carrier.rtcp.recv_from(&mut b2) => if let Ok((n, src)) = r {
                if let Some(to) = s.on_rtcp(Side::Carrier, src, &b2[..n]) {
                    let _ = livekit.rtcp.send_to(&b2[..n], to).await;
                }
            },
            r = livekit.rtcp.recv_from(&mut b3) => if let Ok((n, src)) = r {
                if let Some(to) = s.on_rtcp(Side::Livekit, src, &b3[..n]) {
                    let _ = carrier.rtcp.send_to(&b3[..n], to).await;
                }
            },
            c = inbox.recv() => match c {
                Some(Control::Answered) => s.answered(Instant::now()),
                Some(Control::Remote(side, target)) => s.set_remote(side, target, Instant::now()),
                Some(Control::Report(reply)) => {
                    let _ = reply.send(s.report());
                }
                None => return s.report(),
            },
            _ = &mut timer => {
                for e in s.due(Instant::now()) {
                    // A full queue means nobody reads events: the report still has them.
                    let _ = raise.try_send(e);
                }
                armed = far();
                timer.as_mut().reset(armed);
            }
        }
    }
}
