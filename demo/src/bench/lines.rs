//! The `lines_*` baseline: what a user would write instead of a channel
//! library. Two processes on a socketpair, 64 KiB `BufWriter`/`BufReader`,
//! `serde_json` and a `\n` per message. The child is this executable
//! (`bench-child lines-count N`), with its end of the pair as its stdin.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::Msg;

/// The buffer size of both ends.
pub(super) const BUF: usize = 64 * 1024;

/// Messages/s from the child's `ready` line until its `done` line: `n`
/// messages of `payload`, each `serde_json::to_writer` and `\n` into a
/// 64 KiB `BufWriter`.
pub(super) fn throughput(n: u64, payload: &str) -> io::Result<f64> {
    let (sock, theirs) = UnixStream::pair()?;
    let mut process = Command::new(std::env::current_exe()?)
        .args(["bench-child", "lines-count", &n.to_string()])
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()?;
    let rate = send_all(&sock, n, payload);
    drop(sock); // EOF for the child, should it still be reading
    let status = process.wait()?;
    let rate = rate?;
    if status.success() {
        Ok(rate)
    } else {
        Err(io::Error::other(format!("lines child: {status}")))
    }
}

/// The timed part of [`throughput`].
fn send_all(sock: &UnixStream, n: u64, payload: &str) -> io::Result<f64> {
    let mut replies = BufReader::new(sock);
    expect_line(&mut replies, "ready")?;
    let start = Instant::now();
    let mut w = BufWriter::with_capacity(BUF, sock);
    for seq in 0..n {
        serde_json::to_writer(&mut w, &Msg { seq, payload })?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    expect_line(&mut replies, "done")?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Reads one line and checks that it is `want`.
fn expect_line(r: &mut impl BufRead, want: &str) -> io::Result<()> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    if line.trim_end() == want {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "lines child: {line:?} instead of {want:?}"
        )))
    }
}
