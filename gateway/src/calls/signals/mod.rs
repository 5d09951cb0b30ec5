//! Where the world becomes call events. Each adapter turns one source of signals into
//! [`c2c_callstate::CallEvent`]s and hands them to `calls::apply`; none decides an
//! outcome itself (that is the state machine's), and none carries out an effect (that is
//! `calls::run_effects`'s).
//!
//! | source | adapter |
//! | --- | --- |
//! | LiveKit's signed webhooks | [`livekit`] (the HTTP handler that verifies them is `api::livekit_webhook`) |
//! | polling ListParticipants | [`poller`] |
//! | one look at a room (after a dial, on hangup, at start) | [`room`] |
//! | the SIP edge's responses | [`sip`] |
//! | due timers | [`timers`] |
//! | the agent's browser (`/status`, `/hangup`) | [`browser`] |
//! | calls whose dial died with the last process | [`reconcile`] |

pub mod browser;
pub mod livekit;
pub mod poller;
pub mod reconcile;
pub mod room;
pub mod sip;
pub mod timers;
