//! The two SDP operations anchoring needs (RFC 4566 line grammar, RFC 3605 `a=rtcp`):
//! reading where a side wants its audio ([`audio_target`]) and pointing a body's audio
//! at the edge's own port pair ([`rewrite`]), keeping every other line, its order and
//! its line endings as they were (codecs, `a=ptime`, `telephone-event`, direction).
//!
//! Only audio is anchored: LiveKit SIP offers one audio stream. A body with another
//! active stream is refused ([`SdpError::Unsupported`]) rather than half anchored (its
//! connection line would point at ports nobody relays). Connection addresses must be
//! IP literals (a host name, which RFC 4566 allows, is refused: the relay would have to
//! resolve it). `a=rtcp-mux` is kept as it is: the relay passes RTCP that arrives on
//! the RTP port along with the RTP.

use std::net::{IpAddr, SocketAddr};

use crate::ports::PortPair;

/// Why a body cannot be read or anchored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP without an active audio stream")]
    NoAudio,
    #[error("SDP audio stream without a connection address")]
    NoConnection,
    #[error("malformed SDP line: {0}")]
    Malformed(String),
    #[error("SDP not anchored: {0}")]
    Unsupported(&'static str),
}

/// Where a side receives audio: RTP, and RTCP (`a=rtcp`, else the port above); and
/// whether it says it will send any (`a=sendrecv`/`sendonly`, the default, vs
/// `a=recvonly`/`inactive`: a call on hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTarget {
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
    pub sends: bool,
}

/// `sendrecv`, `sendonly`, `recvonly` or `inactive` (RFC 4566 section 6).
fn direction(line: &str) -> Option<&str> {
    match line.strip_prefix("a=")? {
        d @ ("sendrecv" | "sendonly" | "recvonly" | "inactive") => Some(d),
        _ => None,
    }
}

/// Splits a body into lines, each with its line ending (`\r\n` or `\n`) kept apart.
fn lines(sdp: &str) -> impl Iterator<Item = (&str, &str)> {
    sdp.split_inclusive('\n').map(|l| {
        let body = l.trim_end_matches(['\r', '\n']);
        (body, &l[body.len()..])
    })
}

/// `c=IN IP4 203.0.113.7` -> the address.
fn connection(value: &str) -> Result<IpAddr, SdpError> {
    let bad = || SdpError::Malformed(format!("c={value}"));
    let mut f = value.split_ascii_whitespace();
    let (Some("IN"), Some(kind), Some(addr)) = (f.next(), f.next(), f.next()) else {
        return Err(bad());
    };
    // A multicast TTL or count (`/127`) is not ours to keep: unicast only.
    let ip: IpAddr = addr
        .split('/')
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|_| bad())?;
    match (kind, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(bad()),
    }
}

/// `m=audio 49170 RTP/AVP 0 8 101` -> ("audio", 49170).
fn media(value: &str) -> Result<(&str, u16), SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (Some(kind), Some(port)) = (f.next(), f.next()) else {
        return Err(SdpError::Malformed(format!("m={value}")));
    };
    // `49170/2` (a port count) is not used by telephony peers; refused.
    let port = port
        .parse()
        .map_err(|_| SdpError::Malformed(format!("m={value}")))?;
    Ok((kind, port))
}

/// What the audio section said: its port, its own connection address, its `a=rtcp`.
type AudioLines = (u16, Option<IpAddr>, Option<(u16, Option<IpAddr>)>);

/// Where the body's (first active) audio stream wants RTP and RTCP.
pub fn audio_target(sdp: &str) -> Result<AudioTarget, SdpError> {
    let mut session_c = None;
    let mut in_media = false;
    let mut in_audio = false;
    let mut found: Option<AudioLines> = None;
    // The audio section's direction wins over the session's.
    let (mut session_dir, mut audio_dir) = (None, None);
    for (line, _) in lines(sdp) {
        if let Some(d) = direction(line) {
            if found.is_some() && in_audio {
                audio_dir = Some(d);
            } else if !in_media {
                session_dir = Some(d);
            }
            continue;
        }
        if let Some(v) = line.strip_prefix("m=") {
            if found.is_some() {
                break;
            }
            in_media = true;
            let (kind, port) = media(v)?;
            in_audio = kind == "audio" && port != 0;
            if in_audio {
                found = Some((port, None, None));
            }
        } else if let Some(v) = line.strip_prefix("c=") {
            let ip = connection(v)?;
            // Session level is before the first m= line only: a c= of another stream
            // (a disabled video, say) says nothing about the audio.
            match found.as_mut() {
                Some(f) if in_audio => f.1 = Some(ip),
                None if !in_media => session_c = Some(ip),
                _ => {}
            }
        } else if let Some(v) = line.strip_prefix("a=rtcp:") {
            if let (Some(f), true) = (found.as_mut(), in_audio) {
                f.2 = Some(rtcp_attr(v)?);
            }
        }
    }
    let (port, media_c, rtcp) = found.ok_or(SdpError::NoAudio)?;
    let ip = media_c.or(session_c).ok_or(SdpError::NoConnection)?;
    let rtcp = match rtcp {
        Some((p, addr)) => SocketAddr::new(addr.unwrap_or(ip), p),
        None => SocketAddr::new(ip, port.wrapping_add(1)),
    };
    let sends = matches!(
        audio_dir.or(session_dir).unwrap_or("sendrecv"),
        "sendrecv" | "sendonly"
    );
    Ok(AudioTarget {
        rtp: SocketAddr::new(ip, port),
        rtcp,
        sends,
    })
}

