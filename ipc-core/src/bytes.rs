//! Byte searches eight bytes at a time (SWAR: SIMD within a register).
//!
//! The receive path looks for every line's `\n` and scans every string for
//! its closing quote; the send path checks every string for characters to
//! escape. Those loops see every byte of every message, so they test a
//! `u64` per step and only look at single bytes near a hit.
//!
//! For a word `v`, `(v - 0x01..01 * n) & !v & 0x80..80` has the high bit set
//! in each byte below `n` (for `n <= 0x80`), possibly plus false positives
//! *above* a true one (a borrow only propagates upwards). So "any set?" is
//! exact, and so is the lowest set byte: words are read little-endian, so
//! that is the first such byte in memory.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bits of the bytes of `v` below `n` (exact up to the lowest one).
fn below(v: u64, n: u8) -> u64 {
    v.wrapping_sub(LO * u64::from(n)) & !v & HI
}

/// High bits of the bytes of `v` equal to `b` (exact up to the lowest one).
fn equal(v: u64, b: u8) -> u64 {
    below(v ^ (LO * u64::from(b)), 1)
}

/// Index of the first byte of `s` for which `hit_word` flags a byte (in the
/// 8-byte words) or `hit_byte` is true (in the tail), else `s.len()`.
fn first(s: &[u8], hit_word: impl Fn(u64) -> u64, hit_byte: impl Fn(u8) -> bool) -> usize {
    let mut words = s.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let hits = hit_word(v);
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let tail = words.remainder();
    at + tail.iter().position(|&b| hit_byte(b)).unwrap_or(tail.len())
}

/// Index of the first `needle` in `s`.
pub(crate) fn find(s: &[u8], needle: u8) -> Option<usize> {
    let i = first(s, |v| equal(v, needle), |b| b == needle);
    (i < s.len()).then_some(i)
}

/// Length of the prefix of `s` that a JSON string holds as is: no `"`, no
/// `\`, no control character (below U+0020).
pub(crate) fn plain_len(s: &[u8]) -> usize {
    first(
        s,
        |v| equal(v, b'"') | equal(v, b'\\') | below(v, 0x20),
        |b| b == b'"' || b == b'\\' || b < 0x20,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every position and every byte value, against the obvious loop.
    #[test]
    fn agrees_with_bytewise_search() {
        let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = [b'a'; 20];
                    // A high byte before the hit must not be mistaken for one.
                    if at > 0 {
                        s[at - 1] = 0xff;
                    }
                    s[at] = b;
                    s[at + 1..len].fill(b);
                    let s = &s[..len];
                    assert_eq!(find(s, b), s.iter().position(|&c| c == b), "{s:?}");
                    assert_eq!(
                        plain_len(s),
                        s.iter().position(|&c| special(c)).unwrap_or(len),
                        "{s:?}"
                    );
                }
            }
        }
        assert_eq!(find(b"", b'\n'), None);
        assert_eq!(plain_len(b""), 0);
    }
}
