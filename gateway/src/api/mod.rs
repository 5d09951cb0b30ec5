//! The HTTP API the gateway answers itself. One module per resource; this plugin only
//! dispatches by route.

mod agents;
pub mod assets;
pub mod backup;
mod calls;
mod console;
mod console_sandbox;
mod console_types;
pub(crate) mod contract;
pub(crate) mod dlt_rules;
pub mod errors;
mod inbound;
pub mod livekit_webhook;
pub(crate) mod normalize;
pub mod openapi;
mod owner;
mod owner_calls;
mod replay;
pub(crate) mod report_types;
mod reports;
mod service;
pub(crate) mod tenants;
pub(crate) mod wallet;
pub(crate) mod wallet_csv;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use c2c_plugin_api::{ApiError, Decision, Plugin, RequestCtx, RequestHead};
use tracing::Instrument;

use crate::app::App;
use crate::routes;

/// A request's query parameters, decoded (`?limit=2&cursor=a%26b`). Listing endpoints
/// read their paging and filters from it.
pub(crate) fn query_params(head: &RequestHead<'_>) -> std::collections::BTreeMap<String, String> {
    head.uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

pub struct Api {
    app: Arc<App>,
}

impl Api {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[async_trait]
impl Plugin for Api {
    fn name(&self) -> &'static str {
        "api"
    }

    /// Last in the chain: answers every local route.
    async fn on_body(
        &self,
        head: &RequestHead<'_>,
        body: &Bytes,
        ctx: &mut RequestCtx,
    ) -> Decision {
        let Some(route) = ctx.route else {
            return ApiError::internal("no route").into();
        };
        if !self.app.is_serving() && routes::uses_call_store(&route) {
            return ApiError::unavailable(
                "starting",
                "the gateway is starting up (opening its call store); retry shortly",
                5,
            )
            .into();
        }
        // Every log line about a call carries its id: requests about one call run in its
        // span (click2call records the id once it has made one).
        let call_id = ctx
            .param(0)
            .filter(|id| c2c_callstate::is_valid_call_id(id));
        if let (true, Some(id)) = (routes::is_browser_route(&route), call_id) {
            let span = crate::calls::span(id);
            return self.dispatch(route, head, body, ctx).instrument(span).await;
        }
        if route == routes::CLICK2CALL {
            let span = tracing::info_span!("call", call_id = tracing::field::Empty);
            return self.dispatch(route, head, body, ctx).instrument(span).await;
        }
        self.dispatch(route, head, body, ctx).await
    }
}

impl Api {
    async fn dispatch(
        &self,
        route: c2c_plugin_api::RouteInfo,
        head: &RequestHead<'_>,
        body: &Bytes,
        ctx: &mut RequestCtx,
    ) -> Decision {
        let app = &self.app;
        // Every awaited handler is boxed: unboxed, this future would be as large as the
        // largest handler's state (click2call, connect, ...), and async-trait moves the
        // whole of it onto the heap on every request — the synchronous routes (/livez,
        // /normalize) paid for a memmove of kilobytes they never use.
        let result = match route {
            routes::LIVEZ => Ok(service::livez()),
            routes::READYZ => Ok(service::readyz(app).await),
            routes::METRICS => Ok(service::metrics(app)),
            routes::OPENAPI => Ok(openapi::serve()),
            routes::NORMALIZE => normalize::handle(app, ctx, body),
            routes::CLICK2CALL => Box::pin(calls::click2call(app, ctx, body)).await,
            routes::CALL_CONNECT => Box::pin(calls::connect(app, ctx, head)).await,
            routes::CALL_HANGUP => Box::pin(calls::hangup(app, ctx, head)).await,
            routes::CALL_STATUS => Box::pin(calls::status(app, ctx, head, body)).await,
            routes::CALL_GET => Box::pin(calls::get(app, ctx, head)).await,
            routes::CALL_PREFLIGHT => Box::pin(calls::preflight(app, ctx, head)).await,
            routes::LIVEKIT_WEBHOOK => Box::pin(livekit_webhook::handle(app, head, body)).await,
            routes::ANALYTICS => Box::pin(reports::analytics(app, ctx, head)).await,
            routes::CALL_LOG => Box::pin(reports::call_log(app, ctx, head)).await,
            routes::ASSET => assets::serve(app, ctx, head),
            routes::CONSOLE_SESSION => console::session(app, ctx),
            routes::CONSOLE_TENANT => Box::pin(console::tenant(app, ctx)).await,
            routes::CONSOLE_NORMALIZE => console::normalize(app, ctx, body),
            routes::CONSOLE_LIVEKIT_VALIDATE => {
                Box::pin(console::livekit_validate(app, ctx, body)).await
            }
            routes::CONSOLE_CALL => Box::pin(console::call(app, ctx)).await,
            routes::CONSOLE_SANDBOX_INBOUND => {
                Box::pin(console_sandbox::inbound(app, ctx, body)).await
            }
            routes::CONSOLE_SANDBOX_JOIN => Box::pin(console_sandbox::join(app, ctx, body)).await,
            routes::WEBHOOKS_REPLAY => Box::pin(replay::handle(app, body)).await,
            routes::OWNER_OUTBOUND_GET => Box::pin(owner::get(app, ctx)).await,
            routes::OWNER_CALL_GET => Box::pin(owner_calls::get(app, ctx)).await,
            routes::OWNER_BACKUP => Ok(backup::head()),
            routes::WALLET_GET => Box::pin(wallet::get(app, ctx, head, wallet::Format::Json)).await,
            routes::WALLET_CSV => Box::pin(wallet::get(app, ctx, head, wallet::Format::Csv)).await,
            routes::OWNER_GATEWAY_GET => Box::pin(tenants::platform_get(app)).await,
            routes::OWNER_GATEWAY_PATCH => Box::pin(tenants::platform_patch(app, ctx, body)).await,
            routes::OWNER_TENANTS_LIST => Box::pin(tenants::list(app)).await,
            routes::OWNER_TENANT_CREATE => Box::pin(tenants::create(app, ctx, body)).await,
            routes::OWNER_TENANT_GET | routes::CONSOLE_SETTINGS_GET => {
                Box::pin(tenants::get(app, ctx)).await
            }
            routes::OWNER_TENANT_PATCH | routes::CONSOLE_SETTINGS_PATCH => {
                Box::pin(tenants::patch(app, ctx, body)).await
            }
            routes::OWNER_WALLET_ENTRY => Box::pin(wallet::post_entry(app, ctx, body)).await,
            routes::OWNER_OUTBOUND_SET => Box::pin(owner::set(app, ctx, body)).await,
            routes::CALL_TOKEN => Box::pin(calls::token(app, ctx, head)).await,
            routes::CALL_ACCEPT => Box::pin(inbound::accept(app, ctx, head)).await,
            routes::PRESENCE => agents::presence_without_upgrade(app),
            routes::AGENTS_LIST => agents::list(app, ctx, head),
            routes::AGENT_GET => agents::get(app, ctx),
            routes::AGENT_PUT => Box::pin(agents::put(app, ctx, body)).await,
            routes::AGENT_DELETE => Box::pin(agents::delete(app, ctx)).await,
            routes::AGENT_SESSION => agents::session(app, ctx, body),
            routes::CONSOLE_AGENTS => agents::console_list(app, ctx, head),
            routes::CONSOLE_AGENTS_AUDIT => Box::pin(agents::console_audit(app, ctx)).await,
            routes::CONSOLE_AGENT_TELEPHONY => {
                Box::pin(agents::console_telephony(app, ctx, body)).await
            }
            routes::CONSOLE_PRESENCE_SESSION => agents::console_presence_session(app, ctx),
            _ => Err(ApiError::internal(format!(
                "route {} has no handler",
                route.name
            ))),
        };
        match result {
            Ok(resp) => Decision::Respond(resp),
            Err(e) => e.into(),
        }
    }
}
