//! A listener that cannot be bound stops start-up (issue 18, item 6): two gateways on one
//! host must not both look healthy while only one owns the port. The second exits
//! non-zero within seconds, naming the address, the transport, the error and the flag.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A port free for both UDP and TCP on 127.0.0.1 (the SIP edge takes both).
fn free_sip_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs `c2c-gateway serve` and waits up to `within` for it to exit; a process still
/// running then is killed and reported as `None`.
fn serve_until_exit(
    policies: &Policies,
    data: &std::path::Path,
    listen: &str,
    sip: &str,
    within: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    let log = data.with_extension("second.log");
    let logf = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_c2c-gateway"))
        .args(["serve", "--listen", listen])
        .arg("--policies")
        .arg(policies.path())
        .arg("--data")
        .arg(data)
        .env_remove("C2C_LISTEN")
        .env("C2C_SIP_LISTEN", sip)
        .env("C2C_LOG", "info")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn a_second_gateway_on_the_same_sip_port_exits_naming_it() {
    let sip = format!("127.0.0.1:{}", free_sip_port());
    let p1 = Policies::example();
    let d1 = tempfile::tempdir().unwrap();
    let first = Gateway::start_with_env(p1.path(), d1.path(), &[("C2C_SIP_LISTEN", &sip)]);
    assert!(
        first
            .log_text()
            .lines()
            .any(|l| l.contains("SIP edge listening") && l.contains(&sip)),
        "the first gateway does not own {sip}:\n{}",
        first.log_text()
    );

    let p2 = Policies::example();
    let d2 = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let t = Instant::now();
    let (status, out) = serve_until_exit(&p2, d2.path(), &listen, &sip, Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("the second gateway kept running:\n{out}"));
    assert!(!status.success(), "{status}: {out}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        out.contains(&format!(
            "SIP edge cannot listen on {sip} (UDP): address in use"
        )),
        "{out}"
    );
    assert!(out.contains("--sip-listen"), "{out}");
    // It never answered on its HTTP port, and the first gateway is unaffected.
    assert!(std::net::TcpStream::connect(&listen).is_err());
    first.wait_ready();
}

#[test]
fn a_second_gateway_on_the_same_http_port_exits_naming_it() {
    let p1 = Policies::example();
    let d1 = tempfile::tempdir().unwrap();
    let first = Gateway::start(p1.path(), d1.path());
    let listen = format!("127.0.0.1:{}", first.port);

    let p2 = Policies::example();
    let d2 = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let (status, out) = serve_until_exit(
        &p2,
        d2.path(),
        &listen,
        "127.0.0.1:0",
        Duration::from_secs(10),
    );
    let status = status.unwrap_or_else(|| panic!("the second gateway kept running:\n{out}"));
    assert!(!status.success(), "{status}: {out}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        out.contains(&format!(
            "HTTP listener cannot listen on {listen} (TCP): address in use"
        )),
        "{out}"
    );
    assert!(out.contains("--listen"), "{out}");
    // No panic, no backtrace: one sentence.
    assert!(!out.contains("panicked"), "{out}");
    first.wait_ready();
}

#[test]
fn a_sip_edge_on_an_unspecified_address_without_an_advertised_one_stops_start_up() {
    // 0.0.0.0 is refused before anything is bound: nothing outside 127.0.0.0/8 is touched.
    let p = Policies::example();
    let d = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let (status, out) = serve_until_exit(
        &p,
        d.path(),
        &listen,
        "0.0.0.0:5060",
        Duration::from_secs(10),
    );
    let status = status.unwrap_or_else(|| panic!("the gateway kept running:\n{out}"));
    assert!(!status.success(), "{status}: {out}");
    assert!(
        out.contains("SIP edge cannot listen on 0.0.0.0:5060 without an address to advertise"),
        "{out}"
    );
    assert!(out.contains("--sip-advertise"), "{out}");
}
