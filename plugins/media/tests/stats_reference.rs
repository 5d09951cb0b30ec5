#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `StreamStats` against a reference computation: a G.711 stream (20 ms packets, 160
//! timestamp units each) with induced loss, delay, reordering, a duplicate and a sequence
//! wrap; the expected loss is counted from what the test dropped and duplicated, the
//! expected jitter computed here with RFC 3550 A.8's formula on exact (unrounded)
//! arrival times.

use c2c_media::{NotRtp, StreamStats};

const CLOCK: u32 = 8_000;

/// A PCMU packet: version 2, no padding, extension or CSRC, payload type 0.
fn packet(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// A deterministic delay in 0..40 ms (an LCG: no dependency, same every run).
fn delays(n: usize) -> Vec<u64> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 33) % 40_000
        })
        .collect()
}

struct Sent {
    seq: u16,
    ts: u32,
    arrival_us: u64,
}

#[test]
fn loss_and_jitter_match_the_reference_on_a_lossy_reordered_wrapping_stream() {
    let n = 1_000;
    let dropped = [5usize, 17, 18, 400, 401, 402, 999 - 1];
    let delay = delays(n);
    let mut arrivals: Vec<Sent> = (0..n)
        .filter(|i| !dropped.contains(i))
        .map(|i| Sent {
            // Starts near the top: the sequence wraps after 36 packets.
            seq: 65_500u16.wrapping_add(i as u16),
            ts: 4_294_960_000u32.wrapping_add(160 * i as u32),
            arrival_us: 1_000_000 + 20_000 * i as u64 + delay[i],
        })
        .collect();
    // Packet 300 arrives twice (a duplicate), 1 ms apart.
    let dup = arrivals
        .iter()
        .position(|s| s.seq == 65_500u16.wrapping_add(300))
        .unwrap();
    arrivals.push(Sent {
        seq: arrivals[dup].seq,
        ts: arrivals[dup].ts,
        arrival_us: arrivals[dup].arrival_us + 1_000,
    });
    // Delays up to 40 ms on a 20 ms cadence reorder packets: feed in arrival order.
    arrivals.sort_by_key(|s| s.arrival_us);
    let reordered = arrivals
        .windows(2)
        .filter(|w| w[1].seq.wrapping_sub(w[0].seq) > 1_000)
        .count();
    assert!(reordered > 50, "the stream must be reordered ({reordered})");

    let mut stats = StreamStats::new(CLOCK);
    for s in &arrivals {
        stats
            .on_packet(&packet(s.seq, s.ts, 7), s.arrival_us)
            .unwrap();
    }
    let r = stats.report();

    // Reference loss: every packet from the first to the last seq was expected; the
    // duplicate counts as received (RFC 3550 A.3).
    assert_eq!(r.expected, n as u64);
    assert_eq!(r.lost, dropped.len() as u64 - 1);
    assert_eq!(r.packets, (n - dropped.len() + 1) as u64);
    assert_eq!(r.bytes, r.packets * 172);

    // Reference jitter: A.8 in floating point on exact arrival times.
    let mut j = 0.0f64;
    let mut prev: Option<(f64, u32)> = None;
    for s in &arrivals {
        let arrival = s.arrival_us as f64 * f64::from(CLOCK) / 1e6;
        if let Some((pa, pts)) = prev {
            let d = (arrival - pa) - f64::from(s.ts.wrapping_sub(pts) as i32);
            j += (d.abs() - j) / 16.0;
        }
        prev = Some((arrival, s.ts));
    }
    let want_ms = j * 1000.0 / f64::from(CLOCK);
    assert!(
        want_ms > 5.0,
        "the induced delay gives jitter ({want_ms} ms)"
    );
    assert!(
        (r.jitter_ms - want_ms).abs() < 0.15,
        "jitter {} ms, reference {want_ms} ms",
        r.jitter_ms
    );

    // The longest gap: the reference over the same arrivals.
    let gap = arrivals
        .windows(2)
        .map(|w| w[1].arrival_us - w[0].arrival_us)
        .max()
        .unwrap();
    assert_eq!(r.max_gap_ms, gap as f64 / 1000.0);
}

