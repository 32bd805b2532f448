//! Raw I/O on an `AF_UNIX` stream socket: bytes plus `SCM_RIGHTS` descriptors.
//!
//! Every call retries `EINTR`, sends with `MSG_NOSIGNAL` (a dead peer is
//! `EPIPE`, never `SIGPIPE`, even in hosts that do not ignore the signal), and
//! receives with `MSG_CMSG_CLOEXEC` (received descriptors are close-on-exec
//! from the moment they exist). `EAGAIN` is returned as is for a call that
//! must not wait ([`Wait::DontWait`], or a socket in non-blocking mode).
//!
//! ```
//! use ipc_core::sys::{recv_with_fds, send_with_fds, ReceivedFds, Wait};
//! use std::io::{Read, Write};
//! use std::os::fd::AsFd;
//! use std::os::unix::net::UnixStream;
//!
//! let (a, b) = UnixStream::pair()?;
//! let (mut ours, theirs) = UnixStream::pair()?;
//! // One byte carries the descriptor; the kernel duplicates it into `b`'s process.
//! let sent = send_with_fds(a.as_fd(), b"x\n", &[theirs.as_fd()], Wait::AsSocket)?;
//! assert_eq!(sent, 2);
//! drop(theirs);
//!
//! let mut buf = [0; 16];
//! let mut fds = ReceivedFds::new();
//! let got = recv_with_fds(b.as_fd(), &mut buf, &mut fds, Wait::DontWait)?;
//! assert_eq!((&buf[..got.bytes], got.fds_truncated, fds.len()), (&b"x\n"[..], false, 1));
//!
//! // The received descriptor is the other end of `ours`.
//! let mut stream = UnixStream::from(fds.pop().unwrap());
//! stream.write_all(b"hi")?;
//! let mut two = [0; 2];
//! ours.read_exact(&mut two)?;
//! assert_eq!(&two, b"hi");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::mem::MaybeUninit;

use core::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::io::{Errno, IoSlice, IoSliceMut};
use rustix::net::{
    recvmsg, send, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use rustix::time::{clock_gettime, ClockId};

/// Most descriptors one [`send_with_fds`] or [`recv_with_fds`] call carries.
/// Node sends one per message; more arriving at once is `MSG_CTRUNC`.
pub const MAX_FDS_PER_CALL: usize = 8;

/// Whether a call may wait for the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The socket's own mode decides: a blocking socket waits inside the
    /// call, one in non-blocking mode returns `EAGAIN`.
    AsSocket,
    /// `MSG_DONTWAIT`: `EAGAIN` instead of waiting, whatever the socket's
    /// mode. A channel keeps its socket blocking and uses this for every
    /// non-blocking call, so a blocking receive costs one `recvmsg`
    /// instead of `recvmsg` + `poll` + `recvmsg`.
    DontWait,
}

/// Retries `f` while it fails with `EINTR`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `sendmsg(2)` + `SCM_RIGHTS`: writes a prefix of `bytes` and passes `fds`
/// along with its first byte. Returns how many bytes the kernel took, which
/// may be fewer than `bytes.len()`; the caller sends the rest *without* the
/// descriptors (they travelled already).
///
/// `fds` may be empty. At most [`MAX_FDS_PER_CALL`] descriptors are allowed;
/// more is `EINVAL`, as is an empty `bytes` with descriptors (a stream socket
/// needs at least one data byte to carry them).
///
/// # Errors
/// The `errno` of `sendmsg(2)`/`send(2)`, `EINTR` excepted (retried):
///  - `EINVAL` for more than [`MAX_FDS_PER_CALL`] descriptors, or
///    descriptors with an empty `bytes`;
///  - `EAGAIN` when the socket buffer is full and the call must not wait
///    ([`Wait::DontWait`], or a non-blocking socket);
///  - `EPIPE` (never `SIGPIPE`) or `ECONNRESET` once the peer has closed;
///  - `ETOOMANYREFS` when the descriptors in flight exceed the sender's
///    `RLIMIT_NOFILE`, `ENOBUFS`/`ENOMEM` when the kernel is short of memory;
///  - `ENOTSOCK`/`EBADF` when `sock` is not an open socket.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/sendmsg.2.html)
///  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    wait: Wait,
) -> Result<usize, Errno> {
    if fds.len() > MAX_FDS_PER_CALL || (bytes.is_empty() && !fds.is_empty()) {
        return Err(Errno::INVAL);
    }
    let mut flags = SendFlags::NOSIGNAL;
    if wait == Wait::DontWait {
        flags |= SendFlags::DONTWAIT;
    }
    if fds.is_empty() {
        // Plain bytes: send(2) skips copying in a msghdr and an iovec.
        return retry(|| send(sock, bytes, flags));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_CALL))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::INVAL);
    }
    let iov = [IoSlice::new(bytes)];
    retry(|| sendmsg(sock, &iov, &mut control, flags))
}

