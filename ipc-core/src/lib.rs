//! Node.js's `child_process` IPC channel, in Rust, without an allocator.
//!
//! A [`Channel`] speaks Node's `json` wire protocol over an `AF_UNIX` stream
//! socket: one JSON value per line, and descriptors passed with
//! `SCM_RIGHTS` inside `NODE_HANDLE` wrappers that the receiver acknowledges.
//! Either end may be a Node process.
//!
//! ```
//! use ipc_core::{Channel, Handle, HandleKind};
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//!
//! let (mut parent, mut child) = Channel::<4096, 4096>::pair()?;
//!
//! // A plain message, and one carrying a descriptor.
//! parent.send(&("hello", 42))?;
//! let (mut ours, theirs) = UnixStream::pair()?;
//! parent.send_handle("socket", Handle::new(HandleKind::Socket, theirs))?;
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
//! for seq in 0..100u32 {
//!     parent.queue(&seq)?;
//! }
//! parent.flush()?;
//! for seq in 0..100u32 {
//!     assert_eq!(child.recv()?.parse::<u32>()?, seq);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//! - [`sys`]: `sendmsg`/`recvmsg` with `SCM_RIGHTS` (`MSG_NOSIGNAL`,
//!   `MSG_CMSG_CLOEXEC`, `EINTR` retried, `MSG_CTRUNC` reported, waiting or
//!   `MSG_DONTWAIT` per call).
//! - [`json`]: JSON into and out of fixed buffers, V8's escaping, zero-copy
//!   strings.
//! - [`Channel`]: the protocol: internal vs user messages, `NODE_HANDLE`
//!   wrappers, ACK/NACK, holding messages behind an unacknowledged handle,
//!   socket retransmission, pairing received descriptors with their lines.
//!
//! # Limits
//! - A received line longer than the receive buffer (`RX`, 64 KiB by
//!   default) is skipped with [`Error::FrameTooLong`]; the next one arrives.
//!   A message longer than the send buffer is [`Error::MessageTooLarge`].
//! - One handle is on the wire at a time until the peer's ACK, as Node
//!   requires; up to [`tx::MAX_QUEUED_HANDLES`] more wait in the queue.
//! - At most [`sys::MAX_FDS_PER_CALL`] descriptors per message and
//!   [`fdqueue::FD_QUEUE_CAPACITY`] waiting for their line.
//! - JSON nesting up to [`json::MAX_DEPTH`] levels. A lone surrogate escape
//!   (`"\ud800"`) decodes to U+FFFD: Rust strings cannot hold it.
//! - Only the `json` serialization; Node's `advanced` mode is not spoken.
//! - Linux (the descriptor-pairing rules rely on Linux's `recvmsg`).
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs, unsafe_code)]

mod buf;
mod bytes;
mod channel;
mod envelope;
mod error;
pub mod fdqueue;
mod handle;
pub mod json;
mod message;
mod rx;
pub mod sys;
pub mod tx;
pub mod wire;

pub use channel::{Channel, Sender, DEFAULT_CAPACITY};
pub use envelope::{Cmd, MAX_CMD_LEN};
pub use error::{Error, SendError};
pub use handle::{Handle, HandleKind, Key, UdpFamily, MAX_KEY_LEN};
pub use message::Message;
