//! The documentation stays inside the repository: every relative Markdown link in the
//! README and the docs resolves to a file or directory of this repository (none reaches
//! `../shared` or anywhere outside), and the design document is here to link to.

use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Markdown files a reader follows links from.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    for dir in ["docs", "dashboards", "policies", "plugins/vendor"] {
        if let Ok(entries) = fs::read_dir(root.join(dir)) {
            out.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "md")),
            );
        }
    }
    out
}

/// Targets of `[text](target)` links, without `#anchor` and ` "title"`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        out.push(target.split('#').next().unwrap_or("").to_string());
        rest = &rest[end..];
    }
    out
}

#[test]
fn link_extraction() {
    let t = "see [a](docs/x.md#h) and [b](https://e.com) [c](#local) [d](../y \"t\")";
    assert_eq!(link_targets(t), ["docs/x.md", "https://e.com", "", "../y"]);
}

#[test]
fn relative_links_resolve_inside_the_repository() {
    let root = repo_root();
    let mut errors = Vec::new();
    for doc in documents(&root) {
        let text = fs::read_to_string(&doc).unwrap_or_default();
        let rel = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        if text.contains("../shared") {
            errors.push(format!(
                "{rel}: mentions ../shared, which is outside the repository"
            ));
        }
        for target in link_targets(&text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let base = doc.parent().unwrap_or(&root);
            match base.join(&target).canonicalize() {
                Ok(p) if p.starts_with(&root) => {}
                Ok(p) => errors.push(format!("{rel}: {target} points outside ({})", p.display())),
                Err(_) => errors.push(format!("{rel}: {target} does not exist")),
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_design_document_is_in_the_repository() {
    let root = repo_root();
    let design = fs::read_to_string(root.join("docs/architecture.md"))
        .expect("docs/architecture.md (the design document)");
    for heading in ["## Layout", "## Policy files", "Rules of the house"] {
        assert!(
            design.contains(heading),
            "docs/architecture.md lacks {heading:?}"
        );
    }
    let readme = fs::read_to_string(root.join("README.md")).unwrap_or_default();
    assert!(
        readme.contains("(docs/architecture.md)"),
        "README.md should link docs/architecture.md"
    );
}
