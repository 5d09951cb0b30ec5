//! Reading one policy file (or its overlay) and parsing it into its on-disk shape.
//!
//! Owns: the size cap and turning TOML/serde errors into a key path and a line number.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::PolicyError;

/// Policy files are small; anything bigger is a mistake (or an attack on the loader).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

pub(super) fn read_toml<T: DeserializeOwned>(
    path: &Path,
    overlay: &[(PathBuf, String)],
    errors: &mut Vec<PolicyError>,
) -> Option<T> {
    if let Some((_, text)) = overlay.iter().find(|(p, _)| p == path) {
        if text.len() as u64 > MAX_FILE_BYTES {
            errors.push(PolicyError::new(path, "-", "file is larger than 1 MiB"));
            return None;
        }
        return parse_toml(path, text, errors);
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            errors.push(PolicyError::new(path, "-", format!("cannot read: {e}")));
            return None;
        }
    };
    if meta.len() > MAX_FILE_BYTES {
        errors.push(PolicyError::new(path, "-", "file is larger than 1 MiB"));
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(PolicyError::new(path, "-", format!("cannot read: {e}")));
            return None;
        }
    };
    parse_toml(path, &text, errors)
}

fn parse_toml<T: DeserializeOwned>(
    path: &Path,
    text: &str,
    errors: &mut Vec<PolicyError>,
) -> Option<T> {
    let de = toml::Deserializer::new(text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Some(v),
        Err(e) => {
            let key = e.path().to_string();
            let key = if key == "." { "-".to_string() } else { key };
            let inner = e.into_inner();
            // toml reports syntax errors with a span; turn it into a line number.
            let at = inner
                .span()
                .map(|s| {
                    format!(
                        " (line {})",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_default();
            errors.push(PolicyError::new(
                path,
                key,
                format!("{}{at}", inner.message().trim()),
            ));
            None
        }
    }
}
