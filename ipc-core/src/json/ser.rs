//! `serde::Serializer` that writes compact JSON into a fixed byte buffer.
//!
//! Strings are escaped the way V8's `JSON.stringify` does it: `"`, `\` and
//! U+0000..U+001F are escaped; everything else, U+2028/U+2029 included, goes
//! out as raw UTF-8. Non-finite floats become `null`, as in JavaScript.

use core::fmt::Write as _;

use serde::ser::{self, Serialize};

use super::{JsonError, RawJson};

/// Serializes `value` as compact JSON into `buf`; returns the bytes written.
///
/// ```
/// let mut buf = [0u8; 32];
/// let n = ipc_core::json::to_slice(&("hé", 2, [true]), &mut buf)?;
/// assert_eq!(&buf[..n], "[\"hé\",2,[true]]".as_bytes());
/// # Ok::<(), ipc_core::json::JsonError>(())
/// ```
///
/// # Errors
/// [`JsonError::BufferFull`] when the JSON does not fit in `buf` (what was
/// written so far is left there); [`JsonError::KeyMustBeString`] for a map
/// key that JSON cannot name (a float, a unit, a sequence or a struct:
/// strings, integers, bools and chars are fine); [`JsonError::Custom`]
/// when the value's own `Serialize` fails. Non-finite floats are not an
/// error: they become `null`, as in JavaScript.
pub fn to_slice<T: Serialize + ?Sized>(value: &T, buf: &mut [u8]) -> Result<usize, JsonError> {
    let mut ser = Serializer { buf, len: 0 };
    value.serialize(&mut ser)?;
    Ok(ser.len)
}

/// Strings up to this long take the inline path of `Serializer::string`.
const SHORT_STRING: usize = 16;

/// Writes JSON into a borrowed buffer. Use [`to_slice`] unless you need to
/// drive serde yourself.
#[derive(Debug)]
pub struct Serializer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Serializer<'_> {
    fn push(&mut self, bytes: &[u8]) -> Result<(), JsonError> {
        let dst = self
            .buf
            .get_mut(self.len..self.len + bytes.len())
            .ok_or(JsonError::BufferFull)?;
        crate::bytes::copy(dst, bytes);
        self.len += bytes.len();
        Ok(())
    }

    fn display(&mut self, v: impl core::fmt::Display) -> Result<(), JsonError> {
        write!(self, "{v}").map_err(|_| JsonError::BufferFull)
    }

    /// Writes an integer: two digits per step from a table, no `fmt`.
    fn integer(&mut self, negative: bool, mut v: u64) -> Result<(), JsonError> {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let mut digits = [0u8; 21];
        let mut at = digits.len();
        while v >= 100 {
            let pair = usize::try_from(v % 100).unwrap_or(0) * 2;
            v /= 100;
            at -= 2;
            digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if v >= 10 {
            let pair = usize::try_from(v).unwrap_or(0) * 2;
            at -= 2;
            digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else {
            at -= 1;
            digits[at] = b'0' + v as u8;
        }
        if negative {
            at -= 1;
            digits[at] = b'-';
        }
        self.push(&digits[at..])
    }

    fn signed(&mut self, v: i64) -> Result<(), JsonError> {
        self.integer(v < 0, v.unsigned_abs())
    }

    /// Writes `s` as a JSON string. Keys and most values are short and
    /// need no escape: that case is inline, the rest is not.
    #[inline(always)]
    fn string(&mut self, s: &str) -> Result<(), JsonError> {
        let bytes = s.as_bytes();
        if bytes.len() <= SHORT_STRING && self.short_plain_string(bytes) {
            return Ok(());
        }
        self.long_string(s)
    }

    /// [`string`](Self::string) for strings that are long or need escapes.
    #[inline(never)]
    fn long_string(&mut self, s: &str) -> Result<(), JsonError> {
        let bytes = s.as_bytes();
        if self.buf.len() - self.len < bytes.len() + 2 {
            // Escaping only adds: it cannot fit. Said before scanning it,
            // so a caller that grows the buffer and tries again pays for one
            // scan, not one per try.
            return Err(JsonError::BufferFull);
        }
        let plain = crate::bytes::plain_len(bytes);
        if plain == bytes.len() {
            // Nothing to escape (the common case): one bounds check, one copy.
            let n = bytes.len();
            let dst = self
                .buf
                .get_mut(self.len..self.len + n + 2)
                .ok_or(JsonError::BufferFull)?;
            dst[0] = b'"';
            crate::bytes::copy(&mut dst[1..=n], bytes);
            dst[n + 1] = b'"';
            self.len += n + 2;
            return Ok(());
        }
        self.push(b"\"")?;
        self.escaped(s)?;
        self.push(b"\"")
    }

    /// Writes a string of up to [`SHORT_STRING`] bytes if it needs no
    /// escape: copied first, then checked as two words read back from the
    /// buffer (bytes past it masked off), instead of byte by byte. `false`
    /// (nothing written) when it needs escapes or the buffer has not two
    /// words of room.
    #[inline(always)]
    fn short_plain_string(&mut self, bytes: &[u8]) -> bool {
        let n = bytes.len();
        let Some(dst) = self.buf.get_mut(self.len..self.len + SHORT_STRING + 2) else {
            return false;
        };
        crate::bytes::copy(&mut dst[1..=n], bytes);
        let word = |i: usize| {
            let w = &dst[i..i + 8];
            u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
        };
        // The low `k` bytes of a word.
        let low = |k: usize| u64::MAX.checked_shr(64 - 8 * k as u32).unwrap_or(0);
        let special = |i: usize, k: usize| crate::bytes::special_word(word(i)) & low(k) != 0;
        if special(1, n.min(8)) || special(9, n.saturating_sub(8)) {
            return false;
        }
        dst[0] = b'"';
        dst[n + 1] = b'"';
        self.len += n + 2;
        true
    }

    /// Writes `s` escaped as the inside of a JSON string.
    fn escaped(&mut self, s: &str) -> Result<(), JsonError> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = s.as_bytes();
        let mut run = 0;
        loop {
            let i = run + crate::bytes::plain_len(&bytes[run..]);
            let Some(&c) = bytes.get(i) else { break };
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                // The other control characters.
                _ => &[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ],
            };
            self.push(&bytes[run..i])?;
            self.push(esc)?;
            run = i + 1;
        }
        self.push(&bytes[run..])
    }
}

