//! Running the real `c2c-gateway` binary as an owner CLI.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Exit code and output of one CLI run.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `c2c-gateway ARGS` with a clean environment for its own variables plus `env`.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_c2c-gateway"));
    cmd.args(args);
    for v in [
        "C2C_GATEWAY_URL",
        "C2C_OWNER_KEY",
        "C2C_DATA",
        "C2C_POLICIES",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run c2c-gateway");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

pub fn ok(o: &Out) {
    assert_eq!(o.code, 0, "stdout: {}\nstderr: {}", o.stdout, o.stderr);
}
