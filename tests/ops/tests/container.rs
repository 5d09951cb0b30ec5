//! Static checks of the container artefacts (`Dockerfile`, `.dockerignore`,
//! `deploy/compose.yaml` and the files it mounts). The CI machines have no container
//! engine, so nothing here builds or runs an image; what can drift without one is
//! checked: every file compose mounts exists, the paths agree between the Dockerfile,
//! compose, Prometheus, Grafana and `docs/operations.md`, and the image carries no
//! policies, runs as a non-root user and has a health check.

use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let p = repo_root().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: invalid YAML: {e}"))
}

// ------------------------------------------------------------------------------------
// Dockerfile

/// One instruction: keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug, Clone)]
struct Instr {
    op: String,
    args: String,
}

fn parse_dockerfile(text: &str) -> Vec<Instr> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        if let Some(body) = t.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let full = std::mem::take(&mut pending);
        let (op, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        out.push(Instr {
            op: op.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
    }
    out
}

/// The instructions of the last stage (the image that ships).
fn final_stage(instrs: &[Instr]) -> &[Instr] {
    let last_from = instrs
        .iter()
        .rposition(|i| i.op == "FROM")
        .expect("Dockerfile has no FROM");
    &instrs[last_from..]
}

/// `ENV` values of a stage, both `ENV K=V K2=V2` and `ENV K V` forms.
fn env_of(stage: &[Instr], key: &str) -> Option<String> {
    stage.iter().filter(|i| i.op == "ENV").find_map(|i| {
        if i.args.contains('=') {
            i.args.split_whitespace().find_map(|kv| {
                kv.split_once('=')
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| v.trim_matches('"').to_string())
            })
        } else {
            let (k, v) = i.args.split_once(char::is_whitespace)?;
            (k == key).then(|| v.trim().trim_matches('"').to_string())
        }
    })
}

fn dockerfile() -> Vec<Instr> {
    parse_dockerfile(&read("Dockerfile"))
}

#[test]
fn dockerfile_parser_joins_continuations_and_reads_env() {
    let instrs = parse_dockerfile(
        "FROM a AS b\n# c\nRUN x \\\n  # inner\n  y\nFROM d\nENV A=1 \\\n    B=\"/p q\"\nENV C 3\n",
    );
    assert_eq!(instrs.len(), 5);
    assert_eq!(instrs[1].args, "x  y");
    let last = final_stage(&instrs);
    assert_eq!(last.len(), 3);
    assert_eq!(env_of(last, "A").as_deref(), Some("1"));
    assert_eq!(env_of(last, "C").as_deref(), Some("3"));
    assert_eq!(env_of(last, "Z"), None);
}

#[test]
fn image_ships_no_policies_runs_unprivileged_and_checks_its_health() {
    let instrs = dockerfile();
    for i in instrs.iter().filter(|i| i.op == "COPY" || i.op == "ADD") {
        let sources: Vec<&str> = i
            .args
            .split_whitespace()
            .filter(|a| !a.starts_with("--"))
            .collect();
        let sources = &sources[..sources.len().saturating_sub(1)];
        assert!(
            !sources.iter().any(|s| s.contains("policies")),
            "the image must not contain policies (development keys): {} {}",
            i.op,
            i.args
        );
    }
    let stage = final_stage(&instrs);

    let user = stage
        .iter()
        .rfind(|i| i.op == "USER")
        .map(|i| i.args.clone())
        .expect("the final stage needs a USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "USER {user} is root"
    );

    let hc = stage
        .iter()
        .find(|i| i.op == "HEALTHCHECK")
        .expect("the final stage needs a HEALTHCHECK");
    assert!(
        hc.args.contains("CMD") && !hc.args.contains("NONE"),
        "HEALTHCHECK {}",
        hc.args
    );
    // The slim image has no curl: the probe must be the gateway's own `health` command,
    // aimed at the port the default command listens on.
    assert!(
        hc.args.contains("c2c-gateway") && hc.args.contains("\"health\""),
        "HEALTHCHECK should run `c2c-gateway health`: {}",
        hc.args
    );
    let cmd = stage
        .iter()
        .rfind(|i| i.op == "CMD")
        .expect("the final stage needs a CMD");
    assert!(
        cmd.args.contains("0.0.0.0:8080") && hc.args.contains("127.0.0.1:8080/"),
        "HEALTHCHECK must probe the port CMD listens on: {} / {}",
        hc.args,
        cmd.args
    );

    let installs_ca = stage.iter().any(|i| {
        i.op == "RUN" && i.args.contains("apt-get install") && i.args.contains("ca-certificates")
    });
    assert!(
        installs_ca,
        "the final stage must install ca-certificates (HTTPS CRM endpoints)"
    );

    for key in ["C2C_POLICIES", "C2C_DATA"] {
        let v = env_of(stage, key).unwrap_or_else(|| panic!("the final stage sets no {key}"));
        assert!(v.starts_with('/'), "{key}={v} must be absolute");
    }
    let build = &instrs[..instrs.len() - stage.len()];
    assert!(
        build
            .iter()
            .any(|i| i.op == "ARG" && i.args.starts_with("C2C_REVISION")),
        "the build stage must take the C2C_REVISION build argument (gateway/build.rs \
         cannot ask git: .git is not in the build context)"
    );
}

