//! `/sim/...` HTTP test hooks (not part of LiveKit's API; no authentication — the
//! simulator is test infrastructure bound to loopback).
//!
//! | method | path | body | effect |
//! |---|---|---|---|
//! | POST | `/sim/rooms/{room}/join` | `{"identity","name"?,"publish_audio"?}` | agent joins (room auto-created) with its microphone published (unless `publish_audio` is false) |
//! | POST | `/sim/rooms/{room}/publish` | `{"identity"}` | a joined agent publishes its microphone |
//! | POST | `/sim/rooms/{room}/leave` | `{"identity"}` | agent leaves (`CLIENT_INITIATED`) |
//! | GET | `/sim/rooms` | | rooms (protojson) |
//! | GET | `/sim/rooms/{room}/participants` | | participants (protojson) |
//! | POST | `/sim/scenarios` | `{"number","scenario"}` or `{"default"}` | set a call script |
//! | POST | `/sim/fault` | `{"unavailable"?,"refuse_connections"?,"latency_ms"?,"ignore_wait_until_answered"?,"inbound_no_trunk_404"?,"inbound_no_rule_404"?}` | fault injection |
//! | GET | `/sim/sip/inbound` | | recent inbound INVITEs (`InboundCallRecord`s) |
//! | POST | `/sim/sip/dial-inbound` | `{"edge","did","from"?,"hold_ms"?}` | the simulator calls `did` at the SIP edge `edge` (`ip:port`) as a carrier; `{"id"}` (the SIP Call-ID) |
//! | GET | `/sim/sip/dial-inbound` | | the carrier calls (`InboundDialRecord`s) |
//! | GET | `/sim/sip/dial-inbound/{id}` | | one carrier call |
//! | POST | `/sim/sip/dial-inbound/{id}/hangup` | | the carrier hangs up (CANCEL or BYE) |
//! | GET | `/sim/stats` | | counters |
//! | POST | `/sim/webhooks/forge` | `{"forgery":"expired"}` | send a forged webhook |
//! | POST | `/sim/webhooks/replay` | | re-send the last webhook |

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::core::Core;
use crate::scenario::Scenario;
use crate::sip::carrier::{DialInbound, InboundDialId};
use crate::twirp::{bytes_response, text_response, HttpResponse};
use crate::webhooks::Forgery;
use crate::SimError;

pub(crate) const HOOK_PREFIX: &str = "/sim/";

#[derive(Deserialize)]
struct JoinBody {
    identity: String,
    #[serde(default)]
    name: String,
    #[serde(default = "yes")]
    publish_audio: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioBody {
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    scenario: Option<Scenario>,
    #[serde(default)]
    default: Option<Scenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    #[serde(default)]
    unavailable: Option<bool>,
    #[serde(default)]
    refuse_connections: Option<bool>,
    #[serde(default)]
    latency_ms: Option<u64>,
    /// CreateSIPParticipant returns at once even with `wait_until_answered`.
    #[serde(default)]
    ignore_wait_until_answered: Option<bool>,
    /// Inbound INVITE matching no trunk: `404 No trunk found` instead of OSS's going on.
    #[serde(default)]
    inbound_no_trunk_404: Option<bool>,
    /// Inbound INVITE matching no rule: `404` instead of OSS's silence.
    #[serde(default)]
    inbound_no_rule_404: Option<bool>,
}

/// The caller a carrier call comes from when the body names none.
const DEFAULT_CALLER: &str = "+919812345678";
/// The hold after the answer when the body names none.
const DEFAULT_HOLD_MS: u64 = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialInboundBody {
    edge: std::net::SocketAddr,
    did: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    hold_ms: Option<u64>,
}

#[derive(Serialize)]
struct DialInboundAnswer<'a> {
    id: &'a InboundDialId,
}

#[derive(Deserialize)]
struct ForgeBody {
    forgery: Forgery,
}

#[derive(Serialize)]
struct StatusBody {
    status: u16,
}

