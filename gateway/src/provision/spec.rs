//! What a provisioning request may say: the shapes of `POST` and `PATCH
//! /api/c2c/owner/tenants` (and of `c2c-gateway tenant add|edit --spec`), and the checks
//! that belong to the request rather than to the policy file (the loader checks the
//! rest once the file is rendered: one set of rules for API, CLI and hand edits).
//!
//! There is no mode field. A tenant is managed or bring-your-own by the credentials it
//! has (`Tenant::billing_mode`); a body that names a mode is refused with the field's
//! name, because seed 000's backend silently stripped such a field and turned paying
//! customers into free ones.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Longest secret accepted (LiveKit secrets are 32-64 bytes; CRM keys a few dozen).
const MAX_SECRET: usize = 4096;
/// Longest display name.
const MAX_NAME: usize = 200;
/// Most trunks one tenant may have.
pub const MAX_TRUNKS: usize = 64;
/// Most allowed origins.
const MAX_ORIGINS: usize = 32;

/// A new tenant. Without `livekit` it is **managed** (the platform's LiveKit project and
/// the trunks the owner assigns, paid from its wallet); with `livekit` it is **byot**
/// (its own project and trunks; metered, never blocked by a wallet).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "id": "initech", "name": "Initech Realty", "region": "singapore",
    "crm_webhook": {"url": "https://crm.initech.example/c2c/webhook", "outbound_key": "initech-outbound-key-0001"},
    "dlt": {"principal_entity_id": "1101555512345678901"},
    "trunks": [{"label": "airtel-mum", "livekit_trunk_id": "ST_airtelmum", "prefix": "9911",
                "default_did": "+919999999999", "carrier": "sip:10.0.0.5:5060", "default": true}]
}))]
pub struct NewTenant {
    /// 1-63 lowercase letters, digits and dashes; names the policy file.
    pub id: String,
    pub name: String,
    /// A `[[regions]]` name of gateway.toml (default `singapore`).
    #[serde(default)]
    pub region: Option<String>,
    /// Browser origins allowed to call the browser endpoints.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    pub crm_webhook: CrmWebhookSpec,
    pub dlt: DltSpec,
    /// Dialling trunks; at most one `default`.
    #[serde(default)]
    pub trunks: Option<Vec<TrunkSpec>>,
    /// The tenant's own LiveKit project: present makes the tenant byot. Checked live
    /// (ListRooms) before anything is written.
    #[serde(default)]
    pub livekit: Option<LiveKitSpec>,
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
}

/// Where the tenant's CRM receives call outcomes, and the secrets for it (stored in
/// secret files, never echoed back).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrmWebhookSpec {
    pub url: String,
    /// The `X-api-key` the gateway sends to the CRM.
    pub outbound_key: String,
    /// Standard Webhooks signing secret (`whsec_...`); optional.
    #[serde(default)]
    pub signing_secret: Option<String>,
}

/// The DLT Principal Entity. Outbound calling starts disabled; the owner enables it
/// with `POST /api/telephony/config/owner/{tenant}/outbound-enable` once verified.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DltSpec {
    pub principal_entity_id: String,
}

/// A tenant's own LiveKit project.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveKitSpec {
    /// `https://` / `wss://` URL of the project.
    pub url: String,
    pub api_key: String,
    /// Stored in a secret file; never echoed back.
    pub api_secret: String,
}

/// One dialling trunk (the policy file's `[[trunks]]`).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkSpec {
    pub label: String,
    pub livekit_trunk_id: String,
    /// Internal dial prefix (digits); never shown to CRMs.
    #[serde(default)]
    pub prefix: String,
    /// Caller ID in E.164.
    pub default_did: String,
    /// `sip:host:port` the SIP edge forwards calls to.
    pub carrier: String,
    #[serde(default)]
    pub default: bool,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Addresses the carrier's inbound calls come from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// This trunk's rate for managed tenants (both or neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paise_per_pulse: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse_seconds: Option<u32>,
    /// `direct` (default) or `anchor`: whether the SIP edge relays the trunk's RTP
    /// (docs/media.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    /// `promotional`, `service` (default) or `transactional`: the DLT category of the
    /// trunk's calls (docs/dlt.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

fn yes() -> bool {
    true
}

/// A tenant's API request rate and concurrent-call cap.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub requests_per_second: u32,
    pub max_concurrent_calls: u32,
}

