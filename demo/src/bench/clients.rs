//! The clients of the hand-off figures: `n` TCP connections, `in_flight`
//! open at a time, each read until the server side closes it. One thread
//! and one `epoll` set, as Node's clients run in its event loop: each
//! wake-up costs what is ready, not what is open.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

/// Connects `n` clients to `addr`, `in_flight` at a time, and reads each
/// until EOF (or a reset).
pub(super) fn run(addr: SocketAddr, n: usize, in_flight: usize) -> io::Result<()> {
    let poll = epoll::create(CreateFlags::CLOEXEC)?;
    // Open connections by slot; a slot's index is its epoll data.
    let mut open: Vec<Option<OwnedFd>> = Vec::with_capacity(in_flight);
    let mut free: Vec<usize> = Vec::with_capacity(in_flight);
    let (mut started, mut done) = (0, 0);
    let none = epoll::Event {
        flags: EventFlags::empty(),
        data: EventData::new_u64(0),
    };
    let mut events = vec![none; in_flight.max(1)];
    while done < n {
        while open.len() - free.len() < in_flight && started < n {
            let sock = rustix::net::socket_with(
                AddressFamily::INET,
                SocketType::STREAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            )?;
            match rustix::net::connect(&sock, &addr) {
                Ok(()) | Err(Errno::INPROGRESS) => {}
                Err(e) => return Err(e.into()),
            }
            let slot = free.pop().unwrap_or_else(|| {
                open.push(None);
                open.len() - 1
            });
            epoll::add(
                &poll,
                &sock,
                EventData::new_u64(slot as u64),
                EventFlags::IN | EventFlags::RDHUP,
            )?;
            open[slot] = Some(sock);
            started += 1;
        }
        let ready = match epoll::wait(&poll, &mut events[..], None) {
            Ok(n) => n,
            Err(Errno::INTR) => 0,
            Err(e) => return Err(e.into()),
        };
        for event in &events[..ready] {
            let slot = event.data.u64() as usize;
            let Some(sock) = &open[slot] else { continue };
            if read_to_end(sock)? {
                // Closing takes it out of the epoll set.
                open[slot] = None;
                free.push(slot);
                done += 1;
            }
        }
    }
    Ok(())
}

/// Reads what `sock` has; whether it reached EOF (or was reset).
fn read_to_end(sock: &OwnedFd) -> io::Result<bool> {
    let mut buf = [0u8; 16];
    loop {
        match rustix::io::read(sock, &mut buf) {
            Ok(0) | Err(Errno::CONNRESET) => return Ok(true),
            Ok(_) | Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(false),
            Err(e) => return Err(io::Error::other(format!("client connection: {e}"))),
        }
    }
}
