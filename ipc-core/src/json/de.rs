//! `serde::Deserializer` over a mutable byte buffer, zero-copy.
//!
//! Strings are handed out as `&'de str` borrowed from the buffer. A string
//! that contains escapes is unescaped *in place* first (unescaped text is
//! never longer than its escaped form), so borrowed `&str` fields work for
//! `"a\"b"`, `"\u00e9"` and surrogate pairs alike, without allocation.
//! The buffer is left modified, which is why this takes `&mut [u8]`.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::scan;
use super::JsonError;

/// The deepest nesting [`from_slice_mut`] decodes into Rust types (each
/// level is a call of the type's `Deserialize`); deeper input is
/// [`JsonError::TooDeep`]. Receiving and forwarding raw JSON allows
/// [`MAX_DEPTH`](super::MAX_DEPTH).
pub const MAX_DECODE_DEPTH: usize = 128;

/// Deserializes one JSON value (with optional surrounding whitespace) from
/// `input`, borrowing strings from it.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Greeting<'a> { text: &'a str, n: u8 }
/// let mut line = *br#"{"text":"caf\u00e9 \"ok\"","n":7}"#;
/// let g: Greeting = ipc_core::json::from_slice_mut(&mut line)?;
/// assert_eq!((g.text, g.n), ("café \"ok\"", 7));
/// # Ok::<(), ipc_core::json::JsonError>(())
/// ```
///
/// # Errors
/// About the text: [`JsonError::InvalidUtf8`] for bytes that are not
/// UTF-8, [`JsonError::Eof`] for empty input or a value cut short,
/// [`JsonError::Syntax`] for invalid JSON, [`JsonError::TrailingCharacters`]
/// for anything after the value the type asked for, [`JsonError::TooDeep`]
/// past [`MAX_DECODE_DEPTH`] levels. About the type:
/// [`JsonError::TypeMismatch`] for a value of another JSON type (a string
/// for a number, `1.5` for an integer), [`JsonError::InvalidValue`] for a
/// number out of range (`300` or `-1` for a `u8`),
/// [`JsonError::InvalidLength`] for an array too short for a tuple or
/// array type, [`JsonError::MissingField`] / [`JsonError::DuplicateField`]
/// / [`JsonError::UnknownField`] / [`JsonError::UnknownVariant`] as serde
/// derives report them, and [`JsonError::Custom`] from a hand-written
/// `Deserialize`. The buffer may be partly unescaped after an error.
pub fn from_slice_mut<'de, T: de::Deserialize<'de>>(input: &'de mut [u8]) -> Result<T, JsonError> {
    core::str::from_utf8(input).map_err(|e| JsonError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    from_scanned(input)
}

/// [`from_slice_mut`] for text the channel's scan already found to be one
/// valid JSON value (so valid UTF-8): no second pass over it first. Each
/// borrowed string is still checked on its own as it is handed out.
pub(crate) fn from_scanned<'de, T: de::Deserialize<'de>>(
    input: &'de mut [u8],
) -> Result<T, JsonError> {
    let len = input.len();
    let mut de = Deserializer {
        rest: input,
        pos: 0,
        depth: 0,
    };
    let value = T::deserialize(&mut de)?;
    de.skip_ws();
    if !de.rest.is_empty() {
        return Err(JsonError::TrailingCharacters {
            offset: len - de.rest.len(),
        });
    }
    Ok(value)
}

/// Reads JSON from the unread tail of a buffer. Use [`from_slice_mut`].
#[derive(Debug)]
pub struct Deserializer<'de> {
    rest: &'de mut [u8],
    /// Offset of `rest` in the original input, for error positions.
    pos: usize,
    depth: usize,
}

impl<'de> Deserializer<'de> {
    fn skip_ws(&mut self) {
        let n = scan::skip_ws(self.rest, 0);
        self.advance(n);
    }

    /// Skips whitespace and returns the next byte without consuming it.
    fn peek(&mut self) -> Result<u8, JsonError> {
        self.skip_ws();
        self.rest.first().copied().ok_or(JsonError::Eof)
    }

