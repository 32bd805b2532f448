//! [`parent`]: the child's side, finding the channel its parent gave it.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::FdFlags;
use rustix::net::{sockopt, AddressFamily};

use crate::endpoint::{as_endpoint, endpoint_methods, Endpoint, Event};

/// Set once the channel descriptor has been taken: it has one owner only.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Why there is no usable parent channel.
#[non_exhaustive]
#[derive(Debug)]
pub enum ParentError {
    /// `NODE_CHANNEL_FD` is not set: this process was not started with a
    /// channel (or [`parent`] was already called).
    NoChannel,
    /// `NODE_CHANNEL_FD` is not a descriptor number.
    BadFd(String),
    /// The descriptor is not open, or not a UNIX stream socket.
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
                write!(f, "NODE_CHANNEL_FD={fd} is not an open UNIX stream socket")
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
/// startup does: it takes the descriptor, marks it close-on-exec, and unsets
/// `NODE_CHANNEL_FD` and `NODE_CHANNEL_SERIALIZATION_MODE` so this process's
/// own children do not inherit them.
///
/// Works with any parent that speaks Node's protocol: `ipc_fork::Command`,
/// Node's `fork()`/`spawn(..., {stdio: [..., 'ipc']})`. Without a channel it
/// returns [`ParentError::NoChannel`]. Call it early, before starting
/// threads: it changes the environment.
pub fn parent() -> Result<Parent, ParentError> {
    let fd = std::env::var("NODE_CHANNEL_FD").ok();
    let mode = std::env::var("NODE_CHANNEL_SERIALIZATION_MODE").ok();
    // Racy with threads reading the environment: hence "call it early".
    std::env::remove_var("NODE_CHANNEL_FD");
    std::env::remove_var("NODE_CHANNEL_SERIALIZATION_MODE");
    let fd = fd.ok_or(ParentError::NoChannel)?;
    if mode.as_deref().is_some_and(|m| m != "json") {
        return Err(ParentError::AdvancedSerialization);
    }
    let raw: RawFd = fd
        .trim()
        .parse()
        .map_err(|_| ParentError::BadFd(fd.clone()))?;
    if raw < 0 {
        return Err(ParentError::BadFd(fd));
    }
    // SAFETY: the descriptor is only borrowed for these checks.
    let borrowed = unsafe_borrow(raw);
    let is_unix = sockopt::socket_domain(borrowed).is_ok_and(|d| d == AddressFamily::UNIX);
    if !is_unix || rustix::io::fcntl_getfd(borrowed).is_err() {
        return Err(ParentError::NotAChannel(raw));
    }
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err(ParentError::NoChannel);
    }
    // SAFETY: the parent passed this descriptor for the channel (the
    // protocol of NODE_CHANNEL_FD) and it is open; TAKEN guarantees a single
    // owner, and the variable is gone so nothing else finds it this way.
    #[allow(unsafe_code)]
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&sock, FdFlags::CLOEXEC).map_err(|e| ParentError::Channel(e.into()))?;
    let endpoint = Endpoint::new(sock).map_err(ParentError::Channel)?;
    Ok(Parent { endpoint })
}

fn unsafe_borrow(raw: RawFd) -> BorrowedFd<'static> {
    // SAFETY: callers use it only while `raw` is known not to be closed by
    // anyone else: before this process hands it to an owner.
    #[allow(unsafe_code)]
    unsafe {
        BorrowedFd::borrow_raw(raw)
    }
}

/// Whether this process was started with a channel (without taking it).
pub fn has_parent() -> bool {
    std::env::var_os("NODE_CHANNEL_FD").is_some()
}

as_endpoint!(Parent);
