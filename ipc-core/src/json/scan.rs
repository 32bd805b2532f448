//! Validating JSON scanner: finds where values end, without building anything.
//!
//! Functions with a `STREAM` parameter scan either JSON text (`false`: a
//! line feed is whitespace) or the channel's stream (`true`: a line feed is
//! where the message ends, so it is not whitespace and nothing scans past
//! it). The receive path reads a message in stream mode straight from the
//! buffer, finding its end in the same pass, instead of first searching
//! for the `\n` and then scanning the line. In a line that holds no line
//! feed both modes accept and reject the same text.
//!
//! Everything here works on bytes that are already known to be UTF-8 and never
//! allocates. Nesting is tracked one bit per level, not on the call stack, so
//! hostile input cannot exhaust the stack: the first 128 levels live in two
//! words, deeper ones in a 2 KiB array that is only set up when a message
//! goes that deep. Past [`MAX_DEPTH`] levels the scan fails with
//! [`JsonError::TooDeep`].

use super::JsonError;

/// The deepest nesting of arrays and objects a received or forwarded
/// message may have (Node's own `JSON.stringify` stops near 4,100 levels).
/// Decoding into Rust types has its own, lower limit:
/// [`MAX_DECODE_DEPTH`](super::MAX_DECODE_DEPTH).
pub const MAX_DEPTH: usize = 16_384;

/// Levels kept in the two inline words.
const SHALLOW: usize = 128;

/// A byte range inside a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn of(self, line: &[u8]) -> &[u8] {
        &line[self.start..self.end]
    }
}

/// Open containers: one bit per level, set for objects, clear for arrays.
/// The first `base` levels are open around the scanned value.
struct Nesting {
    shallow: [u64; SHALLOW / 64],
    deep: Option<[u64; (MAX_DEPTH - SHALLOW) / 64]>,
    depth: usize,
    base: usize,
}

impl Nesting {
    fn new(base: usize) -> Self {
        Nesting {
            shallow: [0; SHALLOW / 64],
            deep: None,
            depth: base,
            base,
        }
    }

    /// The word holding level `d`, and the bit in it.
    fn word(&mut self, d: usize) -> (&mut u64, u64) {
        let bit = 1 << (d % 64);
        if d < SHALLOW {
            return (&mut self.shallow[d / 64], bit);
        }
        let deep = self.deep.get_or_insert([0; (MAX_DEPTH - SHALLOW) / 64]);
        (&mut deep[(d - SHALLOW) / 64], bit)
    }

    fn push(&mut self, object: bool, at: usize) -> Result<(), JsonError> {
        if self.depth == MAX_DEPTH {
            return Err(JsonError::TooDeep { offset: at });
        }
        let (word, bit) = self.word(self.depth);
        if object {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        self.depth += 1;
        Ok(())
    }

    /// The innermost open container: `Some(true)` for an object.
    fn top(&mut self) -> Option<bool> {
        if self.depth == self.base {
            return None;
        }
        let (word, bit) = self.word(self.depth - 1);
        Some(*word & bit != 0)
    }

    fn pop(&mut self) {
        self.depth -= 1;
    }
}

/// JSON's insignificant whitespace: space, tab, line feed, carriage return;
/// in `STREAM` mode without the line feed.
fn is_ws<const STREAM: bool>(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r') || (!STREAM && b == b'\n')
}

/// Index of the first non-whitespace byte at or after `i`, in JSON text.
pub(crate) fn skip_ws(b: &[u8], i: usize) -> usize {
    skip_ws_in::<false>(b, i)
}

/// [`skip_ws`] in either mode.
#[inline(always)]
pub(crate) fn skip_ws_in<const STREAM: bool>(b: &[u8], mut i: usize) -> usize {
    // Node's JSON has no whitespace: one look settles most calls.
    while b.get(i).is_some_and(|&c| c <= b' ' && is_ws::<STREAM>(c)) {
        i += 1;
    }
    i
}

fn syntax(offset: usize) -> JsonError {
    JsonError::Syntax { offset }
}

/// Scans the string whose opening quote is at `i`; returns the index just past
/// the closing quote and whether the string contains escapes. Text that is
/// not ASCII is checked to be UTF-8 (everything outside strings must be
/// ASCII anyway), so a line that scans is valid UTF-8 as a whole.
#[inline(always)]
pub(crate) fn string_end(b: &[u8], i: usize) -> Result<(usize, bool), JsonError> {
    if b.get(i) != Some(&b'"') {
        return Err(syntax(i));
    }
    let mut j = i + 1;
    let mut escaped = false;
    let mut non_ascii = false;
    loop {
        let rest = b.get(j..).unwrap_or_default();
        j += if non_ascii {
            crate::bytes::plain_len(rest)
        } else {
            crate::bytes::plain_ascii_len(rest)
        };
        match b.get(j) {
            None => return Err(JsonError::Eof),
            Some(b'"') => {
                if non_ascii {
                    core::str::from_utf8(&b[i + 1..j]).map_err(|e| JsonError::InvalidUtf8 {
                        offset: i + 1 + e.valid_up_to(),
                    })?;
                }
                return Ok((j + 1, escaped));
            }
            Some(b'\\') => {
                escaped = true;
                match b.get(j + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                    Some(b'u') => {
                        let hex = b.get(j + 2..j + 6).ok_or(JsonError::Eof)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(syntax(j));
                        }
                        j += 6;
                    }
                    None => return Err(JsonError::Eof),
                    Some(_) => return Err(syntax(j)),
                }
            }
            Some(&c) if c < 0x20 => return Err(syntax(j)),
            Some(_) => {
                non_ascii = true;
                j += 1;
            }
        }
    }
}

