//! `cluster_rr`: HTTP requests per second through a round-robin cluster
//! primary, `demo cluster --policy rr` against Node's own primary, both
//! running the same two Node workers (the docs' app, `demo/node/`). Each
//! run starts a fresh cluster, waits for both workers to listen, warms up,
//! then times short connections (HTTP/1.0, no keep-alive) from client
//! threads in this process over loopback.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// Workers in each cluster.
pub(super) const WORKERS: usize = 2;
/// Client threads (connections in flight).
const CLIENTS: usize = 8;
/// Requests before timing.
const WARMUP: usize = 200;

/// The docs' app and Node's primary, written to a directory for the run.
pub(super) struct Scripts {
    dir: PathBuf,
}

impl Scripts {
    /// Writes the scripts; `None` (and a warning) if that fails.
    pub fn write() -> Option<Scripts> {
        let dir = std::env::temp_dir().join(format!("ipc-demo-cluster-{}", std::process::id()));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                dir.join("cluster-app.js"),
                include_str!("../../node/cluster-app.js"),
            )?;
            std::fs::write(
                dir.join("cluster-primary.js"),
                include_str!("../../node/cluster-primary.js"),
            )
        });
        match written {
            Ok(()) => Some(Scripts { dir }),
            Err(e) => {
                warn!("demo bench: cannot write the cluster scripts: {e}");
                None
            }
        }
    }

    /// Requests/s through `demo cluster --policy rr -- node app.js`.
    pub fn ours(&self, requests: usize) -> io::Result<f64> {
        let mut cmd = Command::new(std::env::current_exe()?);
        let workers = WORKERS.to_string();
        cmd.args([
            "cluster",
            "--workers",
            &workers,
            "--policy",
            "rr",
            "--",
            "node",
        ])
        .arg(self.dir.join("cluster-app.js"));
        rate(cmd, requests)
    }

    /// Requests/s through Node's primary with the same workers.
    pub fn node(&self, requests: usize) -> io::Result<f64> {
        let mut cmd = Command::new("node");
        cmd.arg(self.dir.join("cluster-primary.js"))
            .args([&WORKERS.to_string(), "rr", "node"]);
        rate(cmd, requests)
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster primary, stopped with SIGTERM when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.0.wait();
    }
}

/// Starts the primary `cmd`, waits for its workers to listen, and times
/// `requests` requests.
fn rate(mut cmd: Command, requests: usize) -> io::Result<f64> {
    let mut child = cmd
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child.stdout.take().expect("piped");
    let running = Running(child);
    let mut lines = BufReader::new(out).lines();
    let mut port = None;
    let mut listening = 0;
    while listening < WORKERS {
        let line = lines.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the primary ended before its workers listened",
            )
        })??;
        if let Some(rest) = line.split("listening on port ").nth(1) {
            listening += 1;
            port = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|p| p.parse().ok());
        }
    }
    // Keep reading, so the primary never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let port: u16 = port.ok_or_else(|| io::Error::other("no port in the listening line"))?;
    clients(port, WARMUP)?;
    let start = Instant::now();
    clients(port, requests)?;
    let secs = start.elapsed().as_secs_f64();
    drop(running);
    Ok(requests as f64 / secs)
}

/// `n` GETs from [`CLIENTS`] threads; every one must be answered.
fn clients(port: u16, n: usize) -> io::Result<()> {
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| std::thread::spawn(move || (t..n).step_by(CLIENTS).try_for_each(|_| get(port))))
        .collect();
    threads
        .into_iter()
        .try_for_each(|t| t.join().map_err(|_| io::Error::other("client panicked"))?)
}

/// One GET; an error unless the reply is a 200.
fn get(port: u16) -> io::Result<()> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut reply = Vec::with_capacity(256);
    conn.read_to_end(&mut reply)?;
    if reply.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a 200 reply",
        ))
    }
}
