//! # c2c-crm-webhooks — CRM webhook delivery from a durable outbox
//!
//! **Owns:** getting every terminal-call webhook that the call store put into its
//! outbox to the tenant's CRM, at least once, with a stable `webhook-id` so the CRM
//! can deduplicate. That is: polling the outbox for due jobs, bounded concurrent
//! delivery (global and per tenant), Standard Webhooks signing, the retry schedule
//! (exponential backoff with full jitter, `Retry-After`), catching up a tenant's delayed
//! jobs once its endpoint answers again ([`catchup`]), giving up after `max_age`,
//! honouring `410 Gone`, and the delivery and backlog metrics.
//!
//! **Must not:**
//! - own storage: jobs are the call store's outbox entries (`c2c_callstate::OutboxEntry`),
//!   read and written only through [`OutboxSource`]; the gateway implements it over
//!   the call store. Every state change is written
//!   back through [`OutboxSource::update`] before a job counts as handled, so a crash
//!   at any point leads to a redelivery (same `webhook-id`), never to a lost webhook.
//! - own policy: endpoints, keys, secrets and the "disabled" flag come from an
//!   [`EndpointResolver`] implemented by the gateway; on `410 Gone` this crate only
//!   *tells* the resolver ([`EndpointResolver::endpoint_gone`]).
//! - import `c2c-livekit` (same floor) or pingora; from `c2c-callstate` it uses only
//!   the outbox types.
//! - build HTTP clients: the process-wide `reqwest::Client` is passed in (built once
//!   with `redirect(Policy::none())` and a timeout; redirects are failures here).
//! - log payloads (they carry the customer's number) or label metrics by call id.
//!
//! ## Wire format (per attempt)
//! `POST <endpoint url>` with the job's `payload_json` bytes exactly (or, for a tenant
//! that opted in to more than the contract, the body a [`PayloadExtension`] made) and headers
//! `Content-Type: application/json`, `X-api-key`, `webhook-id` (stable across
//! retries), `webhook-timestamp` (unix seconds of this attempt) and, when the tenant
//! has a signing secret, `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{id}.{timestamp}.{body}"` ([`sign::sign`]).
//!
//! ## Outcomes
//! | response | job state | next step |
//! |---|---|---|
//! | 2xx | `Delivered` | done |
//! | 410 | `Disabled` | resolver told; the tenant's other jobs are parked |
//! | 429 / 503 with `Retry-After` | `Pending` | at that time (floored at 1 s, capped); never brought forward |
//! | anything else, timeout, connect error, 3xx | `Pending` | backoff with full jitter |
//! | failure and job older than `max_age` | `Failed` | done |
//! | endpoint disabled by policy | `Pending` (parked) | re-checked every `park_interval`; `Disabled` after `max_age` |
//!
//! After a 2xx, the tenant's other jobs waiting on a backoff are brought forward (due
//! now, in the store), `per_tenant_concurrency` at a time and only while attempts keep
//! succeeding, so a short CRM outage drains in seconds instead of on each job's own step
//! ([`catchup`]; `DeliveryPolicy::catch_up`).
//!
//! ## Wiring (gateway)
//! ```ignore
//! let deliverer = Deliverer::new(client, source, resolver, DeliveryPolicy::default(),
//!                                WebhookMetrics::register()?)?;
//! tokio::spawn({ let d = deliverer.clone(); async move { d.run(shutdown_rx).await } });
//! // after the store enqueued a webhook:
//! deliverer.kick();
//! ```
//! `reqwest` is compiled with `rustls-no-provider`: the process must install a
//! rustls `CryptoProvider` before building the client, or `Client::build` panics.

mod attempt;
pub mod backoff;
pub mod catchup;
pub mod deliver;
pub mod error;
pub mod guard;
pub mod metrics;
pub mod policy;
pub mod sign;
pub mod source;
mod store_source;

pub use deliver::{Deliverer, Outcome};
pub use error::{ConfigError, DeliverError, SecretError, SourceError};
pub use guard::SsrfGuardResolver;
pub use metrics::{DeliveryResult, WebhookMetrics};
pub use policy::DeliveryPolicy;
pub use sign::sign;
pub use source::{Admit, Eligible, Endpoint, EndpointResolver, OutboxSource, PayloadExtension};
pub use store_source::CallStoreOutbox;
