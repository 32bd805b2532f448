//! [`Counted`]: a stream converted out of a [`Socket`](crate::Socket) that
//! still counts as one of its server's connections.

use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use crate::tally::Count;

/// A connection as a std or tokio stream (`S`), still counted where the
/// [`Socket`](crate::Socket) it came from was: in its server's
/// [`connections`](crate::Server::connections), or for a received socket in
/// the `NODE_SOCKET_*` answers a Node parent's `server.getConnections()`
/// and `server.close()` wait for. The count ends when it is dropped (or
/// with [`into_inner`](Self::into_inner)).
///
/// It derefs to the stream, and reads and writes through it (`Read` and
/// `Write`, or tokio's `AsyncRead` and `AsyncWrite` with the `tokio`
/// feature), so it goes wherever the stream would.
///
/// ```
/// use ipc_net::{Server, Socket};
/// use std::io::Write;
///
/// let server = Server::bind("127.0.0.1:0")?;
/// let _client = Socket::connect(server.local_addr()?.as_inet().unwrap())?;
/// let mut conn = server.accept()?.into_tcp()?;   // Counted<std::net::TcpStream>
/// conn.write_all(b"hello")?;
/// conn.set_nodelay(true)?;                       // the TcpStream's own methods
/// assert_eq!(server.connections(), Some(1));
/// drop(conn);
/// assert_eq!(server.connections(), Some(0));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Counted<S> {
    stream: S,
    count: Option<Count>,
}

impl<S> Counted<S> {
    pub(crate) fn new(stream: S, count: Option<Count>) -> Counted<S> {
        Counted { stream, count }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Whether it counts as a connection somewhere (a socket accepted by a
    /// [`Server`](crate::Server) of this process, or received from a peer
    /// with a server's key).
    pub fn is_counted(&self) -> bool {
        self.count.is_some()
    }

    /// The same count around `f(stream)`, for the conversions of the
    /// `tokio` feature.
    #[cfg(feature = "tokio")]
    pub(crate) fn try_map<T>(self, f: impl FnOnce(S) -> io::Result<T>) -> io::Result<Counted<T>> {
        Ok(Counted::new(f(self.stream)?, self.count))
    }

    /// The stream alone: from here on the connection no longer counts,
    /// even though it stays open.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S> Deref for Counted<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.stream
    }
}

impl<S> DerefMut for Counted<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

impl<S: Read> Read for Counted<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        self.stream.read_vectored(bufs)
    }
}

impl<S: Write> Write for Counted<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl<S: AsFd> AsFd for Counted<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl<S: AsRawFd> AsRawFd for Counted<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}
