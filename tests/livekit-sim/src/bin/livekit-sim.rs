//! `livekit-sim` — run the LiveKit simulator as a standalone process.
//!
//! ```text
//! livekit-sim --listen 127.0.0.1:7880 --api-key devkey --api-secret secret \
//!     [--webhook-url http://127.0.0.1:8080/webhooks/livekit] [--scenarios calls.toml] \
//!     [--sip-outbound udp:127.0.0.1:5060 [--sip-local-ip 127.0.0.1]] \
//!     [--sip-inbound udp:127.0.0.1:5080] [--inbound-auto-provision]
//! ```
//!
//! With `--sip-outbound`, CreateSIPParticipant places a real SIP call to that
//! trunk address instead of playing a scenario. The SIP socket (outbound, or
//! `--sip-inbound` alone) also answers inbound INVITEs as LiveKit SIP does;
//! `--inbound-auto-provision` creates c2c-gateway's inbound trunk and Callee rule.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use livekit_sim::{InboundProvision, ScenarioFile, SimConfig, Simulator, SipInbound, SipOutbound};

// jemalloc, as the gateway: glibc's malloc and free were ~12 % of the simulator's CPU in
// the call lifecycle benchmark, where it shares two cores with the gateway.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "livekit-sim",
    about = "LiveKit server simulator (Twirp, SIP scenarios, signed webhooks, /rtc signalling stub)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7880")]
    listen: String,
    /// API key clients must sign tokens with (JWT `iss`).
    #[arg(long, env = "LIVEKIT_API_KEY")]
    api_key: String,
    /// API secret (HS256 key for API tokens and webhooks).
    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    api_secret: String,
    /// Where to POST signed webhooks (http:// only).
    #[arg(long)]
    webhook_url: Option<String>,
    /// Call scripts: JSON, or TOML when the name ends in .toml.
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Most rooms kept open at once (benchmarks with many open calls raise it).
    #[arg(long, default_value_t = 10_000)]
    max_rooms: usize,
    /// Most simultaneous HTTP connections.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// How many recent signed webhooks to keep (`POST /sim/webhooks/replay` re-sends the
    /// last). With 0 and no `--webhook-url`, events are not encoded or signed at all
    /// (benchmarks).
    #[arg(long, default_value_t = 256)]
    webhook_log: usize,
    /// Most simultaneous `/rtc` signalling WebSocket sessions.
    #[arg(long, default_value_t = 256)]
    max_rtc_sessions: usize,
    /// Dial real SIP: send every CreateSIPParticipant as an INVITE to this trunk
    /// address, `udp:IP:PORT` or `tcp:IP:PORT` (scenarios are then not used).
    #[arg(long, value_name = "TRANSPORT:IP:PORT")]
    sip_outbound: Option<SipOutbound>,
    /// Local address to send SIP from (and put in Via/Contact/SDP).
    #[arg(long, requires = "sip_outbound")]
    sip_local_ip: Option<IpAddr>,
    /// Most SIP calls tracked at once (both directions).
    #[arg(long, default_value_t = 1024)]
    max_sip_calls: usize,
    /// Answer inbound SIP: listen here (`udp:IP:PORT`, `tcp:IP:PORT`; port 0 = any).
    /// With `--sip-outbound`, only the port is used: one socket serves both ways.
    #[arg(long, value_name = "TRANSPORT:IP:PORT")]
    sip_inbound: Option<SipInbound>,
    /// Create c2c-gateway's inbound trunk (allowed 127.0.0.0/8, X-C2C-* header
    /// mappings, 30 s ring) and Callee dispatch rule at start (listens for SIP on
    /// udp:127.0.0.1:0 unless a SIP option says otherwise).
    #[arg(long)]
    inbound_auto_provision: bool,
    /// Inbound INVITE matching no trunk: `404 No trunk found` (LiveKit Cloud) instead
    /// of going on with wildcard rules (OSS).
    #[arg(long)]
    inbound_no_trunk_404: bool,
    /// Inbound INVITE matching no dispatch rule: `404` instead of OSS's silence.
    #[arg(long)]
    inbound_no_rule_404: bool,
    /// Return CreateSIPParticipant at once even when asked to wait until answered (an
    /// older LiveKit, or a proxy timing out the long request). Also a runtime fault.
    #[arg(long)]
    ignore_wait_until_answered: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "livekit-sim failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), livekit_sim::SimError> {
    let mut config = SimConfig::new(args.api_key, args.api_secret);
    config.listen = args.listen;
    config.webhook_url = args.webhook_url;
    config.limits.max_rooms = args.max_rooms;
    config.limits.max_connections = args.max_connections;
    config.limits.max_rtc_sessions = args.max_rtc_sessions;
    config.limits.webhook_log = args.webhook_log;
    config.limits.max_sip_calls = args.max_sip_calls;
    config.ignore_wait_until_answered = args.ignore_wait_until_answered;
    if let Some(mut outbound) = args.sip_outbound {
        if let Some(ip) = args.sip_local_ip {
            outbound.local_ip = ip;
        }
        config.sip_outbound = Some(outbound);
    }
    if args.sip_inbound.is_some() || args.inbound_no_trunk_404 || args.inbound_no_rule_404 {
        let mut inbound = args.sip_inbound.unwrap_or_default();
        inbound.no_trunk_404 = args.inbound_no_trunk_404;
        inbound.no_rule_404 = args.inbound_no_rule_404;
        config.sip_inbound = Some(inbound);
    }
    if args.inbound_auto_provision {
        config.inbound_auto_provision = Some(InboundProvision::default());
    }
    if let Some(path) = args.scenarios {
        let file = ScenarioFile::load(&path)?;
        if let Some(default) = file.default {
            config.default_scenario = default;
        }
        config.scenarios.extend(file.numbers);
    }
    let sim = Simulator::start(config).await?;
    tracing::info!(url = %sim.url(), sip = ?sim.sip_local_addr(), "livekit-sim ready");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