/// Writes all of `bytes`, `fds` riding on the first byte only, waiting for
/// room whatever the socket's mode. For a blocking caller that has one frame to
/// get out; the channel has its own resumable path.
///
/// # Errors
/// As [`send_with_fds`], except `EAGAIN`: a full socket buffer is waited
/// out with `poll(2)` (whose own errors are returned). After an error some
/// of `bytes` may have been sent, with the descriptors.
pub fn send_all_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), Errno> {
    let mut sent = 0;
    let mut fds = fds;
    while sent < bytes.len() {
        match send_with_fds(sock, &bytes[sent..], fds, Wait::DontWait) {
            Ok(n) => {
                sent += n;
                fds = &[];
            }
            Err(Errno::AGAIN) => {
                wait(sock, PollFlags::OUT, Deadline::NEVER)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What one [`recv_with_fds`] call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// Bytes written to the buffer; 0 means the peer closed (EOF).
    pub bytes: usize,
    /// The kernel cut the control data (`MSG_CTRUNC`), or more than
    /// [`MAX_FDS_PER_CALL`] descriptors came: descriptors were lost, because
    /// there were too many or the process is out of descriptors
    /// (`RLIMIT_NOFILE`). Whatever did arrive has been closed,
    /// since it can no longer be matched to its message. The bytes are valid.
    pub fds_truncated: bool,
}

/// Descriptors received by one [`recv_with_fds`] call, in order.
pub type ReceivedFds = heapless::Vec<OwnedFd, MAX_FDS_PER_CALL>;

/// `recvmsg(2)` with `MSG_CMSG_CLOEXEC`: reads bytes into `buf` and appends
/// the received descriptors to `fds` (which the call clears first).
///
/// The end of the stream is not an error: `Ok` with
/// [`bytes`](Receipt::bytes) `== 0`. Descriptors the kernel cut off are
/// not one either: see [`Receipt::fds_truncated`].
///
/// # Errors
/// The `errno` of `recvmsg(2)`, `EINTR` excepted (retried): `EAGAIN` when
/// nothing is waiting and the call must not wait ([`Wait::DontWait`], or a
/// non-blocking socket), `ECONNRESET` when the peer closed with unread
/// data, `ENOTSOCK`/`EBADF` when `sock` is not an open socket. `fds` is
/// empty then.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/recvmsg.2.html)
///  - [unix(7)](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut ReceivedFds,
    wait: Wait,
) -> Result<Receipt, Errno> {
    fds.clear();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_CALL))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if wait == Wait::DontWait {
        flags |= RecvFlags::DONTWAIT;
    }
    let msg = retry(|| {
        let mut iov = [IoSliceMut::new(buf)];
        recvmsg(sock, &mut iov, &mut control, flags)
    })?;
    let mut fds_truncated = msg.flags.contains(ReturnFlags::CTRUNC);
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            for fd in received {
                // The control space is rounded up and may hold a few more
                // than MAX_FDS_PER_CALL: those count as cut off too.
                if fds.push(fd).is_err() {
                    fds_truncated = true;
                }
            }
        }
    }
    if fds_truncated {
        fds.clear();
    }
    Ok(Receipt {
        bytes: msg.bytes,
        fds_truncated,
    })
}

/// Blocks until `sock` has one of `events` (or an error/hang-up, which the
/// next I/O call will report), or until `deadline`: then `Ok(None)`.
/// `EINTR` is retried with the time that is left.
///
/// # Errors
/// The `errno` of `poll(2)` other than `EINTR`: `ENOMEM` when the kernel
/// cannot allocate its table. A closed or failed socket is not an error
/// here: `POLLHUP`/`POLLERR` come back in the flags.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/poll.2.html)
pub(crate) fn wait(
    sock: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Deadline,
) -> Result<Option<PollFlags>, Errno> {
    let mut fds = [PollFd::from_borrowed_fd(sock, events)];
    loop {
        let left = match deadline.left() {
            Some(None) => return Ok(None),
            Some(Some(left)) => Some(left),
            None => None,
        };
        match poll(&mut fds, left.as_ref()) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(fds[0].revents())),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// When a blocking call gives up: a point on the monotonic clock, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Deadline(Option<Timespec>);

impl Deadline {
    /// No deadline: wait as long as it takes.
    pub const NEVER: Deadline = Deadline(None);

    /// `timeout` from now (`None`: never).
    pub fn after(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|t| {
            let now = clock_gettime(ClockId::Monotonic);
            let nanos = now.tv_nsec as u64 + u64::from(t.subsec_nanos());
            Timespec {
                tv_sec: now
                    .tv_sec
                    .saturating_add(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
                    .saturating_add((nanos / 1_000_000_000) as i64),
                tv_nsec: (nanos % 1_000_000_000) as _,
            }
        }))
    }

    /// Whether there is a deadline at all.
    pub fn is_set(self) -> bool {
        self.0.is_some()
    }

    /// The time left: `None` without a deadline, `Some(None)` once it
    /// has passed.
    pub fn left(self) -> Option<Option<Timespec>> {
        let end = self.0?;
        let now = clock_gettime(ClockId::Monotonic);
        let mut sec = end.tv_sec - now.tv_sec;
        let mut nsec = end.tv_nsec - now.tv_nsec;
        if nsec < 0 {
            sec -= 1;
            nsec += 1_000_000_000;
        }
        Some((sec >= 0 && (sec, nsec) != (0, 0)).then_some(Timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        }))
    }
}
