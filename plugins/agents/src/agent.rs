//! An agent as the registry stores it, its live availability, and the audit line of a
//! change.

use serde::{Deserialize, Serialize};

/// The longest `agent_id` or `name`, in bytes (the same bound click2call's fields have).
pub const MAX_FIELD: usize = 128;

/// A registered agent. `agent_id` is the string the CRM sends to click2call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub tenant: String,
    pub agent_id: String,
    pub name: String,
    pub telephony_enabled: bool,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// What a registry write asks for (`PUT /api/c2c/agents/{agent_id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUpdate {
    pub name: String,
    pub telephony_enabled: bool,
}

/// Live availability. A session starts `Offline`; only a telephony-enabled agent may
/// leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Available,
    Away,
    Offline,
}

impl Availability {
    pub const ALL: [Availability; 3] = [Self::Available, Self::Away, Self::Offline];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Away => "away",
            Self::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One audit line: who changed which field of an agent, from what to what. Creation
/// and removal are the field `registered` going `false -> true` and back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// The key that made the change (its id, never the key).
    pub key_id: String,
    pub agent_id: String,
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

impl AuditEntry {
    /// The lines a write from `old` (None: not registered) to `new` (None: removed)
    /// produces, one per changed field.
    pub fn diff(old: Option<&Agent>, new: Option<&Agent>, key_id: &str, at_ms: u64) -> Vec<Self> {
        let agent_id = match new.or(old) {
            Some(a) => a.agent_id.clone(),
            None => return Vec::new(),
        };
        let line = |field: &str, old: serde_json::Value, new: serde_json::Value| AuditEntry {
            at_ms,
            key_id: key_id.to_owned(),
            agent_id: agent_id.clone(),
            field: field.to_owned(),
            old,
            new,
        };
        let mut out = Vec::new();
        if old.is_some() != new.is_some() {
            out.push(line(
                "registered",
                old.is_some().into(),
                new.is_some().into(),
            ));
        }
        // A removal is one line; the fields it had are in the lines that set them.
        if new.is_none() {
            return out;
        }
        let name = |a: Option<&Agent>| a.map_or(serde_json::Value::Null, |a| a.name.clone().into());
        let tel =
            |a: Option<&Agent>| a.map_or(serde_json::Value::Null, |a| a.telephony_enabled.into());
        if name(old) != name(new) {
            out.push(line("name", name(old), name(new)));
        }
        if tel(old) != tel(new) {
            out.push(line("telephony_enabled", tel(old), tel(new)));
        }
        out
    }
}

/// Why an `agent_id` or `name` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be 1-{MAX_FIELD} printable characters")]
pub struct InvalidField {
    pub field: &'static str,
}

/// Checks an `agent_id` or `name`: 1-128 bytes after trimming, no control characters.
/// Returns the trimmed value (what click2call compares against, since it trims too).
pub fn check_field<'a>(field: &'static str, v: &'a str) -> Result<&'a str, InvalidField> {
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_FIELD || v.chars().any(char::is_control) {
        return Err(InvalidField { field });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, tel: bool) -> Agent {
        Agent {
            tenant: "acme".into(),
            agent_id: "a1".into(),
            name: name.into(),
            telephony_enabled: tel,
            created_ms: 1,
            updated_ms: 1,
        }
    }

    #[test]
    fn diff_names_each_changed_field() {
        let a = agent("Asha", true);
        let created = AuditEntry::diff(None, Some(&a), "k1", 5);
        let fields: Vec<_> = created.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["registered", "name", "telephony_enabled"]);
        let b = agent("Asha", false);
        let toggled = AuditEntry::diff(Some(&a), Some(&b), "k2", 6);
        assert_eq!(toggled.len(), 1);
        assert_eq!(toggled[0].field, "telephony_enabled");
        assert_eq!(toggled[0].old, serde_json::Value::Bool(true));
        assert_eq!(toggled[0].new, serde_json::Value::Bool(false));
        assert!(AuditEntry::diff(Some(&a), Some(&a), "k", 7).is_empty());
        let removed = AuditEntry::diff(Some(&a), None, "k", 8);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].field, "registered");
        assert_eq!(removed[0].new, serde_json::Value::Bool(false));
    }

    #[test]
    fn fields_are_trimmed_and_bounded() {
        assert_eq!(check_field("agent_id", "  a-1 ").unwrap(), "a-1");
        assert!(check_field("agent_id", "").is_err());
        assert!(check_field("agent_id", "a\u{7}").is_err());
        assert!(check_field("name", &"x".repeat(129)).is_err());
        assert_eq!(Availability::parse("away"), Some(Availability::Away));
        assert_eq!(Availability::parse("busy"), None);
    }
}
