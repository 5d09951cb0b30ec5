//! Matches the request to a route (or answers 404/405).

use async_trait::async_trait;
use c2c_plugin_api::{ApiError, Decision, JsonResponse, Plugin, RequestCtx, RequestHead};
use http::StatusCode;

use crate::routes::{self, Miss};

pub struct Router;

#[async_trait]
impl Plugin for Router {
    fn name(&self) -> &'static str {
        "router"
    }

    async fn on_request(&self, head: &RequestHead<'_>, ctx: &mut RequestCtx) -> Decision {
        match routes::find(head.method, head.path()) {
            Ok((route, params)) => {
                ctx.route = Some(route);
                ctx.params = params;
                Decision::Continue
            }
            Err(Miss::NotFound) => {
                ApiError::not_found(format!("no route for {}", head.path())).into()
            }
            Err(Miss::MethodNotAllowed(allowed)) => {
                let allow = allowed
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let resp: JsonResponse = ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{} is not allowed here; use {allow}", head.method),
                )
                .into();
                Decision::Respond(resp.with_header(http::header::ALLOW, &allow))
            }
        }
    }
}
