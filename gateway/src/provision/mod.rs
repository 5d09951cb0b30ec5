//! Provisioning: tenants created and changed through the owner API
//! (`/api/c2c/owner/tenants`) and `c2c-gateway tenant add|edit`, written to the policy
//! directory the gateway already reads (docs/provisioning.md).
//!
//! A change is, in order: the request's own checks ([`spec`]); a live LiveKit check of
//! new credentials; secrets to new secret files ([`secrets`]); the tenant file rendered
//! ([`render`]) and the whole policy directory validated with it in place, exactly as
//! `policy check` and the hot reload would; the file written atomically
//! ([`crate::policy_edit::write_atomically`]); the caller's apply step (the gateway
//! reloads at once, so the answer means "in force"); and the audit line. A failure at
//! any step leaves the directory as it was: staged secrets are deleted, a written file
//! is put back.
//!
//! The billing mode is never part of a request: it follows from the credentials
//! (`Tenant::billing_mode`).

pub mod audit;
pub mod livekit_check;
pub mod platform;
pub mod render;
pub mod secrets;
pub mod spec;
pub mod view;

use std::future::Future;
use std::path::{Path, PathBuf};

use c2c_tenancy::{Policy, PolicyErrors};
use serde_json::Value;
use toml_edit::DocumentMut;

use crate::policy_edit::{write_atomically, EditError, KeyOwner, PolicyFile};
use audit::{ChangeAction, PolicyAudit, PolicyChange};
use secrets::StagedSecrets;
use spec::{FieldError, NewTenant, TenantPatch};
use view::{FieldChange, TenantView};

/// Why a provisioning request changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(
        "{0} is not accepted: the billing mode is inferred from the credentials \
         (with livekit credentials the tenant is byot, without them managed)"
    )]
    ExplicitMode(String),
    /// The body does not have the request's shape (wrong type, unknown or missing field).
    #[error("invalid JSON at {field}: {reason}")]
    Json { field: String, reason: String },
    #[error("{}: {}", .0.field, .0.reason)]
    Field(FieldError),
    #[error("{0} is changed by the platform owner only")]
    OwnerOnly(&'static str),
    #[error("the request changes nothing")]
    NothingToChange,
    #[error("tenant '{0}' already exists")]
    Exists(String),
    #[error("unknown tenant '{0}'")]
    UnknownTenant(String),
    #[error("the tenant's policy file changed since revision {sent} (now {now}); read it again")]
    Stale { sent: String, now: String },
    #[error("{0}")]
    LiveKit(String),
    #[error("the policy would be invalid: {}", describe(.0))]
    Invalid(PolicyErrors),
    /// The gateway did not take the written policy; the file was put back.
    #[error("the gateway refused the new policy: {0}")]
    Rejected(String),
    #[error("cannot write the policy directory: {0}")]
    Io(String),
}

/// `key: reason; ...` without file paths (the caller knows which file it changed).
fn describe(e: &PolicyErrors) -> String {
    e.0.iter()
        .map(|x| format!("{}: {}", x.key, x.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<EditError> for ProvisionError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::UnknownTenant { id, .. } => ProvisionError::UnknownTenant(id),
            EditError::Invalid(errs) => ProvisionError::Invalid(errs),
            EditError::Io(m) => ProvisionError::Io(m),
        }
    }
}

fn io(e: std::io::Error) -> ProvisionError {
    ProvisionError::Io(e.to_string())
}

/// Who asks for a change: the platform owner may change everything; a tenant's console
/// key what [`TenantPatch::owner_only_field`] leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editor {
    Owner,
    TenantConsole,
}