/// Scans the number starting at `i` (JSON grammar, no leading `+`, no leading
/// zeros); returns the index just past it.
#[inline(always)]
pub(crate) fn number_end(b: &[u8], i: usize) -> Result<usize, JsonError> {
    let digits = |j: usize| {
        let n = crate::bytes::digits_len(b.get(j..).unwrap_or_default());
        (j + n, n)
    };
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    match b.get(j) {
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => j = digits(j).0,
        _ => return Err(syntax(j)),
    }
    if b.get(j) == Some(&b'.') {
        let (end, n) = digits(j + 1);
        if n == 0 {
            return Err(syntax(end));
        }
        j = end;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let (end, n) = digits(j);
        if n == 0 {
            return Err(syntax(end));
        }
        j = end;
    }
    Ok(j)
}

fn literal(b: &[u8], i: usize, word: &[u8]) -> Result<usize, JsonError> {
    match b.get(i..i + word.len()) {
        Some(w) if w == word => Ok(i + word.len()),
        Some(_) => Err(syntax(i)),
        None => Err(JsonError::Eof),
    }
}

/// Scans `"key"` and the colon after it; returns the index of the value.
fn key_then_colon<const STREAM: bool>(b: &[u8], i: usize) -> Result<usize, JsonError> {
    colon_after::<STREAM>(b, string_end(b, i)?.0)
}

/// Scans the colon after a key that ends at `end`; returns the index of the
/// value.
#[inline(always)]
fn colon_after<const STREAM: bool>(b: &[u8], end: usize) -> Result<usize, JsonError> {
    let j = skip_ws_in::<STREAM>(b, end);
    match b.get(j) {
        Some(b':') => Ok(skip_ws_in::<STREAM>(b, j + 1)),
        None => Err(JsonError::Eof),
        Some(_) => Err(syntax(j)),
    }
}

/// Scans the scalar (string, number, `true`, `false`, `null`) starting at
/// `i` and returns the index just past it; `Ok(None)` for `{` or `[`.
#[inline(always)]
fn scalar_end(b: &[u8], i: usize) -> Result<Option<usize>, JsonError> {
    Ok(Some(match b.get(i) {
        Some(b'{' | b'[') => return Ok(None),
        Some(b'"') => string_end(b, i)?.0,
        Some(b'-' | b'0'..=b'9') => number_end(b, i)?,
        Some(b't') => literal(b, i, b"true")?,
        Some(b'f') => literal(b, i, b"false")?,
        Some(b'n') => literal(b, i, b"null")?,
        None => return Err(JsonError::Eof),
        Some(_) => return Err(syntax(i)),
    }))
}

/// Scans the value starting at `i` (leading whitespace allowed) and returns the
/// index just past it. Iterative: the depth is bounded by [`MAX_DEPTH`].
pub(crate) fn value_end(b: &[u8], i: usize) -> Result<usize, JsonError> {
    value_end_within::<false>(b, i, 0)
}

