//! A compact, immutable set of Indian national numbers: a tenant's do-not-disturb list
//! or its consent list, millions of entries, looked up on every promotional call.
//!
//! Layout: a number is ten digits, `n < 10^10`. It is split into a bucket (its first
//! digits, `n / d`) and a remainder (`n % d`, stored as a `u32`), where the divisor `d`
//! is a power of ten chosen for the list's size: about eight numbers per bucket, between
//! ten buckets (`d = 10^9`, the largest remainder a `u32` holds) and a million
//! (`d = 10^4`). `offsets` has one entry per bucket into `rest`, which holds each
//! bucket's remainders sorted. Ten million numbers take 40 MB (4 bytes each) plus 4 MB of
//! offsets, against 80 MB for a sorted `Vec<u64>` and 130 MB for a `HashSet<u64>`; a
//! lookup reads one offset and searches about ten `u32`s of one bucket, one cache line:
//! two cache misses, a fraction of a microsecond (`tests/bench/dlt.sh` measures it at
//! 10 M next to both).
//!
//! Files: a text list (one number per line in any of `9876543210`, `+919876543210`,
//! `919876543210`, `09876543210`; blank lines, `#` comments and a CSV's further columns
//! ignored) or the compact binary form [`NumberSet::write_compact`] writes, told apart by
//! the binary's magic bytes.

use std::io::{self, BufRead, Read, Write};

/// Every ten-digit number is below this.
const LIMIT: u64 = 10_000_000_000;
/// Bucket counts: at least ten (a remainder must fit a `u32`), at most a million (4 MB
/// of offsets, for lists of eight million numbers and more).
const MIN_BUCKETS: u64 = 10;
const MAX_BUCKETS: u64 = 1_000_000;
/// Numbers per bucket the bucket count aims at.
const PER_BUCKET: u64 = 8;
const MAGIC: &[u8; 8] = b"C2CNUM2\n";

/// Why a list could not be read: the line and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the list holds more than {max} numbers")]
    TooLarge { max: usize },
    #[error("the compact list file is damaged: {0}")]
    Damaged(&'static str),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A set of ten-digit national numbers (module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct NumberSet {
    /// `10^10 / offsets.len() - 1`: what a number is divided by to find its bucket.
    divisor: u64,
    offsets: Vec<u32>,
    rest: Vec<u32>,
}

impl std::fmt::Debug for NumberSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the numbers themselves: lists are customers' personal data.
        f.debug_struct("NumberSet")
            .field("len", &self.len())
            .finish()
    }
}

impl Default for NumberSet {
    fn default() -> Self {
        Self::from_numbers(Vec::new())
    }
}

impl NumberSet {
    /// The set of `numbers` (each `< 10^10`; duplicates are fine).
    pub fn from_numbers(mut numbers: Vec<u64>) -> Self {
        numbers.retain(|&n| n < LIMIT);
        numbers.sort_unstable();
        numbers.dedup();
        let mut buckets = MIN_BUCKETS;
        while buckets < MAX_BUCKETS && numbers.len() as u64 > buckets * PER_BUCKET {
            buckets *= 10;
        }
        let divisor = LIMIT / buckets;
        let buckets = buckets as usize;
        let mut offsets = Vec::with_capacity(buckets + 1);
        let mut rest = Vec::with_capacity(numbers.len());
        offsets.push(0);
        let mut bucket = 0usize;
        for n in numbers {
            let b = (n / divisor) as usize;
            while bucket < b {
                offsets.push(len_u32(rest.len()));
                bucket += 1;
            }
            // `divisor <= 10^9 < 2^32`: the remainder always fits.
            rest.push((n % divisor) as u32);
        }
        while offsets.len() <= buckets {
            offsets.push(len_u32(rest.len()));
        }
        Self {
            divisor,
            offsets,
            rest,
        }
    }

    /// What the set holds in memory, in bytes.
    pub fn heap_bytes(&self) -> usize {
        (self.offsets.len() + self.rest.len()) * 4
    }

