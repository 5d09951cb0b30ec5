//! Captures the source revision at build time for `--version` and `c2c_build_info`.
//!
//! Order: `git rev-parse --short=12 HEAD` when the source is a git checkout; else the
//! `C2C_REVISION` environment variable (a container build, whose context has no `.git`,
//! passes it as a build argument); else `unknown`. Exposed to the crate as the
//! compile-time variable `C2C_BUILD_REVISION`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=C2C_REVISION");
    let revision = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => {
            rerun_on_new_commits();
            rev
        }
        None => std::env::var("C2C_REVISION")
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
            })
            .unwrap_or_else(|| "unknown".to_string()),
    };
    println!("cargo:rustc-env=C2C_BUILD_REVISION={revision}");
}

/// Rebuild when HEAD moves: HEAD itself (a checkout), the branch it points at (a
/// commit) and packed-refs (a gc). In a worktree HEAD lives in the worktree's git dir
/// and the branch in the common one.
fn rerun_on_new_commits() {
    let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) else {
        return;
    };
    let (git_dir, common) = (PathBuf::from(git_dir), PathBuf::from(common));
    watch(&git_dir.join("HEAD"));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&common.join(branch));
    }
    watch(&common.join("packed-refs"));
}

fn watch(p: &Path) {
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
