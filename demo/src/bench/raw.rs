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

/// The raw side of the `rtt` figure: the small message's bytes, echoed.
pub(super) struct Echo {
    child: RawChild,
    bytes: Vec<u8>,
    buf: Vec<u8>,
}

impl Echo {
    pub(super) fn start() -> io::Result<Echo> {
        let bytes = frame(0, &"x".repeat(16));
        let child = RawChild::start("raw-echo", bytes.len() as u64)?;
        let buf = vec![0u8; bytes.len()];
        Ok(Echo { child, bytes, buf })
    }
}

impl super::Pinger for Echo {
    fn ping(&mut self) -> io::Result<f64> {
        let t = Instant::now();
        self.child.sock.write_all(&self.bytes)?;
        self.child.sock.read_exact(&mut self.buf)?;
        Ok(t.elapsed().as_secs_f64() * 1e6)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.child.finish()
    }
}

/// The limit of `socket_handoff`: the same clients, each connection
/// answered (one byte, then closed) by the process that accepted it, with
/// no hand-off: what the connections alone cost. Connections/s.
pub(super) fn socket_handoff(n: usize, in_flight: usize) -> io::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let start = Instant::now();
    std::thread::scope(|s| -> io::Result<()> {
        let clients = s.spawn(|| super::clients::run(addr, n, in_flight));
        for _ in 0..n {
            let (mut conn, _) = listener.accept()?;
            conn.write_all(b"!")?;
        }
        clients
            .join()
            .map_err(|_| io::Error::other("clients panicked"))?
    })?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
