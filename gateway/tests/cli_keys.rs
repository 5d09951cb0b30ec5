//! `c2c-gateway keys rotate|revoke` against a real policy directory and a running
//! gateway that hot-reloads it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::cli::{cli, ok, s, Out};
use common::*;

const T: Duration = Duration::from_secs(15);

/// Status of a tenant-key request (the call log of the key's own tenant).
async fn tenant_key_status(c: &reqwest::Client, gw: &Gateway, key: &str) -> u16 {
    c.get(gw.url("/api/c2c/calls"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn owner_key_status(c: &reqwest::Client, gw: &Gateway, key: &str) -> u16 {
    c.get(gw.url("/api/telephony/config/owner/acme/outbound-enable"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The key a `keys rotate` printed (the one line that is a key).
fn printed_key(o: &Out) -> String {
    ok(o);
    o.stdout
        .lines()
        .find(|l| l.starts_with("c2c_"))
        .unwrap_or_else(|| panic!("no key in {}", o.stdout))
        .to_string()
}

fn new_key_id(o: &Out) -> String {
    o.stdout
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no key id in {}", o.stdout))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_revoke_apply_to_a_running_gateway() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let pol = s(p.path());
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let acme_toml = p.path().join("tenants/acme.toml");

    // Rotate: a new key next to the old ones; all of them work after the hot reload.
    let o = cli(
        &["keys", "rotate", "--tenant", "acme", "--policies", &pol],
        &[],
    );
    let new_key = printed_key(&o);
    let new_id = new_key_id(&o);
    assert!(new_id.starts_with("acme-"), "{}", o.stdout);
    assert!(
        eventually(T, || async {
            tenant_key_status(&c, &gw, &new_key).await == 200
        })
        .await,
        "the rotated key never authenticated; log:\n{}",
        gw.log_text()
    );
    assert_eq!(tenant_key_status(&c, &gw, ACME_KEY).await, 200);
    assert_eq!(tenant_key_status(&c, &gw, ACME_OLD_KEY).await, 200);
    let text = std::fs::read_to_string(&acme_toml).unwrap();
    assert!(text.contains("# Example managed tenant whose DLT Principal Entity has been verified."));
    assert!(text.contains(&format!("id = \"{new_id}\"")));

    // Revoke the current key: 401 after the reload, the others still work.
    ok(&cli(
        &[
            "keys",
            "revoke",
            "--tenant",
            "acme",
            "--key-id",
            "acme-k2",
            "--policies",
            &pol,
        ],
        &[],
    ));
    assert!(
        eventually(T, || async {
            tenant_key_status(&c, &gw, ACME_KEY).await == 401
        })
        .await
    );
    assert_eq!(tenant_key_status(&c, &gw, &new_key).await, 200);
    assert_eq!(tenant_key_status(&c, &gw, ACME_OLD_KEY).await, 200);
    ok(&cli(
        &[
            "keys",
            "revoke",
            "--tenant",
            "acme",
            "--key-id",
            "acme-k1",
            "--policies",
            &pol,
        ],
        &[],
    ));

    // The last `calls` key is refused unless --force (the console key left would not let
    // the CRM in); nothing is written.
    let before = std::fs::read_to_string(&acme_toml).unwrap();
    let o = cli(
        &[
            "keys",
            "revoke",
            "--tenant",
            "acme",
            "--key-id",
            &new_id,
            "--policies",
            &pol,
        ],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("last \"calls\" key") && o.stderr.contains("--force"),
        "{}",
        o.stderr
    );
    let o = cli(
        &[
            "keys",
            "revoke",
            "--tenant",
            "acme",
            "--key-id",
            "nope",
            "--policies",
            &pol,
        ],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    // A change that would make the policy set invalid (a key id used by another
    // tenant) is refused before anything is written.
    let globex_toml = p.path().join("tenants/globex.toml");
    let globex_before = std::fs::read_to_string(&globex_toml).unwrap();
    let o = cli(
        &[
            "keys",
            "rotate",
            "--tenant",
            "globex",
            "--id",
            &new_id,
            "--policies",
            &pol,
        ],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("nothing was written") && o.stderr.contains("duplicate key id"),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&globex_toml).unwrap(),
        globex_before
    );
    assert_eq!(std::fs::read_to_string(&acme_toml).unwrap(), before);
    assert_eq!(tenant_key_status(&c, &gw, &new_key).await, 200);
    // No temp file is left next to the policies.
    let stray: Vec<_> = std::fs::read_dir(p.path().join("tenants"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // Owner keys: rotate in gateway.toml, revoke the old one.
    let o = cli(&["keys", "rotate", "--owner", "--policies", &pol], &[]);
    let owner2 = printed_key(&o);
    assert!(
        eventually(T, || async {
            owner_key_status(&c, &gw, &owner2).await == 200
        })
        .await
    );
    assert_eq!(owner_key_status(&c, &gw, OWNER_KEY).await, 200);
    ok(&cli(
        &[
            "keys",
            "revoke",
            "--owner",
            "--key-id",
            "owner-dev",
            "--policies",
            &pol,
        ],
        &[],
    ));
    assert!(
        eventually(T, || async {
            owner_key_status(&c, &gw, OWNER_KEY).await == 401
        })
        .await
    );
    assert_eq!(owner_key_status(&c, &gw, &owner2).await, 200);
    let o = cli(
        &[
            "keys",
            "revoke",
            "--owner",
            "--key-id",
            &new_key_id(&o),
            "--policies",
            &pol,
        ],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    // --force removes a last key: globex gets its first key, then loses it again.
    let o = cli(
        &["keys", "rotate", "--tenant", "globex", "--policies", &pol],
        &[],
    );
    let globex_key = printed_key(&o);
    let globex_id = new_key_id(&o);
    assert!(
        eventually(T, || async {
            tenant_key_status(&c, &gw, &globex_key).await == 200
        })
        .await
    );
    ok(&cli(
        &[
            "keys",
            "revoke",
            "--tenant",
            "globex",
            "--key-id",
            &globex_id,
            "--force",
            "--policies",
            &pol,
        ],
        &[],
    ));
    assert!(
        eventually(T, || async {
            tenant_key_status(&c, &gw, &globex_key).await == 401
        })
        .await
    );
    assert_eq!(
        std::fs::read_to_string(&globex_toml).unwrap(),
        globex_before
    );
    // Usage errors exit 2.
    assert_eq!(cli(&["keys", "rotate", "--policies", &pol], &[]).code, 2);
    // The policy the gateway now runs is exactly what `policy check` accepts.
    ok(&cli(&["policy", "check", &pol], &[]));
}
