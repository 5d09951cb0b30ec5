//! Turning a CRM's customer number into what a trunk dials.
//!
//! Owns: validation of the contract's 10-digit `customer_number`, the choice of trunk
//! (the tenant's default, enabled trunk), the internal dial string (trunk prefix +
//! number), the E.164 form and the caller ID (`did` from the request, else the trunk's
//! default DID), plus [`mask`] for logging numbers.
//!
//! Must not: let the dial prefix escape. [`DialPlan::normalize`] returns it only in
//! [`Normalized::dialed`]; everything shown to CRMs and browsers uses `clean` / `e164`.

use c2c_tenancy::{Tenant, Trunk};
use serde::Serialize;

/// Why a number or trunk choice was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// HTTP 422 `invalid_number`; the message says exactly what is wrong.
    #[error("{0}")]
    InvalidNumber(String),
    /// HTTP 422 `invalid_did`.
    #[error("{0}")]
    InvalidDid(String),
    /// HTTP 422 `unknown_trunk`: a label named by the caller does not exist.
    #[error("tenant has no trunk labelled '{0}'")]
    UnknownTrunk(String),
    /// HTTP 409 `no_trunk`.
    #[error("tenant '{0}' has no enabled default trunk; mark one trunk `default = true` and `enabled = true` in its policy")]
    NoTrunk(String),
}

impl DialError {
    pub fn code(&self) -> &'static str {
        match self {
            DialError::InvalidNumber(_) => "invalid_number",
            DialError::InvalidDid(_) => "invalid_did",
            DialError::NoTrunk(_) => "no_trunk",
            DialError::UnknownTrunk(_) => "unknown_trunk",
        }
    }
}

/// The result of normalising one call request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Normalized {
    /// The CRM-facing 10-digit number (what `phone_to` carries).
    pub customer_number: String,
    /// `+91` + number.
    pub e164: String,
    /// Trunk prefix + number: what LiveKit SIP dials. Internal only.
    pub dialed: String,
    /// Caller ID presented to the customer, in E.164.
    pub caller_id: String,
    pub trunk: String,
    pub livekit_trunk_id: String,
}

/// The dial plan of one tenant.
pub struct DialPlan<'a> {
    tenant: &'a Tenant,
}

const COUNTRY: &str = "+91";

impl<'a> DialPlan<'a> {
    pub fn new(tenant: &'a Tenant) -> Self {
        Self { tenant }
    }

    /// Validates the CRM number and optional DID and picks the trunk.
    pub fn normalize(
        &self,
        customer_number: &str,
        did: Option<&str>,
    ) -> Result<Normalized, DialError> {
        let trunk = self
            .tenant
            .default_trunk()
            .ok_or_else(|| DialError::NoTrunk(self.tenant.id.clone()))?;
        self.normalize_on(trunk, customer_number, did)
    }

    /// Like [`Self::normalize`] but on a named trunk, enabled or not: the console's
    /// "Test normalize" previews any trunk. Calls always use [`Self::normalize`].
    pub fn preview(
        &self,
        trunk: &str,
        customer_number: &str,
        did: Option<&str>,
    ) -> Result<Normalized, DialError> {
        let trunk = self
            .tenant
            .trunk(trunk)
            .ok_or_else(|| DialError::UnknownTrunk(trunk.to_string()))?;
        self.normalize_on(trunk, customer_number, did)
    }

    fn normalize_on(
        &self,
        trunk: &Trunk,
        customer_number: &str,
        did: Option<&str>,
    ) -> Result<Normalized, DialError> {
        let clean = validate_number(customer_number)?;
        let caller_id = match did.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => normalize_did(d)?,
            None => trunk.default_did.clone(),
        };
        let mut dialed = String::with_capacity(trunk.prefix.len() + 10);
        dialed.push_str(&trunk.prefix);
        dialed.push_str(&clean);
        Ok(Normalized {
            e164: e164(&clean),
            customer_number: clean,
            dialed,
            caller_id,
            trunk: trunk.label.clone(),
            livekit_trunk_id: trunk.livekit_trunk_id.clone(),
        })
    }
}

/// The contract: exactly 10 digits. Anything else is refused with a sentence that tells
/// the CRM developer what to send instead.
pub fn validate_number(raw: &str) -> Result<String, DialError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(DialError::InvalidNumber(
            "customer_number is empty; send the customer's 10-digit number".into(),
        ));
    }
    if s.starts_with('+') || (s.len() == 12 && s.starts_with("91")) {
        return Err(DialError::InvalidNumber(
            "customer_number must be the 10-digit national number without +91 or 91".into(),
        ));
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_digit()) {
        return Err(DialError::InvalidNumber(format!(
            "customer_number must contain digits only (found {c:?}); send exactly 10 digits"
        )));
    }
    if s.len() == 11 && s.starts_with('0') {
        return Err(DialError::InvalidNumber(
            "customer_number must be 10 digits without the leading 0".into(),
        ));
    }
    if s.len() != 10 {
        return Err(DialError::InvalidNumber(format!(
            "customer_number must be exactly 10 digits, got {}",
            s.len()
        )));
    }
    if s.starts_with('0') {
        return Err(DialError::InvalidNumber(
            "customer_number cannot start with 0; send the 10-digit number".into(),
        ));
    }
    Ok(s.to_string())
}

