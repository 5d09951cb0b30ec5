//! `POST /api/c2c/normalize`: "Test normalize" for a CRM (`calls` key). The dial prefix is
//! the gateway's secret (the contract: "the CRM never sees it"), so a CRM gets the clean
//! number, its E.164 form and the caller ID only; the console's route
//! (`/api/c2c/console/tenants/{tenant}/normalize`, console and owner keys) shows the
//! dialed string and the trunk.

use std::borrow::Cow;

use bytes::Bytes;
use c2c_dialplan::DialPlan;
use c2c_dialplan::Normalized;
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::errors;
use crate::app::App;
use crate::body::parse_json;

/// A number (and optional caller ID) to run through the tenant's dial plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer_number": "9530251797"}))]
pub(crate) struct NormalizeRequest<'a> {
    /// The customer's number as a CRM would send it; the same rules as `/click2call`'s
    /// `customer_number` (exactly 10 digits, else `422 invalid_number`).
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

/// What a CRM sees of a normalised number: never the internal dial string or trunk.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"customer_number": "9530251797", "e164": "+919530251797", "caller_id": "+919999999999"}))]
pub(crate) struct CrmNormalized<'a> {
    /// The clean 10-digit number (what `phone_to` of the webhook will carry).
    customer_number: &'a str,
    /// `+91` + the number.
    e164: &'a str,
    /// The caller ID the customer would see, in E.164.
    caller_id: &'a str,
}

impl<'a> From<&'a Normalized> for CrmNormalized<'a> {
    fn from(n: &'a Normalized) -> Self {
        Self {
            customer_number: &n.customer_number,
            e164: &n.e164,
            caller_id: &n.caller_id,
        }
    }
}

pub fn handle(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let tenant = ctx
        .tenant()
        .ok_or_else(|| ApiError::forbidden("the tenant of this key no longer exists"))?;
    let n = for_tenant(app, tenant, body)?;
    Ok(JsonResponse::json(StatusCode::OK, &CrmNormalized::from(&n)))
}

/// Normalizes for a named tenant (the console names it; the owner key has none): the
/// full view, dial string and trunk included. Never answer a CRM with it.
pub fn for_tenant(app: &App, tenant: &str, body: &Bytes) -> Result<Normalized, ApiError> {
    let req: NormalizeRequest = parse_json(body)?;
    let policy = app.policy().get();
    let tenant = policy
        .tenant(tenant)
        .ok_or_else(|| ApiError::forbidden("the tenant of this key no longer exists"))?;
    let plan = DialPlan::new(tenant);
    match &req.trunk {
        Some(t) => plan.preview(t, &req.customer_number, req.did.as_deref()),
        None => plan.normalize(&req.customer_number, req.did.as_deref()),
    }
    .map_err(errors::dial_plan)
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
