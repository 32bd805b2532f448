//! Socket activation: adopting the listeners systemd passes (`LISTEN_FDS`).
//!
//! ```
//! use ipc_net::{systemd, Server};
//!
//! // Under a `.socket` unit, or `systemd-socket-activate -l 127.0.0.1:8000 app`,
//! // this adopts the listener passed; started by hand, it finds none and binds.
//! let mut passed = systemd::listen_servers()?;
//! let server = match passed.pop() {
//!     Some((_name, server)) => server,
//!     None => Server::bind("127.0.0.1:0")?,
//! };
//! # drop(server);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![allow(unsafe_code)]

use std::fmt;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::FdFlags;

use crate::server::Server;
use crate::verify::HandleError;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// Set once the descriptors have been taken: they have one owner only.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Why the passed listeners could not be adopted.
#[derive(Debug)]
pub enum ListenFdsError {
    /// `LISTEN_FDS` is not a number.
    BadCount,
    /// A passed descriptor is not open.
    NotOpen(RawFd),
    /// A passed descriptor is not a listening stream socket.
    NotAServer(RawFd, HandleError),
}

impl fmt::Display for ListenFdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenFdsError::BadCount => f.write_str("LISTEN_FDS is not a number"),
            ListenFdsError::NotOpen(fd) => {
                write!(f, "LISTEN_FDS names descriptor {fd}, which is not open")
            }
            ListenFdsError::NotAServer(fd, e) => write!(f, "passed descriptor {fd}: {e}"),
        }
    }
}

impl std::error::Error for ListenFdsError {}

/// Adopts the listening sockets passed by systemd (or
/// `systemd-socket-activate`) as verified [`Server`]s, with their names from
/// `LISTEN_FDNAMES` (`"unknown"` when unnamed).
///
/// As `sd_listen_fds(1)` does, it unsets `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` so children do not inherit them, and marks the
/// descriptors close-on-exec. Returns nothing when the variables are absent
/// or meant for another process, and on every call after the first.
///
/// The environment is changed, so call it early, before starting threads.
///
/// # Errors
/// [`ListenFdsError::BadCount`] when `LISTEN_FDS` (meant for this process)
/// is not a number; [`ListenFdsError::NotOpen`] when a descriptor of
/// `3..3+LISTEN_FDS` is not open; [`ListenFdsError::NotAServer`] when one
/// is not a listening stream socket (the [`HandleError`] says what it is:
/// `WrongType` for a UDP socket from `ListenDatagram=`), or could not be
/// made close-on-exec (`HandleError::Io`). The first problem is reported,
/// and every descriptor passed is closed then, the good ones too.
pub fn listen_servers() -> Result<Vec<(String, Server)>, ListenFdsError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // Racy with threads reading the environment: hence "call it early".
        std::env::remove_var(var);
    }
    let ours = pid.and_then(|p| p.parse::<i32>().ok())
        == Some(rustix::process::getpid().as_raw_nonzero().get());
    let Some(count) = count.filter(|_| ours) else {
        return Ok(Vec::new());
    };
    let count: RawFd = count.parse().map_err(|_| ListenFdsError::BadCount)?;
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Ok(Vec::new());
    }
    let mut names = names.as_deref().unwrap_or("").split(':');
    let mut servers = Vec::new();
    let mut first_error = None;
    for raw in FIRST_FD..FIRST_FD.saturating_add(count) {
        // SAFETY: `raw` is only borrowed for the duration of the check.
        let open = rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(raw) }).is_ok();
        if !open {
            first_error.get_or_insert(ListenFdsError::NotOpen(raw));
            continue;
        }
        // SAFETY: LISTEN_PID names this process, so by the socket
        // activation protocol descriptors 3..3+LISTEN_FDS are open and
        // belong to it; TAKEN makes sure they are taken only once, and the
        // variables are gone so no other code can find them the same way.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = names
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("unknown")
            .to_owned();
        if let Err(e) = rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC) {
            first_error.get_or_insert(ListenFdsError::NotAServer(raw, HandleError::Io(e.into())));
            continue;
        }
        match Server::from_fd(fd) {
            Ok(server) => servers.push((name, server)),
            Err(e) => {
                first_error.get_or_insert(ListenFdsError::NotAServer(raw, e));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(servers),
    }
}
