//! The HTTP API the gateway answers itself. One module per resource; this plugin only
//! dispatches by route.

mod normalize;
mod owner;
mod service;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use c2c_plugin_api::{ApiError, Decision, Plugin, RequestCtx, RequestHead};

use crate::app::App;
use crate::routes;

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
    async fn on_body(&self, _head: &RequestHead<'_>, body: &Bytes, ctx: &mut RequestCtx) -> Decision {
        let Some(route) = ctx.route else {
            return ApiError::internal("no route").into();
        };
        let app = &self.app;
        let result = match route {
            routes::LIVEZ => Ok(service::livez()),
            routes::READYZ => Ok(service::readyz(app)),
            routes::METRICS => Ok(service::metrics(app)),
            routes::NORMALIZE => normalize::handle(app, ctx, body),
            routes::OWNER_OUTBOUND_GET => owner::get(app, ctx),
            routes::OWNER_OUTBOUND_SET => owner::set(app, ctx, body).await,
            _ => Err(ApiError::internal(format!("route {} has no handler", route.name))),
        };
        match result {
            Ok(resp) => Decision::Respond(resp),
            Err(e) => e.into(),
        }
    }
}
