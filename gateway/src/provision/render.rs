//! Provisioning requests rendered into a tenant's policy file (`tenants/<id>.toml`).
//!
//! A new tenant gets a new document; a change edits the existing one through
//! `toml_edit`, so what the request does not touch (comments, `[inbound]`, `[agents]`,
//! hand-made keys) stays as it was. Secrets never enter the document: they go to new
//! secret files ([`super::secrets`]) and the document names them with `*_file`.

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use super::secrets::StagedSecrets;
use super::spec::{CrmWebhookPatch, LimitsSpec, LiveKitSpec, NewTenant, TenantPatch, TrunkSpec};

/// The first API key of a new tenant, as the file stores it.
pub struct FirstKey<'a> {
    pub id: &'a str,
    pub sha256_hex: &'a str,
}

/// The document of a new tenant. Outbound calling starts disabled (DLT): only the
/// owner's audited toggle enables it.
pub fn new_tenant(
    t: &NewTenant,
    key: &FirstKey<'_>,
    header: &str,
    secrets: &mut StagedSecrets,
) -> std::io::Result<DocumentMut> {
    let mut doc = DocumentMut::new();
    doc.decor_mut().set_prefix(header);
    doc.insert("id", value(&t.id));
    doc.insert("name", value(&t.name));
    doc.insert("region", value(t.region.as_deref().unwrap_or("singapore")));
    if let Some(o) = &t.allowed_origins {
        doc.insert("allowed_origins", value(strings(o)));
    }
    let mut k = Table::new();
    k.insert("id", value(key.id));
    k.insert("sha256", value(key.sha256_hex));
    k.insert("scopes", value(strings(&["calls".to_string()])));
    let mut keys = ArrayOfTables::new();
    keys.push(k);
    doc.insert("api_keys", Item::ArrayOfTables(keys));

    let mut crm = Table::new();
    crm.insert("url", value(&t.crm_webhook.url));
    let outbound = secrets.write(&t.id, "crm-outbound", &t.crm_webhook.outbound_key)?;
    crm.insert("outbound_key_file", value(outbound));
    if let Some(s) = &t.crm_webhook.signing_secret {
        let signing = secrets.write(&t.id, "crm-signing", s)?;
        crm.insert("signing_secret_file", value(signing));
    }
    doc.insert("crm_webhook", Item::Table(crm));

    let mut dlt = Table::new();
    dlt.insert("principal_entity_id", value(&t.dlt.principal_entity_id));
    dlt.insert("outbound_enabled", value(false));
    doc.insert("dlt", Item::Table(dlt));

    if let Some(l) = t.limits {
        set_limits(&mut doc, l);
    }
    if let Some(lk) = &t.livekit {
        set_livekit(&mut doc, &t.id, Some(lk), secrets)?;
    }
    if let Some(trunks) = &t.trunks {
        set_trunks(&mut doc, trunks);
    }
    Ok(doc)
}

/// Applies `p` to an existing tenant document. Returns the secret file references the
/// change replaced (to delete once it landed).
pub fn apply_patch(
    doc: &mut DocumentMut,
    tenant: &str,
    p: &TenantPatch,
    secrets: &mut StagedSecrets,
) -> std::io::Result<Vec<String>> {
    let mut replaced = Vec::new();
    if let Some(n) = &p.name {
        doc.insert("name", value(n));
    }
    if let Some(r) = &p.region {
        doc.insert("region", value(r));
    }
    if let Some(o) = &p.allowed_origins {
        doc.insert("allowed_origins", value(strings(o)));
    }
    if let Some(c) = &p.crm_webhook {
        replaced.extend(patch_crm(doc, tenant, c, secrets)?);
    }
    if let Some(lk) = &p.livekit {
        replaced.extend(set_livekit(doc, tenant, lk.as_ref(), secrets)?);
    }
    if let Some(t) = &p.trunks {
        set_trunks(doc, t);
    }
    if let Some(l) = p.limits {
        set_limits(doc, l);
    }
    Ok(replaced)
}

/// `[crm_webhook]` edited in place; a tenant without one gets a new section (which then
/// needs `url` and `outbound_key`, as the loader will say).
fn patch_crm(
    doc: &mut DocumentMut,
    tenant: &str,
    c: &CrmWebhookPatch,
    secrets: &mut StagedSecrets,
) -> std::io::Result<Vec<String>> {
    let mut replaced = Vec::new();
    let section = doc
        .entry("crm_webhook")
        .or_insert_with(|| Item::Table(Table::new()));
    let Some(t) = section.as_table_like_mut() else {
        return Ok(replaced);
    };
    if let Some(u) = &c.url {
        t.insert("url", value(u));
    }
    if let Some(k) = &c.outbound_key {
        let r = secrets.write(tenant, "crm-outbound", k)?;
        replaced.extend(replace_secret(t, "outbound_key", r));
    }
    match &c.signing_secret {
        None => {}
        Some(Some(s)) => {
            let r = secrets.write(tenant, "crm-signing", s)?;
            replaced.extend(replace_secret(t, "signing_secret", r));
        }
        Some(None) => {
            t.remove("signing_secret_env");
            if let Some(old) = t.remove("signing_secret_file") {
                replaced.extend(old.as_str().map(str::to_string));
            }
        }
    }
    Ok(replaced)
}

