//! Datagrams the kernel dropped on the edge's UDP socket because its receive buffer was
//! full. They never reach the edge, so no counter of ours sees them; callers see them as
//! 500 ms retransmissions and, under sustained overload, failed calls. Linux keeps a
//! per-socket count in the `drops` column of `/proc/net/udp` (and `udp6`); the edge
//! copies it into `c2c_sip_udp_receive_drops_total`.

use std::os::fd::AsRawFd;
use std::time::Duration;

use prometheus::IntCounter;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// How often the count is read: a few small `/proc` reads, off the I/O loop.
const INTERVAL: Duration = Duration::from_secs(5);

const TABLES: [&str; 2] = ["/proc/net/udp", "/proc/net/udp6"];

/// The socket's inode, which names it in `/proc/net/udp`: `/proc/self/fd/N` links to
/// `socket:[INODE]`. `None` off Linux or without `/proc`.
pub(crate) fn socket_inode(udp: &UdpSocket) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", udp.as_raw_fd())).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The `drops` column of the row whose `inode` column is `inode`, in the text of
/// `/proc/net/udp` or `/proc/net/udp6`:
/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops`.
pub(crate) fn drops_in(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let mut cols = line.split_whitespace();
        match (cols.nth(9), cols.nth(2)) {
            (Some(i), Some(d)) if i.parse() == Ok(inode) => d.parse().ok(),
            _ => None,
        }
    })
}

/// The kernel's drop count for the socket with `inode`, from whichever table lists it.
pub(crate) async fn read_drops(inode: u64) -> Option<u64> {
    for path in TABLES {
        // tokio::fs reads on the blocking pool: the edge's runtime never waits on /proc.
        if let Ok(text) = tokio::fs::read_to_string(path).await {
            if let Some(d) = drops_in(&text, inode) {
                return Some(d);
            }
        }
    }
    None
}

/// Copies the socket's drop count into `counter` every [`INTERVAL`] until shutdown.
/// Without `/proc` (not Linux) it logs once and stops; the edge works the same.
pub(crate) async fn watch_drops(
    inode: Option<u64>,
    counter: IntCounter,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(inode) = inode else {
        tracing::debug!("no /proc socket table: SIP UDP receive drops are not exported");
        return;
    };
    let mut seen = read_drops(inode).await.unwrap_or(0);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        let Some(now) = read_drops(inode).await else {
            continue;
        };
        if now > seen {
            tracing::warn!(
                dropped = now - seen,
                "SIP UDP datagrams dropped by the kernel (receive buffer full); callers will retransmit"
            );
            counter.inc_by(now - seen);
        }
        seen = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1234: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 98765 2 0000000000000000 17
 1235: 0100007F:13C5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 98766 2 0000000000000000 0
";

    #[test]
    fn the_drops_column_of_our_row_is_read() {
        assert_eq!(drops_in(TABLE, 98765), Some(17));
        assert_eq!(drops_in(TABLE, 98766), Some(0));
        assert_eq!(drops_in(TABLE, 1), None);
        assert_eq!(drops_in("header only\n", 98765), None);
        assert_eq!(drops_in("", 98765), None);
    }

    /// A real socket with a tiny buffer that nobody reads: the kernel drops what does
    /// not fit, and the count read back from /proc says so.
    #[tokio::test]
    async fn a_full_receive_buffer_shows_as_drops() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket2::SockRef::from(&rx)
            .set_recv_buffer_size(4096)
            .unwrap();
        let Some(inode) = socket_inode(&rx) else {
            eprintln!("no /proc/self/fd here; skipped");
            return;
        };
        assert_eq!(read_drops(inode).await, Some(0));
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        for _ in 0..64 {
            tx.send_to(&[0u8; 1000], to).await.unwrap();
        }
        let drops = read_drops(inode).await.unwrap();
        assert!(drops > 0, "64 KB into a 4 KB buffer dropped nothing");
    }
}
