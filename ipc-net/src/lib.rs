//! Typed handles for Node-compatible IPC channels: what a process sends and
//! receives are a [`Server`], a [`Socket`] or a [`Datagram`], never a raw
//! descriptor.
//!
//! A received descriptor is checked against its type tag with the kernel
//! (`SO_TYPE`, `SO_DOMAIN`, `SO_ACCEPTCONN`, a peer) before it becomes a
//! typed object: a file, a pipe or the wrong kind of socket is a
//! [`HandleError`], and the descriptor is closed (Node aborts on some of
//! these).
//!
//! ```
//! use ipc_core::Channel;
//! use ipc_net::{Received, Server, Socket};
//! use std::io::{Read, Write};
//!
//! let (mut parent, mut child) = Channel::<4096, 4096>::pair()?;
//! let server = Server::bind("127.0.0.1:0")?;
//! let addr = server.local_addr()?.as_inet().unwrap();
//! // Sent by reference: the parent keeps serving too.
//! parent.queue_handle("server", server.to_handle()?)?;
//!
//! let mut msg = child.recv()?;
//! let Received::Server(shared) = Received::from_handle(msg.take_handle().unwrap())? else {
//!     panic!("expected a server");
//! };
//! let mut client = Socket::connect(addr)?;
//! let mut conn = shared.accept()?;
//! conn.write_all(b"handled by child\n")?;
//! let mut line = [0; 17];
//! client.read_exact(&mut line)?;
//! assert_eq!(&line, b"handled by child\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, unsafe_code)]

pub mod accounting;
mod addr;
mod counted;
mod datagram;
mod server;
mod socket;
pub mod systemd;
mod tally;
#[cfg(feature = "tokio")]
pub mod tokio;
mod verify;
mod wait;

pub use addr::Addr;
pub use counted::Counted;
pub use datagram::Datagram;
pub use server::Server;
pub use socket::Socket;
pub use verify::{Family, HandleError};

use ipc_core::{Handle, HandleKind};

/// A received handle, verified and typed.
#[derive(Debug)]
pub enum Received {
    /// A listening socket (`net.Server`, or `net.Native` that listens).
    Server(Server),
    /// A connection (`net.Socket`, or `net.Native` that is connected).
    Socket(Socket),
    /// A UDP socket (`dgram.Socket`, `dgram.Native`).
    Datagram(Datagram),
}

impl Received {
    /// Checks `handle` against its tag with the kernel and builds the typed
    /// object. On error the descriptor is closed. A `net.Native` becomes a
    /// `Server` or a `Socket`, whichever the kernel says it is.
    ///
    /// ```
    /// use ipc_core::{Handle, HandleKind};
    /// use ipc_net::{HandleError, Received};
    ///
    /// // A UDP socket that claims to be a net.Server, or a file that claims
    /// // to be a net.Socket: refused, and closed.
    /// let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let lie = Handle::new(HandleKind::Server, udp);
    /// assert_eq!(Received::from_handle(lie).unwrap_err(), HandleError::WrongType);
    /// let file = std::fs::File::open("/dev/null")?;
    /// let lie = Handle::new(HandleKind::Socket, file);
    /// assert_eq!(Received::from_handle(lie).unwrap_err(), HandleError::NotASocket);
    ///
    /// // A net.Native is what the kernel says it is.
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let native = Handle::new(HandleKind::Native, listener);
    /// assert!(matches!(Received::from_handle(native)?, Received::Server(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The [`HandleError`] of [`Server::from_fd`] for `net.Server`, of
    /// [`Socket::from_fd`] for `net.Socket`, of [`Datagram::from_fd`] for
    /// `dgram.Socket` (with its `dgramType`: [`HandleError::WrongFamily`])
    /// and `dgram.Native`; for `net.Native`, [`HandleError::NotASocket`],
    /// [`HandleError::WrongType`] (not a stream socket) or the error of
    /// whichever of the two it turned out to be.
    pub fn from_handle(handle: Handle) -> Result<Received, HandleError> {
        let (kind, fd, key) = handle.into_parts();
        Ok(match kind {
            HandleKind::Server => Received::Server(Server::from_fd(fd)?),
            HandleKind::Socket => {
                let mut socket = Socket::from_fd(fd)?;
                socket.set_key(key.as_deref());
                Received::Socket(socket)
            }
            HandleKind::Native => match verify::inspect(&fd)?.listening {
                true => Received::Server(Server::from_fd(fd)?),
                false => Received::Socket(Socket::from_fd(fd)?),
            },
            HandleKind::Dgram(family) => Received::Datagram(Datagram::from_fd(fd, Some(family))?),
            HandleKind::DgramNative => Received::Datagram(Datagram::from_fd(fd, None)?),
        })
    }
}
