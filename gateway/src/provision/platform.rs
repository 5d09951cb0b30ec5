//! The platform's call settings in `gateway.toml`, edited like a tenant's file: the call
//! knobs (`[calls]`, applied by the hot reload) and the answer-detection mode (read at
//! start: the answer lists it as needing a restart). Owner only; the console's Settings
//! page edits them through `PATCH /api/c2c/owner/gateway`.

use c2c_tenancy::{AnswerDetection, GatewayConfig};
use serde::{Deserialize, Serialize};
use toml_edit::{value, DocumentMut, Item, Table};
use utoipa::ToSchema;

/// What the audit names as the "tenant" of a platform change (not a valid tenant id, so
/// it never collides with one).
pub const PLATFORM: &str = "(platform)";

/// The call knobs, in the units of `gateway.toml`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallKnobs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_drop_grace_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unconnected_expiry_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl_seconds: Option<u64>,
}

/// How answers are detected (`gateway.toml` `answer_detection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DetectionMode {
    Poll,
    Webhook,
    Sip,
}

impl From<AnswerDetection> for DetectionMode {
    fn from(a: AnswerDetection) -> Self {
        match a {
            AnswerDetection::Poll => DetectionMode::Poll,
            AnswerDetection::Webhook => DetectionMode::Webhook,
            AnswerDetection::Sip => DetectionMode::Sip,
        }
    }
}

impl DetectionMode {
    fn as_str(self) -> &'static str {
        match self {
            DetectionMode::Poll => "poll",
            DetectionMode::Webhook => "webhook",
            DetectionMode::Sip => "sip",
        }
    }
}

/// A change to the platform's call settings; absent fields stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"calls": {"ring_timeout_seconds": 40}}))]
pub struct PlatformPatch {
    /// The `revision` a `GET` returned (of gateway.toml).
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub answer_detection: Option<DetectionMode>,
    #[serde(default)]
    pub calls: Option<CallKnobs>,
}

impl PlatformPatch {
    pub fn is_empty(&self) -> bool {
        self.answer_detection.is_none() && self.calls.is_none_or(|c| c == CallKnobs::default())
    }
}

/// The platform's call settings in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformView {
    pub answer_detection: DetectionMode,
    pub calls: CallKnobs,
    /// Of gateway.toml.
    pub revision: String,
}

impl PlatformView {
    pub fn new(g: &GatewayConfig, doc: &DocumentMut) -> Self {
        let c = &g.calls;
        Self {
            answer_detection: g.answer_detection.into(),
            calls: CallKnobs {
                ring_timeout_seconds: Some(c.ring_timeout.as_secs()),
                agent_drop_grace_seconds: Some(c.agent_drop_grace.as_secs()),
                max_duration_seconds: Some(c.max_duration.as_secs()),
                unconnected_expiry_seconds: Some(c.unconnected_expiry.as_secs()),
                poll_interval_ms: Some(
                    u64::try_from(c.poll_interval.as_millis()).unwrap_or(u64::MAX),
                ),
                token_ttl_seconds: Some(c.token_ttl.as_secs()),
            },
            revision: super::view::revision(&doc.to_string()),
        }
    }
}

/// Applies `p` to gateway.toml's document, keeping everything else (comments included).
pub fn apply(doc: &mut DocumentMut, p: &PlatformPatch) {
    if let Some(m) = p.answer_detection {
        // Keeps the line's trailing comment (`# poll | webhook | sip`).
        match doc.get_mut("answer_detection").and_then(Item::as_value_mut) {
            Some(v) => {
                let decor = v.decor().clone();
                *v = m.as_str().into();
                *v.decor_mut() = decor;
            }
            None => {
                doc.insert("answer_detection", value(m.as_str()));
            }
        }
    }
    let Some(k) = p.calls else { return };
    let section = doc
        .entry("calls")
        .or_insert_with(|| Item::Table(Table::new()));
    let Some(t) = section.as_table_like_mut() else {
        return;
    };
    let knobs = [
        ("ring_timeout_seconds", k.ring_timeout_seconds),
        ("agent_drop_grace_seconds", k.agent_drop_grace_seconds),
        ("max_duration_seconds", k.max_duration_seconds),
        ("unconnected_expiry_seconds", k.unconnected_expiry_seconds),
        ("poll_interval_ms", k.poll_interval_ms),
        ("token_ttl_seconds", k.token_ttl_seconds),
    ];
    for (key, v) in knobs {
        if let Some(v) = v {
            // Out-of-range values are named by the loader; none is wrapped.
            let v = i64::try_from(v).unwrap_or(i64::MAX);
            match t.get_mut(key).and_then(Item::as_value_mut) {
                Some(old) => {
                    let decor = old.decor().clone();
                    *old = v.into();
                    *old.decor_mut() = decor;
                }
                None => {
                    t.insert(key, value(v));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_knob_changes_and_its_comment_stays() {
        let mut doc: DocumentMut = "answer_detection = \"poll\"          # poll | webhook | sip\n\n[calls]\nring_timeout_seconds = 45 # ring\n".parse().unwrap();
        let p: PlatformPatch = serde_json::from_value(serde_json::json!({
            "answer_detection": "webhook",
            "calls": {"ring_timeout_seconds": 30, "token_ttl_seconds": 600}
        }))
        .unwrap();
        apply(&mut doc, &p);
        let out = doc.to_string();
        assert!(
            out.contains("answer_detection = \"webhook\"          # poll | webhook | sip"),
            "{out}"
        );
        assert!(out.contains("ring_timeout_seconds = 30 # ring"), "{out}");
        assert!(out.contains("token_ttl_seconds = 600"), "{out}");
    }

    #[test]
    fn an_empty_patch_is_empty() {
        let p: PlatformPatch = serde_json::from_value(serde_json::json!({"calls": {}})).unwrap();
        assert!(p.is_empty());
    }
}
