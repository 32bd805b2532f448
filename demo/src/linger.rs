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
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ipc_net::Socket;
use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// How long a client has to close after its answer.
pub const LINGER: Duration = Duration::from_secs(2);

/// How often the lingering thread looks for new sockets while it waits.
const TICK: Duration = Duration::from_millis(50);

/// Writes `reply` to `conn`, ends our direction, and closes it once the
/// client has (see the module docs). A client that left early is its own
/// business: errors end the connection quietly.
pub fn answer(mut conn: Socket, reply: &[u8]) {
    if conn.write_all(reply).is_err() || conn.shutdown(Shutdown::Write).is_err() {
        return;
    }
    static LINGERING: OnceLock<Sender<Socket>> = OnceLock::new();
    let to_thread = LINGERING.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || linger(&rx));
        tx
    });
    // The thread lives as long as the process: this cannot fail.
    let _ = to_thread.send(conn);
}

/// The lingering thread: each socket is read and discarded until EOF, an
/// error, or its deadline.
fn linger(new: &Receiver<Socket>) {
    let mut waiting: Vec<(Socket, Instant)> = Vec::new();
    loop {
        if waiting.is_empty() {
            let Ok(conn) = new.recv() else { return };
            waiting.push((conn, Instant::now() + LINGER));
        }
        waiting.extend(new.try_iter().map(|c| (c, Instant::now() + LINGER)));
        let mut fds: Vec<PollFd<'_>> = waiting
            .iter()
            .map(|(c, _)| PollFd::new(c, PollFlags::IN))
            .collect();
        let tick = Timespec::try_from(TICK).expect("a short tick");
        let _ = poll(&mut fds, Some(&tick));
        let readable: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        let now = Instant::now();
        let mut i = 0;
        waiting.retain_mut(|(conn, deadline)| {
            let keep = !(readable[i] && finished(conn)) && *deadline > now;
            i += 1;
            keep
        });
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
