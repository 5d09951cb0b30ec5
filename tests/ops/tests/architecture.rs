//! The architecture's rules, checked by reading the manifests rather than trusted to prose.
//!
//! `docs/architecture.md` holds the floor table: a crate may depend only on crates on
//! lower floors, domain crates (every floor below the gateway's) never on Pingora, and
//! `sip`/`livekit` never on `callstate` (adapters do not import the core). This test
//! reads that table and every workspace member's `Cargo.toml` and fails on a dependency
//! that breaks a rule, on a crate that has no floor, and on a production crate that needs
//! a test crate (`tests/...`) other than as an optional feature.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Crate (without the `c2c-` prefix) -> floor, from the fenced floor table.
fn floors(architecture_md: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in architecture_md.lines() {
        let Some(rest) = line.trim_start().strip_prefix("floor ") else {
            continue;
        };
        let Some((n, names)) = rest.split_once(char::is_whitespace) else {
            continue;
        };
        let Ok(floor) = n.parse::<u32>() else {
            continue;
        };
        // Strip "(what it holds)" notes, then entries are separated by runs of spaces;
        // an entry of several words describes a crate still to come, not a crate name.
        let mut plain = String::new();
        let mut depth = 0;
        for c in names.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        for entry in plain.split("  ").map(str::trim).filter(|e| !e.is_empty()) {
            if !entry.contains(' ') {
                out.insert(entry.to_string(), floor);
            }
        }
    }
    out
}

/// One workspace member as the rules see it.
struct Member {
    /// Package name without the `c2c-` prefix.
    name: String,
    /// Whether it lives under `tests/` (simulators, drivers, checks: no floor).
    test_crate: bool,
    /// Normal and build dependencies: (name, optional).
    deps: Vec<(String, bool)>,
}

fn dependency_tables(manifest: &toml::Value) -> Vec<&toml::value::Table> {
    let mut tables = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        if let Some(t) = manifest.get(key).and_then(|v| v.as_table()) {
            tables.push(t);
        }
    }
    // `[target.'cfg(...)'.dependencies]` count as well.
    if let Some(targets) = manifest.get("target").and_then(|v| v.as_table()) {
        for t in targets.values() {
            for key in ["dependencies", "build-dependencies"] {
                if let Some(t) = t.get(key).and_then(|v| v.as_table()) {
                    tables.push(t);
                }
            }
        }
    }
    tables
}

