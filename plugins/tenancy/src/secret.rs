//! Secrets referenced from policy files (`*_env` / `*_file`), never written inline.

use std::fmt;
use std::path::Path;

/// A resolved secret. `Debug` and `Display` never print it, so a secret that ends up in
/// a log line or an error message by mistake shows as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Resolves a `*_env` / `*_file` pair. Exactly one must be set. Relative file paths are
/// relative to the policy directory so a policy tree can be moved as a whole.
pub fn resolve(env: Option<&str>, file: Option<&str>, policy_dir: &Path) -> Result<Secret, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err("set either the _env or the _file reference, not both".into()),
        (None, None) => Err("a secret reference (_env or _file) is required".into()),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_string())),
            Ok(_) => Err(format!("environment variable {var} is empty")),
            Err(_) => Err(format!("environment variable {var} is not set")),
        },
        (None, Some(path)) => {
            let p = policy_dir.join(path);
            match std::fs::read_to_string(&p) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_string())),
                Ok(_) => Err(format!("secret file {} is empty", p.display())),
                Err(e) => Err(format!("secret file {} cannot be read: {e}", p.display())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn file_reference_is_relative_to_the_policy_dir() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("s.txt"), "abc\n").unwrap();
        assert_eq!(
            resolve(None, Some("s.txt"), d.path()).unwrap().expose(),
            "abc"
        );
        assert!(resolve(None, Some("missing.txt"), d.path()).is_err());
        assert!(resolve(None, None, d.path()).is_err());
        assert!(resolve(Some("A"), Some("B"), d.path()).is_err());
        assert!(resolve(Some("C2C_TEST_SURELY_UNSET_VAR"), None, d.path())
            .unwrap_err()
            .contains("not set"));
    }
}