#[test]
fn the_policy_path_of_the_image_is_the_one_the_docs_name() {
    let instrs = dockerfile();
    let stage = final_stage(&instrs);
    let policies = env_of(stage, "C2C_POLICIES").expect("C2C_POLICIES");
    let data = env_of(stage, "C2C_DATA").expect("C2C_DATA");
    let ops = read("docs/operations.md");
    let container = ops
        .split("- **Container**")
        .nth(1)
        .and_then(|rest| rest.split("\n- **").next())
        .expect("docs/operations.md has a `- **Container**` item under Deploy");
    for (what, path) in [("policy", &policies), ("data", &data)] {
        assert!(
            container.contains(&format!("`{path}`")),
            "docs/operations.md's Container item must name the image's {what} path `{path}`"
        );
    }
    assert!(
        container.contains("mount"),
        "docs/operations.md's Container item must say to mount the policies"
    );
    let volume = stage
        .iter()
        .find(|i| i.op == "VOLUME")
        .map(|i| i.args.clone())
        .unwrap_or_default();
    assert!(
        volume.contains(&data),
        "VOLUME {volume} is not C2C_DATA {data}"
    );
}

#[test]
fn dockerignore_keeps_build_outputs_and_local_state_out() {
    let text = read(".dockerignore");
    let entries: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for needed in ["target", "web/node_modules", "data", ".git"] {
        assert!(
            entries.contains(&needed),
            ".dockerignore must exclude {needed}/ (has {entries:?})"
        );
    }
    // What the build needs must stay in: the embedded web assets.
    for kept in ["web/dist", "web", "gateway", "plugins"] {
        assert!(!entries.contains(&kept), ".dockerignore excludes {kept}");
    }
}

// ------------------------------------------------------------------------------------
// Compose

