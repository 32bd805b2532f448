//! JSON for Node's `json` serialization mode, with no allocator.
//!
//! [`to_slice`] writes a `serde::Serialize` value into a byte buffer,
//! escaping strings exactly as V8's `JSON.stringify` does.
//! [`from_slice_mut`] reads a value back, borrowing strings from the buffer
//! (escaped strings are unescaped in place). [`RawJson`] carries JSON text
//! through unchanged, e.g. to echo a received message.
//!
//! Why not `serde-json-core`: its serializer panics on `char`
//! (`unreachable!`), and its deserializer can only borrow strings that have no
//! escapes and rejects escaped surrogate pairs (which Python's `json` emits
//! for every non-BMP character). Borrowing escaped strings needs a mutable
//! buffer, which is what a receive buffer is.
//!
//! A round trip through a stack buffer, as a channel does it:
//!
//! ```
//! use ipc_core::json::{from_slice_mut, to_slice, JsonError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Job<'a> {
//!     id: u32,
//!     name: &'a str,       // borrowed from the buffer, even with escapes
//!     tags: [char; 2],
//! }
//!
//! let mut buf = [0u8; 64];
//! let job = Job { id: 7, name: "say \"hi\"\n", tags: ['é', '😀'] };
//! let n = to_slice(&job, &mut buf)?;
//! assert_eq!(&buf[..n], r#"{"id":7,"name":"say \"hi\"\n","tags":["é","😀"]}"#.as_bytes());
//!
//! let back: Job = from_slice_mut(&mut buf[..n])?;
//! assert_eq!(back, job);
//!
//! // Too small a buffer, or the wrong shape, is a typed error.
//! assert_eq!(to_slice(&job, &mut [0u8; 8]), Err(JsonError::BufferFull));
//! let mut text = *br#"{"id":7}"#;
//! assert_eq!(from_slice_mut::<Job>(&mut text), Err(JsonError::MissingField("name")));
//! # Ok::<(), JsonError>(())
//! ```

pub(crate) mod de;
pub(crate) mod scan;
mod ser;

pub use de::MAX_DECODE_DEPTH;
pub use de::{from_slice_mut, Deserializer};
pub use scan::MAX_DEPTH;
pub use ser::{to_slice, Serializer};

use core::fmt;

/// What went wrong reading or writing JSON.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// The text is not valid JSON at this byte offset.
    Syntax {
        /// Byte offset of the offending byte.
        offset: usize,
    },
    /// The text ended inside a value.
    Eof,
    /// The text holds nothing but whitespace.
    Empty,
    /// A complete value is followed by more than whitespace.
    TrailingCharacters {
        /// Byte offset of the first extra byte.
        offset: usize,
    },
    /// Arrays and objects nest deeper than [`MAX_DEPTH`] (or, decoding
    /// into Rust types, [`MAX_DECODE_DEPTH`]).
    TooDeep {
        /// Byte offset where the limit was crossed.
        offset: usize,
    },
    /// The bytes are not valid UTF-8.
    InvalidUtf8 {
        /// Length of the valid prefix.
        offset: usize,
    },
    /// Valid JSON of another type than the one asked for.
    TypeMismatch {
        /// Byte offset of the value.
        offset: usize,
    },
    /// A value out of range for its type (e.g. `300` for a `u8`).
    InvalidValue,
    /// An array or object with the wrong number of elements.
    InvalidLength,
    /// An enum variant name that the type does not have.
    UnknownVariant,
    /// An object member the type refuses (`#[serde(deny_unknown_fields)]`).
    UnknownField,
    /// A required object member is absent.
    MissingField(&'static str),
    /// An object member appears twice.
    DuplicateField(&'static str),
    /// The output buffer is too small for the value.
    BufferFull,
    /// A map key that JSON cannot represent (only strings, numbers, bools).
    KeyMustBeString,
    /// A `Serialize`/`Deserialize` implementation reported its own error.
    Custom,
}

impl JsonError {
    /// Moves an offset-carrying error by `by` bytes (scans of a sub-slice).
    pub(crate) fn shifted(self, by: usize) -> Self {
        match self {
            JsonError::Syntax { offset } => JsonError::Syntax {
                offset: offset + by,
            },
            JsonError::TooDeep { offset } => JsonError::TooDeep {
                offset: offset + by,
            },
            other => other,
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax { offset } => write!(f, "invalid JSON at byte {offset}"),
            JsonError::Eof => f.write_str("JSON text ended inside a value"),
            JsonError::Empty => f.write_str("empty line where a JSON value was expected"),
            JsonError::TrailingCharacters { offset } => {
                write!(f, "unexpected text after the JSON value at byte {offset}")
            }
            JsonError::TooDeep { offset } => {
                write!(f, "JSON nested too deep at byte {offset}")
            }
            JsonError::InvalidUtf8 { offset } => write!(f, "invalid UTF-8 after byte {offset}"),
            JsonError::TypeMismatch { offset } => {
                write!(f, "JSON value at byte {offset} has the wrong type")
            }
            JsonError::InvalidValue => f.write_str("JSON value out of range for its type"),
            JsonError::InvalidLength => {
                f.write_str("JSON array or object has the wrong number of elements")
            }
            JsonError::UnknownVariant => f.write_str("unknown enum variant"),
            JsonError::UnknownField => f.write_str("unknown object member"),
            JsonError::MissingField(name) => write!(f, "missing object member `{name}`"),
            JsonError::DuplicateField(name) => write!(f, "object member `{name}` appears twice"),
            JsonError::BufferFull => f.write_str("JSON output does not fit in the buffer"),
            JsonError::KeyMustBeString => {
                f.write_str("JSON object keys must be strings, numbers or bools")
            }
            JsonError::Custom => f.write_str("the value's serde implementation failed"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for JsonError {}

impl serde::ser::Error for JsonError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        JsonError::Custom
    }
}

impl serde::de::Error for JsonError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        JsonError::Custom
    }
    fn invalid_type(_: serde::de::Unexpected<'_>, _: &dyn serde::de::Expected) -> Self {
        JsonError::TypeMismatch { offset: 0 }
    }
    fn invalid_value(_: serde::de::Unexpected<'_>, _: &dyn serde::de::Expected) -> Self {
        JsonError::InvalidValue
    }
    fn invalid_length(_: usize, _: &dyn serde::de::Expected) -> Self {
        JsonError::InvalidLength
    }
    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        JsonError::UnknownVariant
    }
    fn unknown_field(_: &str, _: &'static [&'static str]) -> Self {
        JsonError::UnknownField
    }
    fn missing_field(field: &'static str) -> Self {
        JsonError::MissingField(field)
    }
    fn duplicate_field(field: &'static str) -> Self {
        JsonError::DuplicateField(field)
    }
}

