//! One socket of a call and the memory the kernel uses for its operations.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, squeue, types};

use crate::relay::state::MAX_DATAGRAM;

/// `IORING_RECVSEND_POLL_FIRST`: the socket was just drained, so wait for data
/// instead of trying a read that would find none.
const RECVSEND_POLL_FIRST: u16 = 1;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Idle,
    Recv,
    /// A send out of the paired socket, from this buffer.
    Send,
}

/// Buffers per socket: one can take the next datagram while the other's is still being
/// sent, so a socket reads again in the round its datagram came in, whatever the send
/// does. (With one, a socket read at most one datagram every two rounds, and under
/// load its queue grew until the kernel dropped.)
pub(super) const BUFFERS: usize = 2;

/// One datagram's memory: what the kernel reads into and sends from, the addresses and
/// the message header that point at them.
pub(super) struct Buffer {
    pub(super) op: Op,
    pub(super) data: [u8; MAX_DATAGRAM],
    pub(super) from: libc::sockaddr_storage,
    to: libc::sockaddr_storage,
    to_len: libc::socklen_t,
    iov: libc::iovec,
    pub(super) msg: libc::msghdr,
}

/// One socket and its buffers: boxed, so the kernel's pointers into them stay valid
/// however the call moves.
pub(super) struct Port {
    pub(super) sock: UdpSocket,
    pub(super) bufs: [Buffer; BUFFERS],
    /// A read is in the ring (or the socket failed for good: see `dead`).
    pub(super) reading: bool,
    /// The socket answered an error that will not pass: it is not read again.
    pub(super) dead: bool,
}

impl Buffer {
    fn empty() -> Buffer {
        // SAFETY: sockaddr_storage and msghdr are plain C structs; all-zero is valid
        // for both (an empty address, a message with no buffers).
        let (from, to, msg) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        Buffer {
            op: Op::Idle,
            data: [0; MAX_DATAGRAM],
            from,
            to,
            to_len: 0,
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            msg,
        }
    }

    /// Points the header at this buffer's own memory (once it no longer moves).
    fn wire(&mut self) {
        self.iov.iov_base = self.data.as_mut_ptr().cast();
        self.iov.iov_len = MAX_DATAGRAM;
        self.msg.msg_iov = &raw mut self.iov;
        self.msg.msg_iovlen = 1;
        self.msg.msg_name = (&raw mut self.from).cast();
    }
}

impl Port {
    pub(super) fn new(sock: UdpSocket) -> Box<Port> {
        let mut p = Box::new(Port {
            sock,
            bufs: [Buffer::empty(), Buffer::empty()],
            reading: false,
            dead: false,
        });
        for b in &mut p.bufs {
            b.wire();
        }
        p
    }

    /// A read into buffer `b`. The kernel waits for data before it reads
    /// (`RECVSEND_POLL_FIRST`): at 50 packets a second per socket, a read tried at once
    /// would almost always find nothing (measured: 30 % more CPU per packet at 500
    /// calls), and a socket that does hold data is found ready as the wait is armed.
    pub(super) fn recv(&mut self, b: usize, user_data: u64) -> squeue::Entry {
        let fd = types::Fd(self.sock.as_raw_fd());
        self.reading = true;
        let buf = &mut self.bufs[b];
        buf.msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        buf.msg.msg_flags = 0;
        buf.op = Op::Recv;
        opcode::RecvMsg::new(fd, &raw mut buf.msg)
            .ioprio(RECVSEND_POLL_FIRST)
            .build()
            .user_data(user_data)
    }

    /// Sends buffer `b`'s first `len` bytes to `to` out of `out` (the paired socket).
    pub(super) fn send(
        &mut self,
        b: usize,
        out: RawFd,
        len: usize,
        to: SocketAddr,
        user_data: u64,
    ) -> squeue::Entry {
        let buf = &mut self.bufs[b];
        buf.to_len = write_sockaddr(to, &mut buf.to);
        buf.op = Op::Send;
        opcode::Send::new(types::Fd(out), buf.data.as_ptr(), len as u32)
            .dest_addr((&raw const buf.to).cast())
            .dest_addr_len(buf.to_len)
            .build()
            .user_data(user_data)
    }

    /// A buffer with nothing in flight, if any.
    pub(super) fn idle_buffer(&self) -> Option<usize> {
        self.bufs.iter().position(|b| b.op == Op::Idle)
    }
}

pub(super) fn read_sockaddr(
    ss: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(ss.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and it is large
            // and aligned enough for any address.
            let a = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn write_sockaddr(addr: SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin = unsafe { &mut *std::ptr::from_mut(ss).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe { &mut *std::ptr::from_mut(ss).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Errors a socket's read can carry and still read again: ICMP answers to what it sent
/// (a peer's closed port), and the kernel short of memory for a moment.
pub(super) fn transient(errno: i32) -> bool {
    matches!(
        errno,
        libc::ECONNREFUSED
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EINTR
            | libc::EAGAIN
            | libc::ENOBUFS
            | libc::ENOMEM
    )
}
