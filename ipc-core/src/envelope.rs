//! Reading one received line as Node's channel protocol sees it.
//!
//! A message is *internal* when it is an object whose `cmd` is a string longer
//! than five characters that starts with `NODE_`. Internal commands the
//! channel itself acts on are `NODE_HANDLE` (a message with a descriptor),
//! `NODE_HANDLE_ACK` and `NODE_HANDLE_NACK`.

use crate::handle::{HandleKind, Key};
use crate::json::scan::{self, unescape_into, Name, Span};
use crate::json::JsonError;

/// Bytes of a `cmd` kept for matching and for [`crate::Message::cmd`].
pub const MAX_CMD_LEN: usize = 64;

/// Decoded `cmd` of an internal message.
pub type Cmd = heapless::String<MAX_CMD_LEN>;

/// What a line is, for the channel. Spans index the line.
#[derive(Debug)]
pub(crate) enum Envelope {
    /// A message for the user: `value` spans the JSON value, `cmd` the
    /// content of its `cmd` string when it is internal.
    Message { value: Span, cmd: Option<Span> },
    /// A `NODE_HANDLE` wrapper (nested `net.Native` retransmissions already
    /// unwrapped). `kind` is `None` for a type tag we do not know; `msg` is
    /// `None` when the wrapper has no `msg`.
    Handle {
        kind: Option<HandleKind>,
        msg: Option<Span>,
        msg_cmd: Option<Span>,
        /// The `key` member's value.
        key: Option<Span>,
    },
    /// `NODE_HANDLE_ACK`.
    Ack,
    /// `NODE_HANDLE_NACK`.
    Nack,
}

/// The members of an object that the protocol looks at.
#[derive(Default)]
struct Fields {
    cmd: Option<Span>,
    kind: Option<Span>,
    msg: Option<Span>,
    key: Option<Span>,
    dgram_type: Option<Span>,
}

impl Fields {
    /// Reads the members of the object at `start` into `f`, validating it
    /// (later duplicates win, as in `JSON.parse`). Returns the index just
    /// past the object. (Filled in place: the fields are five spans, too
    /// many to move around per message.)
    #[inline(always)]
    fn read<const STREAM: bool>(
        f: &mut Fields,
        line: &[u8],
        start: usize,
    ) -> Result<usize, JsonError> {
        scan::object_fields_in::<STREAM>(line, start, |name, v| f.set(line, name, v))
    }

    /// Keeps member `name`'s value `v` if the protocol looks at it.
    #[inline(always)]
    fn set(&mut self, line: &[u8], name: Name, v: Span) {
        let raw = name.span.of(line);
        let mut buf = [0u8; 16];
        let name = if name.escaped {
            match unescape_into(raw, &mut buf) {
                (text, true) => text.as_bytes(),
                _ => return,
            }
        } else {
            raw
        };
        let slot = match name {
            b"cmd" => &mut self.cmd,
            b"type" => &mut self.kind,
            b"msg" => &mut self.msg,
            b"key" => &mut self.key,
            b"dgramType" => &mut self.dgram_type,
            _ => return,
        };
        *slot = Some(v);
    }
}

/// The string content of a value span, if the value is a string.
fn string_content(line: &[u8], v: Span) -> Option<&[u8]> {
    let raw = v.of(line);
    (raw.first() == Some(&b'"')).then(|| &raw[1..raw.len() - 1])
}

/// The decoded `key` of a handle wrapper (its value's span), if it is a
/// string that fits a [`Key`].
pub(crate) fn key_of(line: &[u8], v: Option<Span>) -> Option<Key> {
    let mut buf = [0u8; crate::handle::MAX_KEY_LEN];
    let key = core::str::from_utf8(short_string(line, v, &mut buf)?).ok()?;
    Key::try_from(key).ok()
}

/// The decoded bytes of a short string member (valid UTF-8), `None` if
/// absent, not a string or longer than `out`. Text without escapes is
/// its own decoding and is not copied.
fn short_string<'a>(line: &'a [u8], v: Option<Span>, out: &'a mut [u8]) -> Option<&'a [u8]> {
    let content = string_content(line, v?)?;
    if crate::bytes::find(content, b'\\').is_none() {
        return (content.len() <= out.len()).then_some(content);
    }
    let (text, complete) = unescape_into(content, out);
    complete.then_some(text.as_bytes())
}

/// The commands of an internal message that the channel acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Ack,
    Nack,
    Handle,
    /// Any other internal command.
    Other,
}

impl Command {
    fn of(cmd: &[u8]) -> Command {
        match cmd {
            b"NODE_HANDLE_ACK" => Command::Ack,
            b"NODE_HANDLE_NACK" => Command::Nack,
            b"NODE_HANDLE" => Command::Handle,
            _ => Command::Other,
        }
    }
}

