//! What Node's child startup does before any user code runs: read the
//! channel's environment variables (`NODE_CHANNEL_FD`,
//! `NODE_CHANNEL_SERIALIZATION_MODE`, and cluster's `NODE_UNIQUE_ID`), remove them so grandchildren never
//! inherit them, and mark the descriptor close-on-exec, if it is a channel
//! (a connected UNIX stream socket: any other descriptor is left alone, so
//! a stray `NODE_CHANNEL_FD=1` cannot take stdout from this process's
//! children).
//!
//! It runs from `.init_array`, before `main` and so before any thread
//! exists: the only moment when changing the environment is sound. That is
//! why [`parent`](crate::parent) works anywhere, inside `#[tokio::main]`
//! too, and why a process linking this crate never passes a stale
//! `NODE_CHANNEL_FD` on, whether or not it calls `parent()` (Node deletes
//! them at startup as well).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::sync::Mutex;

/// The channel variables as they were at startup.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChannelEnv {
    /// `NODE_CHANNEL_FD`.
    pub fd: Option<String>,
    /// `NODE_CHANNEL_SERIALIZATION_MODE`.
    pub mode: Option<String>,
    /// Whether the descriptor was a channel at startup (and is now
    /// close-on-exec).
    pub channel: bool,
    /// `NODE_UNIQUE_ID`: set by a cluster primary for its workers (removed
    /// too, as Node's cluster does, so a worker's own children are not
    /// workers).
    pub unique_id: Option<String>,
}

static CAPTURED: Mutex<Option<ChannelEnv>> = Mutex::new(None);

/// The channel variables captured at startup (`None` for both when the
/// process was started without a channel).
pub(crate) fn channel_env() -> ChannelEnv {
    CAPTURED
        .lock()
        .map(|c| c.clone().unwrap_or_default())
        .unwrap_or_default()
}

// SAFETY (of the attribute): the function has the signature the loader
// calls `.init_array` entries with (extra arguments are ignored by the C
// ABI), and it only uses libc calls that are usable before `main`.
#[used]
#[link_section = ".init_array"]
static CAPTURE: extern "C" fn() = capture;

/// Reads and removes one variable.
fn take(name: &CStr) -> Option<String> {
    // SAFETY: before main, single-threaded: nobody changes the environment
    // while we read the pointer getenv returns, and we copy it at once.
    let value = unsafe {
        let p = libc::getenv(name.as_ptr());
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    // SAFETY: as above; unsetenv is only unsound with concurrent readers.
    unsafe { libc::unsetenv(name.as_ptr()) };
    value
}

/// The descriptor number in a `NODE_CHANNEL_FD` value, read as Node reads
/// it (`parseInt(value, 10)`: leading whitespace, a sign, then the digits
/// up to the first other character); `None` when that is not a number
/// (Node's startup then fails an assertion).
pub(crate) fn fd_number(value: &str) -> Option<i32> {
    let s = value.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: i64 = digits[..end].parse().ok()?;
    i32::try_from(if negative { -n } else { n }).ok()
}

/// Whether `raw` is a channel: an open, connected UNIX stream socket.
pub(crate) fn is_channel(raw: i32) -> bool {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    if raw < 0 {
        return false;
    }
    // SAFETY: only borrowed for these calls, which fail (EBADF, ENOTSOCK)
    // on a number that is not an open socket; nothing is closed.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::STREAM)
        && sockopt::socket_domain(fd).is_ok_and(|d| d == AddressFamily::UNIX)
        // Connected: neither a listening socket nor one never connected.
        && rustix::net::getpeername(fd).is_ok()
}

extern "C" fn capture() {
    let fd = take(c"NODE_CHANNEL_FD");
    let mode = take(c"NODE_CHANNEL_SERIALIZATION_MODE");
    let unique_id = take(c"NODE_UNIQUE_ID");
    let raw = fd.as_deref().and_then(fd_number);
    let channel = raw.is_some_and(|raw| {
        // SAFETY: fcntl on a descriptor number just checked to be open.
        is_channel(raw) && unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) } == 0
    });
    if let Ok(mut captured) = CAPTURED.lock() {
        *captured = Some(ChannelEnv {
            // Node treats an empty value as no channel at all.
            fd: fd.filter(|f| !f.is_empty()),
            mode,
            channel,
            unique_id,
        });
    }
}
