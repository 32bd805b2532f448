//! Writing frames: one JSON value and `\n`, as Node's `json` mode does.

use serde::Serialize;

use crate::handle::Handle;
use crate::json::{to_slice, JsonError};

/// `{"cmd":"NODE_HANDLE_ACK"}\n`, byte for byte what Node sends.
pub const ACK: &[u8] = b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n";
/// `{"cmd":"NODE_HANDLE_NACK"}\n`.
pub const NACK: &[u8] = b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n";
/// What Node puts before a NACKed socket's wrapper when it sends it again.
pub const NESTED_PREFIX: &[u8] = b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":";

/// Appends bytes at `*at`, advancing it.
fn put(buf: &mut [u8], at: &mut usize, bytes: &[u8]) -> Result<(), JsonError> {
    let dst = buf
        .get_mut(*at..*at + bytes.len())
        .ok_or(JsonError::BufferFull)?;
    dst.copy_from_slice(bytes);
    *at += bytes.len();
    Ok(())
}

/// Writes `msg` as one frame into `buf`; returns the frame's length.
///
/// ```
/// let mut buf = [0u8; 32];
/// let n = ipc_core::wire::plain_frame(&mut buf, &("hi", 1))?;
/// assert_eq!(&buf[..n], b"[\"hi\",1]\n");
/// # Ok::<(), ipc_core::json::JsonError>(())
/// ```
///
/// # Errors
/// [`JsonError::BufferFull`] when the JSON and its `\n` do not fit in
/// `buf`; otherwise the errors of [`to_slice`] for `msg`
/// ([`JsonError::KeyMustBeString`], [`JsonError::Custom`]).
pub fn plain_frame<T: Serialize + ?Sized>(buf: &mut [u8], msg: &T) -> Result<usize, JsonError> {
    let mut at = to_slice(msg, buf)?;
    put(buf, &mut at, b"\n")?;
    Ok(at)
}

/// Writes the `NODE_HANDLE` wrapper for `msg` and `handle` as one frame:
/// `{"cmd":"NODE_HANDLE","type":T,"msg":M[,"key":K][,"dgramType":D]}\n`,
/// members in Node's order.
///
/// ```
/// use ipc_core::{Handle, HandleKind, UdpFamily};
/// let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// let handle = Handle::new(HandleKind::Dgram(UdpFamily::V4), udp);
/// let mut buf = [0u8; 128];
/// let n = ipc_core::wire::handle_frame(&mut buf, &"udp", &handle)?;
/// assert_eq!(
///     &buf[..n],
///     &br#"{"cmd":"NODE_HANDLE","type":"dgram.Socket","msg":"udp","dgramType":"udp4"}
/// "#[..]
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`plain_frame`]: [`JsonError::BufferFull`] when the wrapper does not
/// fit in `buf`, or the errors of [`to_slice`] for `msg`.
pub fn handle_frame<T: Serialize + ?Sized>(
    buf: &mut [u8],
    msg: &T,
    handle: &Handle,
) -> Result<usize, JsonError> {
    let mut at = 0;
    put(buf, &mut at, b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"")?;
    put(buf, &mut at, handle.kind().tag().as_bytes())?;
    put(buf, &mut at, b"\",\"msg\":")?;
    at += to_slice(msg, buf.get_mut(at..).ok_or(JsonError::BufferFull)?)?;
    if let Some(key) = handle.key() {
        put(buf, &mut at, b",\"key\":")?;
        at += to_slice(key, buf.get_mut(at..).ok_or(JsonError::BufferFull)?)?;
    }
    if let crate::HandleKind::Dgram(family) = handle.kind() {
        put(buf, &mut at, b",\"dgramType\":\"")?;
        put(buf, &mut at, family.as_str().as_bytes())?;
        put(buf, &mut at, b"\"")?;
    }
    put(buf, &mut at, b"}\n")?;
    Ok(at)
}
