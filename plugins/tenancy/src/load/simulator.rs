//! `[simulator]`: the bundled LiveKit simulator, for projects with `url = "sim"`.

use std::net::SocketAddr;

use super::Errs;
use crate::file::SimulatorSection;
use crate::policy::SimulatorConfig;

pub(super) fn validate(s: &SimulatorSection, e: &mut Errs<'_>) -> SimulatorConfig {
    let listen = s.listen.clone().unwrap_or_else(|| "127.0.0.1:0".into());
    match listen.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => {}
        _ => e.push(
            "simulator.listen",
            "must be a loopback address like 127.0.0.1:7880",
        ),
    }
    SimulatorConfig {
        listen,
        sip_disconnect_code_attribute: s.sip_disconnect_code_attribute.unwrap_or(false),
        sip_outbound: s.sip_outbound.clone(),
    }
}
