//! `demo cluster-worker`: an HTTP worker on the worker side of Node's
//! cluster protocol, for any cluster primary (`demo cluster`, or Node's
//! `cluster.setupPrimary({exec: 'cluster-worker'})` with
//! `process.execPath` set to this binary). It answers `hello from <pid>`
//! on `$PORT` (default 8000) and leaves when the primary disconnects it,
//! once its connections are answered and closed.

use ipc_fork::cluster::{self, Listener, WorkerEvent};

use crate::common::Serving;
use crate::linger;

/// `hello from <pid>` as an HTTP reply, made once. It is written without
/// reading the request first, and the connection closed lingering (see
/// [`linger`]), as the demo's other servers answer.
fn reply() -> &'static [u8] {
    let body = format!("hello from {}\n", std::process::id());
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Box::leak(reply.into_boxed_str()).as_bytes()
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
    let reply = reply();
    let mut accepting = match Serving::new() {
        Ok(s) => s,
        Err(e) => {
            warn!("demo cluster-worker: {e}");
            return 1;
        }
    };
    match worker.listen(None, port) {
        Ok(Listener::Shared(server)) => accepting.serve(server, reply),
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
            Ok(WorkerEvent::Connection { socket, .. }) => linger::answer(socket, reply),
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
    // Connections in hand are answered; the answered ones close before
    // the process exits (`linger::drain`, on the way out of `main`).
    accepting.stop();
    worker.finish();
    0
}
