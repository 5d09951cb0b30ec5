//! `c2c-gateway` command-line entry point.

use std::process::ExitCode;

// jemalloc instead of glibc malloc: the proxy and API paths allocate and free many small
// buffers per request across threads, where glibc's arenas cost ~10 % of the CPU in
// profiles; jemalloc is also what Pingora runs on in production, and it keeps the
// memory per open call lower than mimalloc did (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    c2c_gateway::cli::main()
}