/// `a=rtcp:53020` or `a=rtcp:53020 IN IP4 126.16.64.4` (RFC 3605).
fn rtcp_attr(value: &str) -> Result<(u16, Option<IpAddr>), SdpError> {
    let bad = || SdpError::Malformed(format!("a=rtcp:{value}"));
    let (port, rest) = value.split_once(' ').unwrap_or((value, ""));
    let port = port.parse().map_err(|_| bad())?;
    let addr = if rest.trim().is_empty() {
        None
    } else {
        Some(connection(rest.trim()).map_err(|_| bad())?)
    };
    Ok((port, addr))
}

fn c_line(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("c=IN IP4 {v4}"),
        IpAddr::V6(v6) => format!("c=IN IP6 {v6}"),
    }
}

/// The body with its audio pointed at `ours` / `pair`: every connection line (session
/// and audio media level) names `ours`, the audio `m=` line's port is `pair.rtp`, an
/// `a=rtcp` line names `pair.rtcp` (and `ours` when it named an address). Anything else
/// is kept as it was. Refused: no active audio stream, or another active stream.
pub fn rewrite(sdp: &str, ours: IpAddr, pair: PortPair) -> Result<String, SdpError> {
    // Read it first: the same rules decide what is there to rewrite.
    audio_target(sdp)?;
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut section = Section::Session;
    let mut audio_seen = false;
    for (line, end) in lines(sdp) {
        if let Some(v) = line.strip_prefix("m=") {
            let (kind, port) = media(v)?;
            if port == 0 {
                section = Section::Inactive;
            } else if kind != "audio" || audio_seen {
                return Err(SdpError::Unsupported("a second active media stream"));
            } else {
                audio_seen = true;
                section = Section::Audio;
                // m=<media> <port> <proto> <fmt> ...: only the port changes (the line
                // is rebuilt from its tokens, so stray spaces or tabs cannot shift it).
                let rest: Vec<&str> = v.split_ascii_whitespace().skip(2).collect();
                out.push_str(&format!("m=audio {} {}{end}", pair.rtp, rest.join(" ")));
                continue;
            }
        } else if line.starts_with("c=") && section != Section::Inactive {
            out.push_str(&c_line(ours));
            out.push_str(end);
            continue;
        } else if let (Some(v), Section::Audio) = (line.strip_prefix("a=rtcp:"), section) {
            match rtcp_attr(v)? {
                (_, Some(_)) => {
                    out.push_str(&format!("a=rtcp:{} {}", pair.rtcp, &c_line(ours)[2..]))
                }
                (_, None) => out.push_str(&format!("a=rtcp:{}", pair.rtcp)),
            }
            out.push_str(end);
            continue;
        }
        out.push_str(line);
        out.push_str(end);
    }
    Ok(out)
}

