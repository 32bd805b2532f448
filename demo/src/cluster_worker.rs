//! `demo cluster-worker`: an HTTP worker on the worker side of Node's
//! cluster protocol, for any cluster primary (`demo cluster`, or Node's
//! `cluster.setupPrimary({exec: 'cluster-worker'})` with
//! `process.execPath` set to this binary). It answers `hello from <pid>`
//! on `$PORT` (default 8000) and leaves when the primary disconnects it,
//! once its connections are answered.

use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ipc_fork::cluster::{self, Listener, WorkerEvent};
use ipc_net::Socket;

use crate::common::Serving;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long leaving waits for connections in progress.
const DRAIN: Duration = Duration::from_secs(10);
/// Connections being answered: their count, and a signal when it drops.
#[derive(Clone, Default)]
struct InFlight(Arc<(Mutex<usize>, Condvar)>);

impl InFlight {
    /// Answers `socket` on a thread of its own, counted until done.
    fn serve(&self, socket: Socket) {
        *self.count() += 1;
        let in_flight = self.clone();
        std::thread::spawn(move || {
            let _ = answer(socket);
            *in_flight.count() -= 1;
            in_flight.0 .1.notify_all();
        });
    }

    fn count(&self) -> MutexGuard<'_, usize> {
        self.0 .0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until every connection is answered (up to [`DRAIN`]).
    fn drain(&self) {
        let _ = self
            .0
             .1
            .wait_timeout_while(self.count(), DRAIN, |n| *n > 0);
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
    let mut accepting = match Serving::new() {
        Ok(s) => s,
        Err(e) => {
            warn!("demo cluster-worker: {e}");
            return 1;
        }
    };
    match worker.listen(None, port) {
        Ok(Listener::Shared(server)) => {
            let inflight = inflight.clone();
            accepting.serve_with(server, move |conn| inflight.serve(conn));
        }
        Ok(Listener::RoundRobin { .. }) => {}
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
    accepting.stop();
    inflight.drain();
    worker.finish();
    0
}
