//! Node's `child_process.fork()` for Rust: start a child with a message
//! channel ([`Command`]), or find the channel as the child ([`parent`]).
//! Either side may be Node.
//!
//! ```no_run
//! use ipc_fork::{Command, Event};
//!
//! // Parent: start this program again as a worker, send it a message.
//! let mut child = Command::current_exe()?.arg("worker").spawn()?;
//! child.send(&"hello")?;
//! loop {
//!     match child.recv() {
//!         Ok(Event::Message(msg, _handle)) => println!("child says {}", msg.as_str()),
//!         Ok(Event::Exit(status)) => {
//!             println!("child exited: {status}");
//!             break;
//!         }
//!         Ok(_) => {}
//!         // One bad message from the child: the channel goes on.
//!         Err(e) if !e.is_fatal() => eprintln!("skipped: {e}"),
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//!
//! // Child: echo every message back until the parent disconnects.
//! let mut parent = ipc_fork::parent()?;
//! loop {
//!     let text = match parent.recv() {
//!         Ok(Event::Message(msg, _)) => msg.as_str().to_owned(),
//!         Ok(Event::Disconnect) => break,
//!         Ok(_) => continue,
//!         Err(e) if !e.is_fatal() => continue,
//!         Err(e) => return Err(e.into()),
//!     };
//!     parent.send(&ipc_core::json::RawJson::new(&text)?)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Many children in one thread: [`Poller`]. Node's `cluster` protocol,
//! primary and worker: [`cluster`].
#![deny(missing_docs, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod child;
pub mod cluster;
mod command;
mod endpoint;
mod parent;
mod poller;
mod signal;
mod startup;
#[cfg(feature = "tokio")]
pub mod tokio;
mod wake;

pub use child::Child;
pub use command::{Command, Stdio};
pub use endpoint::{Endpoint, Event};
pub use ipc_core::{Fate, Ticket};
pub use parent::{has_parent, parent, Parent, ParentError};
pub use poller::{ChildId, Interest, Poller, Ready, Token};
pub use signal::Signal;

/// The descriptor number the child's end of the channel gets (Node uses the
/// index of `'ipc'` in `stdio`; `fork()` puts it at 3).
pub const CHANNEL_FD: i32 = 3;

/// A server's connections across processes, as Node's
/// `server.getConnections()` adds them up: those still open here plus what
/// each receiver reported for the server's key. `None` until every one of
/// `peers` has answered a
/// [`request_connection_count`](Endpoint::request_connection_count).
pub fn connections_total<P: AsRef<Endpoint>>(
    server: &ipc_net::Server,
    peers: &[&P],
) -> Option<usize> {
    peers.iter().try_fold(server.local_connections(), |sum, p| {
        let n = usize::try_from(p.as_ref().reported_connections(server.key())?).ok()?;
        Some(sum + n)
    })
}
