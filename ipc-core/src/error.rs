//! Errors a channel reports.

use core::fmt;

use rustix::io::Errno;

use crate::handle::{Handle, HandleKind};
use crate::json::JsonError;

/// Everything a [`Channel`](crate::Channel) can report.
///
/// Most variants describe *one* bad frame or descriptor from the peer: the
/// channel has already dealt with it (skipped the line, closed the fd, sent
/// the NACK the protocol asks for) and stays usable, so the caller may log it
/// and call `recv` again. [`Error::is_fatal`] tells the two groups apart.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The channel is closed: the peer hung up (EOF or `ECONNRESET`) or
    /// [`disconnect`](crate::Channel::disconnect) was called. Node calls this
    /// `ERR_IPC_CHANNEL_CLOSED`.
    Disconnected,
    /// A non-blocking call could not make progress; wait for the descriptor to
    /// be readable (or writable, see
    /// [`wants_write`](crate::Channel::wants_write)).
    WouldBlock,
    /// A system call failed.
    Io(OsError),
    /// A received line is not one JSON value (invalid JSON, an empty line, bad
    /// UTF-8); it was skipped.
    BadFrame(JsonError),
    /// A received line is longer than the channel's buffer limit (without
    /// `std`: the receive buffer); it was skipped.
    FrameTooLong,
    /// The message is longer than the channel's buffer limit (without
    /// `std`: the send buffer).
    MessageTooLarge,
    /// The message could not be written as JSON.
    Encode(JsonError),
    /// A `NODE_HANDLE` arrived without a descriptor; a NACK was sent (a Node
    /// sender retransmits sockets).
    HandleWithoutFd,
    /// The kernel dropped received descriptors (`MSG_CTRUNC`: descriptor limit
    /// reached, or more than [`MAX_FDS_PER_CALL`](crate::sys::MAX_FDS_PER_CALL)
    /// in one message); the handle message was NACKed.
    FdsTruncated,
    /// Descriptors arrived with no `NODE_HANDLE` line to claim them; they
    /// were closed.
    UnclaimedFds(usize),
    /// More descriptors arrived than the queue holds (only without `std`);
    /// the extra was closed.
    FdQueueFull,
    /// A `NODE_HANDLE` with a `type` this library does not know; it was
    /// acknowledged and its descriptor closed.
    UnknownHandleType,
    /// A `NODE_HANDLE_ACK` or `NACK` arrived while no handle was awaiting
    /// one; ignored (a Node peer would crash here).
    StrayAck,
    /// The peer refused a handle (NACK) and it will not be sent again; the
    /// handle comes back with this reason. Node:
    /// `SentHandleNotReceivedWarning` for sockets.
    HandleNotReceived(HandleKind),
    /// Too many handles are queued for sending (only without `std`); wait
    /// for their acknowledgements.
    HandleQueueFull,
    /// A blocking call had to read what the peer sent to make progress, but
    /// the receive buffer holds as many undelivered messages as the
    /// channel's limit allows: call `recv` first. Nothing was dropped.
    ReceiveBufferFull,
    /// A blocking call gave up at the channel's timeout
    /// ([`set_timeout`](crate::Channel::set_timeout)); what it queued stays
    /// queued.
    TimedOut,
}