pub(crate) async fn handle(
    core: &Arc<Core>,
    method: &Method,
    path: &str,
    body: Bytes,
) -> HttpResponse {
    match route(core, method, path, body).await {
        Ok(resp) => resp,
        Err(e) => {
            let status = match e {
                SimError::NotFound(_) => StatusCode::NOT_FOUND,
                SimError::Limit(_) => StatusCode::TOO_MANY_REQUESTS,
                SimError::NoWebhookUrl | SimError::NothingToReplay => StatusCode::CONFLICT,
                SimError::Http(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::BAD_REQUEST,
            };
            text_response(status, e.to_string())
        }
    }
}

async fn route(
    core: &Arc<Core>,
    method: &Method,
    path: &str,
    body: Bytes,
) -> Result<HttpResponse, SimError> {
    let rest = path.strip_prefix(HOOK_PREFIX).unwrap_or("");
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        (&Method::GET, ["stats"]) => json(&core.stats()),
        (&Method::GET, ["rooms"]) => json(&core.rooms.lock().list_rooms(&[])),
        (&Method::GET, ["sip", "inbound"]) => json(&core.inbound_calls()),
        (&Method::POST, ["sip", "dial-inbound"]) => {
            let req: DialInboundBody = parse(&body)?;
            let hold = Duration::from_millis(req.hold_ms.unwrap_or(DEFAULT_HOLD_MS));
            let from = req.from.as_deref().unwrap_or(DEFAULT_CALLER);
            let id = core.carrier()?.dial(&DialInbound {
                edge: req.edge,
                did: &req.did,
                from,
                hold,
            })?;
            json(&DialInboundAnswer { id: &id })
        }
        (&Method::GET, ["sip", "dial-inbound"]) => json(&core.carrier()?.list()),
        (&Method::GET, ["sip", "dial-inbound", id]) => json(
            &core
                .carrier()?
                .get(id)
                .ok_or_else(|| SimError::NotFound(format!("carrier call {id}")))?,
        ),
        (&Method::POST, ["sip", "dial-inbound", id, "hangup"]) => {
            if !core.carrier()?.hangup(id) {
                return Err(SimError::NotFound(format!(
                    "carrier call {id} (or it ended)"
                )));
            }
            Ok(empty_ok())
        }
        (&Method::GET, ["rooms", room, "participants"]) => {
            json(&core.rooms.lock().participants(room))
        }
        (&Method::POST, ["rooms", room, "join"]) => {
            let req: JoinBody = parse(&body)?;
            json(&core.join(room, &req.identity, &req.name, req.publish_audio)?)
        }
        (&Method::POST, ["rooms", room, "publish"]) => {
            let req: JoinBody = parse(&body)?;
            core.publish_microphone(room, &req.identity)?;
            Ok(empty_ok())
        }
        (&Method::POST, ["rooms", room, "leave"]) => {
            let req: JoinBody = parse(&body)?;
            core.leave(room, &req.identity)?;
            Ok(empty_ok())
        }
        (&Method::POST, ["scenarios"]) => {
            let req: ScenarioBody = parse(&body)?;
            let mut table = core.scenarios.lock();
            if let Some(default) = req.default {
                table.set_default(default);
            }
            match (req.number, req.scenario) {
                (Some(number), Some(scenario)) => table.set(&number, scenario)?,
                (None, None) => {}
                _ => return Err(SimError::Config("give both number and scenario".to_owned())),
            }
            Ok(empty_ok())
        }
        (&Method::POST, ["fault"]) => {
            let req: FaultBody = parse(&body)?;
            if let Some(on) = req.unavailable {
                core.faults.set_unavailable(on);
            }
            if let Some(on) = req.refuse_connections {
                core.faults.set_refuse(on);
            }
            if let Some(ms) = req.latency_ms {
                core.faults.set_latency(Duration::from_millis(ms));
            }
            if let Some(on) = req.ignore_wait_until_answered {
                core.faults.set_ignore_wait(on);
            }
            core.set_inbound_404(req.inbound_no_trunk_404, req.inbound_no_rule_404);
            Ok(empty_ok())
        }
        (&Method::POST, ["webhooks", "forge"]) => {
            let req: ForgeBody = parse(&body)?;
            let forged = core.forge_webhook(req.forgery)?;
            json(&StatusBody {
                status: core.send_webhook(&forged).await?,
            })
        }
        (&Method::POST, ["webhooks", "replay"]) => json(&StatusBody {
            status: core.replay_last_webhook().await?,
        }),
        _ => Err(SimError::NotFound(format!("{method} {path}"))),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::Config(format!("bad json body: {e}")))
}

fn json<T: Serialize>(value: &T) -> Result<HttpResponse, SimError> {
    let body = serde_json::to_vec(value).map_err(|e| SimError::Encode(e.to_string()))?;
    Ok(bytes_response(StatusCode::OK, "application/json", body))
}

fn empty_ok() -> HttpResponse {
    bytes_response(StatusCode::OK, "text/plain", Vec::new())
}