/// [`value_end`] in either mode, for a value inside `depth` open
/// containers.
pub(crate) fn value_end_within<const STREAM: bool>(
    b: &[u8],
    i: usize,
    depth: usize,
) -> Result<usize, JsonError> {
    let mut i = skip_ws_in::<STREAM>(b, i);
    if let Some(end) = scalar_end(b, i)? {
        return Ok(end);
    }
    let mut nest = Nesting::new(depth);
    loop {
        // Here a value starts at `i`.
        match b.get(i) {
            Some(b'{') => {
                nest.push(true, i)?;
                i = skip_ws_in::<STREAM>(b, i + 1);
                if b.get(i) == Some(&b'}') {
                    nest.pop();
                    i += 1;
                } else {
                    i = key_then_colon::<STREAM>(b, i)?;
                    continue;
                }
            }
            Some(b'[') => {
                nest.push(false, i)?;
                i = skip_ws_in::<STREAM>(b, i + 1);
                if b.get(i) == Some(&b']') {
                    nest.pop();
                    i += 1;
                } else {
                    continue;
                }
            }
            _ => i = scalar_end(b, i)?.unwrap_or(i),
        }
        // Here a value has just ended: close containers or move to the next value.
        loop {
            let Some(in_object) = nest.top() else {
                return Ok(i);
            };
            i = skip_ws_in::<STREAM>(b, i);
            match b.get(i) {
                Some(b',') => {
                    i = skip_ws_in::<STREAM>(b, i + 1);
                    if in_object {
                        i = key_then_colon::<STREAM>(b, i)?;
                    }
                    break;
                }
                Some(b'}') if in_object => {
                    nest.pop();
                    i += 1;
                }
                Some(b']') if !in_object => {
                    nest.pop();
                    i += 1;
                }
                None => return Err(JsonError::Eof),
                Some(_) => return Err(syntax(i)),
            }
        }
    }
}

/// Checks that `b` is exactly one JSON value with optional surrounding
/// whitespace, and returns the span of the value.
pub(crate) fn whole_value(b: &[u8]) -> Result<Span, JsonError> {
    let start = skip_ws(b, 0);
    if start == b.len() {
        return Err(JsonError::Empty);
    }
    let end = value_end(b, start)?;
    only_ws_after(b, end)?;
    Ok(Span { start, end })
}

/// Checks that nothing but whitespace follows `end`.
pub(crate) fn only_ws_after(b: &[u8], end: usize) -> Result<(), JsonError> {
    let after = skip_ws(b, end);
    if after != b.len() {
        return Err(JsonError::TrailingCharacters { offset: after });
    }
    Ok(())
}

/// A member name: the raw span between the quotes, and whether it holds
/// escapes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name {
    pub span: Span,
    pub escaped: bool,
}

/// Calls `field(name, value)` for each member of the object that starts at
/// `i`, with `value` the raw span of the value, validating every member (the
/// object counts as one level of nesting). Returns the index just past the
/// closing brace.
pub(crate) fn object_fields(
    b: &[u8],
    i: usize,
    field: impl FnMut(Name, Span),
) -> Result<usize, JsonError> {
    object_fields_in::<false>(b, i, field)
}

/// [`object_fields`] in either mode.
#[inline(always)]
pub(crate) fn object_fields_in<const STREAM: bool>(
    b: &[u8],
    i: usize,
    mut field: impl FnMut(Name, Span),
) -> Result<usize, JsonError> {
    if b.get(i) != Some(&b'{') {
        return Err(syntax(i));
    }
    let mut i = skip_ws_in::<STREAM>(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Ok(i + 1);
    }
    loop {
        let (key_end, escaped) = string_end(b, i)?;
        let name = Name {
            span: Span {
                start: i + 1,
                end: key_end - 1,
            },
            escaped,
        };
        let v = colon_after::<STREAM>(b, key_end)?;
        let v_end = match scalar_end(b, v)? {
            Some(end) => end,
            None => value_end_within::<STREAM>(b, v, 1)?,
        };
        field(
            name,
            Span {
                start: v,
                end: v_end,
            },
        );
        i = skip_ws_in::<STREAM>(b, v_end);
        match b.get(i) {
            Some(b',') => i = skip_ws_in::<STREAM>(b, i + 1),
            Some(b'}') => return Ok(i + 1),
            None => return Err(JsonError::Eof),
            Some(_) => return Err(syntax(i)),
        }
    }
}