/// The span of the content of the internal `cmd` among an object's
/// `fields`, if it has one, and which command it is.
fn internal_cmd(line: &[u8], fields: &Fields) -> Option<(Span, Command)> {
    let span = fields.cmd.filter(|c| line.get(c.start) == Some(&b'"'))?;
    let content = Span {
        start: span.start + 1,
        end: span.end - 1,
    };
    let raw = content.of(line);
    // Internal: longer than five characters and starting with NODE_.
    let command = if crate::bytes::find(raw, b'\\').is_none() {
        // The text is its bytes: past the five ASCII ones of the prefix,
        // each byte adds a character.
        if !(raw.len() > 5 && raw.starts_with(b"NODE_")) {
            return None;
        }
        Command::of(raw)
    } else {
        let mut cmd = Cmd::new();
        let complete = decode_cmd(raw, &mut cmd);
        if !(cmd.starts_with("NODE_") && (!complete || cmd.chars().count() > 5)) {
            return None;
        }
        // One that did not fit is longer than any of ours.
        if complete {
            Command::of(cmd.as_bytes())
        } else {
            Command::Other
        }
    };
    Some((content, command))
}

/// The members of the object at `value`, `None` if the value is not an
/// object. The value was validated with its line, so reading it again
/// cannot fail.
fn fields_of(line: &[u8], value: Span) -> Option<Fields> {
    if line.get(value.start) != Some(&b'{') {
        return None;
    }
    let mut fields = Fields::default();
    Fields::read::<false>(&mut fields, line, value.start).ok()?;
    Some(fields)
}

/// Decodes the content of a `cmd` string into `out`, as much as fits
/// ([`MAX_CMD_LEN`] bytes: every cmd Node uses is far shorter). Returns
/// whether all of it fit.
pub(crate) fn decode_cmd(content: &[u8], out: &mut Cmd) -> bool {
    let mut buf = [0u8; MAX_CMD_LEN];
    let (text, complete) = unescape_into(content, &mut buf);
    out.clear();
    // Cannot fail: text is at most MAX_CMD_LEN bytes.
    let _ = out.push_str(text);
    complete
}

/// Validates `line` (one JSON value plus optional whitespace) and says what
/// it is.
pub(crate) fn read(line: &[u8]) -> Result<Envelope, JsonError> {
    let mut fields = Fields::default();
    let value = scan_value::<false>(line, &mut fields)?;
    scan::only_ws_after(line, value.end)?;
    Ok(classify(line, value, &fields))
}

/// Reads the line at the front of `stream` (received bytes, the line's
/// `\n` among them) in the pass that finds where it ends. Returns the
/// line's length without its `\n`, and what [`read`] says of that line.
/// `None` when that takes more than this one pass: the line is not
/// complete yet, or it is not a good message. The caller then finds the
/// `\n` and calls [`read`] on the line, for the error or to wait for more.
pub(crate) fn read_stream(stream: &[u8]) -> Option<(usize, Envelope)> {
    let mut fields = Fields::default();
    let value = scan_value::<true>(stream, &mut fields).ok()?;
    // Whitespace up to the `\n`; none of it (nor the value) is a `\n`,
    // so the line is exactly what was scanned.
    let nl = scan::skip_ws_in::<true>(stream, value.end);
    if stream.get(nl) != Some(&b'\n') {
        return None;
    }
    let line = &stream[..nl];
    Some((nl, classify(line, value, &fields)))
}

/// Validates the JSON value at the front of `text` (after whitespace) and
/// returns its span; for an object, fills `fields` (all `None` before) in
/// the same pass.
#[inline(always)]
fn scan_value<const STREAM: bool>(text: &[u8], fields: &mut Fields) -> Result<Span, JsonError> {
    let start = scan::skip_ws_in::<STREAM>(text, 0);
    if start == text.len() {
        return Err(JsonError::Empty);
    }
    // One pass over an object: it is validated while the members the
    // protocol needs are picked out.
    let end = if text[start] == b'{' {
        Fields::read::<STREAM>(fields, text, start)?
    } else {
        scan::value_end_within::<STREAM>(text, start, 0)?
    };
    Ok(Span { start, end })
}

/// Says what the line holding the validated `value` is; `fields` are the
/// value's members if it is an object.
#[inline(always)]
fn classify(line: &[u8], value: Span, fields: &Fields) -> Envelope {
    let internal = match line[value.start] {
        b'{' => internal_cmd(line, fields),
        _ => None,
    };
    let Some((span, command)) = internal else {
        return Envelope::Message { value, cmd: None };
    };
    match command {
        Command::Ack => Envelope::Ack,
        Command::Nack => Envelope::Nack,
        Command::Handle => handle_wrapper(line, fields, 0),
        Command::Other => Envelope::Message {
            value,
            cmd: Some(span),
        },
    }
}

