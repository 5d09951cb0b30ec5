//! Release hygiene: the licence the workspace declares is in the repository, the
//! changelog follows Keep a Changelog, no workspace dependency is dead weight, and the
//! known-vulnerable `protobuf` 2.x (RUSTSEC-2024-0437, pulled in by `prometheus`'s
//! default features) is not in the lock file.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let p = repo_root().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn toml_file(rel: &str) -> toml::Table {
    read(rel)
        .parse()
        .unwrap_or_else(|e| panic!("{rel}: invalid TOML: {e}"))
}

fn workspace() -> toml::Table {
    toml_file("Cargo.toml")
}

/// Workspace dependencies kept on purpose although no member uses them yet.
const RESERVED: &[(&str, &str)] = &[(
    "rtp-rs",
    "the RTP relay next to the SIP edge (floor 4 of docs/architecture.md)",
)];

#[test]
fn the_licence_file_is_the_full_apache_2_text_the_workspace_declares() {
    let ws = workspace();
    assert_eq!(
        ws["workspace"]["package"]["license"].as_str(),
        Some("Apache-2.0")
    );
    let text = read("LICENSE");
    for needle in [
        "Apache License",
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
    ] {
        assert!(text.contains(needle), "LICENSE lacks {needle:?}");
    }
    // The full text, not a notice pointing at it (~11,000 characters).
    assert!(text.len() > 10_000, "LICENSE is {} bytes", text.len());
}

#[test]
fn the_changelog_follows_keep_a_changelog() {
    let text = read("CHANGELOG.md");
    assert!(text.starts_with("# Changelog"), "CHANGELOG.md title");
    assert!(
        text.contains("https://keepachangelog.com/en/1.1.0/"),
        "CHANGELOG.md must say it follows Keep a Changelog"
    );
    let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        headings.first().copied(),
        Some("## [Unreleased]"),
        "the first section is Unreleased"
    );
    let version = workspace()["workspace"]["package"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let released = format!("## [{version}] - ");
    let entry = headings
        .iter()
        .find(|h| h.starts_with(&released))
        .unwrap_or_else(|| panic!("no `{released}YYYY-MM-DD` entry for the workspace version"));
    let date = &entry[released.len()..];
    let ok = date.len() == 10
        && date.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    assert!(ok, "release date {date:?} is not YYYY-MM-DD");
    for kind in text.lines().filter_map(|l| l.strip_prefix("### ")) {
        assert!(
            [
                "Added",
                "Changed",
                "Deprecated",
                "Removed",
                "Fixed",
                "Security"
            ]
            .contains(&kind),
            "CHANGELOG.md: `### {kind}` is not a Keep a Changelog change type"
        );
    }
}

#[test]
fn prometheus_is_built_without_protobuf() {
    let ws = workspace();
    let prom = &ws["workspace"]["dependencies"]["prometheus"];
    assert_eq!(
        prom.get("default-features").and_then(toml::Value::as_bool),
        Some(false),
        "prometheus must not enable its default `protobuf` feature (RUSTSEC-2024-0437)"
    );
    let lock = toml_file("Cargo.lock");
    let protobuf: Vec<String> = lock["package"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"].as_str() == Some("protobuf"))
        .map(|p| p["version"].as_str().unwrap_or("?").to_string())
        .collect();
    assert!(
        protobuf.is_empty(),
        "Cargo.lock still has protobuf {protobuf:?}: `cargo tree -i protobuf` shows who pulls it"
    );
}

#[test]
fn every_workspace_dependency_is_used_by_a_member() {
    let ws = workspace();
    let declared: BTreeSet<String> = ws["workspace"]["dependencies"]
        .as_table()
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    let mut used = BTreeSet::new();
    let members = ws["workspace"]["members"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!members.is_empty());
    for m in members.iter().filter_map(toml::Value::as_str) {
        let manifest = toml_file(&format!("{m}/Cargo.toml"));
        let mut tables = vec![manifest.clone()];
        if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
            tables.extend(targets.values().filter_map(|t| t.as_table().cloned()));
        }
        for t in &tables {
            for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
                let Some(deps) = t.get(section).and_then(toml::Value::as_table) else {
                    continue;
                };
                for (name, spec) in deps {
                    if spec.get("workspace").and_then(toml::Value::as_bool) == Some(true) {
                        used.insert(name.clone());
                    }
                }
            }
        }
    }
    let unused: Vec<&String> = declared
        .iter()
        .filter(|d| !used.contains(*d) && !RESERVED.iter().any(|(r, _)| r == d))
        .collect();
    assert!(
        unused.is_empty(),
        "workspace dependencies no member uses: {unused:?}; remove them from Cargo.toml"
    );
    for (r, why) in RESERVED {
        assert!(
            declared.contains(*r),
            "{r} is reserved for {why} but no longer declared; drop it from RESERVED"
        );
    }
}
