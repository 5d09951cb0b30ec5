//! Refuses call attempts for tenants whose DLT outbound flag is off.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_plugin_api::{ApiError, Decision, Plugin, RequestCtx, RequestHead};

use crate::api::errors;
use crate::app::App;

pub struct DltGate {
    app: Arc<App>,
}

impl DltGate {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[async_trait]
impl Plugin for DltGate {
    fn name(&self) -> &'static str {
        "dlt_gate"
    }

    async fn on_request(&self, _head: &RequestHead<'_>, ctx: &mut RequestCtx) -> Decision {
        if !ctx.route.is_some_and(|r| r.dials) {
            return Decision::Continue;
        }
        let Some(tenant_id) = ctx.tenant() else {
            return Decision::Continue;
        };
        let policy = self.app.policy().get();
        let Some(tenant) = policy.tenant(tenant_id) else {
            return ApiError::forbidden("the tenant of this key no longer exists").into();
        };
        match self.app.dlt().check(tenant) {
            Ok(()) => Decision::Continue,
            Err(e) => {
                self.app
                    .metrics()
                    .dlt_blocked
                    .with_label_values(&[tenant_id])
                    .inc();
                errors::dlt_pending(&e).into()
            }
        }
    }
}