#[inline(never)]
fn handle_wrapper(line: &[u8], fields: &Fields, depth: u8) -> Envelope {
    let mut tag_buf = [0u8; 16];
    let mut dgram_buf = [0u8; 8];
    let tag = short_string(line, fields.kind, &mut tag_buf);
    let dgram = short_string(line, fields.dgram_type, &mut dgram_buf);
    let kind = tag.and_then(|t| HandleKind::from_tag_bytes(t, dgram));
    // A message without `msg` is `undefined` in Node; we deliver `null`.
    let msg = fields.msg;

    // Node retransmits a NACKed socket wrapped once more as
    // {"cmd":"NODE_HANDLE","type":"net.Native","msg":<the first wrapper>}.
    let inner = msg.and_then(|m| fields_of(line, m));
    let inner_cmd = inner.as_ref().and_then(|f| internal_cmd(line, f));
    if let (Some(inner), Some((_, c))) = (&inner, &inner_cmd) {
        if kind == Some(HandleKind::Native) && depth == 0 && *c == Command::Handle {
            return handle_wrapper(line, inner, 1);
        }
    }
    let msg_cmd = inner_cmd.map(|(span, _)| span);
    Envelope::Handle {
        kind,
        msg,
        msg_cmd,
        key: fields.key,
    }
}

