//! The README's "Zero to first call", run as written (`tests/walkthrough.sh` extracts
//! the marked block from README.md) against this build's binary on free ports, so the
//! walkthrough cannot drift from the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

#[test]
fn readme_zero_to_first_call_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("tests/walkthrough.sh"))
        .env("C2C_BIN", env!("CARGO_BIN_EXE_c2c-gateway"))
        // The script sets these for the README block; none may leak in from outside.
        .env_remove("C2C_POLICIES")
        .env_remove("C2C_DATA")
        .env_remove("C2C_LISTEN")
        .env_remove("C2C_SIP_LISTEN")
        .output()
        .expect("run tests/walkthrough.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the README walkthrough failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("walkthrough: OK"), "{stdout}");
    assert!(stdout.contains("\"call_status\":\"ANSWERED\""), "{stdout}");
}
