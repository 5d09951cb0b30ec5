//! Authenticates `X-api-key` for routes that need a key, and checks its scope. A request
//! carrying the key more than once is refused on every route that reads a key (the keyed
//! routes, and the browser routes that check a key when one is sent): the first value
//! would win here, a proxy in front might take the last.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_plugin_api::{
    Access, ApiError, Decision, Plugin, RequestCtx, RequestHead, Scope, X_API_KEY,
};
use c2c_tenancy::KeyRejection;

use crate::app::App;
use crate::routes;

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
        let reads_key = !matches!(route.access, Access::Public) || routes::is_browser_route(&route);
        if !reads_key {
            return Decision::Continue;
        }
        let key = match head.single_header(&X_API_KEY) {
            Ok(key) => key,
            Err(_) => {
                return self.refuse(
                    "duplicate",
                    ApiError::ambiguous_credential("X-api-key header"),
                )
            }
        };
        let scopes: &[Scope] = match &route.access {
            // A browser route: a key is optional and checked by the handler.
            Access::Public => return Decision::Continue,
            Access::Key(scope) => std::slice::from_ref(scope),
            Access::AnyKey(scopes) => scopes,
        };
        let policy = self.app.policy().get();
        match policy.keys.authenticate(key) {
            Ok(p) if scopes.iter().any(|s| p.has(*s)) => {
                ctx.principal = Some(p);
                Decision::Continue
            }
            Ok(p) => {
                let wanted: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
                self.refuse(
                    "scope",
                    ApiError::forbidden(format!(
                        "key '{}' lacks the '{}' scope this endpoint requires",
                        p.key_id,
                        wanted.join("' or '")
                    )),
                )
            }
            Err(why) => {
                let reason = match why {
                    KeyRejection::Missing => "missing",
                    KeyRejection::Malformed | KeyRejection::Unknown => "invalid",
                };
                // One answer for all three: the caller must not learn which it was.
                self.refuse(reason, ApiError::unauthorized())
            }
        }
    }
}

impl Auth {
    /// Counts the refusal in `c2c_auth_failures_total{reason}` and answers it.
    fn refuse(&self, reason: &str, e: ApiError) -> Decision {
        self.app
            .metrics()
            .auth_failures
            .with_label_values(&[reason])
            .inc();
        e.into()
    }
}
