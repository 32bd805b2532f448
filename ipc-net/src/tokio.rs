//! The `tokio` feature: received handles as tokio's own types, in one call,
//! and back.
//!
//! ```no_run
//! # async fn serve(received: ipc_net::Received) -> std::io::Result<()> {
//! use ipc_net::Received;
//! use tokio::io::AsyncWriteExt;
//!
//! match received {
//!     Received::Socket(socket) => {
//!         // Counted<tokio::net::TcpStream>: counted until dropped.
//!         let mut stream = socket.into_tokio_tcp()?;
//!         stream.write_all(b"hello\n").await?;
//!     }
//!     Received::Server(server) => {
//!         let listener = server.into_tokio_tcp()?;    // tokio::net::TcpListener
//!         let (_conn, _addr) = listener.accept().await?;
//!     }
//!     Received::Datagram(d) => {
//!         let udp = d.into_tokio()?;                   // tokio::net::UdpSocket
//!         let mut buf = [0; 512];
//!         let (_n, _from) = udp.recv_from(&mut buf).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Each conversion sets `O_NONBLOCK`, which tokio needs. The flag is shared
//! with every other copy of the descriptor (the sender's, when it came from
//! another process): setting it is harmless to them (Node sets it itself,
//! and this crate's blocking calls wait with `poll` either way); nothing
//! here ever clears it. They must run inside a tokio runtime, like tokio's
//! own `from_std`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::counted::Counted;
use crate::{Datagram, Server, Socket};

impl Socket {
    /// The connection as a [`tokio::net::TcpStream`], if it is TCP, still
    /// counted as a connection until it is dropped (see [`Counted`]): a
    /// received socket keeps answering a Node parent's
    /// `server.getConnections()` right.
    ///
    /// # Errors
    /// `InvalidInput` for a UNIX socket (it is closed then); registering
    /// with the reactor failed.
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::net::TcpStream::from_std`.
    pub fn into_tokio_tcp(self) -> io::Result<Counted<tokio::net::TcpStream>> {
        self.into_tcp()?.try_map(|s| {
            s.set_nonblocking(true)?;
            tokio::net::TcpStream::from_std(s)
        })
    }

    /// The connection as a [`tokio::net::UnixStream`], if it is a UNIX
    /// socket, still counted until it is dropped; see
    /// [`into_tokio_tcp`](Self::into_tokio_tcp).
    ///
    /// # Errors
    /// `InvalidInput` for a TCP socket (it is closed then); registering
    /// with the reactor failed.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn into_tokio_unix(self) -> io::Result<Counted<tokio::net::UnixStream>> {
        self.into_unix()?.try_map(|s| {
            s.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(s)
        })
    }
}

impl Server {
    /// The listener as a [`tokio::net::TcpListener`], if it is TCP. It no
    /// longer counts the connections it accepts.
    ///
    /// # Errors
    /// `InvalidInput` for a UNIX listener (it is closed then); registering
    /// with the reactor failed.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn into_tokio_tcp(self) -> io::Result<tokio::net::TcpListener> {
        let l = self.into_tcp()?;
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    }

    /// The listener as a [`tokio::net::UnixListener`], if it is a UNIX
    /// socket; see [`into_tokio_tcp`](Self::into_tokio_tcp).
    ///
    /// # Errors
    /// `InvalidInput` for a TCP listener (it is closed then); registering
    /// with the reactor failed.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn into_tokio_unix(self) -> io::Result<tokio::net::UnixListener> {
        let l = self.into_unix()?;
        l.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(l)
    }
}

impl Datagram {
    /// The socket as a [`tokio::net::UdpSocket`].
    ///
    /// # Errors
    /// Registering with the reactor failed.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn into_tokio(self) -> io::Result<tokio::net::UdpSocket> {
        let socket = self.into_std();
        socket.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(socket)
    }
}

/// A connection accepted with tokio, to hand over
/// (`Socket::try_from(conn)?.into_handle()`).
impl TryFrom<tokio::net::TcpStream> for Socket {
    type Error = io::Error;

    fn try_from(s: tokio::net::TcpStream) -> io::Result<Socket> {
        s.into_std().map(Socket::from)
    }
}

/// A UNIX connection accepted with tokio, to hand over.
impl TryFrom<tokio::net::UnixStream> for Socket {
    type Error = io::Error;

    fn try_from(s: tokio::net::UnixStream) -> io::Result<Socket> {
        s.into_std().map(Socket::from)
    }
}

/// A tokio listener, to hand over (`Server::try_from(listener)?.to_handle()?`).
impl TryFrom<tokio::net::TcpListener> for Server {
    type Error = io::Error;

    fn try_from(l: tokio::net::TcpListener) -> io::Result<Server> {
        l.into_std().map(Server::from)
    }
}

/// A tokio UNIX listener, to hand over.
impl TryFrom<tokio::net::UnixListener> for Server {
    type Error = io::Error;

    fn try_from(l: tokio::net::UnixListener) -> io::Result<Server> {
        l.into_std().map(Server::from)
    }
}

/// A tokio UDP socket, to hand over.
impl TryFrom<tokio::net::UdpSocket> for Datagram {
    type Error = io::Error;

    fn try_from(s: tokio::net::UdpSocket) -> io::Result<Datagram> {
        Datagram::try_from(s.into_std()?)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().get_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().get_mut()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().get_mut()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.get_ref().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().get_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().get_mut()).poll_shutdown(cx)
    }
}