/// Reads 4 hex digits (already validated by [`string_end`]).
fn hex4(h: &[u8]) -> u32 {
    h.iter().fold(0, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        };
        acc * 16 + u32::from(d)
    })
}

/// Decodes the escape at `s[r]` (a backslash); returns the character and the
/// escape's length. A lone surrogate becomes U+FFFD, since Rust strings cannot
/// hold one (JavaScript would keep it).
fn escape_at(s: &[u8], r: usize) -> (char, usize) {
    let simple = match s.get(r + 1) {
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => '\0',
        Some(&c) => char::from(c),
        None => return ('\u{fffd}', 1),
    };
    if s.get(r + 1) != Some(&b'u') {
        return (simple, 2);
    }
    let Some(h) = s.get(r + 2..r + 6) else {
        return ('\u{fffd}', s.len() - r);
    };
    let hi = hex4(h);
    if (0xd800..0xdc00).contains(&hi) {
        if let Some(b"\\u") = s.get(r + 6..r + 8) {
            if let Some(h2) = s.get(r + 8..r + 12) {
                let lo = hex4(h2);
                if (0xdc00..0xe000).contains(&lo) {
                    let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                    return (char::from_u32(c).unwrap_or('\u{fffd}'), 12);
                }
            }
        }
    }
    (char::from_u32(hi).unwrap_or('\u{fffd}'), 6)
}

/// Unescapes the string content `s` (the bytes between the quotes, validated
/// by [`string_end`]) in place, and returns its new length. Unescaping never
/// lengthens a string, so the result always fits.
pub(crate) fn unescape_in_place(s: &mut [u8]) -> usize {
    let (mut r, mut w) = (0, 0);
    while r < s.len() {
        if s[r] != b'\\' {
            s[w] = s[r];
            r += 1;
            w += 1;
            continue;
        }
        let (c, len) = escape_at(s, r);
        let mut utf8 = [0; 4];
        let enc = c.encode_utf8(&mut utf8).as_bytes();
        s[w..w + enc.len()].copy_from_slice(enc);
        r += len;
        w += enc.len();
    }
    w
}

