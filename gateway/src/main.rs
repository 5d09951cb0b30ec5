//! `c2c-gateway` command-line entry point.

use std::process::ExitCode;

fn main() -> ExitCode {
    c2c_gateway::cli::main()
}
