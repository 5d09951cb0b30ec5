//! Test-only crate: checks the operations artefacts in `dashboards/` (Grafana
//! dashboards, provisioning files, Prometheus alert rules) against the series the
//! gateway really exports. The checks live in `tests/dashboards.rs`; this library is
//! empty on purpose and must not grow runtime code.
