//! The relay's port pairs: an even port for RTP and the odd one above it for RTCP
//! (RFC 3550 section 11: RTP on an even port, RTCP on the next higher one), from the
//! range `media.port_min ..= media.port_max` of the edge's configuration.
//!
//! Freed pairs go to the back of the queue: the pair handed out next is the one freed
//! longest ago, so a late packet of an ended call rarely reaches a new call that got
//! its port (the relay drops strays anyway: it latches each side's source).

use std::collections::VecDeque;

/// A call leg's two ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortPair {
    pub rtp: u16,
    pub rtcp: u16,
}

/// Every pair of the range is in use: the call gets `503` (never a crash, never a pair
/// shared by two calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all {capacity} media port pairs are in use")]
pub struct PortsExhausted {
    pub capacity: usize,
}

/// A range that holds no pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("media port range {min}..={max}: {why}")]
pub struct PortRangeError {
    pub min: u16,
    pub max: u16,
    pub why: &'static str,
}

/// The pairs of one range; one per edge, behind the relay's lock.
#[derive(Debug)]
pub struct PortPool {
    /// The lowest RTP port (even).
    first: u16,
    /// Pair indexes not in use, least recently freed first.
    free: VecDeque<u16>,
    /// In use, by pair index.
    used: Vec<bool>,
}

impl PortPool {
    /// The pairs of `min ..= max`: `min` must be even (RTP ports are even) and the range
    /// must hold at least one pair, above the well-known ports.
    pub fn new(min: u16, max: u16) -> Result<Self, PortRangeError> {
        let err = |why| Err(PortRangeError { min, max, why });
        if min < 1024 {
            return err("the range must start at 1024 or above");
        }
        if !min.is_multiple_of(2) {
            return err("the range must start on an even port (RTP ports are even)");
        }
        if max <= min {
            return err("the range must hold at least one pair (max > min)");
        }
        // Whole pairs only: an odd port left at the top is not used.
        let pairs = (u32::from(max) - u32::from(min)).div_ceil(2);
        let pairs = u16::try_from(pairs).unwrap_or(u16::MAX);
        Ok(Self {
            first: min,
            free: (0..pairs).collect(),
            used: vec![false; usize::from(pairs)],
        })
    }

    /// The pair freed longest ago.
    pub fn allocate(&mut self) -> Result<PortPair, PortsExhausted> {
        let i = self.free.pop_front().ok_or(PortsExhausted {
            capacity: self.capacity(),
        })?;
        self.used[usize::from(i)] = true;
        let rtp = self.first + 2 * i;
        Ok(PortPair { rtp, rtcp: rtp + 1 })
    }

    /// Gives `pair` back. False (and nothing changes) for a pair this pool did not hand
    /// out or that was freed already: a double free must not put a pair in the queue
    /// twice, or two calls would get it.
    pub fn release(&mut self, pair: PortPair) -> bool {
        let Some(i) = self.index_of(pair) else {
            return false;
        };
        if !self.used[usize::from(i)] {
            return false;
        }
        self.used[usize::from(i)] = false;
        self.free.push_back(i);
        true
    }

    fn index_of(&self, pair: PortPair) -> Option<u16> {
        let off = pair.rtp.checked_sub(self.first)?;
        let i = off / 2;
        let ok = off.is_multiple_of(2) && pair.rtcp == pair.rtp.wrapping_add(1);
        (ok && usize::from(i) < self.used.len()).then_some(i)
    }

    /// Pairs the range holds.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }

    /// Pairs handed out and not freed.
    pub fn in_use(&self) -> usize {
        self.capacity() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_odd_and_the_range_is_checked() {
        assert!(PortPool::new(1000, 2000).is_err(), "below 1024");
        assert!(PortPool::new(30001, 30010).is_err(), "odd start");
        assert!(PortPool::new(30000, 30000).is_err(), "no pair");
        let mut p = PortPool::new(30000, 30005).unwrap();
        assert_eq!(p.capacity(), 3);
        let a = p.allocate().unwrap();
        assert_eq!((a.rtp, a.rtcp), (30000, 30001));
        let b = p.allocate().unwrap();
        let c = p.allocate().unwrap();
        assert_eq!((b.rtp, c.rtp), (30002, 30004));
        assert_eq!(p.allocate(), Err(PortsExhausted { capacity: 3 }));
        assert_eq!(p.in_use(), 3);
    }

    #[test]
    fn the_pair_freed_longest_ago_comes_back_first_and_double_frees_change_nothing() {
        let mut p = PortPool::new(40000, 40007).unwrap();
        let pairs: Vec<PortPair> = (0..4).map(|_| p.allocate().unwrap()).collect();
        assert!(p.release(pairs[2]));
        assert!(p.release(pairs[0]));
        assert!(!p.release(pairs[0]), "freed twice");
        assert!(
            !p.release(PortPair {
                rtp: 40001,
                rtcp: 40002
            }),
            "not a pair of the pool"
        );
        assert!(!p.release(PortPair {
            rtp: 50000,
            rtcp: 50001
        }));
        assert_eq!(p.in_use(), 2);
        assert_eq!(p.allocate().unwrap(), pairs[2]);
        assert_eq!(p.allocate().unwrap(), pairs[0]);
        assert!(p.allocate().is_err());
    }

    #[test]
    fn the_top_of_the_port_space_is_usable() {
        let mut p = PortPool::new(65534, 65535).unwrap();
        let a = p.allocate().unwrap();
        assert_eq!((a.rtp, a.rtcp), (65534, 65535));
        assert!(p.release(a));
    }
}