/// Unescapes as much of the string content `s` as fits into `out`, whole
/// characters only. Returns the decoded text and whether all of `s` fit.
pub(crate) fn unescape_into<'o>(s: &[u8], out: &'o mut [u8]) -> (&'o str, bool) {
    let (mut r, mut w) = (0, 0);
    let mut complete = true;
    while r < s.len() {
        if s[r] != b'\\' {
            // A run without escapes goes in one copy.
            let run = crate::bytes::find(&s[r..], b'\\').unwrap_or(s.len() - r);
            let n = run.min(out.len() - w);
            out[w..w + n].copy_from_slice(&s[r..r + n]);
            r += n;
            w += n;
            if n < run {
                complete = false;
                break;
            }
            continue;
        }
        let mut utf8 = [0u8; 4];
        let (c, step) = escape_at(s, r);
        let n = c.encode_utf8(&mut utf8).len();
        if w + n > out.len() {
            complete = false;
            break;
        }
        out[w..w + n].copy_from_slice(&utf8[..n]);
        r += step;
        w += n;
    }
    // Byte-wise copying may stop inside a multi-byte character: cut back to
    // the last whole one.
    match core::str::from_utf8(&out[..w]) {
        Ok(text) => (text, complete),
        Err(e) => (
            core::str::from_utf8(&out[..e.valid_up_to()]).unwrap_or_default(),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        whole_value(s.as_bytes()).is_ok()
    }

    #[test]
    fn accepts_json_values() {
        for s in [
            "0",
            "-0",
            "1.5e+3",
            "-12E-2",
            "\"\"",
            "\"a\\u00e9\\n\\\"\"",
            "true",
            "false",
            "null",
            "[]",
            "{}",
            " [1, {\"a\": [true, null]}, \"x\"] ",
            "{\"a\":{\"b\":{}}}\r",
        ] {
            assert!(ok(s), "{s}");
        }
    }

    #[test]
    fn rejects_non_json() {
        for s in [
            "",
            " ",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "tru",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "[1 2]",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\tb\"",
            "{\"a\" 1}",
            "[",
            "{\"a\":",
            "1 2",
            "'a'",
            "NaN",
        ] {
            assert!(!ok(s), "{s:?}");
        }
    }

    /// `levels` nested arrays around a 0.
    fn nested(levels: usize, out: &mut [u8]) -> &[u8] {
        out[..levels].fill(b'[');
        out[levels] = b'0';
        out[levels + 1..=2 * levels].fill(b']');
        &out[..=2 * levels]
    }

    #[test]
    fn depth_is_bounded() {
        let mut buf = [0u8; 2 * MAX_DEPTH + 3];
        for levels in [1, 63, 64, 65, 127, 128, 129, 4_000, 10_000, MAX_DEPTH] {
            assert!(whole_value(nested(levels, &mut buf)).is_ok(), "{levels}");
        }
        assert!(matches!(
            whole_value(nested(MAX_DEPTH + 1, &mut buf)),
            Err(JsonError::TooDeep { .. })
        ));
    }

    /// Objects and arrays alternating past the inline words still close
    /// with the right bracket.
    #[test]
    fn deep_mixed_nesting() {
        let levels = 3 * SHALLOW;
        let mut text = [0u8; 8 * 3 * SHALLOW];
        let mut n = 0;
        for level in 0..levels {
            let open: &[u8] = if level % 3 == 0 { b"{\"k\":" } else { b"[" };
            text[n..n + open.len()].copy_from_slice(open);
            n += open.len();
        }
        text[n] = b'1';
        n += 1;
        for level in (0..levels).rev() {
            text[n] = if level % 3 == 0 { b'}' } else { b']' };
            n += 1;
        }
        assert!(whole_value(&text[..n]).is_ok());
        // The wrong closer at the deepest object is caught.
        let last_object = (levels - 1) / 3 * 3;
        let at = n - 1 - last_object;
        text[at] = b']';
        assert!(whole_value(&text[..n]).is_err());
    }

    /// UTF-8 is checked inside strings, where it may appear; outside them
    /// only ASCII is JSON.
    #[test]
    fn strings_must_be_utf8() {
        assert!(whole_value("\"caf\u{e9} \u{2028} \u{1f600}\"".as_bytes()).is_ok());
        for (bad, at) in [
            (&b"\"\xff\""[..], 1),
            (b"\"ok \xe2\x80\"", 4),
            (b"[\"a\", \"\xc3\"]", 7),
            (b"{\"\xed\xa0\x80\":1}", 2),
        ] {
            assert_eq!(
                whole_value(bad),
                Err(JsonError::InvalidUtf8 { offset: at }),
                "{bad:?}"
            );
        }
        assert!(matches!(
            whole_value(b"[1, \xc3\xa9]"),
            Err(JsonError::Syntax { offset: 4 })
        ));
    }

    #[test]
    fn unescapes_in_place() {
        let mut s = *br#"a\"b\\c\/\n\u00e9\ud83d\ude00\ud800x"#;
        let n = unescape_in_place(&mut s);
        assert_eq!(
            core::str::from_utf8(&s[..n]).unwrap(),
            "a\"b\\c/\n\u{e9}\u{1f600}\u{fffd}x"
        );
    }

    #[test]
    fn unescape_into_stops_at_whole_chars() {
        let mut out = [0u8; 3];
        assert_eq!(unescape_into("aé".as_bytes(), &mut out), ("aé", true));
        assert_eq!(unescape_into("abé".as_bytes(), &mut out), ("ab", false));
    }

    #[test]
    fn object_fields_reports_spans() {
        let line = br#"{"cmd":"NODE_HANDLE", "msg" : {"a":[1]} ,"k":2}"#;
        let mut seen = [Span::default(); 3];
        let mut n = 0;
        let end = object_fields(line, 0, |_, v| {
            seen[n] = v;
            n += 1;
        })
        .unwrap();
        assert_eq!(end, line.len());
        assert_eq!(seen[1].of(line), br#"{"a":[1]}"#);
        assert_eq!(seen[2].of(line), b"2");
    }
}