/// What a landed change returns.
#[derive(Debug)]
pub struct Provisioned {
    pub tenant: TenantView,
    /// A new tenant's first API key (scope `calls`), shown this once.
    pub first_key: Option<FirstKeyShown>,
    pub change: PolicyChange,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FirstKeyShown {
    pub id: String,
    /// The key: store it now, it is not kept (only its SHA-256 is).
    pub key: String,
    pub scopes: Vec<String>,
}

impl Provisioned {
    /// The tenant view as JSON (for printing).
    pub fn tenant_json(&self) -> Value {
        serde_json::to_value(&self.tenant).unwrap_or(Value::Null)
    }
}

/// Writes tenants' policy files, one change at a time.
pub struct Provisioner {
    policies: PathBuf,
    audit: PolicyAudit,
    /// Each change validates the whole directory as it will be: two at once would each
    /// validate without the other.
    lock: tokio::sync::Mutex<()>,
}

/// A validated change, not yet written.
struct Prepared {
    path: PathBuf,
    /// What the file said before (`None`: a new file).
    old_text: Option<String>,
    doc: DocumentMut,
    policy: Policy,
    staged: StagedSecrets,
    replaced: Vec<String>,
    secret_changes: Vec<FieldChange>,
    before: Value,
}

impl Provisioner {
    pub fn new(policies: &Path, data: &Path) -> Self {
        Self {
            policies: policies.to_path_buf(),
            audit: PolicyAudit::in_dir(data),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The tenant `id` of `policy` as provisioning shows it (reads its file).
    pub async fn view(&self, policy: &Policy, id: &str) -> Result<TenantView, ProvisionError> {
        let t = policy
            .tenant(id)
            .cloned()
            .ok_or_else(|| ProvisionError::UnknownTenant(id.to_string()))?;
        let dir = self.policies.clone();
        let owner = KeyOwner::Tenant(id.to_string());
        blocking(move || {
            let f = PolicyFile::locate(&dir, &owner)?;
            Ok(TenantView::new(&t, &f.doc))
        })
        .await
    }

    /// The last `max` changes of `id`.
    pub async fn changes(&self, id: &str, max: usize) -> Result<Vec<PolicyChange>, ProvisionError> {
        let audit = self.audit.clone();
        let id = id.to_string();
        blocking(move || audit.recent(&id, max).map_err(io)).await
    }

    /// Creates tenant `req.id`. `apply` runs after the file is written and before the
    /// change is acknowledged (the gateway reloads); its error puts everything back.
    pub async fn create<F, Fut>(
        &self,
        body: &Value,
        actor: &str,
        apply: F,
    ) -> Result<Provisioned, ProvisionError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let req: NewTenant = parse(body)?;
        req.check().map_err(ProvisionError::Field)?;
        if let Some(lk) = &req.livekit {
            livekit_check::check(lk)
                .await
                .map_err(ProvisionError::LiveKit)?;
        }
        let _one_at_a_time = self.lock.lock().await;
        let dir = self.policies.clone();
        let minted = c2c_tenancy::keys::mint();
        let key_id = format!("{}-k1", req.id);
        let header = format!(
            "# Tenant {}, provisioned by {actor} at {} through the owner API.\n\
             # Change it with PATCH /api/c2c/owner/tenants/{} or `c2c-gateway tenant edit`;\n\
             # hand edits work too. Secrets live in the files named by *_file.\n",
            req.id,
            crate::clock::now_rfc3339(),
            req.id
        );
        let sha = minted.sha256_hex.clone();
        let kid = key_id.clone();
        let prepared = blocking(move || prepare_create(&dir, &req, &kid, &sha, &header)).await?;
        let mut done = self
            .land(prepared, actor, ChangeAction::Create, apply)
            .await?;
        done.first_key = Some(FirstKeyShown {
            id: key_id,
            key: minted.key,
            scopes: vec!["calls".into()],
        });
        Ok(done)
    }

    /// Changes tenant `id` as `body` (a [`TenantPatch`]) says.
    pub async fn update<F, Fut>(
        &self,
        id: &str,
        body: &Value,
        (editor, actor): (Editor, &str),
        apply: F,
    ) -> Result<Provisioned, ProvisionError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let patch: TenantPatch = parse(body)?;
        patch.check().map_err(ProvisionError::Field)?;
        if patch.is_empty() {
            return Err(ProvisionError::NothingToChange);
        }
        // Held from the permission check on: the mode it reads cannot change under it.
        let _one_at_a_time = self.lock.lock().await;
        if editor == Editor::TenantConsole {
            let dir = self.policies.clone();
            let owner = KeyOwner::Tenant(id.to_string());
            // The mode as the file says now (the same inference as the loader's).
            let byot = blocking(move || {
                Ok(PolicyFile::locate(&dir, &owner)?
                    .doc
                    .get("livekit")
                    .is_some())
            })
            .await?;
            if let Some(f) = patch.owner_only_field(byot) {
                return Err(ProvisionError::OwnerOnly(f));
            }
        }
        // After the permission check: a key that may not set credentials must not make
        // the gateway call a URL of its choosing either.
        if let Some(Some(lk)) = &patch.livekit {
            livekit_check::check(lk)
                .await
                .map_err(ProvisionError::LiveKit)?;
        }
        let dir = self.policies.clone();
        let id = id.to_string();
        let prepared = blocking(move || prepare_update(&dir, &id, &patch)).await?;
        self.land(prepared, actor, ChangeAction::Update, apply)
            .await
    }

