//! Media relay benchmark driver (tests/bench/media.sh): the SIP edge's RTP relay
//! (`c2c-media`) side by side with rtpengine (userspace forwarding), same load.
//!
//! - `host`: runs N of our relays (one per call, as the edge does) on the engine `--io`
//!   names (a current-thread runtime, or the io_uring media thread with `--batch-us`)
//!   and writes their port pairs to a file; the script pins it to one core.
//! - `load`: N calls, each two streams (carrier -> LiveKit and back) at 50 packets/s of
//!   160-byte G.711 payload, from two sockets on the other core; for rtpengine the calls
//!   are set up over its ng protocol (offer/answer). Prints sent, received, loss, the
//!   one-way latency through the relay (p50/p99) and the relay process's CPU seconds
//!   over the measured window, per million packets relayed.

mod host;
mod load;
mod ng;

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run N relays and write "carrier_rtp livekit_rtp" per call to --ports.
    Host {
        #[arg(long)]
        calls: usize,
        #[arg(long, default_value_t = 40_000)]
        port_min: u16,
        #[arg(long)]
        ports: std::path::PathBuf,
        /// `runtime` or `io_uring`.
        #[arg(long, default_value = "runtime")]
        io: String,
        /// The io_uring engine's batch window.
        #[arg(long, default_value_t = 200)]
        batch_us: u64,
    },
    /// Drive N calls through a relay and report.
    Load(load::LoadArgs),
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Host {
            calls,
            port_min,
            ports,
            io,
            batch_us,
        } => host::run(
            calls,
            port_min,
            &ports,
            &io,
            std::time::Duration::from_micros(batch_us),
        ),
        Cmd::Load(args) => load::run(args),
    }
}
