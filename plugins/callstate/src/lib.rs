//! # c2c-callstate — the call lifecycle core (floor 2)
//!
//! **Owns**
//! - the call record ([`CallRecord`]) and its vocabulary ([`Phase`], [`CallStatus`],
//!   call id / room generation with [`new_call_id`]);
//! - the pure state machine [`transition`]: `(record, event, knobs, now) -> (record, effects)`;
//! - durable storage ([`SledCallStore`] behind the [`CallStore`] trait): records, tenant/day
//!   indexes, the open-call index and the CRM-webhook outbox, written with group commit;
//! - the CRM webhook payload ([`CrmWebhookPayload`]) exactly as the integration guide defines.
//!
//! **Must not**
//! - perform I/O in the machine or read a clock there (`now_ms` is always passed in);
//! - talk to LiveKit, SIP or the CRM: it emits [`Effect`]s, the gateway carries them out;
//! - import `c2c-livekit`, `c2c-crm-webhooks`, pingora or any higher-floor crate;
//! - log or label metrics with phone numbers or call ids (`Debug` of records masks the number).
//!
//! ## Transition table
//!
//! "ignored" means `Ok` with the record unchanged (same `version`) and no effects: webhooks,
//! pollers and timers are at-least-once, so late or duplicate events are never errors.
//! **END** means: `phase = ENDED`, `call_status`, `ended_ms = now`, `disconnect_reason`, armed
//! timers cleared, effects `Ended`, `DeleteRoom`, `EnqueueWebhook`, `CancelTimer(k)` for
//! every [`TimerKind`]. Every real change bumps `version` by one, and
//! [`Transition::phase_change`] says when the phase moved. The machine says everything it
//! decides in its effects (`Created`, `Dial`, `Answered`, `Ended`, ...): the gateway's one
//! runner carries them out and infers nothing.
//!
//! | Event | Phase | Next phase (status, `disconnect_reason`) | Effects |
//! |---|---|---|---|
//! | `Connect` | INITIATED | DIALING (`connected_ms`, `agent_present = true`) | `CancelTimer(UnconnectedExpiry)`, `ArmTimer(RingTimeout, now+ring_timeout)`, `Dial` |
//! | `Connect` | DIALING, RINGING, ACTIVE | error `Conflict("already_connected")` | — |
//! | `Connect` | ENDED | error `Conflict("call_ended")` | — |
//! | `Dial(any)` | DIALING, RINGING, ACTIVE | first result only: `dial_returned_ms = now` (a returned dial is **never** an answer) | — |
//! | `Dial(Accepted{leg})`, `Dial(Lost{leg})` with a leg seen | any | and, in the same transition, what the leg shows: `Ringing` -> as `Ringing`, `Active` -> as `Answered`, `Left` -> as `CustomerLeft` (`Dialing`: nothing) | as those events |
//! | `Dial(Accepted{NotThere})`, `Dial(Canceled)` | any | nothing else: polling, webhooks, the SIP edge, the browser and timers decide | — |
//! | `Dial(Rejected{code})` | DIALING, RINGING | ENDED by [`classify_unanswered`] on the code (`customer_left`); records the code | END |
//! | `Dial(Rejected{code})` | ACTIVE | ENDED ANSWERED (`customer_left`) | END |
//! | `Dial(Rejected{code})` | ENDED | only records the code if none yet | — |
//! | `Dial(Failed{reason})` | DIALING, RINGING | ENDED FAILED (given reason, digits masked; default `dial_failed`) | END |
//! | `Dial(Lost{NotThere})` | DIALING, RINGING | ENDED FAILED (`dial_interrupted`) | END |
//! | `Dial(Lost{NotThere})` | ACTIVE | ENDED ANSWERED (`customer_left`) | END |
//! | `Dial(any)` | INITIATED, ENDED | ignored (but `Rejected` records its code on ENDED) | — |
//! | `Ringing` | DIALING | RINGING (`ringing_ms`) | — |
//! | `Ringing` | INITIATED, RINGING, ACTIVE, ENDED | ignored | — |
//! | `Answered` | DIALING, RINGING | ACTIVE (`answered_ms`) | `CancelTimer(RingTimeout)`, `ArmTimer(MaxDuration, now+max_duration)`, `Answered` |
//! | `Answered` | INITIATED, ACTIVE, ENDED | ignored | — |
//! | `CustomerLeft` | DIALING, RINGING | ENDED, status by [`classify_unanswered`] on the event's code, else the recorded code, else the reason: 486/600/603/404/408/480/487, no code and no reason, or `USER_REJECTED`/`USER_UNAVAILABLE`/`CLIENT_INITIATED`/`UNKNOWN_REASON` → NOT_ANSWERED; any other code or a failure reason (`SIP_TRUNK_FAILURE`, `MEDIA_FAILURE`, ...) → FAILED (reason: LiveKit's or `customer_left`) | END |
//! | `CustomerLeft` | ACTIVE | ENDED ANSWERED | END |
//! | `CustomerLeft` | INITIATED | ignored | — |
//! | `CustomerLeft` | ENDED | ENDED; only records `sip_code` if none yet | — |
//! | `HangupRequested` | INITIATED | ENDED FAILED (`agent_cancelled`) | END |
//! | `HangupRequested` | DIALING, RINGING, ACTIVE (first time) | same (`hangup_requested_ms = now`) | `ArmTimer(HangupSettle, now+hangup_settle)`, `ResolveHangup` |
//! | `HangupRequested` | already requested, ENDED | ignored (idempotent) | — |
//! | `AgentHangup` | INITIATED | ENDED FAILED (`agent_cancelled`) | END |
//! | `AgentHangup` | DIALING, RINGING | ENDED NOT_ANSWERED (`agent_cancelled`) | END |
//! | `AgentHangup` | ACTIVE | ENDED ANSWERED (`agent_hangup`) | END |
//! | `AgentHangup` | ENDED | ignored (idempotent) | — |
//! | `AgentHangup`, `Timer(HangupSettle)` | after `HangupRequested` | as `AgentHangup`, but `ended_ms = hangup_requested_ms` (not before `answered_ms`) | END |
//! | `AgentLeft` | DIALING, RINGING, ACTIVE | same (`agent_present = false`); ignored if already absent with grace armed | `ArmTimer(AgentDropGrace, now+grace)` |
//! | `AgentLeft` | INITIATED, ENDED | ignored | — |
//! | `AgentJoined` | INITIATED, DIALING, RINGING, ACTIVE | same (`agent_present = true`) | `CancelTimer(AgentDropGrace)` if it was armed |
//! | `AgentJoined` | ENDED | ignored | — |
//! | `Timer(RingTimeout)` | DIALING, RINGING | ENDED NOT_ANSWERED (`ring_timeout`) | END |
//! | `Timer(RingTimeout)` | INITIATED, ACTIVE, ENDED | ignored | — |
//! | `Timer(AgentDropGrace)` | DIALING, RINGING, agent absent | ENDED NOT_ANSWERED (`agent_dropped`) | END |
//! | `Timer(AgentDropGrace)` | ACTIVE, agent absent | ENDED ANSWERED (`agent_dropped`) | END |
//! | `Timer(AgentDropGrace)` | agent present; INITIATED; ENDED | ignored | — |
//! | `Timer(MaxDuration)` | ACTIVE | ENDED ANSWERED (`max_duration`) | END |
//! | `Timer(MaxDuration)` | INITIATED, DIALING, RINGING, ENDED | ignored | — |
//! | `Timer(UnconnectedExpiry)` | INITIATED | ENDED FAILED (`never_connected`) | END |
//! | `Timer(UnconnectedExpiry)` | DIALING, RINGING, ACTIVE, ENDED | ignored | — |
//! | `Timer(any)` | timer not armed in the record, or `now + TIMER_SLACK_MS < deadline` | ignored (stale fire) | — |
//! | `RoomFinished` | INITIATED | ENDED FAILED (`room_finished`) | END |
//! | `RoomFinished` | DIALING, RINGING | ENDED NOT_ANSWERED (`room_finished`) | END |
//! | `RoomFinished` | ACTIVE | ENDED ANSWERED (`room_finished`) | END |
//! | `RoomFinished` | ENDED | ignored | — |
//! | `SipCode` | any | same; `sip_disconnect_code` set if none yet | — |
//!
//! Creation ([`CallRecord::new`], next to the machine) yields INITIATED, version 1, and
//! `Created`, `ArmTimer(UnconnectedExpiry, now+unconnected_expiry)`.
//! `duration_seconds = (ended_ms - answered_ms) / 1000` rounded down, 0 if never answered.
//!
//! ## Storage
//! One sled tree (`calls`); key layout in the [`store`] module docs. Every write applies
//! one atomic batch, then waits for the shared group-commit flush, so it is durable when the
//! `async fn` returns. The final record and its outbox entry are in the same batch, and a
//! `wi/<call_id>` marker guarantees one webhook per call.

pub mod error;
pub mod machine;
pub mod record;
pub mod store;

pub use error::StoreError;
pub use machine::{
    classify_unanswered, transition, CallEvent, CallKnobs, DialResult, Effect, LegSeen, Transition,
    TransitionError, TIMER_SLACK_MS,
};
pub use record::{
    call_id_hex, is_valid_call_id, mask_number, new_call_id, room_for_call_id, ArmedTimer,
    CallBilling, CallMedia, CallRecord, CallStatus, CrmWebhookPayload, Direction, FailureCause,
    InboundWebhookPayload, MediaStream, NewCall, NewInboundCall, OfferEntry, OfferOutcome, Phase,
    TimerKind, WebhookPayload, MAX_OFFERS,
};
pub use store::{
    verify_backup, webhook_id_for, Applied, BackupError, BackupInfo, CallPage, CallStore,
    CallStoreExt, CheckReport, DayTally, MemCallStore, MemSeenEvents, OutboxBacklog, OutboxEntry,
    OutboxState, Problem, ProblemKind, PurgeCursor, PurgeReport, SeenEvents, SledCallStore,
    SledSeenEvents, TransitionFn, MAX_PAGE, PROGRESS_EVERY,
};
