//! Blocking behaviour on descriptors that may be non-blocking.
//!
//! A received descriptor shares its open file description, and so its
//! `O_NONBLOCK` flag, with the sender's copy; a Node peer sets it. We never
//! clear it (that would stall the peer's event loop): instead every blocking
//! operation here retries `EINTR`, and on `EAGAIN` waits with `poll(2)` and
//! tries again.

use std::io;
use std::os::fd::AsFd;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;

/// Runs `op` until it stops failing with `EINTR` or `EAGAIN`, waiting for
/// `events` on `fd` after each `EAGAIN`.
pub(crate) fn blocking<T>(
    fd: impl AsFd,
    events: PollFlags,
    mut op: impl FnMut() -> Result<T, Errno>,
) -> io::Result<T> {
    loop {
        match op() {
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                let mut fds = [PollFd::new(&fd, events)];
                match poll(&mut fds, None) {
                    Ok(_) | Err(Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            other => return other.map_err(io::Error::from),
        }
    }
}
