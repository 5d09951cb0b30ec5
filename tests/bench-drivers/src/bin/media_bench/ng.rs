//! Just enough of rtpengine's ng protocol (bencoded dictionaries over UDP, each message
//! prefixed with a cookie) to offer and answer a call and read the SDP back.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn bstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// `offer` or `answer` of call `call_id` with `sdp`; returns rtpengine's SDP.
pub fn command(
    sock: &UdpSocket,
    ng: SocketAddr,
    cmd: &str,
    call_id: &str,
    to_tag: Option<&str>,
    sdp: &str,
) -> String {
    let cookie = format!("{cmd}-{call_id}");
    let mut msg = format!("{cookie} ").into_bytes();
    msg.push(b'd');
    let mut pairs = vec![
        ("call-id", call_id),
        ("command", cmd),
        ("from-tag", "ft"),
        ("sdp", sdp),
    ];
    if let Some(t) = to_tag {
        pairs.push(("to-tag", t));
    }
    for (k, v) in pairs {
        bstr(&mut msg, k);
        bstr(&mut msg, v);
    }
    msg.push(b'e');
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    sock.send_to(&msg, ng).expect("ng send");
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("ng reply");
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(rest) = reply.strip_prefix(&format!("{cookie} ")) {
            assert!(rest.contains("6:result2:ok"), "rtpengine refused: {rest}");
            return sdp_of(rest);
        }
    }
}

/// The `sdp` value of a bencoded reply.
fn sdp_of(reply: &str) -> String {
    let at = reply.find("3:sdp").expect("sdp in reply") + 5;
    let rest = &reply[at..];
    let colon = rest.find(':').expect("length");
    let len: usize = rest[..colon].parse().expect("length");
    rest[colon + 1..colon + 1 + len].to_string()
}

/// The audio port of an SDP body.
pub fn audio_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio port")
}