    pub fn len(&self) -> usize {
        self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Whether the ten-digit national number `n` is in the set.
    pub fn contains(&self, n: u64) -> bool {
        if n >= LIMIT {
            return false;
        }
        let b = (n / self.divisor) as usize;
        let (lo, hi) = (self.offsets[b] as usize, self.offsets[b + 1] as usize);
        self.rest[lo..hi]
            .binary_search(&((n % self.divisor) as u32))
            .is_ok()
    }

    /// [`Self::contains`] for a number in any accepted written form ([`parse_number`]).
    pub fn contains_str(&self, number: &str) -> bool {
        parse_number(number).is_some_and(|n| self.contains(n))
    }

    /// Reads a list file, text or compact (module docs); more than `max` numbers is an
    /// error, found before the whole file is held in memory.
    pub fn read(reader: impl Read, max: usize) -> Result<Self, ListError> {
        let mut reader = io::BufReader::with_capacity(1 << 16, reader);
        if reader.fill_buf()?.starts_with(MAGIC) {
            return Self::read_compact(reader, max);
        }
        Self::read_text(reader, max)
    }

    fn read_text(reader: impl BufRead, max: usize) -> Result<Self, ListError> {
        let mut numbers = Vec::new();
        for (i, line) in reader.split(b'\n').enumerate() {
            let line = line?;
            let text = std::str::from_utf8(&line).map_err(|_| ListError::Line {
                line: i + 1,
                reason: "is not UTF-8 text".into(),
            })?;
            let field = text.split(',').next().unwrap_or("").trim();
            let field = field.trim_matches('"').trim();
            if field.is_empty() || field.starts_with('#') {
                continue;
            }
            // A CSV's header row ("number", "phone", ...): a first line without digits.
            if i == 0 && !field.bytes().any(|b| b.is_ascii_digit()) {
                continue;
            }
            let n = parse_number(field).ok_or_else(|| ListError::Line {
                line: i + 1,
                reason: "is not an Indian number (ten digits, optionally with +91, 91 or 0 \
                         before them)"
                    .into(),
            })?;
            if numbers.len() >= max {
                return Err(ListError::TooLarge { max });
            }
            numbers.push(n);
        }
        Ok(Self::from_numbers(numbers))
    }

    /// Writes the compact form: magic, the count, the bucket count, the offsets and the
    /// remainders (all little-endian `u32`), then a CRC-32 of everything before it.
    pub fn write_compact(&self, mut w: impl Write) -> io::Result<()> {
        let mut crc = crc32fast::Hasher::new();
        let mut put = |w: &mut dyn Write, bytes: &[u8]| -> io::Result<()> {
            crc.update(bytes);
            w.write_all(bytes)
        };
        put(&mut w, MAGIC)?;
        put(&mut w, &len_u32(self.rest.len()).to_le_bytes())?;
        put(&mut w, &len_u32(self.offsets.len() - 1).to_le_bytes())?;
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in self.offsets.chunks(4096).chain(self.rest.chunks(4096)) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            put(&mut w, &buf)?;
        }
        let sum = crc.finalize();
        w.write_all(&sum.to_le_bytes())?;
        w.flush()
    }

    fn read_compact(mut r: impl Read, max: usize) -> Result<Self, ListError> {
        let mut crc = crc32fast::Hasher::new();
        let word = |r: &mut dyn Read, crc: &mut crc32fast::Hasher| -> Result<u32, ListError> {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|_| ListError::Damaged("it ends early"))?;
            crc.update(&b);
            Ok(u32::from_le_bytes(b))
        };
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        crc.update(&magic);
        let count = word(&mut r, &mut crc)? as usize;
        if count > max {
            return Err(ListError::TooLarge { max });
        }
        let buckets = u64::from(word(&mut r, &mut crc)?);
        let mut b = MIN_BUCKETS;
        while b < buckets && b < MAX_BUCKETS {
            b *= 10;
        }
        if b != buckets {
            return Err(ListError::Damaged("its bucket count is not a power of ten"));
        }
        let mut offsets = Vec::with_capacity(buckets as usize + 1);
        for _ in 0..=buckets {
            offsets.push(word(&mut r, &mut crc)?);
        }
        let mut rest = Vec::with_capacity(count);
        for _ in 0..count {
            rest.push(word(&mut r, &mut crc)?);
        }
        let mut sum = [0u8; 4];
        r.read_exact(&mut sum)
            .map_err(|_| ListError::Damaged("it ends early"))?;
        if u32::from_le_bytes(sum) != crc.finalize() {
            return Err(ListError::Damaged("its checksum does not match"));
        }
        let set = Self {
            divisor: LIMIT / buckets,
            offsets,
            rest,
        };
        set.check_shape()?;
        Ok(set)
    }

    /// What a lookup relies on: offsets rising from 0 to the count, each bucket's
    /// remainders sorted, unique and below the divisor.
    fn check_shape(&self) -> Result<(), ListError> {
        let bad = ListError::Damaged("its index is inconsistent");
        if self.offsets.first() != Some(&0)
            || self.offsets.last().map(|&l| l as usize) != Some(self.rest.len())
            || self.offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad);
        }
        for w in self.offsets.windows(2) {
            let bucket = &self.rest[w[0] as usize..w[1] as usize];
            if bucket.windows(2).any(|p| p[0] >= p[1])
                || bucket.last().is_some_and(|&v| u64::from(v) >= self.divisor)
            {
                return Err(bad);
            }
        }
        Ok(())
    }
}

