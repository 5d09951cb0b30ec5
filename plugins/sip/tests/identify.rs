//! Tenant and trunk identification from X-C2C headers and the dial string.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;

use c2c_sip::{identify, RouteError};
use common::*;

#[test]
fn headers_then_prefixes() {
    let mut p = policy("sip:10.0.0.1:5060", "sip:10.0.0.2:5060");
    // By header: plain number or the trunk's dial string.
    let r = identify(&p, NUMBER, Some("acme"), None).unwrap();
    assert_eq!(
        (r.trunk.label.as_str(), r.dialed.as_str()),
        ("airtel-mum", "99119876543210")
    );
    let r = identify(&p, "99119876543210", Some("acme"), Some("airtel-mum")).unwrap();
    assert_eq!(r.number, NUMBER);
    assert_eq!(
        identify(&p, NUMBER, Some("nobody"), None).unwrap_err(),
        RouteError::UnknownTenant
    );
    assert_eq!(
        identify(&p, NUMBER, Some("acme"), Some("x")).unwrap_err(),
        RouteError::UnknownTrunk
    );
    assert_eq!(
        identify(&p, "12345", Some("acme"), None).unwrap_err(),
        RouteError::BadNumber
    );
    // By prefix alone; a plain number names no tenant.
    let r = identify(&p, "77229876543210", None, None).unwrap();
    assert_eq!(r.tenant.id, "globex");
    assert_eq!(
        identify(&p, NUMBER, None, None).unwrap_err(),
        RouteError::NoMatch
    );
    assert_eq!(
        identify(&p, "99110876543210", None, None).unwrap_err(),
        RouteError::NoMatch,
        "number may not start with 0"
    );
    // Two tenants on one prefix: ambiguous. Prefixes of different lengths never match
    // the same user (the number is exactly 10 digits).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    p.tenants.insert(
        "twin".into(),
        tenant(
            &dir,
            "twin",
            true,
            vec![trunk("twin-1", PREFIX, "sip:10.0.0.3:5060")],
        ),
    );
    assert_eq!(
        identify(&p, "99119876543210", None, None).unwrap_err(),
        RouteError::Ambiguous
    );
    p.tenants.insert(
        "long".into(),
        tenant(
            &dir,
            "long",
            true,
            vec![trunk("long-1", "99119", "sip:10.0.0.4:5060")],
        ),
    );
    let r = identify(&p, "991198765432101", None, None).unwrap();
    assert_eq!(r.tenant.id, "long");
    // A disabled trunk is refused when named, skipped when matching by prefix.
    let mut off = trunk("off", "5555", "sip:10.0.0.5:5060");
    off.enabled = false;
    p.tenants
        .insert("off".into(), tenant(&dir, "off", true, vec![off]));
    assert_eq!(
        identify(&p, NUMBER, Some("off"), Some("off")).unwrap_err(),
        RouteError::TrunkDisabled
    );
    assert_eq!(
        identify(&p, "55559876543210", None, None).unwrap_err(),
        RouteError::NoMatch
    );
}
