//! The raw limit: the benchmark's messages as bare bytes between two
//! processes on a UNIX stream socket, one `write` per message, no framing,
//! no parsing. The child is this executable (`bench-child raw-*`), reached
//! through an abstract socket name.

use std::io::{self, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::Msg;

/// The wire bytes of one benchmark message.
fn frame(seq: u64, payload: &str) -> Vec<u8> {
    let mut buf = vec![0u8; payload.len() + 64];
    let n = ipc_core::wire::plain_frame(&mut buf, &Msg { seq, payload }).expect("fits");
    buf.truncate(n);
    buf
}

/// A raw child and the socket to it.
struct RawChild {
    process: Child,
    sock: UnixStream,
}

impl RawChild {
    /// Starts `demo bench-child ROLE NAME ARG` and accepts its connection.
    fn start(role: &str, arg: u64) -> io::Result<RawChild> {
        let name = format!("ipc-demo-bench-{}-{role}", std::process::id());
        let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name)?)?;
        let process = Command::new(std::env::current_exe()?)
            .args(["bench-child", role, &name, &arg.to_string()])
            .stdin(Stdio::null())
            .spawn()?;
        let (sock, _) = listener.accept()?;
        Ok(RawChild { process, sock })
    }

    fn finish(mut self) -> io::Result<()> {
        drop(self.sock);
        let status = self.process.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("raw child: {status}")))
        }
    }
}

/// Messages/s: `n` messages of `payload`, one `write` each, from the first
/// write until the child has read them all.
pub(super) fn throughput(n: u64, payload: &str) -> io::Result<f64> {
    let bytes = frame(0, payload);
    let mut child = RawChild::start("raw-count", bytes.len() as u64 * n)?;
    let start = Instant::now();
    for _ in 0..n {
        child.sock.write_all(&bytes)?;
    }
    child.sock.read_exact(&mut [0u8])?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    child.finish()?;
    Ok(rate)
}

/// Round trips of the small message's bytes, µs, sorted.
pub(super) fn rtt(pings: usize) -> io::Result<Vec<f64>> {
    let bytes = frame(0, &"x".repeat(16));
    let mut child = RawChild::start("raw-echo", bytes.len() as u64)?;
    let mut buf = vec![0u8; bytes.len()];
    let mut us = Vec::with_capacity(pings);
    for _ in 0..pings {
        let t = Instant::now();
        child.sock.write_all(&bytes)?;
        child.sock.read_exact(&mut buf)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    child.finish()?;
    us.sort_by(f64::total_cmp);
    Ok(us)
}
