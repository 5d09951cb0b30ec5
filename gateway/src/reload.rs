//! Policy hot reload: a background service that notices changed files and swaps in the
//! new policy only if it is valid, and warns about the settings that a running gateway
//! read only at start ([`crate::start_only`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sha2::{Digest, Sha256};

use crate::app::App;

/// Checking once a second is cheap (a few small files) and needs no inotify, which
/// does not work for every deployment (config maps are symlink swaps, NFS, ...).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
const MAX_FILES: usize = 10_000;
/// Files larger than this are fingerprinted by size and modification time only.
const LARGE_FILE: u64 = 1 << 20;

pub struct PolicyReloader {
    app: Arc<App>,
}

impl PolicyReloader {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

/// A digest of every file under the policy directory (names and contents).
pub fn fingerprint(dir: &Path) -> [u8; 32] {
    let mut files = Vec::new();
    collect(dir, &mut files, 0);
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update([0]);
        // Policy files are small; a DND list may be hundreds of megabytes, read once a
        // second it would be the gateway's biggest cost: large files count by size and
        // modification time (a replaced list always changes one of them).
        match std::fs::metadata(&f) {
            Ok(m) if m.len() > LARGE_FILE => {
                h.update(m.len().to_le_bytes());
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                h.update(mtime.to_le_bytes());
            }
            _ => match std::fs::read(&f) {
                Ok(bytes) => h.update(&bytes),
                Err(_) => h.update(b"\xffunreadable"),
            },
        }
        h.update([0]);
    }
    h.finalize().into()
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>, depth: usize) {
    if depth > 4 || out.len() >= MAX_FILES {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out, depth + 1);
        } else if out.len() < MAX_FILES {
            out.push(p);
        }
    }
}

/// Loads the policy directory and, if valid, makes it the policy in force. Start-only
/// settings are compared with what the server was assembled from
/// ([`crate::app::PolicyHandle::started`]), not with the previous reload: a change stays
/// pending (and is warned about on every reload) until a restart, or until reverted.
pub async fn reload(app: &App) -> Result<(), c2c_tenancy::PolicyErrors> {
    let started = app.policy().started();
    let dir = app.policy().dir().to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || c2c_tenancy::load_dir(&dir))
        .await
        .unwrap_or_else(|e| {
            Err(c2c_tenancy::PolicyErrors(vec![
                c2c_tenancy::PolicyError::new(
                    app.policy().dir(),
                    "-",
                    format!("policy loader crashed: {e}"),
                ),
            ]))
        });
    match loaded {
        Ok(p) => {
            // The lists the new policy names, read before it is in force.
            let (dlt, metrics) = (app.dlt().clone(), app.metrics().clone());
            let p = match tokio::task::spawn_blocking(move || {
                crate::dlt_lists::reload(&dlt, &p, &metrics);
                p
            })
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(reason = %e, "DLT list reader crashed; keeping the previous policy");
                    return Err(c2c_tenancy::PolicyErrors(vec![
                        c2c_tenancy::PolicyError::new(app.policy().dir(), "dlt", e.to_string()),
                    ]));
                }
            };
            let tenants = p.tenants.len();
            let pending = crate::start_only::changes(started, &p.gateway);
            // LiveKit clients first: a new tenant's project must be reachable the moment
            // its policy is visible. Projects pointing at the simulator need the
            // simulator running since start.
            if let Err(e) = app.livekit().sync(&p) {
                app.metrics()
                    .policy_reloads
                    .with_label_values(&["rejected"])
                    .inc();
                tracing::error!(reason = %e, "policy rejected; keeping the previous policy");
                return Err(c2c_tenancy::PolicyErrors(vec![
                    c2c_tenancy::PolicyError::new(app.policy().dir(), "livekit", e.to_string()),
                ]));
            }
            app.policy().replace(p);
            app.endpoints().reset();
            app.metrics()
                .policy_reloads
                .with_label_values(&["applied"])
                .inc();
            app.metrics().policy_generation.inc();
            if pending.is_empty() {
                tracing::info!(tenants, "policy reloaded");
            } else {
                tracing::warn!(
                    tenants,
                    restart_needed = %pending.join(", "),
                    "policy reloaded; these changes take effect only after a restart: {}",
                    pending.join(", ")
                );
            }
            Ok(())
        }
        Err(errs) => {
            app.metrics()
                .policy_reloads
                .with_label_values(&["rejected"])
                .inc();
            for e in &errs.0 {
                tracing::error!(file = %e.file.display(), key = %e.key, reason = %e.reason, "policy rejected; keeping the previous policy");
            }
            Err(errs)
        }
    }
}

#[async_trait]
impl BackgroundService for PolicyReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let dir = self.app.policy().dir().to_path_buf();
        let fp = |d: std::path::PathBuf| tokio::task::spawn_blocking(move || fingerprint(&d));
        let mut last = fp(dir.clone()).await.ok();
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let now = fp(dir.clone()).await.ok();
            if now.is_some() && now != last {
                last = now;
                // An invalid change is logged and counted inside; the next edit retries.
                let _ = reload(&self.app).await;
            }
        }
    }
}