/// A change to a tenant: every field is optional and replaces what the file says;
/// `trunks` replaces the whole list (read it with `GET` first). `livekit: null` removes
/// the tenant's own project (it becomes managed); `crm_webhook.signing_secret: null`
/// removes the signing secret.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"revision": "3f1c9a0b7d2e4f60", "crm_webhook": {"url": "https://crm.initech.example/v2/webhook"}}))]
pub struct TenantPatch {
    /// The `revision` a `GET` returned: the change is refused (409) if the file changed
    /// since. Optional, but two editors without it overwrite each other.
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default)]
    pub crm_webhook: Option<CrmWebhookPatch>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable)]
    pub livekit: Option<Option<LiveKitSpec>>,
    #[serde(default)]
    pub trunks: Option<Vec<TrunkSpec>>,
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
}

/// A change to the CRM webhook; absent fields stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrmWebhookPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub outbound_key: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable)]
    pub signing_secret: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The first top-level key of `body` that names a billing mode (`mode`, `billing_mode`,
/// `billingMode`, `Billing-Mode`, ...), if any.
pub fn explicit_mode_field(body: &serde_json::Value) -> Option<String> {
    body.as_object()?
        .keys()
        .find(|k| {
            let squashed: String = k
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            matches!(squashed.as_str(), "mode" | "billingmode" | "tenantmode")
        })
        .cloned()
}

/// A request field that is wrong before the policy file is even rendered.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn err(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A secret as it will be stored: one line, no surrounding whitespace (secret files are
/// read back trimmed, so such a secret would silently change).
fn secret(field: &str, s: &str) -> Result<(), FieldError> {
    if s.is_empty() || s.len() > MAX_SECRET {
        return Err(err(field, format!("must be 1 to {MAX_SECRET} bytes")));
    }
    if s.trim() != s || s.chars().any(char::is_control) {
        return Err(err(
            field,
            "must be one line without leading or trailing whitespace",
        ));
    }
    Ok(())
}

fn name(s: &str) -> Result<(), FieldError> {
    if s.len() > MAX_NAME || s.chars().any(char::is_control) {
        return Err(err(
            "name",
            format!("must be one line of at most {MAX_NAME} bytes"),
        ));
    }
    Ok(())
}

fn lists(trunks: Option<&[TrunkSpec]>, origins: Option<&[String]>) -> Result<(), FieldError> {
    if trunks.is_some_and(|t| t.len() > MAX_TRUNKS) {
        return Err(err("trunks", format!("at most {MAX_TRUNKS} trunks")));
    }
    if origins.is_some_and(|o| o.len() > MAX_ORIGINS) {
        return Err(err(
            "allowed_origins",
            format!("at most {MAX_ORIGINS} origins"),
        ));
    }
    Ok(())
}

/// `livekit.url = "sim"` is the platform's bundled simulator, which only knows the
/// platform's key: a tenant's own project is a real LiveKit server.
fn livekit(lk: &LiveKitSpec) -> Result<(), FieldError> {
    if lk.url.trim() == "sim" {
        return Err(err(
            "livekit.url",
            "\"sim\" is the platform's simulator; a tenant's own project needs its LiveKit URL",
        ));
    }
    secret("livekit.api_secret", &lk.api_secret)
}

impl NewTenant {
    /// The request's own checks (the loader checks the rendered file).
    pub fn check(&self) -> Result<(), FieldError> {
        name(&self.name)?;
        lists(self.trunks.as_deref(), self.allowed_origins.as_deref())?;
        secret("crm_webhook.outbound_key", &self.crm_webhook.outbound_key)?;
        if let Some(s) = &self.crm_webhook.signing_secret {
            secret("crm_webhook.signing_secret", s)?;
        }
        self.livekit.as_ref().map_or(Ok(()), livekit)
    }
}

impl TenantPatch {
    /// The request's own checks (the loader checks the rendered file).
    pub fn check(&self) -> Result<(), FieldError> {
        if let Some(n) = &self.name {
            name(n)?;
        }
        lists(self.trunks.as_deref(), self.allowed_origins.as_deref())?;
        if let Some(c) = &self.crm_webhook {
            if let Some(k) = &c.outbound_key {
                secret("crm_webhook.outbound_key", k)?;
            }
            if let Some(Some(s)) = &c.signing_secret {
                secret("crm_webhook.signing_secret", s)?;
            }
        }
        if let Some(Some(lk)) = &self.livekit {
            livekit(lk)?;
        }
        Ok(())
    }

    /// The first field a tenant's own console key may not change, if the patch has one.
    /// A tenant edits its CRM webhook; a byot tenant also its own LiveKit credentials
    /// and trunks. The rest is the platform owner's: the mode (adding or removing a
    /// LiveKit project), a managed tenant's trunks (the platform's carriers), identity,
    /// region, origins and limits.
    pub fn owner_only_field(&self, byot: bool) -> Option<&'static str> {
        let owner_only = [
            ("name", self.name.is_some()),
            ("region", self.region.is_some()),
            ("allowed_origins", self.allowed_origins.is_some()),
            ("limits", self.limits.is_some()),
            (
                "livekit",
                matches!(self.livekit, Some(None)) || (!byot && self.livekit.is_some()),
            ),
            ("trunks", !byot && self.trunks.is_some()),
        ];
        owner_only.iter().find(|(_, set)| *set).map(|(f, _)| *f)
    }

    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.region.is_none()
            && self.allowed_origins.is_none()
            && self.crm_webhook.is_none()
            && self.livekit.is_none()
            && self.trunks.is_none()
            && self.limits.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_spelling_of_a_mode_field_is_found() {
        for k in [
            "mode",
            "billingMode",
            "billing_mode",
            "Billing-Mode",
            "tenant_mode",
        ] {
            assert_eq!(
                explicit_mode_field(&json!({"id": "x", k: "byot"})).as_deref(),
                Some(k)
            );
        }
        assert_eq!(
            explicit_mode_field(&json!({"id": "x", "name": "Mode Realty"})),
            None
        );
        assert_eq!(explicit_mode_field(&json!([1])), None);
    }

    #[test]
    fn a_patch_tells_null_from_absent() {
        let p: TenantPatch = serde_json::from_value(json!({"livekit": null})).unwrap();
        assert!(matches!(p.livekit, Some(None)));
        let p: TenantPatch = serde_json::from_value(json!({})).unwrap();
        assert!(p.livekit.is_none() && p.is_empty());
        let p: TenantPatch =
            serde_json::from_value(json!({"crm_webhook": {"signing_secret": null}})).unwrap();
        assert!(matches!(
            p.crm_webhook.and_then(|c| c.signing_secret),
            Some(None)
        ));
    }

    #[test]
    fn a_tenant_console_edits_its_webhook_and_only_a_byot_tenant_its_telephony() {
        let p = |v| serde_json::from_value::<TenantPatch>(v).unwrap();
        let crm = p(json!({"crm_webhook": {"url": "https://crm"}}));
        assert_eq!(
            (crm.owner_only_field(false), crm.owner_only_field(true)),
            (None, None)
        );
        let trunks = p(json!({"trunks": []}));
        assert_eq!(trunks.owner_only_field(false), Some("trunks"));
        assert_eq!(trunks.owner_only_field(true), None);
        let lk = p(json!({"livekit": {"url": "https://lk", "api_key": "k", "api_secret": "s"}}));
        assert_eq!(
            (lk.owner_only_field(false), lk.owner_only_field(true)),
            (Some("livekit"), None)
        );
        assert_eq!(
            p(json!({"livekit": null})).owner_only_field(true),
            Some("livekit")
        );
        assert_eq!(
            p(json!({"limits": {"requests_per_second": 1, "max_concurrent_calls": 1}}))
                .owner_only_field(true),
            Some("limits")
        );
    }

    #[test]
    fn secrets_that_would_change_on_the_way_back_are_refused() {
        for bad in ["", " padded", "two\nlines", &"x".repeat(MAX_SECRET + 1)] {
            assert!(secret("s", bad).is_err(), "{bad:?}");
        }
        assert!(secret("s", "whsec_abc123").is_ok());
    }

    #[test]
    fn the_simulator_is_not_a_tenants_own_project() {
        let lk = LiveKitSpec {
            url: "sim".into(),
            api_key: "k".into(),
            api_secret: "s".into(),
        };
        assert_eq!(livekit(&lk).unwrap_err().field, "livekit.url");
    }
}