    /// The platform's call settings in force, with gateway.toml's revision.
    pub async fn platform_view(
        &self,
        policy: &Policy,
    ) -> Result<platform::PlatformView, ProvisionError> {
        let g = policy.gateway.clone();
        let dir = self.policies.clone();
        blocking(move || {
            let f = PolicyFile::locate(&dir, &KeyOwner::Owner)?;
            Ok(platform::PlatformView::new(&g, &f.doc))
        })
        .await
    }

    /// Changes the platform's call settings (gateway.toml), as [`Self::update`] does a
    /// tenant's file: validated, written atomically, applied, audited (tenant
    /// [`platform::PLATFORM`]). Returns the view after and the audit record.
    pub async fn update_platform<F, Fut>(
        &self,
        body: &Value,
        actor: &str,
        apply: F,
    ) -> Result<(platform::PlatformView, PolicyChange), ProvisionError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let patch: platform::PlatformPatch = parse(body)?;
        if patch.is_empty() {
            return Err(ProvisionError::NothingToChange);
        }
        let _one_at_a_time = self.lock.lock().await;
        let dir = self.policies.clone();
        let (mut file, before) = blocking(move || {
            let file = PolicyFile::locate(&dir, &KeyOwner::Owner)?;
            let before = c2c_tenancy::load_dir(&dir)
                .ok()
                .map(|p| platform::PlatformView::new(&p.gateway, &file.doc));
            Ok((file, before))
        })
        .await?;
        let old_text = file.doc.to_string();
        let now = view::revision(&old_text);
        if let Some(sent) = patch.revision.as_ref().filter(|s| **s != now) {
            return Err(ProvisionError::Stale {
                sent: sent.clone(),
                now,
            });
        }
        platform::apply(&mut file.doc, &patch);
        let dir = self.policies.clone();
        let (path, text) = (file.path.clone(), file.doc.to_string());
        let policy = blocking(move || {
            let overlay = [(path.clone(), text.clone())];
            let policy =
                c2c_tenancy::load_dir_with(&dir, &overlay).map_err(ProvisionError::Invalid)?;
            write_atomically(&path, text.as_bytes()).map_err(io)?;
            Ok(policy)
        })
        .await?;
        if let Err(reason) = apply().await {
            let path = file.path.clone();
            blocking(move || write_atomically(&path, old_text.as_bytes()).map_err(io)).await?;
            return Err(ProvisionError::Rejected(reason));
        }
        let after = platform::PlatformView::new(&policy.gateway, &file.doc);
        let as_json = |v: &platform::PlatformView| serde_json::to_value(v).unwrap_or(Value::Null);
        let change = PolicyChange {
            at_ms: crate::clock::now_ms(),
            actor: actor.to_string(),
            tenant: platform::PLATFORM.to_string(),
            action: ChangeAction::Update,
            changes: view::diff(
                &before.as_ref().map_or(Value::Null, as_json),
                &as_json(&after),
            ),
            revision: after.revision.clone(),
        };
        let (audit, record) = (self.audit.clone(), change.clone());
        blocking(move || audit.append(&record).map_err(io)).await?;
        Ok((after, change))
    }

