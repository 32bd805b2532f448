//! [`Socket`]: a connected stream socket, TCP or UNIX.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use ipc_core::{Handle, HandleKind, Key};
use rustix::event::PollFlags;
use rustix::net::SendFlags;

use crate::addr::Addr;
use crate::counted::Counted;
use crate::tally::Count;
use crate::verify::{has_peer, inspect, Family, HandleError};
use crate::wait::blocking;

/// A connected stream socket. Node's `net.Socket`.
///
/// Reads and writes block even if the descriptor is non-blocking (it may be
/// shared with a Node process that set `O_NONBLOCK`); writes never raise
/// `SIGPIPE`. Dropping it closes the connection and, if a [`Server`] of
/// ours accepted it, takes it off that server's count.
///
/// [`Server`]: crate::Server
#[derive(Debug)]
pub struct Socket {
    stream: Stream,
    /// The accepting server's key (Node's `_connectionKey`), sent along.
    key: Option<Arc<str>>,
    counted: Option<Count>,
}

#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Self {
        Stream::Tcp(s)
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Self {
        Stream::Unix(s)
    }
}

impl Socket {
    pub(crate) fn accepted(stream: Stream, key: Arc<str>, counted: Option<Count>) -> Socket {
        Socket {
            stream,
            key: Some(key),
            counted,
        }
    }

    /// Connects to a TCP address.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Socket> {
        TcpStream::connect(addr).map(Socket::from)
    }

    /// Adopts a descriptor after checking with the kernel that it is a
    /// connected, non-listening stream socket. On error it is closed.
    pub fn from_fd(fd: OwnedFd) -> Result<Socket, HandleError> {
        let k = inspect(&fd)?;
        if !k.stream {
            return Err(HandleError::WrongType);
        }
        if k.listening {
            return Err(HandleError::Listening);
        }
        if !has_peer(&fd) {
            return Err(HandleError::NotConnected);
        }
        Ok(match k.family {
            Family::Unix => Socket::from(UnixStream::from(fd)),
            Family::V4 | Family::V6 => Socket::from(TcpStream::from(fd)),
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<Addr> {
        match &self.stream {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Inet),
            Stream::Unix(s) => s.peer_addr().map(Addr::Unix),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<Addr> {
        match &self.stream {
            Stream::Tcp(s) => s.local_addr().map(Addr::Inet),
            Stream::Unix(s) => s.local_addr().map(Addr::Unix),
        }
    }

    /// Shuts down reading, writing or both (`shutdown(2)`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// The key of the server that accepted it (ours, or the sender's when it
    /// came in a handle message).
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    pub(crate) fn set_key(&mut self, key: Option<&str>) {
        self.key = key.map(Arc::from);
    }

    pub(crate) fn set_counted(&mut self, counted: Count) {
        self.counted = Some(counted);
    }

    /// Gives the connection away as a `net.Socket` handle, with its server's
    /// key as Node sends it. The server's count becomes unknown
    /// ([`Server::connections`](crate::Server::connections) is `None`).
    pub fn into_handle(mut self) -> Handle {
        if let Some(c) = self.counted.take() {
            c.send_away();
        }
        // Keys longer than ipc_core::MAX_KEY_LEN are not sent.
        let key = self.key.take().and_then(|k| Key::try_from(&*k).ok());
        let handle = Handle::new(HandleKind::Socket, OwnedFd::from(self));
        match key {
            Some(k) => handle.with_key(k),
            None => handle,
        }
    }

    /// The std stream, if this is TCP, still counted as a connection
    /// until it is dropped (see [`Counted`]).
    ///
    /// The descriptor keeps its `O_NONBLOCK` flag, which it shares with
    /// the sender's copy (a Node sender sets it): std's reads and writes
    /// then return `WouldBlock` instead of waiting. This `Socket`'s own
    /// `Read` and `Write` wait in either case.
    ///
    /// # Errors
    /// `InvalidInput` for a UNIX socket (it is closed then).
    pub fn into_tcp(self) -> io::Result<Counted<TcpStream>> {
        match self.into_parts() {
            (Stream::Tcp(s), counted) => Ok(Counted::new(s, counted)),
            (Stream::Unix(_), _) => Err(wrong_kind("a UNIX socket, not TCP")),
        }
    }

    /// The std stream, if this is a UNIX socket, still counted as a
    /// connection until it is dropped; see [`into_tcp`](Self::into_tcp).
    ///
    /// # Errors
    /// `InvalidInput` for a TCP socket (it is closed then).
    pub fn into_unix(self) -> io::Result<Counted<UnixStream>> {
        match self.into_parts() {
            (Stream::Unix(s), counted) => Ok(Counted::new(s, counted)),
            (Stream::Tcp(_), _) => Err(wrong_kind("a TCP socket, not UNIX")),
        }
    }

    /// The stream and its place in the count.
    pub(crate) fn into_parts(self) -> (Stream, Option<Count>) {
        (self.stream, self.counted)
    }
}

/// The error of a conversion to the other kind of socket.
pub(crate) fn wrong_kind(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl From<TcpStream> for Socket {
    fn from(s: TcpStream) -> Socket {
        Socket {
            stream: s.into(),
            key: None,
            counted: None,
        }
    }
}

impl From<UnixStream> for Socket {
    fn from(s: UnixStream) -> Socket {
        Socket {
            stream: s.into(),
            key: None,
            counted: None,
        }
    }
}

impl Read for &Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        blocking(*self, PollFlags::IN, || rustix::io::read(*self, &mut *buf))
    }
}

impl Write for &Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        blocking(*self, PollFlags::OUT, || {
            rustix::net::send(*self, buf, SendFlags::NOSIGNAL)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.stream {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl From<Socket> for OwnedFd {
    fn from(s: Socket) -> OwnedFd {
        match s.stream {
            Stream::Tcp(t) => t.into(),
            Stream::Unix(u) => u.into(),
        }
    }
}
