//! What the machine tells the gateway to do ([`Effect`]) and the knobs it decides with
//! ([`CallKnobs`]).

use crate::record::TimerKind;

/// Something the gateway must do after a transition was stored. The machine says
/// everything it decides here, so the gateway's one runner (`calls::run_effects`) never
/// has to infer a decision from the record or from another effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// A new call was stored (count it started and open).
    Created,
    /// CreateSIPParticipant for this call.
    Dial,
    /// The customer answered: the call is ACTIVE (time the setup).
    Answered,
    /// DeleteRoom (idempotent; NotFound is success).
    DeleteRoom,
    /// The CRM webhook; the store writes the outbox entry in the same batch as the record.
    EnqueueWebhook,
    /// Find out whose `/hangup` this is (look at the room, wait for a dial in flight) and
    /// report it as `CustomerLeft` or `AgentHangup`; `Timer(HangupSettle)` is the backstop.
    ResolveHangup,
    ArmTimer {
        kind: TimerKind,
        at_ms: u64,
    },
    CancelTimer(TimerKind),
    /// An inbound call ended unanswered: the carrier's INVITE held at the SIP edge (if it
    /// still is) gets its final response now, instead of ringing on.
    RefuseCaller,
    /// The call ended: its concurrent-call slot is free, its outcome counted. Comes with
    /// `DeleteRoom`, `EnqueueWebhook` and a `CancelTimer` for every kind.
    Ended,
    /// The SIP edge's media report was stored on the record (once per call, usually
    /// after it ended): a call webhook waiting to carry it (`media_in_payload`) may go.
    MediaRecorded,
    /// A managed call ended: release its wallet hold and post the charge the end wrote
    /// into `record.billing` (idempotent: the call's request id). Follows `Ended`.
    SettleWallet,
}

/// Per-deployment timing knobs (from `gateway.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallKnobs {
    pub ring_timeout_ms: u64,
    pub agent_drop_grace_ms: u64,
    pub max_duration_ms: u64,
    pub unconnected_expiry_ms: u64,
    /// Longest a `/hangup` may stay unresolved (see [`TimerKind::HangupSettle`]).
    pub hangup_settle_ms: u64,
    /// Inbound: how long LiveKit may take to answer after the agent accepted (the agent
    /// joins and publishes), and the margin of the durable ring backstop.
    pub inbound_connect_ms: u64,
}

impl Default for CallKnobs {
    fn default() -> Self {
        CallKnobs {
            ring_timeout_ms: 45_000,
            agent_drop_grace_ms: 15_000,
            max_duration_ms: 2 * 60 * 60 * 1000,
            unconnected_expiry_ms: 120_000,
            hangup_settle_ms: 3_000,
            inbound_connect_ms: 30_000,
        }
    }
}
