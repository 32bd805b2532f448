//! Signals without handlers: they are blocked in every thread and one
//! thread waits for them with `sigwait`, so no code runs in signal context.
//! Ctrl-C or SIGTERM stop cleanly; SIGHUP, where asked for, is passed on to
//! the main loop as a byte on a pipe. Children start with no signal
//! blocked (std empties the mask between fork and exec, as libuv does for
//! Node): a worker sent SIGTERM stops at once, and one whose parent went
//! away leaves when its channel closes.
#![allow(unsafe_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Process ids of the workers to stop.
pub type Workers = Arc<Mutex<Vec<u32>>>;

/// Blocks `signals` in this thread and the threads it starts from now on;
/// their set, for `sigwait`.
fn block(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: builds a set we own and changes this thread's mask only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Blocks SIGINT and SIGTERM (and SIGHUP when `hangup` is given) in this
/// thread and the threads it starts from now on, and starts the thread
/// that waits for them. SIGINT or SIGTERM: it sends SIGTERM to `workers`
/// and exits. SIGHUP: it writes a byte to `hangup` (never waiting: a full
/// pipe already says "SIGHUP") and goes on waiting.
pub fn stop_on_signal(workers: Workers, hangup: Option<std::io::PipeWriter>) {
    if let Some(pipe) = &hangup {
        if let Err(e) = rustix::io::ioctl_fionbio(pipe, true) {
            warn!("demo: SIGHUP pipe: {e}");
        }
    }
    let stops = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    let set = block(&stops[..if hangup.is_some() { 3 } else { 2 }]);
    std::thread::spawn(move || {
        let mut sig = 0;
        loop {
            // SAFETY: waits for a signal of `set`, which is blocked in
            // every thread of this process.
            unsafe { libc::sigwait(&set, &mut sig) };
            if sig != libc::SIGHUP {
                break;
            }
            if let Some(mut pipe) = hangup.as_ref() {
                let _ = pipe.write(&[0]);
            }
        }
        let name = if sig == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        let pids = workers.lock().map(|p| p.clone()).unwrap_or_default();
        for pid in &pids {
            if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        say!("stopped by {name}; sent SIGTERM to workers {pids:?}");
        // Answered clients close first (each within the linger time).
        crate::linger::drain();
        std::process::exit(0);
    });
}

/// Blocks `signals` in this thread and the threads it starts from now on,
/// and returns a socket that receives one byte (the signal number) per
/// signal: for event loops that watch it with their other descriptors.
///
/// # Errors
/// From creating the socket pair.
pub fn signal_socket(signals: &[libc::c_int]) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::io::Write;
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let set = block(signals);
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: waits for a signal of `set`, blocked in every thread.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        if theirs.write_all(&[sig as u8]).is_err() {
            return;
        }
    });
    Ok(ours)
}
