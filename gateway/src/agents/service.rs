//! [`AgentService`]: what the API, the calls and the presence socket use of agents.

use std::sync::Arc;

use c2c_agents::{
    gate_outbound, Agent, AgentStore, AgentStoreError, AgentUpdate, AuditEntry, Availability,
    Directory, DirectoryChange, OutboundRefusal, PresenceClaims, PresenceHub, PresenceSigner,
};
use c2c_metrics::GatewayMetrics;
use c2c_tenancy::TenantAgentsPolicy;
use serde::Serialize;

use crate::clock::now_ms;

/// An agent as the API shows it: the registry entry with its live presence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub agent_id: String,
    pub name: String,
    pub telephony_enabled: bool,
    pub availability: Availability,
    /// On a call from its `/connect` until the call ends.
    pub on_call: bool,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// A minted presence token and where to use it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionGrant {
    pub token: String,
    pub expires_at_ms: u64,
    /// The presence socket's URL (`ws://` or `wss://` on the gateway's public URL).
    pub ws_url: String,
}

pub struct AgentService {
    store: Arc<dyn AgentStore>,
    directory: Directory,
    hub: PresenceHub,
    signer: PresenceSigner,
    /// One registry write at a time: an audit line's `old` is what the write replaced.
    writes: tokio::sync::Mutex<()>,
    /// Presence sockets past their handshake that have not authenticated yet: they count
    /// against `agents.max_presence_sessions` too, so unauthenticated sockets cannot
    /// exhaust file descriptors.
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    metrics: GatewayMetrics,
}

impl AgentService {
    /// Loads the registry and the presence secret from `store`.
    pub async fn open(
        store: Arc<dyn AgentStore>,
        metrics: GatewayMetrics,
    ) -> Result<Self, AgentStoreError> {
        let directory = Directory::open(&*store).await?;
        let signer = PresenceSigner::new(store.presence_secret().await?);
        let s = Self {
            store,
            directory,
            hub: PresenceHub::new(),
            signer,
            writes: tokio::sync::Mutex::new(()),
            pending: Default::default(),
            metrics,
        };
        for tenant in s.directory.tenants() {
            s.update_gauges(&tenant);
        }
        Ok(s)
    }

    /// True when this process holds `max` presence sockets, open or authenticating.
    pub fn presence_full(&self, max: usize) -> bool {
        self.hub.sessions() + self.pending.load(std::sync::atomic::Ordering::Relaxed) >= max
    }

    /// Counts a socket as authenticating until the guard is dropped.
    pub fn authenticating(&self) -> PendingGuard {
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PendingGuard(self.pending.clone())
    }

    pub fn hub(&self) -> &PresenceHub {
        &self.hub
    }