/// `${VAR:-default}` / `${VAR-default}` -> default; `${VAR}` -> None (unknowable here).
fn resolve_vars(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let body_end = rest[i..].find('}')? + i;
        let body = &rest[i + 2..body_end];
        let default = body
            .split_once(":-")
            .or_else(|| body.split_once('-'))
            .map(|(_, d)| d)?;
        out.push_str(default);
        rest = &rest[body_end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// A service's volumes as (source, target, read_only); short syntax only.
fn volumes(service: &Value) -> Vec<(String, String, bool)> {
    service["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|v| {
            let parts = split_volume(v);
            let mode = parts.get(2).map(String::as_str).unwrap_or("rw");
            (
                parts[0].clone(),
                parts.get(1).cloned().unwrap_or_default(),
                mode.split(',').any(|m| m == "ro"),
            )
        })
        .collect()
}

/// `SRC:TARGET[:MODE]`, where SRC may hold `${VAR:-default}` (a colon that is not a
/// separator).
fn split_volume(v: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    let mut prev = '\0';
    for c in v.chars() {
        match c {
            '{' if prev == '$' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            ':' if depth == 0 => {
                parts.push(String::new());
                prev = c;
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
        prev = c;
    }
    parts
}

fn is_bind(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with("${")
}

fn compose() -> Value {
    yaml("deploy/compose.yaml")
}

#[test]
fn every_file_compose_mounts_or_builds_from_exists() {
    let deploy = repo_root().join("deploy");
    let c = compose();
    let services = c["services"].as_mapping().expect("compose: services");
    let named: Vec<String> = c["volumes"]
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut binds = 0;
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("?");
        for (src, target, _) in volumes(svc) {
            assert!(target.starts_with('/'), "{name}: volume target {target:?}");
            if !is_bind(&src) {
                assert!(
                    named.contains(&src),
                    "{name}: named volume {src} is not declared"
                );
                continue;
            }
            let src = resolve_vars(&src)
                .unwrap_or_else(|| panic!("{name}: {src} needs a default (${{VAR:-path}})"));
            let p = deploy.join(&src);
            assert!(
                p.exists(),
                "{name}: mounts {src} ({}), which does not exist",
                p.display()
            );
            binds += 1;
        }
        if let Some(build) = svc.get("build") {
            let ctx = deploy.join(build["context"].as_str().unwrap_or("."));
            let file = ctx.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
            assert!(
                file.is_file(),
                "{name}: build file {} missing",
                file.display()
            );
        }
    }
    assert!(
        binds >= 5,
        "expected the policy, Prometheus and Grafana mounts"
    );
}

#[test]
fn compose_runs_the_gateway_on_mounted_policies_with_prometheus_and_grafana() {
    let c = compose();
    let s = &c["services"];
    let instrs = dockerfile();
    let stage = final_stage(&instrs);
    let policies = env_of(stage, "C2C_POLICIES").expect("C2C_POLICIES");
    let data = env_of(stage, "C2C_DATA").expect("C2C_DATA");

    // The gateway: built from this repository, policies read-only where the image
    // reads them, its data on a volume.
    let gw = &s["gateway"];
    assert!(
        gw.get("build").is_some(),
        "gateway must be built from the Dockerfile"
    );
    assert!(
        gw["build"]["args"].get("C2C_REVISION").is_some(),
        "the gateway build must pass C2C_REVISION"
    );
    let gv = volumes(gw);
    let pol = gv
        .iter()
        .find(|(_, t, _)| *t == policies)
        .unwrap_or_else(|| panic!("gateway does not mount policies at {policies}"));
    assert!(pol.2, "policies must be mounted read-only");
    assert!(
        gv.iter().any(|(src, t, _)| *t == data && !is_bind(src)),
        "gateway needs a named volume at {data}"
    );

    // Prometheus: scrapes the gateway service with the job the alerts select on, and
    // loads dashboards/alerts.yml from where its rule_files look.
    let prom_cfg = yaml("deploy/prometheus.yml");
    let jobs = prom_cfg["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    let gw_job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("c2c-gateway"))
        .expect("deploy/prometheus.yml needs the job c2c-gateway (alerts select up{job=\"c2c-gateway\"})");
    let targets: Vec<&str> = gw_job["static_configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|sc| sc["targets"].as_sequence().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert!(targets.contains(&"gateway:8080"), "targets {targets:?}");
    assert!(
        read("dashboards/alerts.yml").contains("up{job=\"c2c-gateway\"}"),
        "the gateway-down alert selects another job"
    );
    let pv = volumes(&s["prometheus"]);
    let rules_target = pv
        .iter()
        .find(|(src, _, _)| src.ends_with("dashboards/alerts.yml"))
        .map(|(_, t, _)| t.clone())
        .expect("prometheus must mount dashboards/alerts.yml");
    let rule_globs: Vec<&str> = prom_cfg["rule_files"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let matched = rule_globs.iter().any(|g| match g.split_once('*') {
        Some((pre, post)) => rules_target.starts_with(pre) && rules_target.ends_with(post),
        None => *g == rules_target,
    });
    assert!(
        matched,
        "rule_files {rule_globs:?} do not load {rules_target}"
    );
    assert!(
        pv.iter()
            .any(|(src, t, _)| src == "./prometheus.yml" && t == "/etc/prometheus/prometheus.yml"),
        "prometheus must mount deploy/prometheus.yml as its configuration"
    );

    // Grafana: the provider file from dashboards/provisioning, the dashboards where the
    // provider looks, a datasource pointing at the compose Prometheus.
    let grv = volumes(&s["grafana"]);
    let mounted = |src_suffix: &str| {
        grv.iter()
            .find(|(src, _, _)| src.trim_end_matches('/').ends_with(src_suffix))
            .map(|(_, t, _)| t.clone())
            .unwrap_or_else(|| panic!("grafana must mount {src_suffix}"))
    };
    let provider_target = mounted("dashboards/provisioning/dashboards.yml");
    assert!(
        provider_target.starts_with("/etc/grafana/provisioning/dashboards/"),
        "{provider_target}"
    );
    let provider = yaml("dashboards/provisioning/dashboards.yml");
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path")
        .to_string();
    assert_eq!(
        mounted("../dashboards"),
        path,
        "dashboards mounted where the provider reads"
    );
    let ds_target = mounted("grafana/datasources.yml");
    assert!(
        ds_target.starts_with("/etc/grafana/provisioning/datasources/"),
        "{ds_target}"
    );
    let ds = yaml("deploy/grafana/datasources.yml");
    let prom = ds["datasources"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|d| d["type"].as_str() == Some("prometheus"))
        .expect("a prometheus datasource");
    assert_eq!(prom["url"].as_str(), Some("http://prometheus:9090"));
    assert!(s.get("prometheus").is_some());
}

#[test]
fn compose_volumes_split_around_variables() {
    assert_eq!(
        split_volume("${P:-../policies}:/etc/p:ro"),
        ["${P:-../policies}", "/etc/p", "ro"]
    );
    assert_eq!(split_volume("data:/var/lib/x"), ["data", "/var/lib/x"]);
}

#[test]
fn compose_variable_defaults_resolve() {
    assert_eq!(
        resolve_vars("${X:-../policies}").as_deref(),
        Some("../policies")
    );
    assert_eq!(resolve_vars("a/${X-b}/c").as_deref(), Some("a/b/c"));
    assert_eq!(resolve_vars("${X}"), None);
    assert_eq!(resolve_vars("./p.yml").as_deref(), Some("./p.yml"));
}
