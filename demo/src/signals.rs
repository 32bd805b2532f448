//! Stopping cleanly on Ctrl-C or SIGTERM: the signals are blocked in every
//! thread and one thread waits for them with `sigwait`, so no handler runs
//! in signal context. Children get a clean mask (std resets it at spawn).
#![allow(unsafe_code)]

use std::sync::{Arc, Mutex};

/// Process ids of the workers to stop.
pub type Workers = Arc<Mutex<Vec<u32>>>;

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in this thread and the threads it starts from
/// now on, and starts the thread that stops everything when one arrives:
/// it sends SIGTERM to `workers` and exits.
pub fn stop_on_signal(workers: Workers) {
    let set = stop_set();
    // SAFETY: changes this thread's signal mask only; `set` is valid.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: waits for a signal of `set`, which is blocked in every
        // thread of this process.
        unsafe { libc::sigwait(&set, &mut sig) };
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
    // SAFETY: builds a set we own and changes this thread's mask only.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
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