impl core::fmt::Write for Serializer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

/// State of an array or object being written: whether a comma is due.
#[doc(hidden)]
#[derive(Debug)]
pub struct Compound<'a, 'b> {
    ser: &'a mut Serializer<'b>,
    first: bool,
    /// Closing bytes: `]`, `}`, or `]}` / `}}` for enum variants.
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn comma(&mut self) -> Result<(), JsonError> {
        if !core::mem::take(&mut self.first) {
            self.ser.push(b",")?;
        }
        Ok(())
    }

    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), JsonError> {
        self.comma()?;
        v.serialize(&mut *self.ser)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> Result<(), JsonError> {
        self.comma()?;
        self.ser.string(key)?;
        self.ser.push(b":")?;
        v.serialize(&mut *self.ser)
    }

    fn finish(self) -> Result<(), JsonError> {
        self.ser.push(self.close)
    }
}

impl<'a, 'b> Serializer<'b> {
    fn open(
        &'a mut self,
        variant: Option<&str>,
        open: &[u8],
        close: &'static [u8],
    ) -> Result<Compound<'a, 'b>, JsonError> {
        if let Some(name) = variant {
            self.push(b"{")?;
            self.string(name)?;
            self.push(b":")?;
        }
        self.push(open)?;
        Ok(Compound {
            ser: self,
            first: true,
            close,
        })
    }
}

