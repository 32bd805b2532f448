//! The benchmark's child processes: `demo bench-child ROLE ARGS`.
//!
//! - `count N`: says `"ready"`, counts N messages, then answers
//!   `["done", N]`.
//! - `allocs WARMUP N`: receives WARMUP messages, then N more while counting
//!   its heap allocations, and answers the count.
//! - `echo`: sends every message back as it came, without copying it
//!   (`recv_with_sender` and `Message::raw`).
//! - `handoff`: answers each socket with one byte and each server with a
//!   message, after rebuilding it.
//! - `raw-echo NAME LEN`: connects to the abstract UNIX socket NAME and
//!   echoes LEN-byte chunks, no framing, until EOF.
//! - `raw-count NAME BYTES`: connects to NAME, reads BYTES bytes, writes one.
//! - `lines-count N`: on the socket that is its stdin, says `ready`, reads
//!   N JSON lines, each into an [`OwnedMsg`], then says `done`.
//! - `async-count N`, `async-allocs WARMUP N`: `count` and `allocs` on
//!   tokio (the `tokio` feature; see `ours_async`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};

use ipc_fork::{Event, Parent};
use serde::Deserialize;

use super::allocs::allocations;
use super::lines::BUF;

/// A benchmark message as a user would deserialize it: owned.
#[derive(Deserialize)]
struct OwnedMsg {
    seq: u64,
    payload: String,
}

/// Runs the child role `args`; the process's exit code.
pub fn run(args: &[String]) -> i32 {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    #[cfg(feature = "tokio")]
    if let Some(code) = super::ours_async::run_child(&words) {
        return code;
    }
    let number = |s: &str| s.parse::<u64>().ok();
    match words.as_slice() {
        ["count", n] => number(n).map_or(2, count),
        ["allocs", warmup, n] => match (number(warmup), number(n)) {
            (Some(w), Some(n)) => count_allocations(w, n),
            _ => 2,
        },
        ["handoff"] => handoff(),
        ["echo"] => echo(),
        ["raw-echo", name, len] => number(len).map_or(2, |len| raw_echo(name, len as usize)),
        ["raw-count", name, bytes] => number(bytes).map_or(2, |b| raw_count(name, b)),
        ["lines-count", n] => number(n).map_or(2, lines_count),
        _ => {
            warn!("demo bench-child: unknown role {args:?}");
            2
        }
    }
}

fn parent() -> Option<Parent> {
    ipc_fork::parent()
        .inspect_err(|e| warn!("demo bench-child: {e}"))
        .ok()
}

/// Waits for the next user message; `false` once the channel is gone.
fn next_message(parent: &mut Parent) -> bool {
    loop {
        match parent.recv() {
            Ok(Event::Message(..)) => return true,
            Ok(Event::Disconnect | Event::Exit(_)) => return false,
            Ok(Event::Internal(..) | Event::Fate(_)) => {}
            Err(e) if !e.is_fatal() => warn!("demo bench-child: {e}"),
            Err(_) => return false,
        }
    }
}

fn count(n: u64) -> i32 {
    let Some(mut parent) = parent() else { return 2 };
    if parent.send(&"ready").is_err() {
        return 1;
    }
    for _ in 0..n {
        if !next_message(&mut parent) {
            return 1;
        }
    }
    if parent.send(&("done", n)).is_err() {
        return 1;
    }
    while next_message(&mut parent) {}
    0
}

fn count_allocations(warmup: u64, n: u64) -> i32 {
    let Some(mut parent) = parent() else { return 2 };
    for _ in 0..warmup {
        if !next_message(&mut parent) {
            return 1;
        }
    }
    let before = allocations();
    for _ in 0..n {
        if !next_message(&mut parent) {
            return 1;
        }
    }
    let counted = before.zip(allocations()).map(|(b, a)| a - b);
    if parent.send(&counted).is_err() {
        return 1;
    }
    while next_message(&mut parent) {}
    0
}

fn echo() -> i32 {
    let Some(mut parent) = parent() else { return 2 };
    let channel = parent.endpoint_mut().channel();
    loop {
        let (msg, mut sender) = match channel.recv_incoming() {
            Ok(ipc_core::Incoming::Message(msg, sender)) => (msg, sender),
            Ok(ipc_core::Incoming::Fate(_)) => continue,
            Err(e) if !e.is_fatal() => continue,
            Err(_) => return 0,
        };
        if sender.try_send(&msg.raw()).is_err() {
            return 1;
        }
    }
}

fn handoff() -> i32 {
    let Some(mut parent) = parent() else { return 2 };
    loop {
        let got = match parent.recv() {
            Ok(Event::Message(_, Some(Ok(received)))) => received,
            Ok(Event::Disconnect | Event::Exit(_)) => return 0,
            Ok(_) => continue,
            Err(e) if !e.is_fatal() => continue,
            Err(_) => return 1,
        };
        match got {
            ipc_net::Received::Socket(mut s) => {
                let _ = s.write_all(b"!");
            }
            ipc_net::Received::Server(_) => {
                if parent.send(&"rebuilt").is_err() {
                    return 1;
                }
            }
            ipc_net::Received::Datagram(_) => {}
        }
    }
}

fn connect(name: &str) -> Option<UnixStream> {
    SocketAddr::from_abstract_name(name)
        .and_then(|addr| UnixStream::connect_addr(&addr))
        .inspect_err(|e| warn!("demo bench-child: connect {name:?}: {e}"))
        .ok()
}

fn raw_echo(name: &str, len: usize) -> i32 {
    let Some(mut sock) = connect(name) else {
        return 2;
    };
    let mut buf = vec![0u8; len];
    while sock.read_exact(&mut buf).is_ok() {
        if sock.write_all(&buf).is_err() {
            return 1;
        }
    }
    0
}

fn raw_count(name: &str, bytes: u64) -> i32 {
    let Some(mut sock) = connect(name) else {
        return 2;
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < bytes {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return 1,
            Ok(n) => got += n as u64,
        }
    }
    i32::from(sock.write_all(b"!").is_err())
}

fn lines_count(n: u64) -> i32 {
    let sock = match io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => UnixStream::from(fd),
        Err(e) => {
            warn!("demo bench-child: stdin: {e}");
            return 2;
        }
    };
    match count_lines(&sock, n) {
        Ok(()) => 0,
        Err(e) => {
            warn!("demo bench-child: lines-count: {e}");
            1
        }
    }
}

/// Says `ready`, reads and deserializes `n` lines, checking their order,
/// then says `done`.
fn count_lines(mut sock: &UnixStream, n: u64) -> io::Result<()> {
    sock.write_all(b"ready\n")?;
    let mut reader = BufReader::with_capacity(BUF, sock);
    let mut line = String::new();
    for seq in 0..n {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let msg: OwnedMsg = serde_json::from_str(&line)?;
        if msg.seq != seq {
            return Err(io::Error::other(format!("message {} for {seq}", msg.seq)));
        }
        std::hint::black_box(msg.payload);
    }
    sock.write_all(b"done\n")
}
