//! `demo cluster-worker`: an HTTP worker on the worker side of Node's
//! cluster protocol, for any cluster primary (`demo cluster`, or Node's
//! `cluster.setupPrimary({exec: 'cluster-worker'})` with
//! `process.execPath` set to this binary). It answers `hello from <pid>`
//! on `$PORT` (default 8000) and leaves when the primary disconnects it,
//! once its connections are answered.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_fork::cluster::{self, Listener, WorkerEvent};
use ipc_net::{Server, Socket};

use crate::common::AcceptPause;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long leaving waits for connections in progress.
const DRAIN: Duration = Duration::from_secs(10);
/// How often the shared-socket accept loop looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// Connections being answered.
#[derive(Clone, Default)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Answers `socket` on a thread of its own, counted until done.
    fn serve(&self, socket: Socket) {
        self.0.fetch_add(1, Ordering::AcqRel);
        let count = self.clone();
        std::thread::spawn(move || {
            let _ = answer(socket);
            count.0.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Waits until every connection is answered (up to [`DRAIN`]).
    fn drain(&self) {
        let give_up = Instant::now() + DRAIN;
        while self.0.load(Ordering::Acquire) > 0 && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Reads one request head and answers `hello from <pid>`.
fn answer(mut socket: Socket) -> io::Result<()> {
    // A guard for a client that never sends (it bounds blocking reads).
    let _ = rustix::net::sockopt::set_socket_timeout(
        &socket,
        rustix::net::sockopt::Timeout::Recv,
        Some(READ_TIMEOUT),
    );
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let body = format!("hello from {}\n", std::process::id());
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(reply.as_bytes())
}

/// Accepts from a shared socket until `stop`, serving each connection.
fn accept_loop(server: Server, stop: Arc<AtomicBool>, inflight: InFlight) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut pause = AcceptPause::default();
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: TICK.as_nanos() as i64,
    };
    while !stop.load(Ordering::Acquire) {
        let mut fds = [PollFd::new(&server, PollFlags::IN)];
        if poll(&mut fds, Some(&tick)).unwrap_or(0) == 0 {
            continue;
        }
        match server.try_accept() {
            Ok(conn) => {
                pause.accepted();
                inflight.serve(conn);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => match pause.failed(&e) {
                Some(wait) => std::thread::sleep(wait),
                None => warn!("demo cluster-worker: accept: {e}"),
            },
        }
    }
}

/// Runs the worker; the exit code (1 when it cannot listen, as a Node
/// worker whose server fails).
pub fn run() -> i32 {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000u16);
    let mut worker = match cluster::worker() {
        Ok(w) => w,
        Err(e) => {
            warn!("demo cluster-worker: {e}");
            return 2;
        }
    };
    let inflight = InFlight::default();
    let stop = Arc::new(AtomicBool::new(false));
    let accepting = match worker.listen(None, port) {
        Ok(Listener::Shared(server)) => {
            let (stop, inflight) = (stop.clone(), inflight.clone());
            Some(std::thread::spawn(move || {
                accept_loop(server, stop, inflight)
            }))
        }
        Ok(Listener::RoundRobin { .. }) => None,
        Err(e) => {
            warn!("demo cluster-worker: listen on port {port}: {e}");
            return 1;
        }
    };
    say!(
        "cluster-worker {} (pid {}) serving",
        worker.id(),
        std::process::id()
    );
    loop {
        match worker.next_event() {
            Ok(WorkerEvent::Connection { socket, .. }) => inflight.serve(socket),
            Ok(WorkerEvent::Disconnect | WorkerEvent::Closed)
            | Err(ipc_core::Error::Disconnected) => break,
            Ok(_) => {}
            Err(e) if !e.is_fatal() => warn!("demo cluster-worker: {e}"),
            Err(e) => {
                warn!("demo cluster-worker: {e}");
                return 1;
            }
        }
    }
    stop.store(true, Ordering::Release);
    if let Some(t) = accepting {
        let _ = t.join();
    }
    inflight.drain();
    worker.finish();
    0
}