impl<'a, 'b> ser::Serializer for &'a mut Serializer<'b> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.push(if v { b"true" } else { b"false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), JsonError> {
        self.signed(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), JsonError> {
        self.signed(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), JsonError> {
        self.signed(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), JsonError> {
        self.signed(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), JsonError> {
        self.display(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), JsonError> {
        self.integer(false, u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), JsonError> {
        self.integer(false, u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), JsonError> {
        self.integer(false, u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), JsonError> {
        self.integer(false, v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), JsonError> {
        self.display(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), JsonError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), JsonError> {
        if v.is_finite() {
            self.display(v)
        } else {
            self.push(b"null")
        }
    }
    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        self.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), JsonError> {
        let mut seq = self.open(None, b"[", b"]")?;
        v.iter().try_for_each(|b| seq.element(b))?;
        seq.finish()
    }
    fn serialize_none(self) -> Result<(), JsonError> {
        self.push(b"null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), JsonError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), JsonError> {
        self.push(b"null")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), JsonError> {
        self.push(b"null")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        if name == RawJson::ONE_LINE_TOKEN {
            return v.serialize(RawWriter {
                out: self,
                one_line: true,
            });
        }
        if name == RawJson::TOKEN {
            return v.serialize(RawWriter {
                out: self,
                one_line: false,
            });
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        self.push(b"{")?;
        self.string(variant)?;
        self.push(b":")?;
        v.serialize(&mut *self)?;
        self.push(b"}")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a, 'b>, JsonError> {
        self.open(None, b"[", b"]")
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a, 'b>, JsonError> {
        self.open(None, b"[", b"]")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'b>, JsonError> {
        self.open(None, b"[", b"]")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'b>, JsonError> {
        self.open(Some(variant), b"[", b"]}")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a, 'b>, JsonError> {
        self.open(None, b"{", b"}")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a, 'b>, JsonError> {
        self.open(None, b"{", b"}")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'b>, JsonError> {
        self.open(Some(variant), b"{", b"}}")
    }
    fn collect_str<T: core::fmt::Display + ?Sized>(self, v: &T) -> Result<(), JsonError> {
        self.push(b"\"")?;
        write!(Escaping(&mut *self), "{v}").map_err(|_| JsonError::BufferFull)?;
        self.push(b"\"")
    }
}

/// Escapes whatever is formatted into it: `collect_str` without a temporary.
struct Escaping<'a, 'b>(&'a mut Serializer<'b>);

impl core::fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.escaped(s).map_err(|_| core::fmt::Error)
    }
}

macro_rules! compound_impls {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = JsonError;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), JsonError> {
                self.element(v)
            }
            fn end(self) -> Result<(), JsonError> {
                self.finish()
            }
        }
    )*};
}
compound_impls!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        self.field(key, v)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), JsonError> {
        self.field(key, v)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JsonError> {
        self.comma()?;
        key.serialize(MapKey(&mut *self.ser))?;
        self.ser.push(b":")
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), JsonError> {
        v.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish()
    }
}

/// Object keys must be strings: strings and chars pass, numbers and bools
/// are quoted (as `serde_json` does), anything else is refused.
struct MapKey<'a, 'b>(&'a mut Serializer<'b>);

/// Writes a [`RawJson`]'s text verbatim; it was validated when it was made.
struct RawWriter<'a, 'b> {
    out: &'a mut Serializer<'b>,
    /// The text holds no line feed: nothing to look for.
    one_line: bool,
}

macro_rules! refuse {
    ($err:expr; $($method:ident($($arg:ty),*)),* $(,)?) => {$(
        fn $method(self, $(_: $arg),*) -> Result<(), JsonError> { Err($err) }
    )*};
}

macro_rules! refuse_compound {
    ($err:expr) => {
        type SerializeSeq = ser::Impossible<(), JsonError>;
        type SerializeTuple = ser::Impossible<(), JsonError>;
        type SerializeTupleStruct = ser::Impossible<(), JsonError>;
        type SerializeTupleVariant = ser::Impossible<(), JsonError>;
        type SerializeMap = ser::Impossible<(), JsonError>;
        type SerializeStruct = ser::Impossible<(), JsonError>;
        type SerializeStructVariant = ser::Impossible<(), JsonError>;
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), JsonError> {
            Err($err)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<(), JsonError> {
            Err($err)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), JsonError> {
            Err($err)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, JsonError> {
            Err($err)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, JsonError> {
            Err($err)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, JsonError> {
            Err($err)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, JsonError> {
            Err($err)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, JsonError> {
            Err($err)
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, JsonError> {
            Err($err)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, JsonError> {
            Err($err)
        }
    };
}

impl ser::Serializer for MapKey<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    refuse_compound!(JsonError::KeyMustBeString);
    refuse!(JsonError::KeyMustBeString; serialize_f32(f32), serialize_f64(f64), serialize_bytes(&[u8]),
        serialize_none(), serialize_unit(), serialize_unit_struct(&'static str));

    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        self.0.string(v)
    }
    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        self.0.string(v.encode_utf8(&mut [0; 4]))
    }
    fn collect_str<T: core::fmt::Display + ?Sized>(self, v: &T) -> Result<(), JsonError> {
        ser::Serializer::collect_str(self.0, v)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        v: &'static str,
    ) -> Result<(), JsonError> {
        self.0.string(v)
    }
    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.0.string(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), JsonError> {
        self.serialize_i128(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), JsonError> {
        self.serialize_i128(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), JsonError> {
        self.serialize_i128(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), JsonError> {
        self.serialize_i128(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<(), JsonError> {
        self.0.push(b"\"")?;
        self.0.display(v)?;
        self.0.push(b"\"")
    }
    fn serialize_u8(self, v: u8) -> Result<(), JsonError> {
        self.serialize_u128(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), JsonError> {
        self.serialize_u128(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), JsonError> {
        self.serialize_u128(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), JsonError> {
        self.serialize_u128(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<(), JsonError> {
        self.0.push(b"\"")?;
        self.0.display(v)?;
        self.0.push(b"\"")
    }
}

impl ser::Serializer for RawWriter<'_, '_> {
    type Ok = ();
    type Error = JsonError;
    refuse_compound!(JsonError::Custom);
    refuse!(JsonError::Custom; serialize_bool(bool), serialize_i8(i8), serialize_i16(i16),
        serialize_i32(i32), serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_bytes(&[u8]), serialize_none(), serialize_unit(), serialize_unit_struct(&'static str));

    /// The text as it is, except that each `\n` becomes a space: in valid
    /// JSON a raw line feed can only be whitespace (strings escape it), and
    /// on the channel it would end the message early.
    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        let mut rest = v.as_bytes();
        if !self.one_line {
            while let Some(i) = crate::bytes::find(rest, b'\n') {
                self.out.push(&rest[..i])?;
                self.out.push(b" ")?;
                rest = &rest[i + 1..];
            }
        }
        self.out.push(rest)
    }
    fn collect_str<T: core::fmt::Display + ?Sized>(self, _: &T) -> Result<(), JsonError> {
        Err(JsonError::Custom)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), JsonError> {
        Err(JsonError::Custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short strings are checked in the output buffer, next to whatever it
    /// held before: every special byte at every place is still escaped,
    /// whatever follows in the buffer.
    #[test]
    fn short_strings_escape_whatever_the_buffer_held() {
        for fill in [0u8, b'"', b'\\', b'a', 0xff] {
            for len in 0..SHORT_STRING + 4 {
                for at in 0..len {
                    for special in [b'"', b'\\', b'\n', 0x01, 0x1f] {
                        let mut text = [b'x'; SHORT_STRING + 4];
                        text[at] = special;
                        let s = core::str::from_utf8(&text[..len]).unwrap();
                        let mut buf = [fill; 64];
                        let n = to_slice(s, &mut buf).unwrap();
                        let mut escaped = [0u8; 64];
                        let mut w = Serializer {
                            buf: &mut escaped,
                            len: 0,
                        };
                        w.push(b"\"").unwrap();
                        w.escaped(s).unwrap();
                        w.push(b"\"").unwrap();
                        let m = w.len;
                        assert_eq!(&buf[..n], &escaped[..m], "{s:?} over {fill}");
                    }
                }
                let plain = "abcdefghijklmnopqrst".get(..len).unwrap();
                let mut buf = [fill; 64];
                let n = to_slice(plain, &mut buf).unwrap();
                assert_eq!(&buf[1..n - 1], plain.as_bytes());
            }
        }
        // No room for two words past it: the long path, same result.
        let mut buf = [0u8; 5];
        assert_eq!(to_slice("abc", &mut buf), Ok(5));
        assert_eq!(&buf, b"\"abc\"");
        let mut buf = [0u8; 18];
        assert_eq!(to_slice("abcdefghijklmnop", &mut buf), Ok(18));
        assert_eq!(&buf, b"\"abcdefghijklmnop\"");
        assert_eq!(
            to_slice("abcdefghijklmnopq", &mut buf),
            Err(JsonError::BufferFull)
        );
    }

    fn json<T: Serialize + ?Sized>(v: &T) -> heapless::String<256> {
        let mut buf = [0u8; 256];
        let n = to_slice(v, &mut buf).unwrap();
        let mut s = heapless::String::new();
        s.push_str(core::str::from_utf8(&buf[..n]).unwrap())
            .unwrap();
        s
    }

    #[test]
    fn escapes_like_v8() {
        // The string from the protocol transcript (section 6), minus the lone
        // surrogate, which a Rust string cannot hold.
        assert_eq!(
            json("line\nbreak \u{2028} é \"q\" \\ \u{1} \u{7f}"),
            "\"line\\nbreak \u{2028} é \\\"q\\\" \\\\ \\u0001 \u{7f}\""
        );
    }

    #[test]
    fn numbers_and_specials() {
        assert_eq!(
            json(&(1.0f64, -0.5f32, f64::NAN, u64::MAX, 'x', ())),
            "[1,-0.5,null,18446744073709551615,\"x\",null]"
        );
    }

    #[test]
    fn full_buffer_is_an_error_not_a_panic() {
        let mut buf = [0u8; 3];
        assert_eq!(to_slice("abcd", &mut buf), Err(JsonError::BufferFull));
        assert_eq!(to_slice(&[1, 2], &mut []), Err(JsonError::BufferFull));
    }

    #[test]
    fn raw_json_is_written_verbatim() {
        let raw = RawJson::new("{\"a\": [1, 2]}").unwrap();
        assert_eq!(json(&(raw, 1)), "[{\"a\": [1, 2]},1]");
    }

    /// Pretty-printed JSON keeps its meaning but not its line feeds, which
    /// would cut the message into several lines on the channel.
    #[test]
    fn raw_json_line_feeds_become_spaces() {
        let raw = RawJson::new("{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1,\n2]\n}\n").unwrap();
        assert_eq!(json(&raw), "{   \"a\": \"x\\ny\",\r   \"b\": [1, 2] }");
    }
}