/// Points `<name>_file` at `reference`, dropping `<name>_env`; returns the old file.
fn replace_secret(
    t: &mut dyn toml_edit::TableLike,
    name: &str,
    reference: String,
) -> Option<String> {
    t.remove(&format!("{name}_env"));
    let old = t
        .get(&format!("{name}_file"))
        .and_then(Item::as_str)
        .map(str::to_string);
    t.insert(&format!("{name}_file"), value(reference));
    old
}

/// `[livekit]` set to `lk`, or removed (`None`: the tenant becomes managed).
fn set_livekit(
    doc: &mut DocumentMut,
    tenant: &str,
    lk: Option<&LiveKitSpec>,
    secrets: &mut StagedSecrets,
) -> std::io::Result<Vec<String>> {
    let old = doc
        .get("livekit")
        .and_then(|s| s.get("api_secret_file"))
        .and_then(Item::as_str)
        .map(str::to_string);
    match lk {
        None => {
            doc.remove("livekit");
        }
        Some(lk) => {
            let mut t = Table::new();
            t.insert("url", value(&lk.url));
            t.insert("api_key", value(&lk.api_key));
            t.insert(
                "api_secret_file",
                value(secrets.write(tenant, "livekit", &lk.api_secret)?),
            );
            doc.insert("livekit", Item::Table(t));
        }
    }
    Ok(old.into_iter().collect())
}

/// `[[trunks]]` replaced as a whole.
fn set_trunks(doc: &mut DocumentMut, trunks: &[TrunkSpec]) {
    let mut aot = ArrayOfTables::new();
    for tr in trunks {
        let mut t = Table::new();
        t.insert("label", value(&tr.label));
        t.insert("livekit_trunk_id", value(&tr.livekit_trunk_id));
        if !tr.prefix.is_empty() {
            t.insert("prefix", value(&tr.prefix));
        }
        t.insert("default_did", value(&tr.default_did));
        t.insert("carrier", value(&tr.carrier));
        if tr.default {
            t.insert("default", value(true));
        }
        t.insert("enabled", value(tr.enabled));
        if !tr.sources.is_empty() {
            t.insert("sources", value(strings(&tr.sources)));
        }
        if let Some(p) = tr.paise_per_pulse {
            t.insert("paise_per_pulse", value(to_i64(p)));
        }
        if let Some(s) = tr.pulse_seconds {
            t.insert("pulse_seconds", value(i64::from(s)));
        }
        // Written as sent; the loader refuses a value that is not one of its words.
        if let Some(m) = &tr.media {
            t.insert("media", value(m));
        }
        if let Some(c) = &tr.category {
            t.insert("category", value(c));
        }
        aot.push(t);
    }
    if aot.is_empty() {
        doc.remove("trunks");
    } else {
        doc.insert("trunks", Item::ArrayOfTables(aot));
    }
}

fn set_limits(doc: &mut DocumentMut, l: LimitsSpec) {
    let mut t = Table::new();
    t.insert(
        "requests_per_second",
        value(i64::from(l.requests_per_second)),
    );
    t.insert(
        "max_concurrent_calls",
        value(i64::from(l.max_concurrent_calls)),
    );
    doc.insert("limits", Item::Table(t));
}

fn strings(v: &[String]) -> Array {
    v.iter().map(String::as_str).collect()
}

/// TOML integers are i64; anything larger is refused by the loader's range checks as
/// the largest value, never wrapped.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: serde_json::Value) -> TenantPatch {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_touch() {
        let d = tempfile::tempdir().unwrap();
        let mut doc: DocumentMut = "# hand-made\nid = \"t\"\nname = \"T\"\n\n[crm_webhook]\nurl = \"http://a\"\noutbound_key_env = \"K\" # env ref\n\n[dlt]\nprincipal_entity_id = \"1\"\n\n[inbound]\nring_agent_seconds = 20\n".parse().unwrap();
        let mut s = StagedSecrets::new(d.path());
        let replaced = apply_patch(
            &mut doc,
            "t",
            &patch(serde_json::json!({"name": "T2", "crm_webhook": {"outbound_key": "new-key"}})),
            &mut s,
        )
        .unwrap();
        let out = doc.to_string();
        assert!(out.starts_with("# hand-made\n"), "{out}");
        assert!(out.contains("name = \"T2\"") && out.contains("ring_agent_seconds = 20"));
        assert!(
            !out.contains("outbound_key_env")
                && out.contains("outbound_key_file = \"secrets/t-crm-outbound-")
        );
        assert!(
            !out.contains("new-key"),
            "a secret must never enter the file: {out}"
        );
        assert!(replaced.is_empty(), "an env reference is no file to delete");
    }

    #[test]
    fn removing_the_livekit_project_reports_its_secret_file() {
        let d = tempfile::tempdir().unwrap();
        let mut doc: DocumentMut = "id = \"t\"\n[livekit]\nurl = \"https://lk\"\napi_key = \"k\"\napi_secret_file = \"secrets/t-livekit-aa.secret\"\n".parse().unwrap();
        let mut s = StagedSecrets::new(d.path());
        let replaced = apply_patch(
            &mut doc,
            "t",
            &patch(serde_json::json!({"livekit": null})),
            &mut s,
        )
        .unwrap();
        assert_eq!(replaced, ["secrets/t-livekit-aa.secret"]);
        assert!(doc.get("livekit").is_none());
    }

    #[test]
    fn an_empty_trunk_list_removes_the_section() {
        let mut doc: DocumentMut = "id = \"t\"\n[[trunks]]\nlabel = \"a\"\n".parse().unwrap();
        set_trunks(&mut doc, &[]);
        assert!(doc.get("trunks").is_none());
    }
}