    pub fn signer(&self) -> &PresenceSigner {
        &self.signer
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn view(&self, a: &Agent) -> AgentView {
        let p = self.hub.presence(&a.tenant, &a.agent_id);
        AgentView {
            agent_id: a.agent_id.clone(),
            name: a.name.clone(),
            telephony_enabled: a.telephony_enabled,
            availability: p.availability,
            on_call: p.on_call,
            created_at_ms: a.created_ms,
            updated_at_ms: a.updated_ms,
        }
    }

    /// Creates or updates an agent; true when it was created. Durable before the
    /// in-memory registry and presence change.
    pub async fn put(
        &self,
        tenant: &str,
        agent_id: &str,
        update: AgentUpdate,
        key_id: &str,
    ) -> Result<(Agent, bool), AgentStoreError> {
        let _one = self.writes.lock().await;
        let old = self.directory.get(tenant, agent_id);
        self.write(tenant, agent_id, old, update, key_id).await
    }

    /// Turns telephony on or off, keeping the name: the console's toggle. None when the
    /// agent is not registered (read under the write lock, so a removal in between is
    /// never undone).
    pub async fn set_telephony(
        &self,
        tenant: &str,
        agent_id: &str,
        enabled: bool,
        key_id: &str,
    ) -> Result<Option<Agent>, AgentStoreError> {
        let _one = self.writes.lock().await;
        let Some(old) = self.directory.get(tenant, agent_id) else {
            return Ok(None);
        };
        let update = AgentUpdate {
            name: old.name.clone(),
            telephony_enabled: enabled,
        };
        let (agent, _) = self
            .write(tenant, agent_id, Some(old), update, key_id)
            .await?;
        Ok(Some(agent))
    }

    /// One registry write, the caller holding `writes`: store first, then memory, then
    /// presence (an agent turned off goes offline; its session hears either change).
    async fn write(
        &self,
        tenant: &str,
        agent_id: &str,
        old: Option<Agent>,
        update: AgentUpdate,
        key_id: &str,
    ) -> Result<(Agent, bool), AgentStoreError> {
        let now = now_ms();
        let agent = Agent {
            tenant: tenant.to_owned(),
            agent_id: agent_id.to_owned(),
            name: update.name,
            telephony_enabled: update.telephony_enabled,
            created_ms: old.as_ref().map_or(now, |o| o.created_ms),
            updated_ms: now,
        };
        let audit = AuditEntry::diff(old.as_ref(), Some(&agent), key_id, now);
        if audit.is_empty() {
            return Ok((old.unwrap_or(agent), false));
        }
        self.store.put(&agent, &audit).await?;
        self.directory.insert(agent.clone());
        let telephony_changed = old
            .as_ref()
            .is_some_and(|o| o.telephony_enabled != agent.telephony_enabled);
        if telephony_changed {
            self.hub
                .telephony_changed(tenant, agent_id, agent.telephony_enabled, now);
        }
        self.update_gauges(tenant);
        Ok((agent, old.is_none()))
    }

    /// Removes an agent (false when there was none); its presence session is closed.
    pub async fn remove(
        &self,
        tenant: &str,
        agent_id: &str,
        key_id: &str,
    ) -> Result<bool, AgentStoreError> {
        let _one = self.writes.lock().await;
        let Some(old) = self.directory.get(tenant, agent_id) else {
            return Ok(false);
        };
        let now = now_ms();
        let audit = AuditEntry::diff(Some(&old), None, key_id, now);
        let removed = self.store.remove(tenant, agent_id, &audit).await?;
        self.directory.remove(tenant, agent_id);
        self.hub.removed(tenant, agent_id, now);
        self.update_gauges(tenant);
        Ok(removed)
    }

    /// Catches up with agent edits another node of the fleet made (one revision read
    /// when nothing moved): the directory is reloaded, and presence hears what changed as
    /// if the edit had been made here (an agent removed or turned off goes offline).
    pub async fn refresh(&self) -> Result<usize, AgentStoreError> {
        let _one = self.writes.lock().await;
        let changes = self.directory.refresh(&*self.store).await?;
        let now = now_ms();
        let mut tenants = std::collections::BTreeSet::new();
        for c in &changes {
            match c {
                DirectoryChange::Removed(a) => self.hub.removed(&a.tenant, &a.agent_id, now),
                DirectoryChange::Updated { old, new }
                    if old.telephony_enabled != new.telephony_enabled =>
                {
                    self.hub.telephony_changed(
                        &new.tenant,
                        &new.agent_id,
                        new.telephony_enabled,
                        now,
                    )
                }
                _ => {}
            }
            tenants.insert(c.tenant().to_owned());
        }
        for t in tenants {
            self.update_gauges(&t);
        }
        Ok(changes.len())
    }

    pub async fn audit(
        &self,
        tenant: &str,
        max: usize,
    ) -> Result<Vec<AuditEntry>, AgentStoreError> {
        self.store.audit(tenant, max).await
    }

    /// A presence token for `agent_id` (None: a supervisor-only session).
    pub fn grant(
        &self,
        tenant: &str,
        agent_id: Option<&str>,
        supervisor: bool,
        ttl: std::time::Duration,
        public_url: &str,
    ) -> SessionGrant {
        let expires_at_ms = now_ms() + ttl.as_millis() as u64;
        let token = self.signer.mint(&PresenceClaims {
            tenant: tenant.to_owned(),
            agent_id: agent_id.map(str::to_owned),
            supervisor,
            exp_ms: expires_at_ms,
            nonce: c2c_agents::random_id(),
        });
        SessionGrant {
            token,
            expires_at_ms,
            ws_url: presence_url(public_url),
        }
    }

    /// The outbound rules for a new call of `agent_id` (click2call, `call` None) or the
    /// dial of `call` (/connect: the rules are checked again, since telephony, the
    /// registration or the tenant's rules may have changed since click2call).
    pub fn gate(
        &self,
        tenant: &str,
        rules: TenantAgentsPolicy,
        agent_id: &str,
        call: Option<&str>,
    ) -> Result<(), OutboundRefusal> {
        let refused = gate_outbound(
            agent_id,
            self.directory.telephony(tenant, agent_id),
            self.hub.current_call(tenant, agent_id, call),
            rules.require_registration,
            rules.allow_concurrent_calls,
        );
        if let Err(r) = &refused {
            self.metrics
                .agent_refusals
                .with_label_values(&[tenant, refusal_code(r)])
                .inc();
        }
        refused
    }

    /// `/connect` dials: the agent is on this call until it ends. Refused when the agent
    /// is registered, already on another call, and the tenant does not allow several.
    pub fn claim_call(
        &self,
        tenant: &str,
        rules: TenantAgentsPolicy,
        agent_id: &str,
        call_id: &str,
    ) -> Result<(), OutboundRefusal> {
        let registered = self.directory.telephony(tenant, agent_id).is_some();
        let allow = rules.allow_concurrent_calls || !registered;
        self.hub
            .claim_call(tenant, agent_id, call_id, allow, now_ms())
            .map_err(|b| {
                let r = OutboundRefusal::Busy {
                    agent_id: agent_id.to_owned(),
                    call_id: b.call_id,
                };
                self.metrics
                    .agent_refusals
                    .with_label_values(&[tenant, refusal_code(&r)])
                    .inc();
                r
            })
    }

    /// [`Self::claim_call`], then the same claim in a store shared by a fleet: of two
    /// nodes dialling one agent at the same instant, one is refused `agent_busy`. (The
    /// embedded stores grant at once: one process sees every call in its hub.)
    pub async fn claim_call_everywhere(
        &self,
        tenant: &str,
        rules: TenantAgentsPolicy,
        agent_id: &str,
        call_id: &str,
    ) -> Result<(), ClaimError> {
        self.claim_call(tenant, rules, agent_id, call_id)
            .map_err(ClaimError::Refused)?;
        let registered = self.directory.telephony(tenant, agent_id).is_some();
        if rules.allow_concurrent_calls || !registered || !self.store.shared() {
            return Ok(());
        }
        match self.store.claim_busy(tenant, agent_id, call_id).await {
            Ok(None) => Ok(()),
            Ok(Some(other)) => {
                self.hub.release_call(tenant, agent_id, call_id, now_ms());
                let r = OutboundRefusal::Busy {
                    agent_id: agent_id.to_owned(),
                    call_id: other,
                };
                self.metrics
                    .agent_refusals
                    .with_label_values(&[tenant, refusal_code(&r)])
                    .inc();
                Err(ClaimError::Refused(r))
            }
            Err(e) => {
                self.hub.release_call(tenant, agent_id, call_id, now_ms());
                Err(ClaimError::Store(e))
            }
        }
    }

    /// Frees the agent from `call_id` here and, in the background, in a shared store (a
    /// claim left behind is taken over once its call has ended, so a failed release
    /// only delays the next call of the agent until then). An agent that is not
    /// registered never claims in the shared store ([`Self::claim_call_everywhere`]), so
    /// its calls release nothing there: no statement per call end for CRMs that never
    /// register agents. (One registered after its call's claim was skipped releases a
    /// row that is not there; one removed while on a call leaves a row the next claim
    /// takes over.)
    pub fn release_call(&self, tenant: &str, agent_id: &str, call_id: &str) {
        self.hub.release_call(tenant, agent_id, call_id, now_ms());
        if !self.store.shared()
            || tokio::runtime::Handle::try_current().is_err()
            || self.directory.telephony(tenant, agent_id).is_none()
        {
            return;
        }
        let store = self.store.clone();
        let (t, a, c) = (tenant.to_owned(), agent_id.to_owned(), call_id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = store.release_busy(&t, &a, &c).await {
                tracing::warn!(tenant = %t, error = %e, "agent's fleet-wide claim not released; the next claim takes it over once the call has ended");
            }
        });
    }