/// The JSON text of member `name` of the object `text` (the last one when it
/// appears twice, as with `JSON.parse`), `None` when it has no such member.
/// For echoing one member as it came, e.g. the `data` of Node's cluster
/// `queryServer`, while the rest is deserialized.
///
/// ```
/// use ipc_core::json::member;
/// let text = r#"{"act":"queryServer","data":{"ticketKeys":"8d1c"},"port":0}"#;
/// assert_eq!(member(text, "data")?.unwrap().as_str(), r#"{"ticketKeys":"8d1c"}"#);
/// assert!(member(text, "index")?.is_none());
/// # Ok::<(), ipc_core::json::JsonError>(())
/// ```
///
/// # Errors
/// [`JsonError`] when `text` is not one JSON object.
pub fn member<'t>(text: &'t str, name: &str) -> Result<Option<RawJson<'t>>, JsonError> {
    let b = text.as_bytes();
    let start = scan::skip_ws(b, 0);
    let mut found = None;
    let end = scan::object_fields(b, start, |n, v| {
        let raw = n.span.of(b);
        let hit = if n.escaped {
            let mut buf = [0u8; 64];
            matches!(scan::unescape_into(raw, &mut buf), (t, true) if t == name)
        } else {
            raw == name.as_bytes()
        };
        if hit {
            found = Some(v);
        }
    })?;
    scan::only_ws_after(b, end)?;
    Ok(found.map(|v| RawJson::checked(&text[v.start..v.end])))
}

/// JSON text known to be one valid value; serializes verbatim, except that
/// line feeds (whitespace in valid JSON) become spaces, as the channel
/// ends a message at a line feed.
///
/// ```
/// use ipc_core::json::{to_slice, RawJson};
/// let raw = RawJson::new(r#"{"any": ["json", 1]}"#)?;
/// let mut buf = [0u8; 64];
/// let n = to_slice(&raw, &mut buf)?;
/// assert_eq!(&buf[..n], raw.as_str().as_bytes());
/// # Ok::<(), ipc_core::json::JsonError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a> {
    text: &'a str,
    /// No line feed in `text`: it is written as it is, without a search.
    one_line: bool,
}

impl<'a> RawJson<'a> {
    /// Newtype name the serializer recognises: text that may hold line
    /// feeds.
    pub(crate) const TOKEN: &'static str = "$ipc_core::json::RawJson";
    /// The same for text without line feeds.
    pub(crate) const ONE_LINE_TOKEN: &'static str = "$ipc_core::json::RawJson::one_line";

    /// Checks that `text` is exactly one JSON value (surrounding whitespace is
    /// trimmed).
    ///
    /// # Errors
    /// [`JsonError::Empty`] for nothing but whitespace,
    /// [`JsonError::Syntax`] for invalid JSON, [`JsonError::Eof`] for a
    /// value cut short (`[1,`), [`JsonError::TrailingCharacters`] for more
    /// than one value (`1 2`), [`JsonError::TooDeep`] past [`MAX_DEPTH`]
    /// levels of nesting.
    pub fn new(text: &'a str) -> Result<Self, JsonError> {
        let span = scan::whole_value(text.as_bytes())?;
        Ok(RawJson::checked(&text[span.start..span.end]))
    }

    /// Wraps one validated value, noting whether it holds a line feed.
    fn checked(text: &'a str) -> Self {
        RawJson {
            text,
            one_line: crate::bytes::find(text.as_bytes(), b'\n').is_none(),
        }
    }

    /// Wraps a received message's validated text, which the channel
    /// delivered as one line.
    pub(crate) fn received(text: &'a str) -> Self {
        RawJson {
            text,
            one_line: true,
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &'a str {
        self.text
    }
}

impl serde::Serialize for RawJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let token = if self.one_line {
            Self::ONE_LINE_TOKEN
        } else {
            Self::TOKEN
        };
        s.serialize_newtype_struct(token, self.text)
    }
}
