//! What Node's child startup does before any user code runs: read the
//! channel's environment variables (`NODE_CHANNEL_FD`,
//! `NODE_CHANNEL_SERIALIZATION_MODE`, and cluster's `NODE_UNIQUE_ID`), remove them so grandchildren never
//! inherit them, and mark the descriptor close-on-exec.
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
    /// Whether the descriptor was open at startup (and is now close-on-exec).
    pub open: bool,
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

extern "C" fn capture() {
    let fd = take(c"NODE_CHANNEL_FD");
    let mode = take(c"NODE_CHANNEL_SERIALIZATION_MODE");
    let unique_id = take(c"NODE_UNIQUE_ID");
    let raw = fd.as_deref().and_then(|f| f.trim().parse::<i32>().ok());
    // SAFETY: fcntl on a plain integer; it fails with EBADF if not open.
    let open = raw.is_some_and(|raw| {
        raw >= 0 && unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) } == 0
    });
    if let Ok(mut captured) = CAPTURED.lock() {
        *captured = Some(ChannelEnv {
            fd,
            mode,
            open,
            unique_id,
        });
    }
}
