//! Where a message came from or goes to: transport, address and (for TCP) connection.

use std::net::SocketAddr;

/// Identifies one TCP connection of the edge.
pub type ConnId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// From a URI `transport=` parameter (default UDP); `None` for unsupported ones.
    pub fn from_param(p: Option<&str>) -> Option<Transport> {
        match p {
            None => Some(Transport::Udp),
            Some(t) if t.eq_ignore_ascii_case("udp") => Some(Transport::Udp),
            Some(t) if t.eq_ignore_ascii_case("tcp") => Some(Transport::Tcp),
            Some(_) => None,
        }
    }
}

/// A peer reached over a transport; `conn` pins a TCP connection when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: Option<ConnId>,
}

impl Flow {
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Udp,
            addr,
            conn: None,
        }
    }

    pub fn tcp(addr: SocketAddr, conn: Option<ConnId>) -> Self {
        Self {
            transport: Transport::Tcp,
            addr,
            conn,
        }
    }
}
