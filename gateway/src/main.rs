//! `c2c-gateway` command-line entry point.

use std::process::ExitCode;

// mimalloc instead of glibc malloc: the proxy and API paths allocate and free many small
// buffers per request across threads, where glibc's arenas cost ~10 % of the CPU in
// profiles (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    c2c_gateway::cli::main()
}
