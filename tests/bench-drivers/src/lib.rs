//! Shared pieces of the benchmark drivers under `tests/bench/`.

use std::process::Child;

/// A child process (gateway, simulator) that is killed and reaped when this is dropped, so
/// a benchmark that panics leaves nothing running on the machine.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