fn member(manifest_text: &str, path: &str) -> Member {
    let manifest: toml::Value = toml::from_str(manifest_text)
        .unwrap_or_else(|e| panic!("{path}: not a valid Cargo.toml: {e}"));
    let name = manifest["package"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: no package.name"));
    let mut deps = Vec::new();
    for table in dependency_tables(&manifest) {
        for (dep, spec) in table {
            // `package = "..."` renames: the rule is about the real crate.
            let real = spec
                .get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(dep)
                .to_string();
            let optional = spec
                .get("optional")
                .and_then(|o| o.as_bool())
                .unwrap_or(false);
            deps.push((real, optional));
        }
    }
    Member {
        name: name.strip_prefix("c2c-").unwrap_or(name).to_string(),
        test_crate: path.starts_with("tests/"),
        deps,
    }
}

/// Every rule broken by `members`, as sentences naming the crates.
fn violations(floors: &BTreeMap<String, u32>, members: &[Member]) -> Vec<String> {
    let gateway_floor = floors.get("gateway").copied().unwrap_or(u32::MAX);
    let test_crates: Vec<&str> = members
        .iter()
        .filter(|m| m.test_crate)
        .map(|m| m.name.as_str())
        .collect();
    let mut out = Vec::new();
    for m in members.iter().filter(|m| !m.test_crate) {
        let Some(&floor) = floors.get(&m.name) else {
            out.push(format!(
                "{} has no floor in docs/architecture.md: place it in the table",
                m.name
            ));
            continue;
        };
        for (dep, optional) in &m.deps {
            let dep_short = dep.strip_prefix("c2c-").unwrap_or(dep);
            if dep.starts_with("pingora") && floor < gateway_floor {
                out.push(format!(
                    "{} (floor {floor}) depends on {dep}: domain crates are free of Pingora",
                    m.name
                ));
            }
            if let Some(&dep_floor) = floors.get(dep_short) {
                if dep.starts_with("c2c-") && dep_floor >= floor {
                    out.push(format!(
                        "{} (floor {floor}) depends on {dep_short} (floor {dep_floor}): only lower floors",
                        m.name
                    ));
                }
            }
            if matches!(m.name.as_str(), "sip" | "livekit") && dep_short == "callstate" {
                out.push(format!(
                    "{} depends on callstate: adapters never import the call core",
                    m.name
                ));
            }
            if test_crates.contains(&dep_short) && !optional {
                out.push(format!(
                    "{} depends on the test crate {dep}: only as an optional feature",
                    m.name
                ));
            }
        }
    }
    out
}

fn workspace_members() -> Vec<Member> {
    let root_text = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let root: toml::Value = toml::from_str(&root_text).expect("workspace Cargo.toml parses");
    let paths = root["workspace"]["members"]
        .as_array()
        .expect("workspace.members")
        .iter()
        .map(|p| p.as_str().expect("member path").to_string());
    paths
        .map(|p| {
            let text = std::fs::read_to_string(repo().join(&p).join("Cargo.toml"))
                .unwrap_or_else(|e| panic!("{p}/Cargo.toml: {e}"));
            member(&text, &p)
        })
        .collect()
}

fn table() -> BTreeMap<String, u32> {
    let text =
        std::fs::read_to_string(repo().join("docs/architecture.md")).expect("docs/architecture.md");
    floors(&text)
}

#[test]
fn the_floor_table_places_every_crate_the_gateway_is_made_of() {
    let floors = table();
    for (name, floor) in [
        ("plugin-api", 1),
        ("metrics", 1),
        ("callstate", 2),
        ("crm-webhooks", 3),
        ("tenancy", 2),
        ("livekit", 3),
        ("dialplan", 3),
        ("dlt", 3),
        ("sip", 4),
        ("gateway", 5),
    ] {
        assert_eq!(floors.get(name), Some(&floor), "{name} in {floors:?}");
    }
    // Descriptions of crates still to come are not read as crate names.
    assert!(!floors.contains_key("store"), "{floors:?}");
}

#[test]
fn every_crate_depends_only_on_lower_floors_and_domain_crates_not_on_pingora() {
    let members = workspace_members();
    assert!(members.len() >= 10, "read {} members", members.len());
    let broken = violations(&table(), &members);
    assert!(
        broken.is_empty(),
        "architecture rules broken:\n{}",
        broken.join("\n")
    );
}

/// The checker itself: each rule catches the dependency it is there to catch.
#[test]
fn the_rules_catch_each_kind_of_forbidden_dependency() {
    let floors = table();
    let manifest = |name: &str, deps: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n\n[dependencies]\n{deps}\n")
    };
    let sim = member(&manifest("livekit-sim", ""), "tests/livekit-sim");
    let cases = [
        (
            member(
                &manifest("c2c-callstate", "pingora = \"0.9\""),
                "plugins/callstate",
            ),
            "domain crates are free of Pingora",
        ),
        (
            member(
                &manifest("c2c-tenancy", "c2c-dlt = { path = \"../dlt\" }"),
                "plugins/tenancy",
            ),
            "only lower floors",
        ),
        (
            member(
                &manifest("c2c-dlt", "c2c-dialplan = { path = \"../dialplan\" }"),
                "plugins/dlt",
            ),
            "only lower floors",
        ),
        (
            member(
                &manifest("c2c-sip", "c2c-callstate = { path = \"../callstate\" }"),
                "plugins/sip",
            ),
            "adapters never import the call core",
        ),
        (
            member(
                &manifest("c2c-gateway", "livekit-sim = { path = \"x\" }"),
                "gateway",
            ),
            "only as an optional feature",
        ),
        (
            member(&manifest("c2c-wallets", ""), "plugins/wallets"),
            "has no floor",
        ),
        (
            member(
                &manifest(
                    "c2c-dlt",
                    "[target.'cfg(unix)'.dependencies]\npingora-core = \"0.9\"",
                ),
                "plugins/dlt",
            ),
            "domain crates are free of Pingora",
        ),
    ];
    for (m, rule) in cases {
        let name = m.name.clone();
        let broken = violations(
            &floors,
            &[m, member(&manifest("livekit-sim", ""), "tests/livekit-sim")],
        );
        assert!(
            broken.iter().any(|b| b.contains(rule)),
            "{name}: expected a violation containing {rule:?}, got {broken:?}"
        );
    }
    // And what is allowed passes: an optional simulator, a renamed lower-floor crate.
    let ok = member(
        &manifest(
            "c2c-gateway",
            "livekit-sim = { path = \"x\", optional = true }\npingora = \"0.9\"\ntenancy = { package = \"c2c-tenancy\", path = \"y\" }",
        ),
        "gateway",
    );
    assert_eq!(violations(&floors, &[ok, sim]), Vec::<String>::new());
}

/// Production source files (not tests: `tests.rs`, `tests_*.rs`, `tests/` folders) of
/// the gateway and the domain crates, under `dir`.
fn production_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" && name != "vendor" && name != "target" {
                production_sources(&path, out);
            }
        } else if name.ends_with(".rs")
            && name != "tests.rs"
            && !name.starts_with("tests_")
            && name != "properties.rs"
        {
            out.push(path);
        }
    }
}

/// Small modules: a file past 600 lines holds more than one concern. Test files are
/// exempt (tables of cases grow long and stay readable).
#[test]
fn no_production_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    production_sources(&repo().join("gateway/src"), &mut files);
    production_sources(&repo().join("plugins"), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let lines = text.lines().count();
            (lines > 600).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "split these files by concern:\n{}",
        long.join("\n")
    );
}
