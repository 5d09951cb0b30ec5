//! The console Sandbox's two helpers that need the bundled LiveKit simulator, so a whole
//! inbound call can be tried from the console alone:
//!
//! - `POST /api/c2c/console/tenants/{tenant}/sandbox/inbound`: a test inbound call. The
//!   simulator plays the carrier: it sends an INVITE for one of the tenant's numbers to
//!   this gateway's own SIP edge (from the simulator's address, 127.0.0.1 — a trunk's
//!   `carrier` or `sources` must admit it, as the example trunk's does), rings, holds
//!   the call `hold_seconds` once answered, then hangs up (BYE). The answer waits (at
//!   most 5 s) until the gateway has stored the call, and names it: the console then
//!   follows it like any call (`GET /api/c2c/console/calls/{call_id}`). The call goes
//!   through the real edge, ring and offers: nothing here is a shortcut.
//! - `POST /api/c2c/console/calls/{call_id}/sandbox-join`: the call's agent joins its
//!   room with the microphone published — the simulator's stand-in for the agent's
//!   browser, which cannot carry media to a simulator (no WebRTC there), while an
//!   inbound call is answered only once the agent publishes audio. The console's page
//!   cannot reach the simulator's own `/sim/` hooks (its CSP admits this origin only,
//!   and the hooks are unauthenticated test infrastructure), hence this keyed route.
//!
//! Both answer `409 simulator_only` when the gateway runs no bundled simulator.

use std::time::Duration;

use bytes::Bytes;
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use c2c_tenancy::Tenant;
use http::StatusCode;

use super::console::{may_see, tenant_param};
use crate::api::console_types::{SandboxInboundCall, SandboxInboundRequest, SandboxJoined};
use crate::api::errors;
use crate::app::App;
use crate::body::parse_json;

/// The caller when the request names none.
const DEFAULT_CALLER: &str = "+919812345678";
const DEFAULT_HOLD_SECONDS: u64 = 10;
const MAX_HOLD_SECONDS: u64 = 30;
/// How long the answer waits for the gateway to store the call.
#[cfg_attr(not(feature = "sim"), allow(dead_code))]
const STORED_WITHIN: Duration = Duration::from_secs(5);

fn simulator_only() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "simulator_only",
        "this needs the bundled LiveKit simulator (a LiveKit project with url = \"sim\"); \
         with a real LiveKit and carrier, call one of the tenant's numbers from a phone",
    )
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// `raw` as one of `t`'s inbound numbers (E.164), in any shape the edge matches.
fn own_number(t: &Tenant, raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim();
    let did = c2c_dialplan::normalize_did(raw).unwrap_or_else(|_| raw.to_owned());
    if let Some(n) = t.inbound.numbers.iter().find(|n| n.did == did) {
        return Ok(n.did.clone());
    }
    let own: Vec<&str> = t.inbound.numbers.iter().map(|n| n.did.as_str()).collect();
    Err(unprocessable(
        "unknown_did",
        if own.is_empty() {
            format!(
                "tenant '{}' has no inbound numbers ([[inbound.numbers]] in its policy file)",
                t.id
            )
        } else {
            format!(
                "{raw:?} is not one of the inbound numbers of tenant '{}' ({})",
                t.id,
                own.join(", ")
            )
        },
    ))
}

/// The caller: `+` (optional) and 6-15 digits.
fn caller(from: Option<&str>) -> Result<String, ApiError> {
    let from = from.map_or(DEFAULT_CALLER, str::trim);
    let digits = from.strip_prefix('+').unwrap_or(from);
    if (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(from.to_owned())
    } else {
        Err(unprocessable(
            "invalid_number",
            "from must be the caller's number: + and 6-15 digits (+919812345678)",
        ))
    }
}

/// `hold_seconds`: a whole number of seconds, 1-30 (`7.0` is 7).
fn hold_seconds(hold: Option<f64>) -> Result<u64, ApiError> {
    let Some(h) = hold else {
        return Ok(DEFAULT_HOLD_SECONDS);
    };
    if h.fract() == 0.0 && (1.0..=MAX_HOLD_SECONDS as f64).contains(&h) {
        // Whole and within 1-30: the conversion is exact.
        Ok(h as u64)
    } else {
        Err(unprocessable(
            "invalid_hold",
            format!("hold_seconds must be a whole number of seconds, 1-{MAX_HOLD_SECONDS}"),
        ))
    }
}

/// `POST /api/c2c/console/tenants/{tenant}/sandbox/inbound`.
pub async fn inbound(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let (did, from, hold) = {
        let policy = app.policy().get();
        let t = tenant_param(&policy, ctx)?;
        let req: SandboxInboundRequest = parse_json(body)?;
        (
            own_number(t, &req.did)?,
            caller(req.from.as_deref())?,
            hold_seconds(req.hold_seconds)?,
        )
    };
    let edge = app.inbound().edge_addr();
    let (call_id, sip_call_id) = place(app, edge, &did, &from, hold).await?;
    Ok(JsonResponse::json(
        StatusCode::OK,
        &SandboxInboundCall {
            call_id,
            sip_call_id,
            did,
            from,
            hold_seconds: hold,
        },
    ))
}

