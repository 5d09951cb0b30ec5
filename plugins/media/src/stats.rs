//! One direction of one call's RTP, as RFC 3550 appendix A counts it.
//!
//! - **Loss** (A.3): sequence numbers are extended with a count of wraps (A.1's
//!   `update_seq`, with its `MAX_DROPOUT` / `MAX_MISORDER` rules and its re-sync after a
//!   jump: two sequential packets far from the last one mean the sender restarted);
//!   expected = highest extended seq - first + 1, lost = expected - received. A
//!   duplicate counts as received, so duplicates hide as much loss (as in RTCP's
//!   cumulative lost); the report never goes below zero.
//! - **Jitter** (A.8): the mean deviation of the difference in transit time between
//!   consecutive packets, in timestamp units, smoothed by 1/16:
//!   `J += (|D(i-1,i)| - J) / 16`; reported in milliseconds at the stream's clock rate.
//! - **Gaps**: the longest time between two packets in arrival order (dead air shows as
//!   one long gap).
//! - A new SSRC (carriers often switch source between early media and the answer) starts
//!   a new sequence space and a new jitter estimate once two packets in a row carry it;
//!   what the old source expected and received is kept in the totals. A lone packet
//!   from another source (a late one of the previous) is counted as a packet only.
//! - Jitter counts only the packets A.1 accepts (a stray far jump moves nothing).
//!
//! Whatever does not parse as RTP version 2 is counted and changes nothing else. Packets
//! that RFC 5761's rule marks as RTCP (multiplexed on the RTP port) are counted apart.

use rtp_rs::RtpReader;

/// Sequence numbers per wrap.
const SEQ_MOD: u32 = 1 << 16;
/// RFC 3550 A.1: a forward jump below this is loss, not a restart.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a backward step below this is a late packet, not a restart.
const MAX_MISORDER: u16 = 100;

/// A datagram that is not an RTP packet the stream can count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRtp {
    #[error("not an RTP packet: {0}")]
    Malformed(String),
    /// RTCP multiplexed on the RTP port (RFC 5761 section 4: payload type 64..=95 with
    /// the marker bit, i.e. RTCP packet types 192..=223).
    #[error("an RTCP packet")]
    Rtcp,
}

/// One direction of one call's RTP. Feed every datagram with its arrival time.
#[derive(Debug, Clone)]
pub struct StreamStats {
    /// Timestamp units per second (8,000 for G.711).
    clock_rate: u32,
    packets: u64,
    bytes: u64,
    not_rtp: u64,
    rtcp: u64,
    ssrc: Option<u32>,
    /// Another SSRC seen once; a second packet in a row from it is a switch.
    pending_ssrc: Option<u32>,
    ssrc_changes: u64,
    /// The current sequence space (A.1).
    seq: Option<SeqSpace>,
    /// Expected and received of sequence spaces that ended (new SSRC, restart).
    expected_before: u64,
    received_before: u64,
    /// A.8, in timestamp units.
    jitter: f64,
    /// The last packet's arrival (timestamp units) and RTP timestamp, for the next D.
    last_transit: Option<(i64, u32)>,
    first_arrival_us: Option<u64>,
    last_arrival_us: Option<u64>,
    max_gap_us: u64,
}

#[derive(Debug, Clone, Copy)]
struct SeqSpace {
    base: u32,
    max: u16,
    cycles: u32,
    /// A.1's `bad_seq`: the seq that, if it comes next, confirms a restart.
    bad: u32,
    received: u64,
}

impl SeqSpace {
    fn new(seq: u16) -> Self {
        Self {
            base: u32::from(seq),
            max: seq,
            cycles: 0,
            bad: SEQ_MOD + 1,
            received: 0,
        }
    }

    fn expected(&self) -> u64 {
        u64::from(self.cycles) + u64::from(self.max) + 1 - u64::from(self.base)
    }
}

/// What the stream counted so far.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamReport {
    /// RTP packets (duplicates and late ones included).
    pub packets: u64,
    /// Their bytes, headers included.
    pub bytes: u64,
    /// Datagrams that were not RTP (malformed), dropped.
    pub not_rtp: u64,
    /// RTCP multiplexed on the RTP port.
    pub rtcp: u64,
    pub ssrc_changes: u64,
    /// Packets the sequence numbers say were sent.
    pub expected: u64,
    /// expected - received, never below zero.
    pub lost: u64,
    /// lost / expected (0 when nothing was expected).
    pub loss_fraction: f64,
    /// Interarrival jitter (RFC 3550 A.8) in milliseconds.
    pub jitter_ms: f64,
    /// The longest time between two packets, in milliseconds.
    pub max_gap_ms: f64,
    pub first_arrival_us: Option<u64>,
    pub last_arrival_us: Option<u64>,
}

