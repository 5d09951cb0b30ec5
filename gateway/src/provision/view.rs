//! A tenant as provisioning shows it: the policy in force, secrets reduced to whether
//! they are set, and the file's revision for the next change. The same view, flattened,
//! is what the change audit compares ([`diff`]).

use std::collections::BTreeMap;

use c2c_tenancy::{BillingMode, Tenant};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use toml_edit::{DocumentMut, Item};
use utoipa::ToSchema;

use super::spec::{LimitsSpec, TrunkSpec};

/// One tenant, secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub region: String,
    /// Inferred, never configured: `byot` with its own LiveKit project, else `managed`.
    pub billing_mode: BillingMode,
    pub allowed_origins: Vec<String>,
    pub crm_webhook: Option<CrmWebhookView>,
    /// The tenant's own LiveKit project (byot); `null` for managed tenants.
    pub livekit: Option<LiveKitView>,
    pub dlt_principal_entity_id: String,
    pub trunks: Vec<TrunkSpec>,
    pub limits: LimitsSpec,
    /// The tenant's inbound API keys (ids and scopes; the keys themselves are never
    /// stored).
    pub api_keys: Vec<KeyView>,
    /// Of the policy file: send it back with a `PATCH` to refuse the change if someone
    /// else changed the file meanwhile.
    pub revision: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CrmWebhookView {
    pub url: String,
    pub outbound_key_set: bool,
    pub signing_secret_set: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveKitView {
    pub url: String,
    pub api_key: String,
    pub api_secret_set: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub scopes: Vec<String>,
}

/// The revision of a policy file's text: the first 8 bytes of its SHA-256, in hex.
pub fn revision(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

impl TenantView {
    /// `t` as loaded, with the key list and revision of its file `doc`.
    pub fn new(t: &Tenant, doc: &DocumentMut) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            region: t.region.clone(),
            billing_mode: t.billing_mode(),
            allowed_origins: t.allowed_origins.clone(),
            crm_webhook: t.crm_webhook.as_ref().map(|c| CrmWebhookView {
                url: c.url.clone(),
                outbound_key_set: true,
                signing_secret_set: c.signing_secret.is_some(),
            }),
            livekit: t.livekit.as_ref().map(|p| LiveKitView {
                url: p.url.clone(),
                api_key: p.api_key.clone(),
                api_secret_set: true,
            }),
            dlt_principal_entity_id: t.dlt.principal_entity_id.clone(),
            trunks: t
                .trunks
                .iter()
                .map(|tr| TrunkSpec {
                    label: tr.label.clone(),
                    livekit_trunk_id: tr.livekit_trunk_id.clone(),
                    prefix: tr.prefix.clone(),
                    default_did: tr.default_did.clone(),
                    carrier: tr.carrier.clone(),
                    default: tr.default,
                    enabled: tr.enabled,
                    sources: tr.sources.clone(),
                    paise_per_pulse: tr.rate.map(|r| r.paise_per_pulse),
                    pulse_seconds: tr.rate.map(|r| r.pulse_seconds),
                    media: Some(tr.media.as_str().to_string()),
                    category: Some(tr.category.as_str().to_string()),
                })
                .collect(),
            limits: LimitsSpec {
                requests_per_second: t.limits.requests_per_second,
                max_concurrent_calls: t.limits.max_concurrent_calls,
            },
            api_keys: keys(doc),
            revision: revision(&doc.to_string()),
        }
    }
}

fn keys(doc: &DocumentMut) -> Vec<KeyView> {
    doc.get("api_keys")
        .and_then(Item::as_array_of_tables)
        .map(|a| {
            a.iter()
                .map(|t| KeyView {
                    id: t.get("id").and_then(Item::as_str).unwrap_or("").to_string(),
                    scopes: t
                        .get("scopes")
                        .and_then(Item::as_array)
                        .map(|s| {
                            s.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One field that differs between two views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    /// Dotted path; list entries by label or id: `trunks[airtel-mum].enabled`.
    pub field: String,
    /// Absent when the field is new, or a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// Absent when the field was removed, or a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
    /// A secret that was replaced or removed: its values are never recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// What differs between `before` and `after` (serialised views), by field. The
/// revision is left out: it changes with every write.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(before, String::new(), &mut a);
    flatten(after, String::new(), &mut b);
    let mut fields: Vec<&String> = a.keys().chain(b.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|f| f.as_str() != "revision")
        .filter_map(|f| {
            let (x, y) = (a.get(f), b.get(f));
            (x != y).then(|| FieldChange {
                field: f.clone(),
                from: x.cloned(),
                to: y.cloned(),
                secret: false,
            })
        })
        .collect()
}

/// Leaves of `v` by dotted path. Lists of objects are keyed by `label` or `id`, so
/// reordering trunks or keys is no change and a change names the entry.
fn flatten(v: &Value, at: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                flatten(x, p, out);
            }
        }
        Value::Array(items)
            if items.iter().all(|i| entry_key(i).is_some()) && !items.is_empty() =>
        {
            for i in items {
                let name = entry_key(i).unwrap_or_default();
                flatten(i, format!("{at}[{name}]"), out);
            }
        }
        Value::Null => {}
        leaf => {
            out.insert(at, leaf.clone());
        }
    }
}

fn entry_key(v: &Value) -> Option<&str> {
    let o = v.as_object()?;
    o.get("label").or_else(|| o.get("id"))?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_names_the_trunk_and_ignores_the_revision_and_order() {
        let before = json!({"name": "A", "revision": "1", "trunks": [
            {"label": "x", "enabled": true}, {"label": "y", "enabled": true}]});
        let after = json!({"name": "A", "revision": "2", "trunks": [
            {"label": "y", "enabled": true}, {"label": "x", "enabled": false}],
            "livekit": {"url": "https://lk"}});
        let d = diff(&before, &after);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].field, "livekit.url");
        assert_eq!(
            (d[0].from.clone(), d[0].to.clone()),
            (None, Some(json!("https://lk")))
        );
        assert_eq!(d[1].field, "trunks[x].enabled");
        assert_eq!(d[1].to, Some(json!(false)));
    }

    #[test]
    fn the_revision_follows_the_text() {
        assert_eq!(revision("a"), revision("a"));
        assert_ne!(revision("a"), revision("b"));
        assert_eq!(revision("a").len(), 16);
    }
}