    /// Writes a prepared change, applies it, audits it; puts everything back on failure.
    async fn land<F, Fut>(
        &self,
        p: Prepared,
        actor: &str,
        action: ChangeAction,
        apply: F,
    ) -> Result<Provisioned, ProvisionError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let text = p.doc.to_string();
        let (path, written) = (p.path.clone(), text.clone());
        blocking(move || write_atomically(&path, written.as_bytes()).map_err(io)).await?;
        if let Err(reason) = apply().await {
            let (path, old) = (p.path.clone(), p.old_text.clone());
            blocking(move || {
                match old {
                    Some(old) => write_atomically(&path, old.as_bytes()),
                    None => std::fs::remove_file(&path),
                }
                .map_err(io)
            })
            .await?;
            return Err(ProvisionError::Rejected(reason));
        }
        let id = p
            .doc
            .get("id")
            .and_then(toml_edit::Item::as_str)
            .unwrap_or_default()
            .to_string();
        let tenant = p
            .policy
            .tenant(&id)
            .map(|t| TenantView::new(t, &p.doc))
            .ok_or_else(|| ProvisionError::Io(format!("tenant {id} vanished from the policy")))?;
        let after = serde_json::to_value(&tenant).unwrap_or(Value::Null);
        let mut changes = view::diff(&p.before, &after);
        changes.extend(p.secret_changes);
        let change = PolicyChange {
            at_ms: crate::clock::now_ms(),
            actor: actor.to_string(),
            tenant: id.clone(),
            action,
            changes,
            revision: tenant.revision.clone(),
        };
        p.staged.keep();
        let (audit, record, dir, replaced) = (
            self.audit.clone(),
            change.clone(),
            self.policies.clone(),
            p.replaced,
        );
        blocking(move || {
            for r in &replaced {
                secrets::remove_replaced(&dir, &id, r);
            }
            // The change is in force already; a failed audit write is reported, not
            // hidden (the caller answers 500 and the operator sees why).
            audit.append(&record).map_err(io)
        })
        .await?;
        Ok(Provisioned {
            tenant,
            first_key: None,
            change,
        })
    }
}

/// A request body as `T`, refusing an explicit billing mode by name first (it would
/// otherwise be an unknown field, or worse, silently dropped by a laxer parser).
fn parse<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, ProvisionError> {
    if let Some(f) = spec::explicit_mode_field(body) {
        return Err(ProvisionError::ExplicitMode(f));
    }
    let mut body = body.clone();
    whole_numbers_as_integers(&mut body);
    serde_path_to_error::deserialize(body).map_err(|e| {
        let field = e.path().to_string();
        ProvisionError::Json {
            field: if field == "." {
                "the body".into()
            } else {
                field
            },
            reason: e.into_inner().to_string(),
        }
    })
}

/// JSON Schema counts `2.0` as an integer and serde does not: a number without a
/// fraction that an `i64`/`u64` holds exactly becomes that integer; anything else stays
/// as sent (and is refused where an integer is expected: never rounded).
fn whole_numbers_as_integers(v: &mut Value) {
    /// 2^53: above it a double no longer holds every integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT) {
                // In range and whole: the cast is exact.
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                *v = Value::from(i);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(m) => m.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProvisionError> + Send + 'static,
) -> Result<T, ProvisionError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ProvisionError::Io(format!("provisioning task failed: {e}"))))
}

/// Secrets a request sets, for the audit (values never recorded).
fn secret_change(field: &str) -> FieldChange {
    FieldChange {
        field: field.into(),
        from: None,
        to: None,
        secret: true,
    }
}

