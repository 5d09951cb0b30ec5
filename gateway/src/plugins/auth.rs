//! Authenticates `X-api-key` for routes that need a key, and checks its scope.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_plugin_api::{
    Access, ApiError, Decision, Plugin, RequestCtx, RequestHead, Scope, X_API_KEY,
};
use c2c_tenancy::KeyRejection;

use crate::app::App;

pub struct Auth {
    app: Arc<App>,
}

impl Auth {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[async_trait]
impl Plugin for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    /// Runs for every request, `Upgrade` or not: the decision depends only on the route.
    async fn on_request(&self, head: &RequestHead<'_>, ctx: &mut RequestCtx) -> Decision {
        let Some(route) = ctx.route else {
            return Decision::Continue;
        };
        let scopes: &[Scope] = match &route.access {
            Access::Public => return Decision::Continue,
            Access::Key(scope) => std::slice::from_ref(scope),
            Access::AnyKey(scopes) => scopes,
        };
        let policy = self.app.policy.get();
        match policy.keys.authenticate(head.header(X_API_KEY)) {
            Ok(p) if scopes.iter().any(|s| p.has(*s)) => {
                ctx.principal = Some(p);
                Decision::Continue
            }
            Ok(p) => {
                self.app
                    .metrics
                    .auth_failures
                    .with_label_values(&["scope"])
                    .inc();
                let wanted: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
                ApiError::forbidden(format!(
                    "key '{}' lacks the '{}' scope this endpoint requires",
                    p.key_id,
                    wanted.join("' or '")
                ))
                .into()
            }
            Err(why) => {
                let reason = match why {
                    KeyRejection::Missing => "missing",
                    KeyRejection::Malformed | KeyRejection::Unknown => "invalid",
                };
                self.app
                    .metrics
                    .auth_failures
                    .with_label_values(&[reason])
                    .inc();
                // One answer for all three: the caller must not learn which it was.
                ApiError::unauthorized().into()
            }
        }
    }
}
