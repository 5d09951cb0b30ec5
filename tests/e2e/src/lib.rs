//! Shared pieces of the benchmark drivers under `tests/bench/`.