impl Error {
    /// Whether the channel is unusable after this error. Every other error
    /// concerns one message, and the channel carries on.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Disconnected | Error::Io(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Disconnected => f.write_str("channel closed"),
            Error::WouldBlock => f.write_str("operation would block"),
            Error::Io(e) => write!(f, "channel I/O failed: {e}"),
            Error::BadFrame(e) => write!(f, "skipped a bad message: {e}"),
            Error::FrameTooLong => f.write_str("skipped a message longer than the receive buffer"),
            Error::MessageTooLarge => f.write_str("message larger than the send buffer"),
            Error::Encode(e) => write!(f, "could not encode message: {e}"),
            Error::HandleWithoutFd => {
                f.write_str("handle message arrived without a descriptor (NACK sent)")
            }
            Error::FdsTruncated => {
                f.write_str("the kernel dropped received descriptors (MSG_CTRUNC; NACK sent)")
            }
            Error::UnclaimedFds(n) => write!(
                f,
                "closed {n} descriptor(s) that came without a handle message"
            ),
            Error::FdQueueFull => {
                f.write_str("closed a descriptor: too many received descriptors waiting")
            }
            Error::UnknownHandleType => f.write_str("closed a handle of unknown type"),
            Error::StrayAck => f.write_str("ignored an acknowledgement for no outstanding handle"),
            Error::HandleNotReceived(kind) => {
                write!(f, "peer did not take the {kind} handle; it was closed")
            }
            Error::HandleQueueFull => f.write_str("too many handles waiting to be sent"),
            Error::ReceiveBufferFull => {
                f.write_str("receive buffer full of unread messages; call recv first")
            }
            Error::TimedOut => f.write_str("timed out"),
        }
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Self {
        match e {
            Errno::AGAIN => Error::WouldBlock,
            Errno::PIPE | Errno::CONNRESET => Error::Disconnected,
            e => Error::Io(OsError(e)),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        use std::io::ErrorKind;
        match e {
            Error::Io(os) => os.into(),
            Error::WouldBlock => ErrorKind::WouldBlock.into(),
            Error::TimedOut => ErrorKind::TimedOut.into(),
            Error::Disconnected => std::io::Error::new(ErrorKind::BrokenPipe, e),
            e => std::io::Error::new(ErrorKind::InvalidData, e),
        }
    }
}

/// The channel's reading of an `io::Error` (from a wait or a conversion):
/// `WouldBlock`, `TimedOut` and broken pipes keep their meaning, any other
/// OS error becomes [`Error::Io`] (`EIO` when it carries no number).
#[cfg(feature = "std")]
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::WouldBlock => Error::WouldBlock,
            ErrorKind::TimedOut => Error::TimedOut,
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => Error::Disconnected,
            _ => Error::Io(OsError::from_raw(
                e.raw_os_error().unwrap_or(Errno::IO.raw_os_error()),
            )),
        }
    }
}

/// An error number from the operating system (`errno`), as a system call
/// returned it: this crate's own type, so that users need not depend on the
/// system-call crate underneath. With `std` it converts into
/// [`std::io::Error`] (same `raw_os_error`, same `kind`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OsError(Errno);

impl OsError {
    /// The error with number `raw` (e.g. `libc::EMFILE`).
    pub fn from_raw(raw: i32) -> OsError {
        OsError(Errno::from_raw_os_error(raw))
    }

    /// The error's number, as `std::io::Error::raw_os_error` gives it.
    pub fn raw(self) -> i32 {
        self.0.raw_os_error()
    }

    /// What kind of error it is, as `std::io::Error::kind` says (e.g.
    /// `AddrInUse` for `EADDRINUSE`).
    #[cfg(feature = "std")]
    pub fn kind(self) -> std::io::ErrorKind {
        std::io::Error::from(self).kind()
    }
}

impl From<Errno> for OsError {
    fn from(e: Errno) -> Self {
        OsError(e)
    }
}

impl fmt::Debug for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OsError({})", self.raw())
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for OsError {}

#[cfg(feature = "std")]
impl From<OsError> for std::io::Error {
    fn from(e: OsError) -> Self {
        std::io::Error::from_raw_os_error(e.raw())
    }
}

/// A failed [`send_handle`](crate::Channel::send_handle): the error, and the
/// handle back whenever the peer did not take it. `handle` is `None` only
/// when the peer may still take it: the call timed out (or hit a full
/// receive buffer) while the handle was on the wire; its [`Fate`] is then
/// reported later by [`next_fate`](crate::Channel::next_fate).
///
/// [`Fate`]: crate::Fate
#[derive(Debug)]
pub struct SendError {
    /// What went wrong.
    pub error: Error,
    /// The handle, unless the peer may still take it.
    pub handle: Option<Handle>,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SendError {}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        e.error
    }
}