fn prepare_create(
    dir: &Path,
    req: &NewTenant,
    key_id: &str,
    key_sha: &str,
    header: &str,
) -> Result<Prepared, ProvisionError> {
    let path = dir.join("tenants").join(format!("{}.toml", req.id));
    // Validated as a file name by the loader too, but it is a path component here first.
    if !c2c_tenancy::valid_id(&req.id) {
        return Err(ProvisionError::Field(FieldError {
            field: "id".into(),
            reason: "must be 1-63 lowercase letters, digits and dashes".into(),
        }));
    }
    let exists =
        path.exists() || PolicyFile::locate(dir, &KeyOwner::Tenant(req.id.clone())).is_ok();
    if exists {
        return Err(ProvisionError::Exists(req.id.clone()));
    }
    let mut staged = StagedSecrets::new(dir);
    let key = render::FirstKey {
        id: key_id,
        sha256_hex: key_sha,
    };
    let doc = render::new_tenant(req, &key, header, &mut staged).map_err(io)?;
    let overlay = [(path.clone(), doc.to_string())];
    let policy = c2c_tenancy::load_dir_with(dir, &overlay).map_err(ProvisionError::Invalid)?;
    let mut secret_changes = vec![secret_change("crm_webhook.outbound_key")];
    if req.crm_webhook.signing_secret.is_some() {
        secret_changes.push(secret_change("crm_webhook.signing_secret"));
    }
    if req.livekit.is_some() {
        secret_changes.push(secret_change("livekit.api_secret"));
    }
    Ok(Prepared {
        path,
        old_text: None,
        doc,
        policy,
        staged,
        replaced: Vec::new(),
        secret_changes,
        before: Value::Null,
    })
}

fn prepare_update(dir: &Path, id: &str, patch: &TenantPatch) -> Result<Prepared, ProvisionError> {
    let mut file = PolicyFile::locate(dir, &KeyOwner::Tenant(id.to_string()))?;
    let old_text = file.doc.to_string();
    let now = view::revision(&old_text);
    if let Some(sent) = &patch.revision {
        if *sent != now {
            return Err(ProvisionError::Stale {
                sent: sent.clone(),
                now,
            });
        }
    }
    // The view before, from the directory as it is (null when it does not load: then
    // the audit lists every field as new, which is the honest answer).
    let before = c2c_tenancy::load_dir(dir)
        .ok()
        .and_then(|p| p.tenant(id).map(|t| TenantView::new(t, &file.doc)))
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(Value::Null);
    let mut staged = StagedSecrets::new(dir);
    let replaced = render::apply_patch(&mut file.doc, id, patch, &mut staged).map_err(io)?;
    let overlay = [(file.path.clone(), file.doc.to_string())];
    let policy = c2c_tenancy::load_dir_with(dir, &overlay).map_err(ProvisionError::Invalid)?;
    let mut secret_changes = Vec::new();
    if let Some(c) = &patch.crm_webhook {
        if c.outbound_key.is_some() {
            secret_changes.push(secret_change("crm_webhook.outbound_key"));
        }
        if c.signing_secret.is_some() {
            secret_changes.push(secret_change("crm_webhook.signing_secret"));
        }
    }
    if patch.livekit.is_some() {
        secret_changes.push(secret_change("livekit.api_secret"));
    }
    Ok(Prepared {
        path: file.path,
        old_text: Some(old_text),
        doc: file.doc,
        policy,
        staged,
        replaced,
        secret_changes,
        before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let mut v = json!({"a": 2.0, "b": [1.5, -3.0], "c": {"d": 1e300}, "e": 7});
        whole_numbers_as_integers(&mut v);
        assert_eq!(
            v,
            json!({"a": 2, "b": [1.5, -3], "c": {"d": 1e300}, "e": 7})
        );
        assert!(v["a"].is_i64());
    }
}