    /// Consumes and returns the first `n` bytes.
    fn advance(&mut self, n: usize) -> &'de mut [u8] {
        let (head, tail) = core::mem::take(&mut self.rest).split_at_mut(n);
        self.rest = tail;
        self.pos += n;
        head
    }

    fn error(&self) -> JsonError {
        JsonError::Syntax { offset: self.pos }
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        if self.peek()? != byte {
            return Err(self.error());
        }
        self.advance(1);
        Ok(())
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> Result<bool, JsonError> {
        let hit = self.peek()? == byte;
        if hit {
            self.advance(1);
        }
        Ok(hit)
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        self.skip_ws();
        if !self.rest.starts_with(word) {
            return Err(self.error());
        }
        self.advance(word.len());
        Ok(())
    }

    /// Consumes a string and returns its unescaped text, borrowed.
    fn string(&mut self) -> Result<&'de str, JsonError> {
        self.skip_ws();
        let (end, escaped) = scan::string_end(self.rest, 0).map_err(|e| e.shifted(self.pos))?;
        let raw = self.advance(end);
        let inner = &mut raw[1..end - 1];
        let len = if escaped {
            scan::unescape_in_place(inner)
        } else {
            inner.len()
        };
        let text: &'de [u8] = &inner[..len];
        core::str::from_utf8(text).map_err(|e| JsonError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })
    }

    /// The text of the number at the front, and whether it is an integer
    /// (no fraction, no exponent).
    fn number_text(&mut self) -> Result<(&'de str, bool), JsonError> {
        self.skip_ws();
        let end = scan::number_end(self.rest, 0).map_err(|e| e.shifted(self.pos))?;
        let text = self.advance(end);
        let text: &str =
            core::str::from_utf8(text).map_err(|_| JsonError::Syntax { offset: self.pos })?;
        Ok((text, !text.contains(['.', 'e', 'E'])))
    }

    fn number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, JsonError> {
        let (text, integral) = self.number_text()?;
        // `-0` is a float, as in serde_json (and JSON.parse keeps its sign).
        if integral && text != "-0" {
            if let Ok(v) = text.parse::<u64>() {
                return visitor.visit_u64(v);
            }
            if let Ok(v) = text.parse::<i64>() {
                return visitor.visit_i64(v);
            }
        }
        // Out-of-range integers fall back to f64, as JSON.parse does.
        self.float(text, visitor)
    }

    fn float<V: Visitor<'de>>(&self, text: &str, visitor: V) -> Result<V::Value, JsonError> {
        let v = text
            .parse::<f64>()
            .map_err(|_| JsonError::Syntax { offset: self.pos })?;
        visitor.visit_f64(v)
    }

    /// A 128-bit integer in full, when the number is one that fits.
    fn wide<V: Visitor<'de>>(&mut self, visitor: V, signed: bool) -> Result<V::Value, JsonError> {
        if !matches!(self.peek()?, b'-' | b'0'..=b'9') {
            return de::Deserializer::deserialize_any(&mut *self, visitor);
        }
        let (text, integral) = self.number_text()?;
        if integral {
            if signed {
                if let Ok(v) = text.parse::<i128>() {
                    return visitor.visit_i128(v);
                }
            } else if let Ok(v) = text.parse::<u128>() {
                return visitor.visit_u128(v);
            }
        }
        self.float(text, visitor)
    }

    /// Skips one value, validating it.
    fn skip_value(&mut self) -> Result<(), JsonError> {
        self.skip_ws();
        let end = scan::value_end(self.rest, 0).map_err(|e| e.shifted(self.pos))?;
        self.advance(end);
        Ok(())
    }

    fn nest<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, JsonError>,
    ) -> Result<T, JsonError> {
        if self.depth == MAX_DECODE_DEPTH {
            return Err(JsonError::TooDeep { offset: self.pos });
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = JsonError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                visitor.visit_unit()
            }
            b't' => {
                self.literal(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                visitor.visit_bool(false)
            }
            b'"' => visitor.visit_borrowed_str(self.string()?),
            b'[' => self.deserialize_seq(visitor),
            b'{' => self.deserialize_map(visitor),
            _ => self.number(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        match self.peek()? {
            b't' | b'f' => self.deserialize_any(visitor),
            _ => Err(JsonError::TypeMismatch { offset: self.pos }),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 u8 u16 u32 u64 f32 f64
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        self.wide(visitor, true)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        self.wide(visitor, false)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        if self.peek()? != b'"' {
            return Err(JsonError::TypeMismatch { offset: self.pos });
        }
        visitor.visit_borrowed_str(self.string()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        match self.peek()? {
            b'"' => visitor.visit_borrowed_bytes(self.string()?.as_bytes()),
            _ => self.deserialize_seq(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        if self.peek()? != b'n' {
            return Err(JsonError::TypeMismatch { offset: self.pos });
        }
        self.literal(b"null")?;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, JsonError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, JsonError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        if self.peek()? != b'[' {
            return Err(JsonError::TypeMismatch { offset: self.pos });
        }
        self.advance(1);
        self.nest(|de| {
            let value = visitor.visit_seq(Elements {
                de: &mut *de,
                first: true,
            })?;
            if !de.eat(b']')? {
                return Err(JsonError::TrailingCharacters { offset: de.pos });
            }
            Ok(value)
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, JsonError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, JsonError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        if self.peek()? != b'{' {
            return Err(JsonError::TypeMismatch { offset: self.pos });
        }
        self.advance(1);
        self.nest(|de| {
            let value = visitor.visit_map(Elements {
                de: &mut *de,
                first: true,
            })?;
            if !de.eat(b'}')? {
                return Err(JsonError::TrailingCharacters { offset: de.pos });
            }
            Ok(value)
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, JsonError> {
        match self.peek()? {
            b'[' => self.deserialize_seq(visitor),
            _ => self.deserialize_map(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, JsonError> {
        match self.peek()? {
            b'"' => visitor.visit_enum(self.string()?.into_deserializer()),
            b'{' => {
                self.advance(1);
                self.nest(|de| {
                    let value = visitor.visit_enum(Variant { de: &mut *de })?;
                    de.expect(b'}')?;
                    Ok(value)
                })
            }
            _ => Err(JsonError::TypeMismatch { offset: self.pos }),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        self.skip_value()?;
        visitor.visit_unit()
    }
}

/// The members of an array or object being read.
struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    first: bool,
}

impl<'de> Elements<'_, 'de> {
    /// Moves past the comma before the next member; `false` at the closer.
    fn next(&mut self, close: u8) -> Result<bool, JsonError> {
        let b = self.de.peek()?;
        if b == close {
            return Ok(false);
        }
        if !core::mem::take(&mut self.first) {
            if b != b',' {
                return Err(self.de.error());
            }
            self.de.advance(1);
        }
        Ok(true)
    }
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = JsonError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, JsonError> {
        if !self.next(b']')? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = JsonError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, JsonError> {
        if !self.next(b'}')? {
            return Ok(None);
        }
        if self.de.peek()? != b'"' {
            return Err(self.de.error());
        }
        seed.deserialize(MapKey { de: &mut *self.de }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, JsonError> {
        self.de.expect(b':')?;
        seed.deserialize(&mut *self.de)
    }
}

/// Object keys are strings; numeric keys (`{"1": …}` into a map of integers)
/// are parsed from the string, as `serde_json` does.
struct MapKey<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

macro_rules! key_as_number {
    ($($method:ident => $visit:ident : $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
            let at = self.de.pos;
            let text = self.de.string()?;
            visitor.$visit(text.parse::<$ty>().map_err(|_| JsonError::TypeMismatch { offset: at })?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for MapKey<'_, 'de> {
    type Error = JsonError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, JsonError> {
        visitor.visit_borrowed_str(self.de.string()?)
    }

    key_as_number!(deserialize_i8 => visit_i64: i64, deserialize_i16 => visit_i64: i64,
        deserialize_i32 => visit_i64: i64, deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u64: u64, deserialize_u16 => visit_u64: u64,
        deserialize_u32 => visit_u64: u64, deserialize_u64 => visit_u64: u64);

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, JsonError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i128 u128 f32 f64 char str string bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// `{"Variant": value}` for enums with data.
struct Variant<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = JsonError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), JsonError> {
        let name = seed.deserialize(MapKey { de: &mut *self.de })?;
        self.de.expect(b':')?;
        Ok((name, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = JsonError;

    fn unit_variant(self) -> Result<(), JsonError> {
        de::Deserialize::deserialize(&mut *self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, JsonError> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, JsonError> {
        de::Deserializer::deserialize_seq(&mut *self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, JsonError> {
        de::Deserializer::deserialize_map(&mut *self.de, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    enum Shape<'a> {
        Dot,
        Circle(u32),
        Named { name: &'a str },
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Msg<'a> {
        #[serde(borrow)]
        s: &'a str,
        n: i32,
        f: f64,
        opt: Option<u8>,
        list: heapless::Vec<Shape<'a>, 4>,
        t: (bool, ()),
        c: char,
    }

    #[test]
    fn borrows_strings_with_and_without_escapes() {
        let mut line = *br#" {"s":"a\nb \u2028 \"q\" \u00e9\ud83d\ude00","extra":{"x":[1,{}]},"n":-3,"f":1.5e1,"opt":null,
            "list":["Dot",{"Circle":2},{"Named":{"name":"\u0041x"}}],"t":[true,null],"c":"\u00e9"} "#;
        let m: Msg = from_slice_mut(&mut line).unwrap();
        assert_eq!(m.s, "a\nb \u{2028} \"q\" é\u{1f600}");
        assert_eq!(
            (m.n, m.f, m.opt, m.t, m.c),
            (-3, 15.0, None, (true, ()), 'é')
        );
        assert_eq!(
            &m.list[..],
            &[Shape::Dot, Shape::Circle(2), Shape::Named { name: "Ax" }]
        );
    }

    #[test]
    fn type_and_syntax_errors_are_typed() {
        let mut a = *b"{\"s\":1}";
        assert!(matches!(
            from_slice_mut::<Msg>(&mut a),
            Err(JsonError::TypeMismatch { .. })
        ));
        let mut b = *b"[1,2,]";
        assert!(matches!(
            from_slice_mut::<heapless::Vec<u8, 4>>(&mut b),
            Err(JsonError::Syntax { .. })
        ));
        let mut c = *b"300";
        assert!(matches!(
            from_slice_mut::<u8>(&mut c),
            Err(JsonError::InvalidValue)
        ));
        let mut d = *b"1 2";
        assert!(matches!(
            from_slice_mut::<u8>(&mut d),
            Err(JsonError::TrailingCharacters { .. })
        ));
        let mut e = *b"{\"n\":1}";
        assert!(matches!(
            from_slice_mut::<Msg>(&mut e),
            Err(JsonError::MissingField("s"))
        ));
    }

    /// `-0` keeps its sign (a float, as in serde_json), and 128-bit
    /// integers come back whole instead of through `f64`.
    #[test]
    fn negative_zero_and_wide_integers() {
        let mut z = *b"-0";
        let z: f64 = from_slice_mut(&mut z).unwrap();
        assert!(z == 0.0 && z.is_sign_negative());
        let mut zero = *b"0";
        assert_eq!(from_slice_mut::<u8>(&mut zero), Ok(0));
        let mut wide = *b"[-170141183460469231731687303715884105728,340282366920938463463374607431768211455,7]";
        let got: (i128, u128, u128) = from_slice_mut(&mut wide).unwrap();
        assert_eq!(got, (i128::MIN, u128::MAX, 7));
        let mut too_wide = *b"340282366920938463463374607431768211456";
        assert!(from_slice_mut::<u128>(&mut too_wide).is_err());
        let mut neg = *b"-1";
        assert!(from_slice_mut::<u128>(&mut neg).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Any(serde::de::IgnoredAny);
        let mut deep = [b'['; 10_000];
        assert!(from_slice_mut::<heapless::Vec<Any, 1>>(&mut deep).is_err());
    }
}
