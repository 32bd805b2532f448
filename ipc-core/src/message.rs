//! [`Message`]: one received message, borrowed from the receive buffer.

use serde::Deserialize;

use crate::handle::Handle;
use crate::json::{JsonError, RawJson};

/// A received message: its JSON (borrowed from the channel's buffer), the
/// handle that came with it, and whether it is internal.
///
/// For a handle message this is the *user* message inside the `NODE_HANDLE`
/// wrapper, and [`take_handle`](Message::take_handle) gives the descriptor.
/// A handle nobody takes stays with the channel, which closes it at the
/// next receive (or when it is dropped).
///
/// Small (five words) and borrowed: everything it refers to stays in the
/// channel, so passing it on copies nothing.
///
/// ```
/// use ipc_core::{json::RawJson, Channel};
///
/// #[derive(serde::Deserialize)]
/// struct Order<'a> {
///     item: &'a str,
///     qty: u32,
/// }
///
/// let (mut a, mut b) = Channel::<4096, 4096>::pair()?;
/// a.send(&RawJson::new(r#"{"item":"caf\u00e9","qty":2}"#)?)?;
/// a.send(&RawJson::new(r#"{"cmd":"NODE_CLUSTER","act":"online"}"#)?)?;
///
/// let mut msg = b.recv()?;
/// assert!(!msg.is_internal() && msg.handle().is_none());
/// let order: Order = msg.parse()?; // unescaped in the receive buffer: no copy
/// assert_eq!((order.item, order.qty), ("café", 2));
///
/// // Internal messages arrive too, marked; `raw` passes one on verbatim.
/// let msg = b.recv()?;
/// assert_eq!(msg.cmd(), Some("NODE_CLUSTER"));
/// let (mut to_worker, mut worker) = Channel::<4096, 4096>::pair()?;
/// to_worker.send(&msg.raw())?;
/// assert_eq!(worker.recv()?.as_str(), r#"{"cmd":"NODE_CLUSTER","act":"online"}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Message<'a> {
    json: &'a mut [u8],
    cmd: Option<&'a str>,
    slot: &'a mut Slot,
}

/// Where the channel keeps a delivered message's handle, and whether a
/// peek showed the message before (kept there, not in the message, which
/// stays five words).
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub handle: Option<Handle>,
    pub peeked: bool,
}

impl<'a> Message<'a> {
    pub(crate) fn new(json: &'a mut [u8], cmd: Option<&'a str>, slot: &'a mut Slot) -> Self {
        Message { json, cmd, slot }
    }

    /// Whether [`Channel::peek_internal`](crate::Channel::peek_internal)
    /// showed this (internal) message before its delivery: whoever peeked
    /// has acted on it already.
    pub fn was_peeked(&self) -> bool {
        self.slot.peeked
    }

    /// The message's JSON text, exactly as received (empty after
    /// [`parse`](Message::parse)).
    pub fn as_str(&self) -> &str {
        // Validated as UTF-8 when the line was read.
        core::str::from_utf8(self.json).unwrap_or_default()
    }

    /// The JSON text as a value that serializes verbatim, e.g. to echo it.
    pub fn raw(&self) -> RawJson<'_> {
        RawJson::received(self.as_str())
    }

    /// Whether Node would treat this as an internal message (an object whose
    /// `cmd` is longer than five characters and starts with `NODE_`).
    pub fn is_internal(&self) -> bool {
        self.cmd.is_some()
    }

    /// The `cmd` of an internal message (its first
    /// [`MAX_CMD_LEN`](crate::MAX_CMD_LEN) bytes).
    pub fn cmd(&self) -> Option<&str> {
        self.cmd
    }

    /// The handle that came with the message, if any.
    pub fn handle(&self) -> Option<&Handle> {
        self.slot.handle.as_ref()
    }

    /// Takes the handle out; the message keeps its JSON.
    pub fn take_handle(&mut self) -> Option<Handle> {
        self.slot.handle.take()
    }

    /// Deserializes the JSON, borrowing strings from the receive buffer
    /// (escaped strings are unescaped there, in place). Can be done once:
    /// the text is consumed.
    ///
    /// # Errors
    /// [`JsonError`] when the JSON does not fit `T` (or nests deeper than
    /// [`MAX_DECODE_DEPTH`](crate::json::MAX_DECODE_DEPTH)).
    pub fn parse<T: Deserialize<'a>>(&mut self) -> Result<T, JsonError> {
        crate::json::de::from_scanned(core::mem::take(&mut self.json))
    }
}
