//! [`Server`]: a listening stream socket, TCP or UNIX.

use std::io;
use std::net::{TcpListener, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use ipc_core::{Handle, HandleKind};
use rustix::event::{PollFd, PollFlags};
use rustix::net::SocketFlags;

use crate::addr::Addr;
use crate::socket::{wrong_kind, Socket};
use crate::tally::{Count, Tally};
use crate::verify::{inspect, Family, HandleError};
use crate::wait::blocking;

/// A listening socket: TCP over IPv4/IPv6, or UNIX domain (path or
/// abstract). Node's `net.Server`.
///
/// `accept` blocks even when the descriptor is non-blocking (a Node process
/// that holds the same server sets `O_NONBLOCK` on it): several processes
/// accepting from one server is the point.
///
/// ```
/// use ipc_net::Server;
/// use std::io::{Read, Write};
///
/// let server = Server::bind("127.0.0.1:0")?;
/// assert_eq!(server.key(), "4:127.0.0.1:0"); // Node's key: the address as given
/// let addr = server.local_addr()?.as_inet().unwrap();
///
/// let mut client = std::net::TcpStream::connect(addr)?;
/// let mut conn = server.accept()?;
/// assert_eq!(server.connections(), Some(1));
/// conn.write_all(b"hi")?;
/// let mut buf = [0; 2];
/// client.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hi");
///
/// drop(conn);
/// assert_eq!(server.connections(), Some(0));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    key: Arc<str>,
    tally: Arc<Tally>,
    /// 0 = no limit.
    max_connections: Arc<AtomicUsize>,
    /// `O_NONBLOCK` has been set (by [`Server::try_accept`]).
    nonblocking: AtomicBool,
}

#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Node's `_connectionKey`: `addressType:address:port`, from what was given
/// to `listen()`.
fn key_of(kind: &str, address: &str, port: &str) -> Arc<str> {
    format!("{kind}:{address}:{port}").into()
}

fn inet_key(addr: std::net::SocketAddr) -> Arc<str> {
    let kind = if addr.is_ipv4() { "4" } else { "6" };
    key_of(kind, &addr.ip().to_string(), &addr.port().to_string())
}

