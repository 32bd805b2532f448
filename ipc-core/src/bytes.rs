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

/// High bits of the bytes of `v` above `n` (exact: no carry crosses a
/// byte, as `0x7f + (0x7f - n)` fits in one).
fn above(v: u64, n: u8) -> u64 {
    ((v & !HI).wrapping_add(LO * u64::from(0x7f - n)) | v) & HI
}

/// High bits of the bytes of `v` equal to `b` (exact up to the lowest one).
fn equal(v: u64, b: u8) -> u64 {
    below(v ^ (LO * u64::from(b)), 1)
}

/// Reads the 8 bytes at `s[i..i + 8]` as a little-endian word.
fn word(s: &[u8], i: usize) -> u64 {
    let w = &s[i..i + 8];
    u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
}

/// Bytes examined a word at a time before going by blocks: most strings,
/// numbers and lines are shorter.
const SHORT: usize = 32;

/// Bytes examined at a time on long runs. A loop that ORs a comparison over
/// a fixed 64-byte array is one the compiler turns into vector
/// instructions (SSE2 on x86_64: under one instruction per byte), with no
/// `unsafe` and no target-specific code here.
const BLOCK: usize = 64;

/// Whether any byte of `block` satisfies `hit`, as a vectorizable loop.
#[inline(always)]
fn any_in_block(block: &[u8; BLOCK], hit: impl Fn(u8) -> bool) -> bool {
    let mut any = 0u8;
    for &b in block {
        any |= u8::from(hit(b));
    }
    any != 0
}