impl StreamStats {
    /// A stream whose RTP clock runs at `clock_rate` Hz (8,000 for PCMU/PCMA).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            packets: 0,
            bytes: 0,
            not_rtp: 0,
            rtcp: 0,
            ssrc: None,
            pending_ssrc: None,
            ssrc_changes: 0,
            seq: None,
            expected_before: 0,
            received_before: 0,
            jitter: 0.0,
            last_transit: None,
            first_arrival_us: None,
            last_arrival_us: None,
            max_gap_us: 0,
        }
    }

    /// Counts one datagram that arrived at `arrival_us` (a monotonic clock, in
    /// microseconds). `Err`: not counted as RTP (see [`NotRtp`]).
    pub fn on_packet(&mut self, datagram: &[u8], arrival_us: u64) -> Result<(), NotRtp> {
        if datagram.len() >= 2 && (192..=223).contains(&datagram[1]) {
            self.rtcp += 1;
            return Err(NotRtp::Rtcp);
        }
        let rtp = match RtpReader::new(datagram) {
            Ok(r) => r,
            Err(e) => {
                self.not_rtp += 1;
                return Err(NotRtp::Malformed(format!("{e:?}")));
            }
        };
        self.packets += 1;
        self.bytes += datagram.len() as u64;
        if let Some(last) = self.last_arrival_us {
            self.max_gap_us = self.max_gap_us.max(arrival_us.saturating_sub(last));
        }
        self.first_arrival_us.get_or_insert(arrival_us);
        self.last_arrival_us = Some(arrival_us);
        let ssrc = rtp.ssrc();
        match self.ssrc {
            Some(current) if current != ssrc => {
                // A source switch is two packets in a row from the new one; a single
                // packet from another (a late one of the previous source) is not
                // counted in either's sequence or jitter.
                if self.pending_ssrc != Some(ssrc) {
                    self.pending_ssrc = Some(ssrc);
                    return Ok(());
                }
                self.ssrc_changes += 1;
                self.close_space();
                self.last_transit = None;
                self.jitter = 0.0;
            }
            _ => {}
        }
        self.pending_ssrc = None;
        self.ssrc = Some(ssrc);
        // A.8 counts only packets A.1 accepts: a stray far-off packet moves no jitter.
        if self.update_seq(u16::from(rtp.sequence_number())) {
            self.update_jitter(rtp.timestamp(), arrival_us);
        }
        Ok(())
    }

    /// A.1's `update_seq`: false for a packet it does not count (a far jump not yet
    /// confirmed by the next packet).
    fn update_seq(&mut self, seq: u16) -> bool {
        let Some(s) = self.seq.as_mut() else {
            let mut s = SeqSpace::new(seq);
            s.received = 1;
            self.seq = Some(s);
            return true;
        };
        let udelta = seq.wrapping_sub(s.max);
        if udelta < MAX_DROPOUT {
            if seq < s.max {
                s.cycles += SEQ_MOD;
            }
            s.max = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER + 1 {
            // A very large jump: a restart if the next packet follows it.
            if u32::from(seq) == s.bad {
                self.close_space();
                let mut s = SeqSpace::new(seq);
                s.received = 1;
                self.seq = Some(s);
                // The restarted stream's transit starts again too.
                self.last_transit = None;
                return true;
            }
            s.bad = (u32::from(seq) + 1) & (SEQ_MOD - 1);
            return false;
        }
        // In order, or a duplicate / late packet.
        s.received += 1;
        true
    }

    /// Ends the current sequence space, keeping its counts.
    fn close_space(&mut self) {
        if let Some(s) = self.seq.take() {
            self.expected_before += s.expected();
            self.received_before += s.received;
        }
    }

    /// A.8.
    fn update_jitter(&mut self, ts: u32, arrival_us: u64) {
        let arrival =
            i64::try_from(u128::from(arrival_us) * u128::from(self.clock_rate) / 1_000_000)
                .unwrap_or(i64::MAX);
        if let Some((last_arrival, last_ts)) = self.last_transit {
            // Wrapping difference of the RTP timestamps: they wrap at 2^32.
            let sent = i64::from(ts.wrapping_sub(last_ts) as i32);
            let d = ((arrival - last_arrival) - sent).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some((arrival, ts));
    }

    /// The counts so far.
    pub fn report(&self) -> StreamReport {
        let (exp_now, rec_now) = self.seq.map_or((0, 0), |s| (s.expected(), s.received));
        let expected = self.expected_before + exp_now;
        let received = self.received_before + rec_now;
        let lost = expected.saturating_sub(received);
        StreamReport {
            packets: self.packets,
            bytes: self.bytes,
            not_rtp: self.not_rtp,
            rtcp: self.rtcp,
            ssrc_changes: self.ssrc_changes,
            expected,
            lost,
            loss_fraction: if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            },
            jitter_ms: self.jitter * 1000.0 / f64::from(self.clock_rate),
            max_gap_ms: self.max_gap_us as f64 / 1000.0,
            first_arrival_us: self.first_arrival_us,
            last_arrival_us: self.last_arrival_us,
        }
    }
}