/// Where [`rewrite`] is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Session,
    /// The audio stream (there is one at most).
    Audio,
    /// A stream with port 0 (refused or removed): left as it is.
    Inactive,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer as LiveKit SIP sends it (PCMU, PCMA, telephone-event).
    const LIVEKIT_OFFER: &str = "v=0\r\no=- 3912 3912 IN IP4 10.0.0.5\r\ns=LiveKit\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

    fn pair() -> PortPair {
        PortPair {
            rtp: 30000,
            rtcp: 30001,
        }
    }

    #[test]
    fn an_offer_is_read_and_pointed_at_the_edge_keeping_every_other_line() {
        let t = audio_target(LIVEKIT_OFFER).unwrap();
        assert_eq!(t.rtp, "10.0.0.5:40000".parse().unwrap());
        assert_eq!(t.rtcp, "10.0.0.5:40001".parse().unwrap());
        let ours: IpAddr = "203.0.113.9".parse().unwrap();
        let out = rewrite(LIVEKIT_OFFER, ours, pair()).unwrap();
        let want = LIVEKIT_OFFER
            .replace("c=IN IP4 10.0.0.5", "c=IN IP4 203.0.113.9")
            .replace("m=audio 40000 ", "m=audio 30000 ");
        assert_eq!(out, want);
        // o= keeps the originator's address: it names the session, not the media.
        assert!(out.contains("o=- 3912 3912 IN IP4 10.0.0.5\r\n"));
        let back = audio_target(&out).unwrap();
        assert_eq!(back.rtp, SocketAddr::new(ours, 30000));
    }

    #[test]
    fn a_media_level_connection_and_rtcp_attribute_win_and_are_rewritten() {
        let answer = "v=0\no=carrier 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\nm=audio 20000 RTP/AVP 8 101\nc=IN IP4 198.51.100.77\na=rtcp:20011 IN IP4 198.51.100.78\na=rtpmap:8 PCMA/8000\n";
        let t = audio_target(answer).unwrap();
        assert_eq!(t.rtp, "198.51.100.77:20000".parse().unwrap());
        assert_eq!(t.rtcp, "198.51.100.78:20011".parse().unwrap());
        let out = rewrite(answer, "192.0.2.1".parse().unwrap(), pair()).unwrap();
        assert_eq!(
            out,
            "v=0\no=carrier 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 30000 RTP/AVP 8 101\nc=IN IP4 192.0.2.1\na=rtcp:30001 IN IP4 192.0.2.1\na=rtpmap:8 PCMA/8000\n"
        );
        let plain = answer.replace("a=rtcp:20011 IN IP4 198.51.100.78", "a=rtcp:20011");
        let out = rewrite(&plain, "192.0.2.1".parse().unwrap(), pair()).unwrap();
        assert!(out.contains("\na=rtcp:30001\n"), "{out}");
    }

    #[test]
    fn ipv6_and_a_removed_stream_are_handled() {
        let sdp = "v=0\r\nc=IN IP6 2001:db8::5\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\nm=audio 5004 RTP/AVP 0\r\n";
        let t = audio_target(sdp).unwrap();
        assert_eq!(t.rtp, "[2001:db8::5]:5004".parse().unwrap());
        let out = rewrite(sdp, "2001:db8::1".parse().unwrap(), pair()).unwrap();
        assert_eq!(
            out,
            "v=0\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\nm=audio 30000 RTP/AVP 0\r\n"
        );
    }

    #[test]
    fn another_streams_connection_line_is_not_the_sessions_and_spacing_does_not_shift_the_port() {
        let sdp = "v=0\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\nm=audio  20000\tRTP/AVP 0\r\n";
        let t = audio_target(sdp).unwrap();
        assert_eq!(t.rtp, "198.51.100.1:20000".parse().unwrap());
        let out = rewrite(sdp, "192.0.2.1".parse().unwrap(), pair()).unwrap();
        assert!(out.ends_with("m=audio 30000 RTP/AVP 0\r\n"), "{out}");
        // The disabled stream's own line is left as it was.
        assert!(
            out.contains("m=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\n"),
            "{out}"
        );
    }

    #[test]
    fn the_direction_says_whether_a_side_sends() {
        let base = "v=0\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
        let m = "m=audio 4000 RTP/AVP 0\r\n";
        let sends = |sdp: String| audio_target(&sdp).unwrap().sends;
        assert!(sends(format!("{base}{m}")), "sendrecv by default");
        assert!(sends(format!("{base}{m}a=sendonly\r\n")));
        assert!(!sends(format!("{base}{m}a=recvonly\r\n")), "on hold");
        assert!(!sends(format!("{base}{m}a=inactive\r\n")));
        // The session's direction holds unless the audio section says otherwise.
        assert!(!sends(format!("{base}a=inactive\r\n{m}")));
        assert!(sends(format!("{base}a=inactive\r\n{m}a=sendrecv\r\n")));
        // Another stream's direction is not the audio's.
        assert!(sends(format!(
            "{base}{m}m=video 0 RTP/AVP 96\r\na=inactive\r\n"
        )));
    }

    #[test]
    fn what_cannot_be_anchored_is_refused() {
        assert_eq!(audio_target("v=0\r\nt=0 0\r\n"), Err(SdpError::NoAudio));
        assert_eq!(
            audio_target("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(SdpError::NoConnection)
        );
        assert!(matches!(
            audio_target("v=0\r\nc=IN IP4 not-an-ip\r\nm=audio 4000 RTP/AVP 0\r\n"),
            Err(SdpError::Malformed(_))
        ));
        assert!(matches!(
            audio_target("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio many RTP/AVP 0\r\n"),
            Err(SdpError::Malformed(_))
        ));
        let two_audio =
            format!("{LIVEKIT_OFFER}m=audio 0 RTP/AVP 0\r\nm=audio 40002 RTP/AVP 0\r\n");
        assert_eq!(
            rewrite(&two_audio, "192.0.2.1".parse().unwrap(), pair()),
            Err(SdpError::Unsupported("a second active media stream"))
        );
        let video = format!("{LIVEKIT_OFFER}m=video 40002 RTP/AVP 96\r\n");
        assert_eq!(
            rewrite(&video, "192.0.2.1".parse().unwrap(), pair()),
            Err(SdpError::Unsupported("a second active media stream"))
        );
    }
}
