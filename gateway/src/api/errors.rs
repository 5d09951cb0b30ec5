//! Domain errors as HTTP errors, in one place: every handler maps a call-store, DLT,
//! dial-plan or LiveKit failure through here, so an error code and its status mean the
//! same on every route. All of them render as the one JSON shape
//! `{"error": {"code", "message"}}` (`c2c_plugin_api::ApiError`).

use c2c_agents::{AgentStoreError, OutboundRefusal};
use c2c_callstate::{StoreError, TransitionError};
use c2c_dialplan::DialError;
use c2c_dlt::{DltError, DltPending, DltRefusal, DltRule};
use c2c_livekit::LiveKitError;
use c2c_metrics::GatewayMetrics;
use c2c_plugin_api::ApiError;
use http::StatusCode;

/// A call id that names no call of the caller's: malformed, unknown and another
/// tenant's ids all answer this same 404, so none can be told from the others.
pub fn unknown_call() -> ApiError {
    ApiError::not_found("unknown call_id")
}

/// The call store. A conflict is the caller's mistake (409), a missing call 404,
/// anything else ours (503: safe to retry, nothing was acknowledged).
pub fn call_store(e: StoreError) -> ApiError {
    match e {
        StoreError::Transition(TransitionError::Conflict { code, message }) => {
            ApiError::new(StatusCode::CONFLICT, code, message)
        }
        StoreError::NotFound => unknown_call(),
        other => {
            tracing::error!(error = %other, "call store failure");
            ApiError::unavailable(
                "store_unavailable",
                "the call store is unavailable; try again",
                1,
            )
        }
    }
}

/// The agent registry's store.
pub fn agent_store(e: AgentStoreError) -> ApiError {
    tracing::error!(error = %e, "agent store failure");
    ApiError::unavailable(
        "store_unavailable",
        "the agent store is unavailable; try again",
        1,
    )
}

/// An agent id that names no agent of the caller's tenant.
pub fn unknown_agent() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_agent", "unknown agent_id")
}

/// click2call or /connect refused for the agent: not registered or telephony off (403),
/// on another call (409).
/// An accept of an inbound offer that cannot be honoured.
pub fn inbound_refused(r: &crate::inbound::InboundRefusal) -> ApiError {
    use crate::inbound::InboundRefusal as R;
    match r {
        R::OfferGone => ApiError::new(StatusCode::CONFLICT, r.code(), r.to_string()),
        R::NotOffered => ApiError::new(StatusCode::FORBIDDEN, r.code(), r.to_string()),
        R::Unavailable(_) => ApiError::unavailable(r.code(), r.to_string(), 5),
    }
}

pub fn agent_refused(r: &OutboundRefusal) -> ApiError {
    let status = match r {
        OutboundRefusal::Busy { .. } => StatusCode::CONFLICT,
        _ => StatusCode::FORBIDDEN,
    };
    ApiError::new(
        status,
        crate::agents::refusal_code(r),
        match r {
            OutboundRefusal::Busy { agent_id, .. } => {
                format!("agent '{agent_id}' is already on a call; end it before starting another")
            }
            other => other.to_string(),
        },
    )
}

/// The wallet ledger: a refused entry is the caller's (422 invalid, 409 below the floor
/// or a reused request id), a store failure ours (503).
pub fn wallet(e: c2c_billing::WalletError) -> ApiError {
    use c2c_billing::WalletError as W;
    match e {
        W::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_entry", m),
        e @ W::BelowFloor { .. } => {
            ApiError::new(StatusCode::CONFLICT, "below_floor", e.to_string())
        }
        e @ W::RequestIdReused { .. } => {
            ApiError::new(StatusCode::CONFLICT, "request_id_reused", e.to_string())
        }
        e @ W::InsufficientBalance { .. } => insufficient_balance(e.to_string()),
        other => {
            tracing::error!(error = %other, "wallet store failure");
            ApiError::unavailable(
                "store_unavailable",
                "the wallet store is unavailable; try again",
                1,
            )
        }
    }
}

