//! `POST /api/c2c/normalize`: the console's "Test normalize".

use std::borrow::Cow;

use bytes::Bytes;
use c2c_dialplan::{DialError, DialPlan};
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::body::parse_json;

/// A number (and optional caller ID) to run through the tenant's dial plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer_number": "9530251797"}))]
pub(crate) struct NormalizeRequest<'a> {
    /// The customer's number as a CRM would send it.
    // Borrowed from the body (copied only if it has JSON escapes): one allocation less
    // per field on the hottest authenticated route.
    #[serde(borrow)]
    customer_number: Cow<'a, str>,
    /// Caller ID to present; defaults to the trunk's DID.
    #[serde(default, borrow, deserialize_with = "optional_borrowed")]
    did: Option<Cow<'a, str>>,
    /// Preview a specific trunk instead of the one calls would use.
    #[serde(default, borrow, deserialize_with = "optional_borrowed")]
    trunk: Option<Cow<'a, str>>,
}

/// `Option<Cow<str>>` that borrows like a bare `Cow<str>` field does: serde's `borrow`
/// only reaches a `Cow` directly in a field, so the option goes through a newtype.
fn optional_borrowed<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

pub fn handle(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let tenant = ctx
        .tenant()
        .ok_or_else(|| ApiError::forbidden("the tenant of this key no longer exists"))?;
    for_tenant(app, tenant, body)
}

/// Normalizes for a named tenant (the console names it; the owner key has none).
pub fn for_tenant(app: &App, tenant: &str, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let req: NormalizeRequest = parse_json(body)?;
    let policy = app.policy.get();
    let tenant = policy
        .tenant(tenant)
        .ok_or_else(|| ApiError::forbidden("the tenant of this key no longer exists"))?;
    let plan = DialPlan::new(tenant);
    let n = match &req.trunk {
        Some(t) => plan.preview(t, &req.customer_number, req.did.as_deref()),
        None => plan.normalize(&req.customer_number, req.did.as_deref()),
    }
    .map_err(dial_error)?;
    Ok(JsonResponse::json(StatusCode::OK, &n))
}

/// Maps dial plan errors onto the HTTP error shape.
pub fn dial_error(e: DialError) -> ApiError {
    let status = match e {
        DialError::NoTrunk(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_fields_still_decode_json_escapes() {
        // Plain strings point into the body; one with an escape is decoded into a copy.
        let body = br#"{"customer_number":"953025179\u0037","did":"+918888888888"}"#;
        let req: NormalizeRequest<'_> = parse_json(body).unwrap();
        assert_eq!(req.customer_number, "9530251797");
        assert!(matches!(req.customer_number, Cow::Owned(_)));
        assert!(matches!(req.did, Some(Cow::Borrowed("+918888888888"))));
        assert!(req.trunk.is_none());
        let req: NormalizeRequest<'_> =
            parse_json(br#"{"customer_number":"9530251797","did":null,"trunk":"m\u0061in"}"#)
                .unwrap();
        assert!(matches!(req.customer_number, Cow::Borrowed("9530251797")));
        assert!(req.did.is_none());
        assert_eq!(req.trunk.as_deref(), Some("main"));
    }
}
