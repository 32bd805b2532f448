//! The protocol state machine driven by an arbitrary script of peer actions
//! (bytes, bytes with descriptors, ACKs, NACKs) and our own (receive, send a
//! handle, flush): no panic, no fatal error while the peer lives, and after
//! each run every descriptor is closed again.
#![no_main]

use std::os::fd::{AsFd, OwnedFd};

use ipc_core::{sys, Channel, Error, Handle, HandleKind};
use libfuzzer_sys::fuzz_target;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap()
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

const LINES: [&[u8]; 6] = [
    b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":\"s\",\"key\":\"6::::0\"}\n",
    b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Server\",\"msg\":1}}\n",
    b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n",
    b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n",
    b"{\"cmd\":\"NODE_SOCKET_GET_COUNT\",\"key\":\"6::::0\"}\n",
    b"\"plain\"\n",
];

fuzz_target!(|data: &[u8]| {
    let before = fd_count();
    {
        let (a, peer) = pair();
        // The peer never blocks: this is one thread playing both sides.
        rustix::io::ioctl_fionbio(&peer, true).unwrap();
        let mut ch = Channel::<512, 512>::new(a).unwrap();
        ch.set_limit(8192);
        let mut ops = data.iter();
        while let Some(&op) = ops.next() {
            let arg = usize::from(*ops.next().unwrap_or(&0));
            match op % 8 {
                // Peer writes a known line, or a prefix of it, maybe with fds.
                0..=2 => {
                    let line = LINES[arg % LINES.len()];
                    let cut = if op % 8 == 2 {
                        line.len()
                    } else {
                        1 + arg % line.len()
                    };
                    let extra: Vec<(OwnedFd, OwnedFd)> = (0..usize::from(op % 8 == 1)
                        * (1 + arg % 3))
                        .map(|_| pair())
                        .collect();
                    let fds: Vec<_> = extra.iter().map(|(x, _)| x.as_fd()).collect();
                    let _ =
                        sys::send_with_fds(peer.as_fd(), &line[..cut], &fds, sys::Wait::DontWait);
                }
                // Peer writes raw bytes from the input.
                3 => {
                    let bytes: Vec<u8> = ops.by_ref().take(arg % 32).copied().collect();
                    if !bytes.is_empty() {
                        let _ = rustix::io::write(&peer, &bytes);
                    }
                }
                // Receive; half the time after asking whether something is
                // ready (buffered only, or reading): a yes must not be
                // followed by WouldBlock.
                4 => {
                    let ready = match arg % 3 {
                        0 => ch.is_ready(),
                        1 => ch.prepare(),
                        _ => false,
                    };
                    match ch.try_recv_incoming() {
                        Ok(_) => {}
                        Err(Error::WouldBlock) => assert!(!ready, "ready, then WouldBlock"),
                        Err(e) => assert!(!e.is_fatal(), "fatal with a live peer: {e}"),
                    }
                }
                5 => {
                    let (_x, y) = pair();
                    let kind = if arg % 2 == 0 {
                        HandleKind::Socket
                    } else {
                        HandleKind::Server
                    };
                    let _ = ch.queue_handle(&arg, Handle::new(kind, y));
                }
                6 => {
                    let _ = ch.try_flush();
                }
                _ => {
                    // Peer reads whatever we sent (and drops its fds).
                    let mut buf = [0u8; 4096];
                    let mut fds = sys::ReceivedFds::new();
                    let _ =
                        sys::recv_with_fds(peer.as_fd(), &mut buf, &mut fds, sys::Wait::DontWait);
                }
            }
        }
    }
    assert_eq!(fd_count(), before, "descriptor leak");
});