/// A managed tenant's call its wallet cannot pay for: `402`, nothing dialled.
pub fn insufficient_balance(message: String) -> ApiError {
    ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        "insufficient_balance",
        message,
    )
}

/// The DLT flag's store.
pub fn dlt_store(e: DltError) -> ApiError {
    tracing::error!(error = %e, "DLT store failure");
    ApiError::unavailable(
        "store_unavailable",
        "the DLT store is unavailable; try again",
        1,
    )
}

/// The dial plan: a number or caller ID refused (422), no usable trunk (409).
pub fn dial_plan(e: DialError) -> ApiError {
    let status = match e {
        DialError::NoTrunk(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// The 403 every call attempt of a DLT-pending tenant gets.
pub fn dlt_pending(e: &DltPending) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "dlt_pending", e.to_string())
}

/// A call a DLT rule refused: `422 caller_id_series`, `403 dnd_blocked`,
/// `403 outside_calling_hours` (with `Retry-After` up to the window's opening) or
/// `503 dnd_unavailable`.
pub fn dlt_refused(r: &DltRefusal, now_ms: u64) -> ApiError {
    let (status, code) = match r.rule {
        DltRule::CallerIdSeries => (StatusCode::UNPROCESSABLE_ENTITY, "caller_id_series"),
        DltRule::DndBlocked => (StatusCode::FORBIDDEN, "dnd_blocked"),
        DltRule::OutsideCallingHours => (StatusCode::FORBIDDEN, "outside_calling_hours"),
        DltRule::DndUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "dnd_unavailable"),
    };
    let e = ApiError::new(status, code, r.message.clone());
    match (r.rule, r.next_allowed_ms) {
        (DltRule::OutsideCallingHours, Some(at)) => {
            e.with_retry_after(at.saturating_sub(now_ms).div_ceil(1000).max(1))
        }
        (DltRule::DndUnavailable, _) => e.with_retry_after(30),
        _ => e,
    }
}

/// A LiveKit request that failed while a request waited on it (counted by operation).
pub fn livekit(op: &'static str, metrics: &GatewayMetrics, e: &LiveKitError) -> ApiError {
    metrics.livekit_errors.with_label_values(&[op]).inc();
    tracing::warn!(op, error = %e, "LiveKit call failed");
    ApiError::unavailable(
        "livekit_unavailable",
        "LiveKit is unavailable right now; nothing was created, retry shortly",
        5,
    )
}

/// Provisioning: the request's mistakes are 400 (a billing mode sent), 422 (a field or
/// the resulting policy invalid, credentials LiveKit refused), 404 and 409 (exists,
/// stale revision); a policy directory that cannot be written is ours (500).
pub fn provision(e: crate::provision::ProvisionError) -> ApiError {
    use crate::provision::ProvisionError as P;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    match e {
        e @ P::ExplicitMode(_) => ApiError::bad_request("mode_not_accepted", e.to_string()),
        e @ P::Json { .. } => ApiError::bad_request("invalid_json", e.to_string()),
        e @ P::Field(_) => ApiError::new(unprocessable, "invalid_field", e.to_string()),
        e @ P::OwnerOnly(_) => ApiError::new(StatusCode::FORBIDDEN, "owner_only", e.to_string()),
        e @ P::NothingToChange => ApiError::new(unprocessable, "nothing_to_change", e.to_string()),
        e @ P::Invalid(_) => ApiError::new(unprocessable, "invalid_policy", e.to_string()),
        e @ P::LiveKit(_) => ApiError::new(unprocessable, "livekit_invalid", e.to_string()),
        e @ P::Rejected(_) => ApiError::new(unprocessable, "policy_rejected", e.to_string()),
        e @ P::Exists(_) => ApiError::new(StatusCode::CONFLICT, "tenant_exists", e.to_string()),
        e @ P::Stale { .. } => {
            ApiError::new(StatusCode::CONFLICT, "revision_conflict", e.to_string())
        }
        e @ P::UnknownTenant(_) => ApiError::not_found(e.to_string()),
        e @ P::Io(_) => {
            tracing::error!(error = %e, "provisioning cannot write the policy directory");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "policy_write_failed",
                e.to_string(),
            )
        }
    }
}