/// The simulator calls `did` at `edge`; the call id the gateway stored, and the SIP
/// Call-ID.
#[cfg(feature = "sim")]
async fn place(
    app: &App,
    edge: Option<std::net::SocketAddr>,
    did: &str,
    from: &str,
    hold: u64,
) -> Result<(String, String), ApiError> {
    use livekit_sim::InboundDialState;

    let sim = app.livekit().sim().ok_or_else(simulator_only)?;
    let edge = edge.ok_or_else(|| {
        conflict(
            "no_sip_edge",
            "this gateway's SIP edge is not running (--sip-listen)",
        )
    })?;
    let id = sim
        .dial_inbound(edge, did, from, Duration::from_secs(hold))
        .map_err(|e| {
            ApiError::unavailable(
                "simulator_unavailable",
                format!("the simulator could not place the call: {e}"),
                1,
            )
        })?;
    let stored = || app.inbound().call_for_sip(id.as_str());
    let deadline = tokio::time::Instant::now() + STORED_WITHIN;
    loop {
        if let Some(call_id) = stored() {
            return Ok((call_id, id.0));
        }
        let refused = sim
            .inbound_dial(&id)
            .filter(|r| r.state == InboundDialState::Ended);
        if let Some(r) = refused {
            // Stored just now, then ended at once (e.g. no agent): still the answer.
            if let Some(call_id) = stored() {
                return Ok((call_id, id.0));
            }
            let code = r
                .final_code
                .map_or_else(|| "no answer".into(), |c| c.to_string());
            let carrier = sim.carrier_addr().map(|a| a.ip().to_string());
            return Err(conflict(
                "inbound_refused",
                format!(
                    "the SIP edge refused the test call ({code} {}): the number's trunk must \
                     admit the simulator's address {} (its carrier or sources)",
                    r.reason.unwrap_or_default(),
                    carrier.unwrap_or_default()
                ),
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            sim.hangup_inbound_dial(&id);
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "inbound_timeout",
                "the gateway did not take the test call within 5 s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(not(feature = "sim"))]
async fn place(
    _app: &App,
    _edge: Option<std::net::SocketAddr>,
    _did: &str,
    _from: &str,
    _hold: u64,
) -> Result<(String, String), ApiError> {
    Err(simulator_only())
}

/// `POST /api/c2c/console/calls/{call_id}/sandbox-join`.
pub async fn join(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let rec = crate::api::calls::stored_call(app, ctx.param(0).unwrap_or_default()).await?;
    // Another tenant's call is as unknown as a missing one.
    may_see(ctx, &rec.tenant).map_err(|_| errors::unknown_call())?;
    // No fields yet, but it must be the JSON object the document promises.
    let _: serde_json::Map<String, serde_json::Value> = parse_json(body)?;
    if rec.is_ended() {
        return Err(conflict("call_ended", "the call has ended"));
    }
    if rec.agent_id.is_empty() {
        return Err(conflict(
            "no_agent",
            "no agent has this call yet: accept the offer first",
        ));
    }
    sim_join(app, &rec.room, &rec.agent_id)?;
    Ok(JsonResponse::json(
        StatusCode::OK,
        &SandboxJoined {
            call_id: &rec.call_id,
            room: &rec.room,
            identity: &rec.agent_id,
        },
    ))
}

#[cfg(feature = "sim")]
fn sim_join(app: &App, room: &str, identity: &str) -> Result<(), ApiError> {
    let sim = app.livekit().sim().ok_or_else(simulator_only)?;
    sim.join(room, identity).map(drop).map_err(|e| {
        conflict(
            "join_failed",
            format!("the simulator refused the join: {e}"),
        )
    })
}

#[cfg(not(feature = "sim"))]
fn sim_join(_app: &App, _room: &str, _identity: &str) -> Result<(), ApiError> {
    Err(simulator_only())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_and_hold_are_checked() {
        assert_eq!(caller(None).unwrap(), DEFAULT_CALLER);
        assert_eq!(caller(Some(" 9812345678 ")).unwrap(), "9812345678");
        for bad in ["", "+", "+91 98123", "12345", "+1234567890123456", "abc"] {
            assert_eq!(
                caller(Some(bad)).unwrap_err().code,
                "invalid_number",
                "{bad:?}"
            );
        }
        assert_eq!(hold_seconds(None).unwrap(), DEFAULT_HOLD_SECONDS);
        assert_eq!(hold_seconds(Some(30.0)).unwrap(), 30);
        assert_eq!(hold_seconds(Some(7.0)).unwrap(), 7);
        for bad in [0.0, 31.0, 1.5, -3.0, f64::MAX, 1e300] {
            assert_eq!(
                hold_seconds(Some(bad)).unwrap_err().code,
                "invalid_hold",
                "{bad}"
            );
        }
    }
}