/// Caller IDs arrive in every shape CRMs have; accept the unambiguous Indian ones and
/// return E.164.
pub fn normalize_did(raw: &str) -> Result<String, DialError> {
    // Most DIDs arrive without separators: only those pay for a copy.
    let compact: std::borrow::Cow<'_, str> = if raw.bytes().any(|b| matches!(b, b' ' | b'-')) {
        raw.chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect::<String>()
            .into()
    } else {
        raw.into()
    };
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DialError::InvalidDid(
            "did must be a phone number: +91 followed by 10 digits, or 10 digits".into(),
        ));
    }
    let national = match digits.len() {
        10 => digits,
        11 if digits.starts_with('0') => &digits[1..],
        12 if digits.starts_with("91") => &digits[2..],
        _ => {
            return Err(DialError::InvalidDid(format!(
                "did {:?} is not an Indian number (+91 followed by 10 digits)",
                mask(raw)
            )))
        }
    };
    if national.starts_with('0') {
        return Err(DialError::InvalidDid(
            "did cannot start with 0 after +91".into(),
        ));
    }
    Ok(e164(national))
}

/// `+91` + a validated national number. On the request path of every call, so it
/// builds the string directly rather than through the formatting machinery.
fn e164(national: &str) -> String {
    let mut s = String::with_capacity(COUNTRY.len() + national.len());
    s.push_str(COUNTRY);
    s.push_str(national);
    s
}

/// Masks a phone number for logs: keeps the first two and last two digits.
pub fn mask(number: &str) -> String {
    let n = number.chars().count();
    if n <= 4 {
        return "*".repeat(n);
    }
    number
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 2 || i >= n - 2 { c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2c_tenancy::DltPolicy;

    fn trunk(label: &str, default: bool, enabled: bool) -> Trunk {
        Trunk {
            rate: None,
            media: Default::default(),
            category: Default::default(),
            label: label.into(),
            livekit_trunk_id: format!("ST_{label}"),
            prefix: "9911".into(),
            default_did: "+919999999999".into(),
            carrier: "sip:127.0.0.1:5060".into(),
            default,
            enabled,
            sources: vec![],
        }
    }

    fn tenant(trunks: Vec<Trunk>) -> Tenant {
        Tenant {
            id: "acme".into(),
            name: "Acme".into(),
            region: "singapore".into(),
            allowed_origins: vec![],
            livekit: None,
            crm_webhook: None,
            dlt: DltPolicy::commercial("1", true, vec!["+919999999999".into()]),
            limits: c2c_tenancy::TenantLimits {
                requests_per_second: 50,
                max_concurrent_calls: 100,
            },
            agents: Default::default(),
            trunks,
            inbound: Default::default(),
        }
    }

    #[test]
    fn normalizes_to_clean_e164_dialed_and_caller_id() {
        let t = tenant(vec![trunk("a", false, true), trunk("b", true, true)]);
        let n = DialPlan::new(&t).normalize("9530251797", None).unwrap();
        assert_eq!(n.customer_number, "9530251797");
        assert_eq!(n.e164, "+919530251797");
        assert_eq!(n.dialed, "99119530251797");
        assert_eq!(n.caller_id, "+919999999999");
        assert_eq!(n.trunk, "b");
    }

    #[test]
    fn did_overrides_the_trunk_default_and_is_normalized() {
        let t = tenant(vec![trunk("a", true, true)]);
        for d in [
            "+918888888888",
            "918888888888",
            "08888888888",
            "8888888888",
            "+91 88888-88888",
        ] {
            let n = DialPlan::new(&t).normalize("9530251797", Some(d)).unwrap();
            assert_eq!(n.caller_id, "+918888888888", "{d}");
        }
        assert_eq!(
            DialPlan::new(&t)
                .normalize("9530251797", Some("12345"))
                .unwrap_err()
                .code(),
            "invalid_did"
        );
    }

    #[test]
    fn wrong_numbers_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("+919530251797", "without +91"),
            ("919530251797", "without +91"),
            ("09530251797", "leading 0"),
            ("95302517", "got 8"),
            ("95302517970", "got 11"),
            ("95302x1797", "digits only"),
            ("0530251797", "cannot start with 0"),
        ];
        for (input, why) in cases {
            let e = validate_number(input).unwrap_err();
            assert_eq!(e.code(), "invalid_number");
            assert!(e.to_string().contains(why), "{input}: {e}");
        }
    }

    #[test]
    fn no_enabled_default_trunk_is_no_trunk() {
        let t = tenant(vec![trunk("a", true, false), trunk("b", false, true)]);
        let e = DialPlan::new(&t).normalize("9530251797", None).unwrap_err();
        assert_eq!(e.code(), "no_trunk");
        assert_eq!(
            DialPlan::new(&tenant(vec![]))
                .normalize("9530251797", None)
                .unwrap_err()
                .code(),
            "no_trunk"
        );
    }

    #[test]
    fn preview_uses_the_named_trunk_even_if_disabled() {
        let mut t2 = trunk("b", false, false);
        t2.prefix = "0".into();
        let t = tenant(vec![trunk("a", true, true), t2]);
        let n = DialPlan::new(&t).preview("b", "9530251797", None).unwrap();
        assert_eq!(n.dialed, "09530251797");
        assert_eq!(
            DialPlan::new(&t)
                .preview("zz", "9530251797", None)
                .unwrap_err()
                .code(),
            "unknown_trunk"
        );
    }

    #[test]
    fn mask_hides_the_middle() {
        assert_eq!(mask("9530251797"), "95******97");
        assert_eq!(mask("123"), "***");
    }
}
