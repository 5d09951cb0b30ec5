//! The edge's listening sockets, bound on their own so a process can bind them while it
//! starts (before any runtime or service exists) and hand them to
//! [`crate::SipEdge::start_on`] later: a port that is taken then stops start-up instead
//! of leaving a process that runs without its SIP edge, and no one else can take the
//! port between the check and the edge's start.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use crate::error::SipError;

/// UDP and TCP bound on one address and port, non-blocking, not yet serving.
#[derive(Debug)]
pub struct SipSockets {
    pub(crate) udp: UdpSocket,
    pub(crate) tcp: TcpListener,
}

impl SipSockets {
    /// Binds UDP, then TCP on the port UDP got (the same port: SIP peers reach both at
    /// one address). With port 0, retries until both get the same one. Needs no runtime.
    pub fn bind(listen: SocketAddr) -> Result<Self, SipError> {
        let mut last = None;
        for _ in 0..20 {
            let udp = UdpSocket::bind(listen).map_err(|source| SipError::Bind {
                transport: "udp",
                addr: listen,
                source,
            })?;
            let port = udp.local_addr().map(|a| a.port()).unwrap_or(listen.port());
            match TcpListener::bind(SocketAddr::new(listen.ip(), port)) {
                Ok(tcp) => return Self::nonblocking(listen, udp, tcp),
                Err(e) if listen.port() == 0 => last = Some(e),
                Err(source) => {
                    return Err(SipError::Bind {
                        transport: "tcp",
                        addr: listen,
                        source,
                    })
                }
            }
        }
        Err(SipError::Bind {
            transport: "tcp",
            addr: listen,
            source: last.unwrap_or_else(|| std::io::Error::other("no common UDP/TCP port")),
        })
    }

    /// tokio adopts std sockets only in non-blocking mode.
    fn nonblocking(listen: SocketAddr, udp: UdpSocket, tcp: TcpListener) -> Result<Self, SipError> {
        udp.set_nonblocking(true).map_err(|source| SipError::Bind {
            transport: "udp",
            addr: listen,
            source,
        })?;
        tcp.set_nonblocking(true).map_err(|source| SipError::Bind {
            transport: "tcp",
            addr: listen,
            source,
        })?;
        Ok(Self { udp, tcp })
    }

    /// The bound address (UDP; TCP has the same).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_transports_share_a_port_and_a_taken_port_is_an_error_naming_it() {
        let first = SipSockets::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        assert_eq!(first.tcp.local_addr().unwrap(), addr);
        match SipSockets::bind(addr) {
            Err(SipError::Bind {
                transport, source, ..
            }) => {
                assert_eq!(transport, "udp");
                assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
            }
            other => panic!("a taken port must not bind: {other:?}"),
        }
    }
}