impl Server {
    /// Binds and listens on a TCP address (`"127.0.0.1:0"` for a port the
    /// kernel picks). The key uses the address as given, like Node's.
    /// Only the first address `addr` resolves to is tried.
    ///
    /// # Errors
    /// Resolving `addr` failed, or gave no address (`InvalidInput`); from
    /// `bind(2)`: `AddrInUse` for a port taken, `PermissionDenied` for a
    /// port below 1024 without `CAP_NET_BIND_SERVICE`, `AddrNotAvailable`
    /// for an address that is not this host's.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Server> {
        let requested = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        let listener = TcpListener::bind(requested)?;
        let mut server = Server::from(listener);
        server.key = inet_key(requested);
        Ok(server)
    }

    /// Binds and listens on a UNIX socket path.
    ///
    /// # Errors
    /// From `bind(2)`: `AddrInUse` when `path` exists, even as the socket
    /// file of an earlier run (remove it first), `NotFound` or
    /// `PermissionDenied` for its directory; `InvalidInput` for a path
    /// longer than `sun_path` holds (107 bytes).
    pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<Server> {
        let path = path.as_ref();
        let listener = UnixListener::bind(path)?;
        let mut server = Server::from(listener);
        server.key = key_of("-1", &path.display().to_string(), "-1");
        Ok(server)
    }

    fn new(listener: Listener, key: Arc<str>) -> Server {
        Server {
            listener,
            key,
            tally: Arc::default(),
            max_connections: Arc::default(),
            nonblocking: AtomicBool::new(false),
        }
    }

    /// Adopts a descriptor after checking with the kernel that it is a
    /// listening stream socket. On error the descriptor is closed.
    ///
    /// ```
    /// use ipc_net::{HandleError, Server};
    /// use rustix::net::{socket, AddressFamily, SocketType};
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let server = Server::from_fd(listener.into())?;
    /// assert_eq!(server.local_addr()?.as_inet(), Some(addr));
    ///
    /// // A UDP socket, or a TCP socket that does not listen, is refused.
    /// let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// assert_eq!(Server::from_fd(udp.into()).unwrap_err(), HandleError::WrongType);
    /// let tcp = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    /// assert_eq!(Server::from_fd(tcp).unwrap_err(), HandleError::NotListening);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`HandleError::NotASocket`] for a file or a pipe,
    /// [`HandleError::WrongType`] for a socket that is not `SOCK_STREAM`
    /// (UDP), [`HandleError::UnsupportedFamily`] for a stream socket that is
    /// not IPv4, IPv6 or UNIX, [`HandleError::NotListening`] for one that
    /// is bound or connected but does not listen, [`HandleError::Io`] when
    /// `getsockopt(2)` fails.
    pub fn from_fd(fd: OwnedFd) -> Result<Server, HandleError> {
        let k = inspect(&fd)?;
        if !k.stream {
            return Err(HandleError::WrongType);
        }
        if !k.listening {
            return Err(HandleError::NotListening);
        }
        Ok(match k.family {
            Family::Unix => Server::from(UnixListener::from(fd)),
            Family::V4 | Family::V6 => Server::from(TcpListener::from(fd)),
        })
    }

    /// Waits for a connection and accepts it (close-on-exec). Past
    /// [`set_max_connections`](Self::set_max_connections) new connections
    /// are closed at once, as Node does.
    ///
    /// ```
    /// use ipc_net::{Server, Socket};
    ///
    /// let server = Server::bind("127.0.0.1:0")?;
    /// let client = Socket::connect(server.local_addr()?.as_inet().unwrap())?;
    /// let conn = server.accept()?;
    /// assert_eq!(conn.peer_addr()?.as_inet(), client.local_addr()?.as_inet());
    /// assert_eq!(conn.key(), Some("4:127.0.0.1:0")); // sent along with it
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// From `accept4(2)`: `EMFILE`/`ENFILE` when out of descriptors (the
    /// connection stays queued), `ECONNABORTED` for a client that left.
    pub fn accept(&self) -> io::Result<Socket> {
        loop {
            let fd = blocking(self, PollFlags::IN, || {
                rustix::net::accept_with(self, SocketFlags::CLOEXEC)
            })?;
            if let Some(socket) = self.adopt(fd) {
                return Ok(socket);
            }
        }
    }

    /// Accepts a waiting connection without blocking, for event loops:
    /// `ErrorKind::WouldBlock` when there is none. The first call puts the
    /// listener in non-blocking mode (`O_NONBLOCK`, shared with every
    /// process holding it: harmless, every holder that blocks here or in
    /// Node waits with `poll`).
    ///
    /// ```
    /// use ipc_net::{Server, Socket};
    /// use rustix::event::{poll, PollFd, PollFlags};
    /// use std::io::ErrorKind;
    ///
    /// let server = Server::bind("127.0.0.1:0")?;
    /// let addr = server.local_addr()?.as_inet().unwrap();
    /// assert_eq!(server.try_accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    ///
    /// let _client = Socket::connect(addr)?;
    /// poll(&mut [PollFd::new(&server, PollFlags::IN)], None)?; // any poller will do
    /// let _conn = server.try_accept()?;
    ///
    /// // Past the limit, a connection is closed as it is accepted.
    /// server.set_max_connections(Some(1));
    /// let _refused = Socket::connect(addr)?;
    /// poll(&mut [PollFd::new(&server, PollFlags::IN)], None)?;
    /// assert_eq!(server.try_accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    /// assert_eq!(server.connections(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `WouldBlock` when no connection is waiting (or the only ones were
    /// refused past the limit); setting `O_NONBLOCK` failed; otherwise as
    /// [`accept`](Self::accept).
    pub fn try_accept(&self) -> io::Result<Socket> {
        if !self.nonblocking.swap(true, Ordering::AcqRel) {
            rustix::io::ioctl_fionbio(self, true)?;
        }
        loop {
            let fd = match rustix::net::accept_with(self, SocketFlags::CLOEXEC) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some(socket) = self.adopt(fd) {
                return Ok(socket);
            }
        }
    }

    /// Waits for a connection, or until `stop` becomes readable: then
    /// `Ok(None)`, and no connection was taken. For stopping gracefully: a
    /// thread blocked in [`accept`](Self::accept) cannot otherwise be woken
    /// but by closing the listener, and that cannot be done to a listener
    /// other processes share (`shutdown(2)` would stop it for all of them).
    /// `stop` is typically the read end of a pipe whose write end is closed
    /// to stop. When both are ready, `stop` wins. Like
    /// [`try_accept`](Self::try_accept), it puts the listener in
    /// non-blocking mode, so that a connection another process took first
    /// means waiting again rather than blocking.
    ///
    /// # Errors
    /// As [`accept`](Self::accept), and from `poll(2)` (`EINTR` is retried).
    pub fn accept_until(&self, stop: impl AsFd) -> io::Result<Option<Socket>> {
        loop {
            let mut fds = [
                PollFd::new(self, PollFlags::IN),
                PollFd::new(&stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            if !fds[1].revents().is_empty() {
                return Ok(None);
            }
            if fds[0].revents().is_empty() {
                continue;
            }
            match self.try_accept() {
                Ok(socket) => return Ok(Some(socket)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Counts an accepted connection, or closes it past the limit.
    fn adopt(&self, fd: OwnedFd) -> Option<Socket> {
        let max = self.max_connections.load(Ordering::Acquire);
        if max != 0 && self.tally.open() >= max {
            return None;
        }
        let counted = Some(Count::new(&self.tally));
        let key = Arc::clone(&self.key);
        Some(match self.listener {
            Listener::Tcp(_) => {
                Socket::accepted(std::net::TcpStream::from(fd).into(), key, counted)
            }
            Listener::Unix(_) => Socket::accepted(
                std::os::unix::net::UnixStream::from(fd).into(),
                key,
                counted,
            ),
        })
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// From `getsockname(2)`; not expected for a listening socket.
    pub fn local_addr(&self) -> io::Result<Addr> {
        match &self.listener {
            Listener::Tcp(l) => l.local_addr().map(Addr::Inet),
            Listener::Unix(l) => l.local_addr().map(Addr::Unix),
        }
    }

    /// Node's connection key for this server (`4:127.0.0.1:0`,
    /// `-1:/run/app.sock:-1`): sockets accepted here carry it when sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Connections accepted here and still open, or `None` once any has been
    /// sent to another process (the count is then unknown here; ask the
    /// receivers with `NODE_SOCKET_GET_COUNT`, see [`crate::accounting`]).
    pub fn connections(&self) -> Option<usize> {
        (!self.tally.sent_away()).then(|| self.tally.open())
    }

    /// Connections accepted here and still open *here* (Node's
    /// `server._connections`): the ones sent away are not counted, even once
    /// the total is unknown. Add the receivers' counts for the total, see
    /// `ipc_fork::connections_total`.
    pub fn local_connections(&self) -> usize {
        self.tally.open()
    }

    /// Refuses (closes) connections beyond `max` open ones, like Node's
    /// `server.maxConnections`. `None` lifts the limit. Once a connection
    /// has been sent away the count no longer sees it, so the limit counts
    /// only the connections still here: unreliable from then on.
    pub fn set_max_connections(&self, max: Option<usize>) {
        self.max_connections
            .store(max.unwrap_or(0), Ordering::Release);
    }

    /// Another handle to the same listening socket (`dup`, close-on-exec),
    /// sharing the connection count.
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` from `fcntl(F_DUPFD_CLOEXEC)` when the process or
    /// the system is out of descriptors.
    pub fn try_clone(&self) -> io::Result<Server> {
        let fd = rustix::io::fcntl_dupfd_cloexec(self, 0)?;
        let listener = match self.listener {
            Listener::Tcp(_) => Listener::Tcp(TcpListener::from(fd)),
            Listener::Unix(_) => Listener::Unix(UnixListener::from(fd)),
        };
        Ok(Server {
            listener,
            key: Arc::clone(&self.key),
            tally: Arc::clone(&self.tally),
            max_connections: Arc::clone(&self.max_connections),
            nonblocking: AtomicBool::new(false),
        })
    }

    /// A `net.Server` handle for sending while this server keeps serving
    /// here (Node's default for servers): both processes then accept from
    /// the same queue.
    ///
    /// ```
    /// use ipc_net::{Received, Server, Socket};
    ///
    /// let server = Server::bind("127.0.0.1:0")?;
    /// let addr = server.local_addr()?.as_inet().unwrap();
    /// let handle = server.to_handle()?; // what `send_handle` / `queue_handle` take
    ///
    /// // As the receiver rebuilds it: the same listening socket.
    /// let Received::Server(copy) = Received::from_handle(handle)? else {
    ///     unreachable!()
    /// };
    /// assert_eq!(copy.local_addr()?.as_inet(), Some(addr));
    /// let (_c1, _c2) = (Socket::connect(addr)?, Socket::connect(addr)?);
    /// let (_here, _there) = (server.accept()?, copy.accept()?); // one queue, two holders
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`try_clone`](Self::try_clone): out of descriptors.
    pub fn to_handle(&self) -> io::Result<Handle> {
        Ok(Handle::new(
            HandleKind::Server,
            rustix::io::fcntl_dupfd_cloexec(self, 0)?,
        ))
    }

    /// Gives the server away as a `net.Server` handle.
    ///
    /// ```
    /// use ipc_core::HandleKind;
    /// use ipc_net::Server;
    ///
    /// let handle = Server::bind("127.0.0.1:0")?.into_handle();
    /// assert_eq!(handle.kind(), HandleKind::Server);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_handle(self) -> Handle {
        Handle::new(HandleKind::Server, OwnedFd::from(self))
    }

    /// The std listener, if this is TCP. It no longer counts the
    /// connections it accepts, nor refuses them past
    /// [`set_max_connections`](Self::set_max_connections).
    ///
    /// The descriptor keeps its `O_NONBLOCK` flag, which it shares with
    /// every process holding the server (a Node process sets it): std's
    /// `accept` then returns `WouldBlock` instead of waiting.
    ///
    /// # Errors
    /// `InvalidInput` for a UNIX listener (it is closed then).
    pub fn into_tcp(self) -> io::Result<TcpListener> {
        match self.listener {
            Listener::Tcp(l) => Ok(l),
            Listener::Unix(_) => Err(wrong_kind("a UNIX listener, not TCP")),
        }
    }

    /// The std listener, if this is a UNIX socket; see
    /// [`into_tcp`](Self::into_tcp).
    ///
    /// # Errors
    /// `InvalidInput` for a TCP listener (it is closed then).
    pub fn into_unix(self) -> io::Result<UnixListener> {
        match self.listener {
            Listener::Unix(l) => Ok(l),
            Listener::Tcp(_) => Err(wrong_kind("a TCP listener, not UNIX")),
        }
    }
}

impl From<TcpListener> for Server {
    fn from(l: TcpListener) -> Server {
        let key = l.local_addr().map(inet_key).unwrap_or_else(|_| "".into());
        Server::new(Listener::Tcp(l), key)
    }
}

impl From<UnixListener> for Server {
    fn from(l: UnixListener) -> Server {
        let path = l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()));
        let key = key_of("-1", path.as_deref().unwrap_or("null"), "-1");
        Server::new(Listener::Unix(l), key)
    }
}

impl AsFd for Server {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.listener {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l) => l.as_fd(),
        }
    }
}

impl From<Server> for OwnedFd {
    fn from(s: Server) -> OwnedFd {
        match s.listener {
            Listener::Tcp(l) => l.into(),
            Listener::Unix(l) => l.into(),
        }
    }
}
