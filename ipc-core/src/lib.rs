//! Node.js's `child_process` IPC channel, in Rust, without an allocator.
//!
//! A [`Channel`] speaks Node's `json` wire protocol over an `AF_UNIX` stream
//! socket: one JSON value per line, and descriptors passed with
//! `SCM_RIGHTS` inside `NODE_HANDLE` wrappers that the receiver acknowledges.
//! Either end may be a Node process.
//!
//! ```
//! use ipc_core::{Channel, Fate, Handle, HandleKind};
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//!
//! let (mut parent, mut child) = Channel::<4096, 4096>::pair()?;
//!
//! // A plain message, and one carrying a descriptor. `queue_handle`
//! // returns at once; `send_handle` would wait for the child's ACK.
//! parent.send(&("hello", 42))?;
//! let (mut ours, theirs) = UnixStream::pair()?;
//! let ticket = parent.queue_handle("socket", Handle::new(HandleKind::Socket, theirs))?;
//!
//! let mut msg = child.recv()?;
//! let (text, n): (&str, u32) = msg.parse()?;
//! assert_eq!((text, n), ("hello", 42));
//!
//! let mut msg = child.recv()?;
//! assert_eq!(msg.as_str(), "\"socket\"");
//! let mut stream = UnixStream::from(msg.take_handle().unwrap().into_fd());
//! stream.write_all(b"hi")?;
//! let mut buf = [0; 2];
//! ours.read_exact(&mut buf)?;
//! assert_eq!(&buf, b"hi");
//!
//! // Many small messages, one write: queue, then flush (or send, or recv).
//! // Waiting for the write also reads the child's ACK: the handle's fate.
//! for seq in 0..100u32 {
//!     parent.queue(&seq)?;
//! }
//! parent.flush()?;
//! assert!(matches!(parent.next_fate(), Some(Fate::Acknowledged(t)) if t == ticket));
//! for seq in 0..100u32 {
//!     assert_eq!(child.recv()?.parse::<u32>()?, seq);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//! - [`sys`]: `sendmsg`/`recvmsg` with `SCM_RIGHTS` (`MSG_NOSIGNAL`,
//!   `MSG_CMSG_CLOEXEC`, `EINTR` retried, `MSG_CTRUNC` reported, waiting or
//!   `MSG_DONTWAIT` per call, deadlines).
//! - [`json`]: JSON into and out of fixed buffers, V8's escaping, zero-copy
//!   strings.
//! - [`Channel`]: the protocol: internal vs user messages, `NODE_HANDLE`
//!   wrappers, ACK/NACK, holding messages behind an unacknowledged handle,
//!   socket retransmission, pairing received descriptors with their lines,
//!   and the [`Fate`] of every handle sent.
//!
//! # Memory and limits
//! - With `std` (the default) the receive and send buffers start at their
//!   capacity (64 KiB each) and grow for a long message or a backlog, up to
//!   the channel's [limit](Channel::set_limit) per direction, 1 GiB by
//!   default; they shrink back once idle. A line longer than the limit is
//!   skipped with [`Error::FrameTooLong`] and the next one arrives.
//!   Without `std` the buffers are fixed at their capacity and the same
//!   errors mark their edge; queues are fixed too (32 handles, 16
//!   descriptors waiting for their line).
//! - A waiting call always reads too, so the limit is what bounds a peer
//!   that sends without reading: past it [`Error::ReceiveBufferFull`], and
//!   nothing already accepted is dropped.
//! - One handle is on the wire at a time until the peer's ACK, as Node
//!   requires; a refused socket is sent again up to 3 times, as Node does.
//! - At most [`sys::MAX_FDS_PER_CALL`] descriptors per received message.
//! - JSON nesting up to [`json::MAX_DEPTH`] levels received and forwarded,
//!   [`json::MAX_DECODE_DEPTH`] decoded into Rust types. A lone surrogate
//!   escape (`"\ud800"`) decodes to U+FFFD: Rust strings cannot hold it.
//! - Only the `json` serialization; Node's `advanced` mode is not spoken.
//! - Linux (the descriptor-pairing rules rely on Linux's `recvmsg`).
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, unsafe_code)]

mod buf;
mod bytes;
mod channel;
mod envelope;
mod error;
mod fate;
mod fdqueue;
mod handle;
mod inbound;
pub mod json;
mod message;
mod rx;
pub mod sys;
mod tx;
pub mod wire;

pub use channel::{Channel, Incoming, Sender, DEFAULT_CAPACITY, DEFAULT_LIMIT};
pub use envelope::MAX_CMD_LEN;
pub use error::{Error, OsError, SendError};
pub use fate::{Fate, Ticket};
pub use handle::{Handle, HandleKind, Key, UdpFamily, MAX_KEY_LEN};
pub use message::Message;
