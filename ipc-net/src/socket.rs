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
use crate::verify::{inspect, is_stream, peer_family, Family, HandleError};
use crate::wait::blocking;

/// A connected stream socket. Node's `net.Socket`.
///
/// Reads and writes block even if the descriptor is non-blocking (it may be
/// shared with a Node process that set `O_NONBLOCK`); writes never raise
/// `SIGPIPE`. Dropping it closes the connection and, if a [`Server`] of
/// ours accepted it, takes it off that server's count.
///
/// ```
/// use ipc_net::{Server, Socket};
/// use std::io::{BufRead, BufReader, Write};
///
/// let server = Server::bind("127.0.0.1:0")?;
/// let mut client = Socket::connect(server.local_addr()?.as_inet().unwrap())?;
/// let conn = server.accept()?;
///
/// client.write_all(b"ping\n")?;
/// let mut line = String::new();
/// BufReader::new(&conn).read_line(&mut line)?; // `&Socket` reads and writes too
/// assert_eq!(line, "ping\n");
/// (&conn).write_all(b"pong\n")?;
/// # Ok::<(), std::io::Error>(())
/// ```
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
    ///
    /// # Errors
    /// Resolving `addr` failed, or gave no address (`InvalidInput`); from
    /// `connect(2)`, for the last address tried: `ConnectionRefused` when
    /// nothing listens there, `TimedOut`, `NetworkUnreachable`.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Socket> {
        TcpStream::connect(addr).map(Socket::from)
    }

    /// Adopts a descriptor after checking with the kernel that it is a
    /// connected, non-listening stream socket. On error it is closed.
    ///
    /// ```
    /// use ipc_net::{HandleError, Socket};
    ///
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let socket = Socket::from_fd(a.into())?;
    /// assert!(socket.peer_addr()?.as_inet().is_none()); // a UNIX socket
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// assert_eq!(Socket::from_fd(listener.into()).unwrap_err(), HandleError::Listening);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`HandleError::NotASocket`] for a file or a pipe,
    /// [`HandleError::WrongType`] for a socket that is not `SOCK_STREAM`,
    /// [`HandleError::UnsupportedFamily`] for one that is not IPv4, IPv6 or
    /// UNIX, [`HandleError::Listening`] for a listening socket,
    /// [`HandleError::NotConnected`] for one without a peer (only created,
    /// or bound), [`HandleError::Io`] when `getsockopt(2)` fails.
    pub fn from_fd(fd: OwnedFd) -> Result<Socket, HandleError> {
        // The common case in two system calls: a stream socket whose peer's
        // address gives the family (only a connected socket has a peer, and
        // a listening one never has). Anything else is looked at in full,
        // for the right error.
        let family = match (is_stream(&fd), peer_family(&fd)) {
            (Ok(true), Some(family)) => family,
            _ => return Err(refusal(&fd)),
        };
        Ok(match family {
            Family::Unix => Socket::from(UnixStream::from(fd)),
            Family::V4 | Family::V6 => Socket::from(TcpStream::from(fd)),
        })
    }

    /// The remote address.
    ///
    /// # Errors
    /// From `getpeername(2)`: `NotConnected` once a TCP connection has been
    /// reset.
    pub fn peer_addr(&self) -> io::Result<Addr> {
        match &self.stream {
            Stream::Tcp(s) => s.peer_addr().map(Addr::Inet),
            Stream::Unix(s) => s.peer_addr().map(Addr::Unix),
        }
    }

    /// The local address.
    ///
    /// # Errors
    /// From `getsockname(2)`; not expected for a connected socket.
    pub fn local_addr(&self) -> io::Result<Addr> {
        match &self.stream {
            Stream::Tcp(s) => s.local_addr().map(Addr::Inet),
            Stream::Unix(s) => s.local_addr().map(Addr::Unix),
        }
    }

    /// Shuts down reading, writing or both (`shutdown(2)`).
    ///
    /// # Errors
    /// `NotConnected` once a TCP connection has been reset. Shutting down
    /// twice is not an error on Linux.
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
    ///
    /// ```
    /// use ipc_core::HandleKind;
    /// use ipc_net::{Server, Socket};
    ///
    /// let server = Server::bind("127.0.0.1:0")?;
    /// let _client = Socket::connect(server.local_addr()?.as_inet().unwrap())?;
    /// let handle = server.accept()?.into_handle();
    /// assert_eq!(handle.kind(), HandleKind::Socket);
    /// assert_eq!(handle.key(), Some("4:127.0.0.1:0"));
    /// // Gone to another process: only the receivers know whether it is open.
    /// assert_eq!(server.connections(), None);
    /// assert_eq!(server.local_connections(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
    /// ```
    /// use ipc_net::{Server, Socket};
    /// use std::io::ErrorKind;
    ///
    /// let server = Server::bind("127.0.0.1:0")?;
    /// let _client = Socket::connect(server.local_addr()?.as_inet().unwrap())?;
    /// let stream = server.accept()?.into_tcp()?; // Counted<std::net::TcpStream>
    /// stream.set_nodelay(true)?;
    /// assert!(stream.is_counted());
    /// assert_eq!(server.connections(), Some(1));
    /// let plain: std::net::TcpStream = stream.into_inner(); // no longer counted
    /// assert_eq!(server.connections(), Some(0));
    ///
    /// // The wrong kind is an error, and the socket is closed.
    /// let (unix, _peer) = std::os::unix::net::UnixStream::pair()?;
    /// let err = Socket::from(unix).into_tcp().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// # drop(plain);
    /// # Ok::<(), std::io::Error>(())
    /// ```
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
    /// ```
    /// use ipc_net::Socket;
    /// use std::io::{Read, Write};
    ///
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut stream = Socket::from(a).into_unix()?; // Counted<UnixStream>
    /// assert!(!stream.is_counted()); // no server of ours accepted it
    /// stream.write_all(b"hi")?;
    /// let mut buf = [0; 2];
    /// b.read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), std::io::Error>(())
    /// ```
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

/// Why `fd` is not a connected stream socket of a family we serve.
fn refusal(fd: &OwnedFd) -> HandleError {
    match inspect(fd) {
        Err(e) => e,
        Ok(k) if !k.stream => HandleError::WrongType,
        Ok(k) if k.listening => HandleError::Listening,
        Ok(_) => HandleError::NotConnected,
    }
}
