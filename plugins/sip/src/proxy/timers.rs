//! Timer handling: retransmissions (A/E, G, CANCEL), timeouts (B/F), proxy timer C,
//! transaction expiry, the inbound 180 refresh and hold limit (`held.rs`), and the
//! periodic sweep of stale dialogs.

use std::time::Duration;

use tokio::time::Instant;

use super::{Action, Proxy};
use crate::response::reply;
use crate::txn::{CancelState, ClientState, TxnId, TxnTimer};

impl Proxy {
    /// Fires every timer due at `now`.
    pub fn on_timers(&mut self, now: Instant) -> Vec<Action> {
        for (id, k) in self.txns.pop_due(now) {
            self.fire(now, id, k);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + Duration::from_secs(1);
            for (_, d) in self.dialogs.sweep(now) {
                if d.dead_air {
                    self.media_metrics.event(&d.trunk, "dead_air_released");
                    tracing::info!(tenant = %d.tenant, trunk = %d.trunk, c2c_call_id = d.c2c_call_id.as_deref().unwrap_or(""), "anchored call forgotten: no BYE came after dead air; its media ports are free");
                } else {
                    tracing::debug!(tenant = %d.tenant, trunk = %d.trunk, answered = d.answered, "SIP call forgotten after its lifetime");
                }
            }
        }
        self.finish()
    }

    fn fire(&mut self, now: Instant, id: TxnId, k: TxnTimer) {
        let t2 = self.cfg.timers.t2;
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        match k {
            TxnTimer::Retransmit => {
                let active = t.state == ClientState::Calling
                    || (!t.invite && t.state == ClientState::Proceeding);
                if !active {
                    return;
                }
                let (to, data) = (t.target, t.request.clone());
                t.interval = if t.invite {
                    t.interval * 2
                } else {
                    (t.interval * 2).min(t2)
                };
                let next = now + t.interval;
                self.send(to, data);
                self.txns.arm(id, TxnTimer::Retransmit, next);
            }
            TxnTimer::FinalRetransmit => {
                let (Some(code), Some(data)) = (t.final_sent, t.last_response.clone()) else {
                    return;
                };
                if code < 300 {
                    return;
                }
                let to = t.upstream;
                t.interval = (t.interval * 2).min(t2);
                let next = now + t.interval;
                self.send(to, data);
                self.txns.arm(id, TxnTimer::FinalRetransmit, next);
            }
            TxnTimer::CancelRetransmit => {
                let CancelState::Sent { request, interval } = &mut t.cancel else {
                    return;
                };
                *interval = (*interval * 2).min(t2);
                let (data, next, to) = (request.clone(), now + *interval, t.target);
                self.send(to, data);
                self.txns.arm(id, TxnTimer::CancelRetransmit, next);
            }
            TxnTimer::Timeout => {
                let give_up = match t.state {
                    ClientState::Calling => true,
                    ClientState::Proceeding => {
                        !t.invite
                            || matches!(t.cancel, CancelState::Sent { .. } | CancelState::Done)
                    }
                    _ => false,
                };
                if give_up {
                    self.timeout(now, id);
                }
            }
            TxnTimer::C => {
                if !t.invite {
                    return;
                }
                match t.state {
                    ClientState::Proceeding => {
                        if matches!(t.cancel, CancelState::None | CancelState::Pending) {
                            tracing::info!("SIP timer C fired: cancelling the INVITE downstream");
                            self.send_cancel(now, id);
                        }
                    }
                    ClientState::Calling => self.timeout(now, id),
                    _ => {}
                }
            }
            TxnTimer::Ring => self.ring_again(now, id),
            TxnTimer::Hold => self.hold_expired(now, id),
            TxnTimer::Expire => {
                if let Some(t) = self.txns.remove(id) {
                    let early_call = t.call.is_some() && t.state != ClientState::Accepted;
                    if let (true, Some(k)) = (early_call, t.dialog) {
                        self.dialogs.remove(&k);
                    }
                }
            }
        }
    }

    /// No (final) response downstream in time: answer upstream ourselves (408 Request
    /// Timeout, or 487 when the caller had cancelled).
    fn timeout(&mut self, now: Instant, id: TxnId) {
        let (t1, long) = (self.cfg.timers.t1, self.cfg.timers.long());
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        t.state = ClientState::Completed;
        let invite = t.invite;
        let cancelled = matches!(
            t.cancel,
            CancelState::Pending | CancelState::Sent { .. } | CancelState::Done
        );
        // A local request (our BYE) has nobody upstream to answer.
        let already = t.final_sent.is_some() || t.local;
        let bye_dialog = (t.method == "BYE").then(|| t.dialog.clone()).flatten();
        let (code, reason) = if invite && cancelled {
            (487, "Request Terminated")
        } else {
            (408, "Request Timeout")
        };
        let data = reply(&t.reply, code, reason, Some(&t.local_tag), &[]);
        for k in [
            TxnTimer::Retransmit,
            TxnTimer::C,
            TxnTimer::CancelRetransmit,
            TxnTimer::Timeout,
        ] {
            self.txns.disarm(id, k);
        }
        self.txns.arm(id, TxnTimer::Expire, now + long);
        if already {
            return;
        }
        tracing::info!(code, "SIP request timed out downstream; answered upstream");
        if invite {
            self.final_upstream(now, id, code, data, t1);
        } else {
            if let Some(t) = self.txns.get_mut(id) {
                t.final_sent = Some(code);
                t.last_response = Some(data.clone());
                let up = t.upstream;
                self.send(up, data);
            }
            if let Some(k) = bye_dialog {
                self.dialogs.remove(&k);
            }
        }
    }
}
