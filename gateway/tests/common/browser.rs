//! The browser tests' runner: the node test files of `web/tests/` (headless Chromium
//! through `playwright-core`), given the URLs and keys of the gateway a Rust test started.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Chromium and the web packages, or why they are missing.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if !repo().join("web/node_modules/playwright-core").exists() {
        return Some("web/node_modules is missing (npm ci in web/)".into());
    }
    None
}

/// Whether the browser tests can run here. Under `CI=true` they must (a failed assert
/// says what is missing); elsewhere the test says it did not run and returns early.
pub fn ready() -> bool {
    let Some(why) = missing() else { return true };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "browser tests cannot run under CI: {why}"
    );
    eprintln!("SKIPPED (not run): browser tests need {why}; tests/run-all.sh installs it");
    false
}

/// Secret values in a policy directory (none may reach a browser).
pub fn secrets(policies: &Path) -> Vec<String> {
    std::fs::read_dir(policies.join("secrets"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() >= 8)
        .collect()
}

/// Where the browser tests leave their screenshots.
pub fn shots() -> PathBuf {
    repo().join("target/console-screenshots")
}

/// `node --test` of `files` (under `web/`, one at a time) with `env`; its output printed.
/// Panics with the output and `context` (e.g. the gateway's log) when a test failed.
pub fn run_node_tests(files: &[&str], env: &[(&str, String)], context: impl Fn() -> String) {
    let out = Command::new("node")
        .current_dir(repo().join("web"))
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(files)
        .env("C2C_SHOTS", shots())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "browser tests failed (screenshots under {}):\n{stdout}\n{stderr}\n--- context ---\n{}",
        shots().display(),
        context()
    );
}