/// Index of the first byte of `s` that `hit` is true for (`hits` flags it
/// in a word, see the module docs), else `s.len()`. The first [`SHORT`]
/// bytes go a word at a time, long runs then a block at a time, then
/// words; a tail shorter than a word is checked by reading the last 8
/// bytes again, overlapping bytes already found clean; only strings
/// shorter than 8 bytes go byte by byte.
#[inline(always)]
fn first(s: &[u8], hits: impl Fn(u64) -> u64, hit: impl Fn(u8) -> bool + Copy) -> usize {
    let n = s.len();
    let mut i = 0;
    // Most are short: words first, before a block that would look far
    // past the hit.
    while i < SHORT && i + 8 <= n {
        let h = hits(word(s, i));
        if h != 0 {
            return i + (h.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(block) = s[i..].first_chunk::<BLOCK>() {
        if any_in_block(block, hit) {
            break;
        }
        i += BLOCK;
    }
    while i + 8 <= n {
        let h = hits(word(s, i));
        if h != 0 {
            return i + (h.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i == n {
        return n;
    }
    if n >= 8 {
        let base = n - 8;
        let h = hits(word(s, base));
        return if h == 0 {
            n
        } else {
            base + (h.trailing_zeros() / 8) as usize
        };
    }
    while i < n && !hit(s[i]) {
        i += 1;
    }
    i
}

/// Index of the first `needle` in `s`.
pub(crate) fn find(s: &[u8], needle: u8) -> Option<usize> {
    let i = first(s, |v| equal(v, needle), |b| b == needle);
    (i < s.len()).then_some(i)
}

/// High bits of the bytes of `v` that a JSON string cannot hold as they
/// are (exact up to the lowest one).
pub(crate) fn special_word(v: u64) -> u64 {
    equal(v, b'"') | equal(v, b'\\') | below(v, 0x20)
}

/// Length of the prefix of `s` that a JSON string holds as is: no `"`, no
/// `\`, no control character (below U+0020).
pub(crate) fn plain_len(s: &[u8]) -> usize {
    first(s, special_word, |b| b == b'"' || b == b'\\' || b < 0x20)
}

/// [`plain_len`] that also stops at the first byte above 0x7F, for
/// scanners that check non-ASCII text separately.
#[inline(always)]
pub(crate) fn plain_ascii_len(s: &[u8]) -> usize {
    first(
        s,
        |v| special_word(v) | (v & HI),
        |b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b),
    )
}

/// Copies `src` into `dst`, of the same length. A copy whose length the
/// compiler does not know is a call to the C library's `memcpy`; strings
/// and keys are mostly short, and up to 16 bytes go as two overlapping
/// copies of a fixed size instead.
#[inline(always)]
pub(crate) fn copy(dst: &mut [u8], src: &[u8]) {
    fn ends<const K: usize>(dst: &mut [u8], src: &[u8]) {
        if let (Some(d), Some(s)) = (dst.first_chunk_mut::<K>(), src.first_chunk::<K>()) {
            *d = *s;
        }
        if let (Some(d), Some(s)) = (dst.last_chunk_mut::<K>(), src.last_chunk::<K>()) {
            *d = *s;
        }
    }
    let n = src.len();
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => ends::<4>(dst, src),
        8..=16 => ends::<8>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Length of the run of ASCII digits at the front of `s`.
pub(crate) fn digits_len(s: &[u8]) -> usize {
    first(
        s,
        |v| below(v, b'0') | above(v, b'9'),
        |b| !b.is_ascii_digit(),
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
                        digits_len(s),
                        s.iter().position(|c| !c.is_ascii_digit()).unwrap_or(len),
                        "{s:?}"
                    );
                    assert_eq!(
                        plain_len(s),
                        s.iter().position(|&c| special(c)).unwrap_or(len),
                        "{s:?}"
                    );
                    assert_eq!(
                        plain_ascii_len(s),
                        s.iter()
                            .position(|&c| special(c) || c >= 0x80)
                            .unwrap_or(len),
                        "{s:?}"
                    );
                }
            }
        }
        assert_eq!(find(b"", b'\n'), None);
        assert_eq!(plain_len(b""), 0);
    }

    #[test]
    fn copies_every_short_length() {
        let src: [u8; 40] = core::array::from_fn(|i| i as u8 + 1);
        for n in 0..=src.len() {
            let mut dst = [0u8; 40];
            copy(&mut dst[..n], &src[..n]);
            assert_eq!(dst[..n], src[..n]);
            assert!(dst[n..].iter().all(|&b| b == 0), "{n}");
        }
    }

    /// Digit runs of every length up to three blocks, ended by each byte
    /// next to the digits and by the bytes at the ends of the range, or by
    /// the end of the text.
    #[test]
    fn digit_runs() {
        let mut buf = [b'7'; 3 * BLOCK + 9];
        for len in 0..buf.len() {
            for end in [b'/', b':', b'0' + 0x80, b'9' + 0x80, 0x00, 0xff, b'.'] {
                buf.fill(b'7');
                buf[len] = end;
                assert_eq!(digits_len(&buf), len);
            }
            buf.fill(b'7');
            assert_eq!(digits_len(&buf[..len]), len);
        }
    }

    /// Long runs (blocks, then words, then the overlapping tail): a single
    /// hit anywhere in up to three blocks, for the interesting bytes.
    #[test]
    fn agrees_on_long_runs() {
        let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        let mut buf = [b'a'; 3 * BLOCK + 9];
        for len in [BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 7, 3 * BLOCK + 9] {
            for at in 0..len {
                for b in [b'\n', b'"', b'\\', 0x00, 0x1f, 0x80, 0xff, b'x'] {
                    buf.fill(b'a');
                    buf[at] = b;
                    let s = &buf[..len];
                    assert_eq!(find(s, b'\n'), s.iter().position(|&c| c == b'\n'));
                    assert_eq!(
                        plain_len(s),
                        s.iter().position(|&c| special(c)).unwrap_or(len)
                    );
                    assert_eq!(
                        plain_ascii_len(s),
                        s.iter()
                            .position(|&c| special(c) || c >= 0x80)
                            .unwrap_or(len)
                    );
                }
            }
        }
    }
}
