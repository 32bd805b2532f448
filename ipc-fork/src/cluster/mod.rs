//! Node's `cluster` protocol, both sides: a [`Primary`] that runs Node (or
//! Rust) workers unmodified, and a [`Worker`] that listens through any
//! cluster primary, Node's included.
//!
//! The messages are Node v20's, byte for byte (`NODE_CLUSTER` with
//! `online`, `queryServer`, `listening`, `close`, `newconn`, `disconnect`,
//! `exitedAfterDisconnect`; keys `address:port:addressType:fd:index`;
//! negative errno numbers; handles tagged `net.Native` and
//! `dgram.Native`). Scheduling follows [`Policy`]: `none` hands every
//! worker the same bound socket, `rr` (Node's default on Linux) accepts in
//! the primary and deals each connection to the next free worker.
//!
//! The primary is driven from your loop over a [`Poller`](crate::Poller):
//!
//! ```no_run
//! use ipc_fork::cluster::{ClusterEvent, Policy, Primary};
//! use ipc_fork::{Command, Poller};
//!
//! let mut poller = Poller::new()?;
//! let mut primary = Primary::new(Policy::RoundRobin);
//! for _ in 0..2 {
//!     primary.spawn(&mut poller, Command::new("node").arg("app.js"))?;
//! }
//! loop {
//!     match primary.next(&mut poller, None)? {
//!         ClusterEvent::Listening { worker, port, .. } => println!("{worker} listens on {port}"),
//!         ClusterEvent::Exit { worker, status, .. } => {
//!             println!("{worker} exited: {status}");
//!             primary.spawn(&mut poller, Command::new("node").arg("app.js"))?;
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! And a worker, started by either primary:
//!
//! ```no_run
//! use std::io::Write;
//! use ipc_fork::cluster::{self, Listener, WorkerEvent};
//!
//! let mut worker = cluster::worker()?;
//! match worker.listen(None, 8000)? {
//!     // Policy `none`: accept from the shared socket yourself.
//!     Listener::Shared(server) => {
//!         std::thread::spawn(move || loop {
//!             if let Ok(mut conn) = server.accept() {
//!                 let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello\n");
//!             }
//!         });
//!     }
//!     // Round-robin: connections come through the worker's events.
//!     Listener::RoundRobin { .. } => {}
//! }
//! loop {
//!     match worker.next_event()? {
//!         WorkerEvent::Connection { mut socket, .. } => {
//!             let _ = socket.write_all(b"HTTP/1.0 200 OK\r\n\r\nhello\n");
//!         }
//!         WorkerEvent::Disconnect | WorkerEvent::Closed => break,
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bind;
mod primary;
mod rr;
pub(crate) mod wire;

/// Node's default backlog.
const BACKLOG: u32 = 511;
mod worker;

use std::fmt;

pub use primary::{
    ClusterEvent, Primary, WorkerInfo, ACCEPT_PAUSE, IN_FLIGHT_PER_WORKER, TOKEN_BASE,
};
pub use worker::{is_worker, worker, worker_id, ClusterError, Listener, Worker, WorkerEvent};

/// How connections reach the workers (Node's `cluster.schedulingPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_NONE`: every worker gets the listening socket itself and the
    /// kernel hands each connection to one of them.
    None,
    /// `SCHED_RR`: the primary accepts and deals connections in turn to
    /// the free workers. Node's default outside Windows.
    RoundRobin,
}

impl Policy {
    /// Node's choice: `NODE_CLUSTER_SCHED_POLICY` (`none` or `rr`), else
    /// round-robin.
    pub fn from_env() -> Policy {
        match std::env::var("NODE_CLUSTER_SCHED_POLICY").as_deref() {
            Ok("none") => Policy::None,
            _ => Policy::RoundRobin,
        }
    }

    /// Reads `none` or `rr`.
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "none" => Some(Policy::None),
            "rr" => Some(Policy::RoundRobin),
            _ => None,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::None => "none",
            Policy::RoundRobin => "rr",
        })
    }
}

/// Something a worker sent that the primary could not use; the worker's
/// channel goes on (see [`ClusterEvent::BadInput`]).
#[non_exhaustive]
#[derive(Debug)]
pub enum InputError {
    /// The channel reported a bad frame (not JSON, too long, a handle
    /// without a descriptor, ...), or failed.
    Channel(ipc_core::Error),
    /// A `NODE_CLUSTER` message whose members have the wrong types.
    Json(ipc_core::json::JsonError),
    /// A request without the `seq` its answer needs (the act is named).
    MissingSeq(String),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Channel(e) => write!(f, "channel: {e}"),
            InputError::Json(e) => write!(f, "bad NODE_CLUSTER message: {e}"),
            InputError::MissingSeq(act) => write!(f, "{act} without a seq"),
        }
    }
}

impl std::error::Error for InputError {}