/// A ten-digit Indian national number from `9876543210`, `+919876543210`,
/// `919876543210` or `09876543210`; `None` for anything else.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = match s.len() {
        10 => s,
        13 => s.strip_prefix("+91")?,
        12 => s.strip_prefix("91")?,
        11 => s.strip_prefix('0')?,
        _ => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

fn len_u32(n: usize) -> u32 {
    // Lists are bounded by `[dlt] max_list_numbers` (at most 5 * 10^8) before they get here.
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_form_of_a_number_is_the_same_number() {
        for s in [
            "9876543210",
            "+919876543210",
            "919876543210",
            "09876543210",
            " 9876543210 ",
        ] {
            assert_eq!(parse_number(s), Some(9_876_543_210), "{s:?}");
        }
        for s in [
            "987654321",
            "98765432100",
            "+929876543210",
            "0987654321",
            "98765-43210",
            "",
            "+91 9876543210",
        ] {
            assert_eq!(parse_number(s), None, "{s:?}");
        }
    }

    #[test]
    fn membership_matches_a_reference_set() {
        // Numbers at bucket edges and spread over the range, with duplicates.
        let mut v = vec![
            1_000_000_000,
            1_000_999_999,
            1_001_000_000,
            9_999_999_999,
            6_000_000_000,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(1_000_000_000 + x % 9_000_000_000);
        }
        v.push(v[7]);
        // Lists of every size get their own bucket count (10 up to 10,000 here).
        for size in [5, 120, 9_000, v.len()] {
            let v = &v[v.len() - size..];
            let reference: std::collections::HashSet<u64> = v.iter().copied().collect();
            let set = NumberSet::from_numbers(v.to_vec());
            assert_eq!(set.len(), reference.len());
            for &n in v {
                assert!(set.contains(n));
                assert_eq!(set.contains(n + 1), reference.contains(&(n + 1)));
                assert_eq!(set.contains(n - 1), reference.contains(&(n - 1)));
            }
            assert!(!set.contains(10_000_000_000), "beyond ten digits");
            let mut bytes = Vec::new();
            set.write_compact(&mut bytes).unwrap();
            assert_eq!(NumberSet::read(&bytes[..], usize::MAX).unwrap(), set);
        }
        assert!(!NumberSet::default().contains(9_876_543_210));
    }

    #[test]
    fn text_lists_take_every_form_and_name_the_bad_line() {
        let text = "number\n9876543210\n+919876543211\n\n# a comment\n919876543212,consented 2026-01-02\n\"09876543213\"\n";
        let set = NumberSet::read(text.as_bytes(), 100).unwrap();
        assert_eq!(set.len(), 4);
        for n in 9_876_543_210..=9_876_543_213 {
            assert!(set.contains(n));
        }
        assert!(set.contains_str("+919876543211"));
        let err = NumberSet::read("9876543210\n98765\n".as_bytes(), 100).unwrap_err();
        assert_eq!(err.to_string().split(':').next(), Some("line 2"), "{err}");
        let err = NumberSet::read("9876543210\n9876543211\n".as_bytes(), 1).unwrap_err();
        assert!(matches!(err, ListError::TooLarge { max: 1 }), "{err}");
    }

    #[test]
    fn the_compact_form_reads_back_and_refuses_damage() {
        let set = NumberSet::from_numbers((0..5000).map(|i| 6_000_000_000 + i * 7919).collect());
        // 5,000 numbers: a thousand buckets.
        assert_eq!(set.heap_bytes(), 4 * (1001 + 5000));
        let mut bytes = Vec::new();
        set.write_compact(&mut bytes).unwrap();
        assert_eq!(bytes.len(), 8 + 4 + 4 + 4 * 1001 + 4 * 5000 + 4);
        assert_eq!(NumberSet::read(&bytes[..], 10_000).unwrap(), set);
        assert!(matches!(
            NumberSet::read(&bytes[..], 100),
            Err(ListError::TooLarge { max: 100 })
        ));
        let mut flipped = bytes.clone();
        flipped[8 + 4 + 4 + 4 * 1001 + 8] ^= 1;
        assert!(matches!(
            NumberSet::read(&flipped[..], 10_000),
            Err(ListError::Damaged(_))
        ));
        assert!(matches!(
            NumberSet::read(&bytes[..bytes.len() - 3], 10_000),
            Err(ListError::Damaged(_))
        ));
    }
}