    /// Sets `c2c_agents{tenant,*}` from the registry and presence now.
    pub fn update_gauges(&self, tenant: &str) {
        let registered = self.directory.count(tenant);
        let (available, away) = self.hub.counts(tenant);
        let offline = registered.saturating_sub(available + away);
        let g = &self.metrics.agents;
        g.with_label_values(&[tenant, "available"])
            .set(available as i64);
        g.with_label_values(&[tenant, "away"]).set(away as i64);
        g.with_label_values(&[tenant, "offline"])
            .set(offline as i64);
    }
}

/// Why [`AgentService::claim_call_everywhere`] refused.
#[derive(Debug)]
pub enum ClaimError {
    Refused(OutboundRefusal),
    Store(c2c_agents::AgentStoreError),
}

/// A presence socket between its handshake and its `auth` frame.
pub struct PendingGuard(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The error code of a refusal (also its metric label).
pub fn refusal_code(r: &OutboundRefusal) -> &'static str {
    match r {
        OutboundRefusal::NotRegistered(_) => "agent_not_registered",
        OutboundRefusal::Disabled(_) => "agent_disabled",
        OutboundRefusal::Busy { .. } => "agent_busy",
    }
}

/// `ws(s)://<public host>/api/c2c/agents/presence`.
fn presence_url(public_url: &str) -> String {
    let base = public_url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}{}", crate::routes::PRESENCE_PATH)
}