/// Whether a line that could not be read looks like a handle message, so the
/// sender waiting for an answer gets a NACK instead of silence.
pub(crate) fn looks_like_handle(line: &[u8]) -> bool {
    let i = scan::skip_ws(line, 0);
    line[i..].starts_with(b"{\"cmd\":\"NODE_HANDLE\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(line: &str) -> &'static str {
        match read(line.as_bytes()).unwrap() {
            Envelope::Message { cmd: None, .. } => "user",
            Envelope::Message { cmd: Some(_), .. } => "internal",
            Envelope::Handle { .. } => "handle",
            Envelope::Ack => "ack",
            Envelope::Nack => "nack",
        }
    }

    #[test]
    fn classifies_like_node() {
        assert_eq!(kind_of("{\"cmd\":\"NODE_whatever\"}"), "internal");
        assert_eq!(kind_of("{\"cmd\":\"NODE_\"}"), "user");
        assert_eq!(kind_of("{\"cmd\":\"NODE\\u005fX\"}"), "internal");
        assert_eq!(kind_of("{\"cmd\":1}"), "user");
        assert_eq!(kind_of("{\"cmd\":\"node_handle_ack\"}"), "user");
        assert_eq!(kind_of("42"), "user");
        assert_eq!(kind_of("{\"cmd\":\"NODE_HANDLE_ACK\"}\r"), "ack");
        assert_eq!(kind_of("{\"x\":1,\"cmd\":\"NODE_HANDLE_NACK\"}"), "nack");
        // JSON.parse decodes member names too.
        assert_eq!(kind_of("{\"\\u0063md\":\"NODE_HANDLE_ACK\"}"), "ack");
        assert_eq!(
            kind_of("{\"cmd\":\"NODE_HANDLE_ACK\",\"cmd\":\"x\"}"),
            "user"
        );
        assert_eq!(
            kind_of("{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Server\",\"msg\":\"server\"}"),
            "handle"
        );
    }

    /// An object line is validated in the same pass that reads its members,
    /// with the same depth bound and trailing-text check as any value.
    #[test]
    fn objects_are_validated_whole() {
        let depth = crate::json::MAX_DEPTH;
        let mut line = [0u8; 2 * crate::json::MAX_DEPTH + 16];
        let nested = |levels: usize, out: &mut [u8]| -> usize {
            // {"a":[[...[0]...]]}: the object is one level.
            out[..5].copy_from_slice(b"{\"a\":");
            out[5..5 + levels].fill(b'[');
            out[5 + levels] = b'0';
            out[6 + levels..6 + 2 * levels].fill(b']');
            out[6 + 2 * levels] = b'}';
            7 + 2 * levels
        };
        let n = nested(depth - 1, &mut line);
        assert!(read(&line[..n]).is_ok());
        let n = nested(depth, &mut line);
        assert!(matches!(read(&line[..n]), Err(JsonError::TooDeep { .. })));
        assert!(matches!(
            read(b"{\"a\":1} x"),
            Err(JsonError::TrailingCharacters { offset: 8 })
        ));
        for bad in [
            &b"{\"a\":tru}"[..],
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{,}",
            b"{\"a\":1}}",
            b"{\"a\":[1}",
        ] {
            assert!(read(bad).is_err(), "{:?}", core::str::from_utf8(bad));
        }
        assert!(matches!(read(b"  "), Err(JsonError::Empty)));
    }

    /// Reading a line from the stream (the pass that also finds its end)
    /// gives what finding the `\n` first and then reading the line gives:
    /// the same answer for a good line, `None` for a bad one. Checked for
    /// lines of each kind, every prefix of them, and every one-byte change
    /// to a byte that matters to JSON or to the framing.
    #[test]
    fn stream_reads_agree_with_line_reads() {
        let lines: [&[u8]; 15] = [
            &br#"{"seq":123456,"payload":"xxxxxxxxxxxxxxxx"}"#[..],
            // Flat objects with every kind of value and every member name
            // the protocol looks at.
            &br#"{"cmd":"NODE_SOCKET_GET_COUNT","n":-1.5e+3,"key":""}"#[..],
            &br#"{"t":true,"f":false,"z":null,"a":0,"":"b"}"#[..],
            &br#"{"type":"x","msg":0,"dgramType":"","cmd":"x","cmd":"y"}"#[..],
            &br#"{"cmd":"NODE_HANDLE_ACK"}"#[..],
            &br#" { "cmd" : "NODE_HANDLE_ACK" } "#[..],
            &br#"{"cmd":"NODE_HANDLE","type":"net.Socket","msg":{"a":[1,2.5e3,true]},"key":"6::::0"}"#[..],
            &br#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_HANDLE","type":"net.Server","msg":1}}"#[..],
            &br#"{"cmd":"NODE_SOCKET_GET_COUNT","key":"6::::0"}"#[..],
            &br#"{"\u0063md":"NODE_x","s":"a\"b\\c\u00e9","n":null,"f":false}"#[..],
            &br#""plain \u2028 text""#[..],
            "{\"\u{e9}\":\"\u{fc}\u{20ac}\u{1d11e}\"}\r".as_bytes(),
            &b"-12.75e+3"[..],
            &b"true"[..],
            &b"\t{}\r"[..],
        ];
        let interesting = [
            b' ', b'\n', b'\r', b'\t', b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'-',
            b'e', b'a', 0x01, 0x80, 0xe9,
        ];
        let mut checked = 0;
        for base in lines {
            let mut variants = vec![base.to_vec()];
            variants.extend((0..base.len()).map(|cut| base[..cut].to_vec()));
            for at in 0..base.len() {
                for b in interesting {
                    let mut v = base.to_vec();
                    v[at] = b;
                    variants.push(v);
                }
            }
            for v in variants {
                let mut stream = v.clone();
                stream.extend_from_slice(b"\n{\"next\":1}\n");
                // The line ends at its first `\n`.
                let nl = stream.iter().position(|&b| b == b'\n').unwrap();
                let by_line = read(&stream[..nl]);
                match (by_line, read_stream(&stream)) {
                    (Ok(a), Some((len, b))) => {
                        assert_eq!(len, nl, "{:?}", String::from_utf8_lossy(&v));
                        assert_eq!(format!("{a:?}"), format!("{b:?}"));
                    }
                    (Err(_), None) => {}
                    (a, b) => panic!("{:?}: {a:?} vs {b:?}", String::from_utf8_lossy(&v)),
                }
                // Cut short, the line is never read from the stream.
                for cut in 0..nl {
                    assert!(read_stream(&stream[..cut]).is_none());
                }
                checked += 1;
            }
        }
        assert!(checked > 2000, "{checked}");
    }

    #[test]
    fn unwraps_nested_retransmission() {
        let line = br#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_HANDLE","type":"net.Socket","msg":"socket","key":"4:127.0.0.1:0"}}"#;
        let Envelope::Handle {
            kind,
            msg,
            key,
            msg_cmd,
        } = read(line).unwrap()
        else {
            panic!()
        };
        assert_eq!(kind, Some(HandleKind::Socket));
        assert_eq!(msg.unwrap().of(line), b"\"socket\"");
        assert_eq!(key_of(line, key).as_deref(), Some("4:127.0.0.1:0"));
        assert!(msg_cmd.is_none());
    }

    #[test]
    fn dgram_needs_its_family() {
        let with = br#"{"cmd":"NODE_HANDLE","type":"dgram.Socket","msg":1,"dgramType":"udp6"}"#;
        let without = br#"{"cmd":"NODE_HANDLE","type":"dgram.Socket","msg":1}"#;
        assert!(matches!(
            read(with),
            Ok(Envelope::Handle {
                kind: Some(HandleKind::Dgram(crate::UdpFamily::V6)),
                ..
            })
        ));
        assert!(matches!(
            read(without),
            Ok(Envelope::Handle { kind: None, .. })
        ));
    }
}
