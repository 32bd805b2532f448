//! [`parent`]: the child's side, finding the channel its parent gave it.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::startup;

use crate::endpoint::{as_endpoint, endpoint_methods, Endpoint, Event};

/// Set once the channel descriptor has been taken: it has one owner only.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Why there is no usable parent channel.
#[non_exhaustive]
#[derive(Debug)]
pub enum ParentError {
    /// `NODE_CHANNEL_FD` was not set at startup (or was empty, which Node
    /// reads as unset): this process was not started with a channel (or
    /// [`parent`] was already called).
    NoChannel,
    /// `NODE_CHANNEL_FD` is not a descriptor number (read as Node's
    /// `parseInt` reads it: `"3"`, `" 3"` and `"3abc"` are all 3).
    BadFd(String),
    /// The descriptor was not a connected UNIX stream socket at startup
    /// (closed, a file, a datagram or listening socket, ...); it is left
    /// as it was, open if it was.
    NotAChannel(RawFd),
    /// The parent asked for Node's `advanced` (V8) serialization, which this
    /// library does not speak; start the child with `serialization: 'json'`.
    AdvancedSerialization,
    /// Setting up the channel failed.
    Channel(ipc_core::Error),
}

impl fmt::Display for ParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParentError::NoChannel => f.write_str("no parent channel (NODE_CHANNEL_FD is not set)"),
            ParentError::BadFd(v) => write!(f, "NODE_CHANNEL_FD is not a descriptor number: {v:?}"),
            ParentError::NotAChannel(fd) => {
                write!(
                    f,
                    "NODE_CHANNEL_FD={fd} is not a connected UNIX stream socket"
                )
            }
            ParentError::AdvancedSerialization => {
                f.write_str("the parent wants 'advanced' serialization; only 'json' is supported")
            }
            ParentError::Channel(e) => write!(f, "parent channel: {e}"),
        }
    }
}

impl std::error::Error for ParentError {}

/// The channel to the process that started this one, as a child sees it:
/// Node's `process.send()` and `process.on('message')`.
///
/// ```no_run
/// use ipc_fork::Event;
/// use ipc_net::Received;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A worker that answers every socket its parent (Rust or Node) hands it.
/// let mut parent = ipc_fork::parent()?;
/// loop {
///     match parent.recv() {
///         Ok(Event::Message(_msg, Some(Ok(Received::Socket(mut socket))))) => {
///             use std::io::Write;
///             socket.write_all(b"handled by child\n")?;
///         }
///         Ok(Event::Disconnect) => break,
///         Ok(_) => {}
///         Err(e) if !e.is_fatal() => eprintln!("skipped: {e}"),
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Parent {
    endpoint: Endpoint,
}

impl Parent {
    endpoint_methods!();

    /// Waits for the next event; see [`Endpoint::recv`].
    ///
    /// # Errors
    /// As [`Endpoint::recv`].
    pub fn recv(&mut self) -> Result<Event<'_>, ipc_core::Error> {
        self.endpoint.recv()
    }

    /// The next event if there is one now; see [`Endpoint::try_recv`].
    ///
    /// # Errors
    /// As [`Endpoint::try_recv`].
    pub fn try_recv(&mut self) -> Result<Event<'_>, ipc_core::Error> {
        self.endpoint.try_recv()
    }

    /// Reads without blocking until an event is ready; see
    /// [`Endpoint::prepare`].
    pub fn prepare(&mut self) -> bool {
        self.endpoint.prepare()
    }
}

/// The channel's descriptor, for a poller.
impl AsFd for Parent {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.endpoint.as_fd()
    }
}

/// Finds the channel the parent passed (`NODE_CHANNEL_FD`), as Node's child
/// startup does. The descriptor was marked close-on-exec, and
/// `NODE_CHANNEL_FD` and `NODE_CHANNEL_SERIALIZATION_MODE` were removed from
/// the environment, before `main` (so it is sound to call from any thread,
/// inside `#[tokio::main]` too, and this process's own children never
/// inherit them).
///
/// Works with any parent that speaks Node's protocol: `ipc_fork::Command`,
/// Node's `fork()`/`spawn(..., {stdio: [..., 'ipc']})`.
///
/// # Errors
/// [`ParentError::NoChannel`] when started without a channel, or the second
/// time; `BadFd`/`NotAChannel` when the variable does not name a connected
/// UNIX stream socket; `AdvancedSerialization` for a serialization mode
/// other than `json` (Node's V8 mode; an empty one means `json`, as in
/// Node).
pub fn parent() -> Result<Parent, ParentError> {
    let env = startup::channel_env();
    let fd = env.fd.ok_or(ParentError::NoChannel)?;
    if env
        .mode
        .as_deref()
        .is_some_and(|m| !m.is_empty() && m != "json")
    {
        return Err(ParentError::AdvancedSerialization);
    }
    let raw: RawFd = match startup::fd_number(&fd) {
        Some(raw) if raw >= 0 => raw,
        _ => return Err(ParentError::BadFd(fd)),
    };
    // Checked again: the descriptor may have changed since startup.
    if !env.channel || !startup::is_channel(raw) {
        return Err(ParentError::NotAChannel(raw));
    }
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err(ParentError::NoChannel);
    }
    // SAFETY: the descriptor is the channel socket (checked above) that the
    // parent passed for this (the protocol of NODE_CHANNEL_FD), marked
    // close-on-exec at startup; TAKEN makes this its single owner.
    #[allow(unsafe_code)]
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let endpoint = Endpoint::new(sock).map_err(ParentError::Channel)?;
    Ok(Parent { endpoint })
}

/// Whether this process was started with a channel that
/// [`parent`] has not taken yet.
pub fn has_parent() -> bool {
    startup::channel_env().fd.is_some() && !TAKEN.load(Ordering::Acquire)
}

as_endpoint!(Parent);
