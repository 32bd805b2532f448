//! Closing an answered connection without resetting it.
//!
//! The demo answers on connect, as Node's documented examples do, without
//! reading what the client sent. Closing a socket with unread bytes makes
//! the kernel send a reset instead of a normal end, and a client such as
//! curl, which sent a request, then fails on the reset (exit 56) although
//! it has the whole answer. So [`answer`] writes the reply, ends our
//! direction (`shutdown(Write)`), and leaves the socket to one thread per
//! process that reads and discards until the client closes, or for at most
//! [`LINGER`]: the lingering close HTTP servers do.

use std::io::Write;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ipc_net::Socket;
use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// How long a client has to close after its answer.
pub const LINGER: Duration = Duration::from_secs(2);

/// The lingering thread's inbox: sockets, and a pipe byte per socket to
/// wake its `poll`; plus how many sockets linger, for [`drain`].
struct Lingering {
    to_thread: Mutex<Sender<Socket>>,
    wake: std::io::PipeWriter,
    count: Mutex<usize>,
    done: Condvar,
}

fn lingering() -> &'static Lingering {
    static LINGERING: OnceLock<Lingering> = OnceLock::new();
    LINGERING.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        let (woken, wake) = std::io::pipe().expect("a pipe for the lingering thread");
        std::thread::spawn(move || linger(&rx, &woken));
        Lingering {
            to_thread: Mutex::new(tx),
            wake,
            count: Mutex::new(0),
            done: Condvar::new(),
        }
    })
}

/// Starts the lingering thread (and its pipe) now, rather than on the first
/// answer: for a process that counts its descriptors before serving.
pub fn start() {
    lingering();
}

/// Writes `reply` to `conn`, ends our direction, and closes it once the
/// client has (see the module docs). A client that left early is its own
/// business: errors end the connection quietly.
pub fn answer(mut conn: Socket, reply: &[u8]) {
    if conn.write_all(reply).is_err() || conn.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let l = lingering();
    *l.count.lock().unwrap() += 1;
    // The thread lives as long as the process: this cannot fail.
    let _ = l.to_thread.lock().unwrap().send(conn);
    let _ = (&l.wake).write_all(b"+");
}

/// Waits until every answered connection is closed (each within
/// [`LINGER`]): for a process about to exit, whose exit would otherwise
/// close them with the client's request unread, which resets them.
pub fn drain() {
    let l = lingering();
    let mut count = l.count.lock().unwrap();
    while *count > 0 {
        count = l.done.wait(count).unwrap();
    }
}

/// The lingering thread: each socket is read and discarded until EOF, an
/// error, or its deadline. Sleeps in `poll` until a socket has input, a new
/// one comes (a byte on `woken`), or the nearest deadline.
fn linger(new: &Receiver<Socket>, woken: &std::io::PipeReader) {
    let mut waiting: Vec<(Socket, Instant)> = Vec::new();
    loop {
        let timeout = waiting
            .iter()
            .map(|(_, deadline)| deadline.saturating_duration_since(Instant::now()))
            .min()
            .map(|d| Timespec::try_from(d).expect("at most LINGER"));
        let mut fds: Vec<PollFd<'_>> = std::iter::once(PollFd::new(woken, PollFlags::IN))
            .chain(waiting.iter().map(|(c, _)| PollFd::new(c, PollFlags::IN)))
            .collect();
        let _ = poll(&mut fds, timeout.as_ref());
        let readable: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if readable[0] {
            let _ = std::io::Read::read(&mut &*woken, &mut [0u8; 4096]);
            waiting.extend(new.try_iter().map(|c| (c, Instant::now() + LINGER)));
        }
        let now = Instant::now();
        let before = waiting.len();
        let mut i = 1;
        waiting.retain_mut(|(conn, deadline)| {
            let keep = !(readable.get(i) == Some(&true) && finished(conn)) && *deadline > now;
            i += 1;
            keep
        });
        let closed = before - waiting.len();
        if closed > 0 {
            let l = lingering();
            *l.count.lock().unwrap() -= closed;
            l.done.notify_all();
        }
    }
}

/// Reads what is there without waiting; whether the client is done (EOF or
/// an error).
fn finished(conn: &mut Socket) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match rustix::net::recv(conn.as_fd(), &mut buf, rustix::net::RecvFlags::DONTWAIT) {
            Ok((0, _)) => return true,
            Ok(_) => {}
            Err(rustix::io::Errno::AGAIN) => return false,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}