#[test]
fn a_steady_stream_has_no_loss_and_no_jitter_and_silence_shows_as_a_gap() {
    let mut s = StreamStats::new(CLOCK);
    for i in 0..100u16 {
        s.on_packet(&packet(i, 160 * u32::from(i), 1), 20_000 * u64::from(i))
            .unwrap();
    }
    // Three seconds of dead air, then the stream goes on where the clock is.
    for i in 250..260u16 {
        s.on_packet(
            &packet(i - 150, 160 * u32::from(i), 1),
            20_000 * u64::from(i),
        )
        .unwrap();
    }
    let r = s.report();
    assert_eq!((r.expected, r.lost, r.packets), (110, 0, 110));
    assert_eq!(r.max_gap_ms, 3_020.0);
    // The timestamps jumped with the silence (sender kept its clock): D is 0 throughout.
    assert_eq!(r.jitter_ms, 0.0);
}

#[test]
fn what_is_not_rtp_is_counted_and_changes_nothing() {
    let mut s = StreamStats::new(CLOCK);
    s.on_packet(&packet(10, 0, 1), 0).unwrap();
    let before = s.report();
    assert!(matches!(
        s.on_packet(&[0x80, 0x00, 0x01], 1_000),
        Err(NotRtp::Malformed(_))
    ));
    let mut v1 = packet(11, 160, 1);
    v1[0] = 0x40;
    assert!(matches!(s.on_packet(&v1, 2_000), Err(NotRtp::Malformed(_))));
    // An RTCP receiver report multiplexed on the RTP port.
    assert_eq!(
        s.on_packet(&[0x81, 201, 0x00, 0x07, 0, 0, 0, 1], 3_000),
        Err(NotRtp::Rtcp)
    );
    let after = s.report();
    assert_eq!((after.not_rtp, after.rtcp), (2, 1));
    assert_eq!(
        (after.packets, after.expected, after.last_arrival_us),
        (before.packets, before.expected, before.last_arrival_us)
    );
}

#[test]
fn a_new_source_and_a_restart_start_new_sequence_spaces() {
    let mut s = StreamStats::new(CLOCK);
    // Early media from one SSRC: seqs 0..=48, nothing lost.
    for i in 0..49u16 {
        s.on_packet(
            &packet(i, 160 * u32::from(i), 0xaaaa),
            20_000 * u64::from(i),
        )
        .unwrap();
    }
    // The answer: a new SSRC from seq 30000 (no loss counted across the switch; the
    // switch is confirmed by its second packet, which starts the new space), with one
    // late packet of the early media among them.
    for i in 0..20u16 {
        s.on_packet(
            &packet(30_000 + i, 0, 0xbbbb),
            2_000_000 + 20_000 * u64::from(i),
        )
        .unwrap();
        if i == 10 {
            s.on_packet(&packet(49, 0, 0xaaaa), 2_210_000).unwrap();
        }
    }
    let r = s.report();
    assert_eq!(
        r.ssrc_changes, 1,
        "a late packet of the old source is no switch"
    );
    assert_eq!((r.expected, r.lost), (49 + 19, 0));
    assert_eq!(r.packets, 49 + 20 + 1);
    // The same source jumps by 10,000: one stray packet is ignored, two in a row are a
    // restart (RFC 3550 A.1), the first of them not counted in either space.
    s.on_packet(&packet(50_000, 0, 0xbbbb), 3_000_000).unwrap();
    let r = s.report();
    assert_eq!(
        (r.expected, r.lost),
        (68, 0),
        "one stray packet changes nothing"
    );
    for i in 0..5u16 {
        s.on_packet(
            &packet(40_020 + i, 0, 0xbbbb),
            3_100_000 + 20_000 * u64::from(i),
        )
        .unwrap();
    }
    for i in 0..5u16 {
        s.on_packet(
            &packet(40_030 + i, 0, 0xbbbb),
            3_300_000 + 20_000 * u64::from(i),
        )
        .unwrap();
    }
    let r = s.report();
    // The restart space runs 40,021..=40,034 with 40,025..=40,029 missing.
    assert_eq!((r.expected, r.lost), (68 + 14, 5));
}

#[test]
fn a_stray_far_packet_moves_no_jitter() {
    let mut s = StreamStats::new(CLOCK);
    for i in 0..50u16 {
        s.on_packet(&packet(i, 160 * u32::from(i), 1), 20_000 * u64::from(i))
            .unwrap();
        if i == 25 {
            // Far in sequence and in time: A.1 does not count it, so A.8 must not.
            s.on_packet(&packet(20_000, 1_000_000, 1), 20_000 * 25 + 5_000)
                .unwrap();
        }
    }
    let r = s.report();
    assert_eq!((r.expected, r.lost, r.jitter_ms), (50, 0, 0.0));
}
