//! [`Datagram`]: a UDP socket.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use ipc_core::{Handle, HandleKind, UdpFamily};
use rustix::event::PollFlags;
use rustix::net::{RecvFlags, SendFlags};

use crate::verify::{inspect, Family, HandleError};
use crate::wait::blocking;

/// A UDP socket, IPv4 or IPv6. Node's `dgram.Socket`.
///
/// Sending one by reference keeps it working here too; both processes then
/// receive from the same socket.
///
/// ```
/// use ipc_core::UdpFamily;
/// use ipc_net::Datagram;
///
/// let a = Datagram::bind("127.0.0.1:0")?;
/// let b = Datagram::bind("127.0.0.1:0")?;
/// assert_eq!(a.family(), UdpFamily::V4);
///
/// a.send_to(b"ping", b.local_addr()?)?;
/// let mut buf = [0; 16];
/// let (n, from) = b.recv_from(&mut buf)?;
/// assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Datagram {
    socket: UdpSocket,
    family: UdpFamily,
}

impl Datagram {
    /// Binds a UDP socket.
    ///
    /// # Errors
    /// Resolving `addr` failed, or gave no address (`InvalidInput`); from
    /// `bind(2)`, for the last address tried: `AddrInUse`,
    /// `AddrNotAvailable`, `PermissionDenied` (a port below 1024).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Datagram> {
        UdpSocket::bind(addr).and_then(Datagram::try_from)
    }

    /// Adopts a descriptor after checking with the kernel that it is a UDP
    /// socket of `family` (`None`: either, as for `dgram.Native`). On error
    /// it is closed.
    ///
    /// ```
    /// use ipc_core::UdpFamily;
    /// use ipc_net::{Datagram, HandleError};
    ///
    /// let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let d = Datagram::from_fd(udp.try_clone()?.into(), Some(UdpFamily::V4))?;
    /// assert_eq!(d.local_addr()?, udp.local_addr()?);
    ///
    /// // The family must be the one claimed; UNIX datagram sockets are not served.
    /// let err = Datagram::from_fd(udp.into(), Some(UdpFamily::V6)).unwrap_err();
    /// assert_eq!(err, HandleError::WrongFamily);
    /// let (unix, _) = std::os::unix::net::UnixDatagram::pair()?;
    /// let err = Datagram::from_fd(unix.into(), None).unwrap_err();
    /// assert_eq!(err, HandleError::UnsupportedFamily);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`HandleError::NotASocket`] for a file or a pipe,
    /// [`HandleError::WrongType`] for a stream socket,
    /// [`HandleError::UnsupportedFamily`] for a datagram socket that is not
    /// IPv4 or IPv6 (UNIX), [`HandleError::WrongFamily`] when `family` is
    /// given and differs, [`HandleError::Io`] when `getsockopt(2)` fails.
    pub fn from_fd(fd: OwnedFd, family: Option<UdpFamily>) -> Result<Datagram, HandleError> {
        let k = inspect(&fd)?;
        if k.stream {
            return Err(HandleError::WrongType);
        }
        let actual = match k.family {
            Family::V4 => UdpFamily::V4,
            Family::V6 => UdpFamily::V6,
            Family::Unix => return Err(HandleError::UnsupportedFamily),
        };
        if family.is_some_and(|f| f != actual) {
            return Err(HandleError::WrongFamily);
        }
        Ok(Datagram {
            socket: UdpSocket::from(fd),
            family: actual,
        })
    }

    /// `udp4` or `udp6`.
    pub fn family(&self) -> UdpFamily {
        self.family
    }

    /// Sends one datagram to `addr`, waiting for room even if the
    /// descriptor is non-blocking.
    ///
    /// # Errors
    /// From `sendto(2)` (`EINTR` retried, `EAGAIN` waited out): `EMSGSIZE`
    /// for a datagram longer than UDP carries (65,507 bytes over IPv4),
    /// `EAFNOSUPPORT` for an IPv6 `addr` on an IPv4 socket, `EACCES` for a
    /// broadcast address without `SO_BROADCAST`, `ENETUNREACH`.
    pub fn send_to(&self, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
        blocking(self, PollFlags::OUT, || {
            rustix::net::sendto(self, buf, SendFlags::NOSIGNAL, &addr)
        })
    }

    /// Waits for one datagram, even if the descriptor is non-blocking;
    /// returns its length and sender. A datagram longer than `buf` is cut
    /// to fit, as `recvfrom(2)` does.
    ///
    /// # Errors
    /// From `recvfrom(2)` (`EINTR` retried, `EAGAIN` waited out), or
    /// `InvalidData` for a sender that is not an IP address (not expected
    /// from a UDP socket).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, _, from) = blocking(self, PollFlags::IN, || {
            rustix::net::recvfrom(self, &mut *buf, RecvFlags::empty())
        })?;
        let from = from
            .and_then(|a| SocketAddr::try_from(a).ok())
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "datagram without an IP sender")
            })?;
        Ok((n, from))
    }

    /// The local address.
    ///
    /// # Errors
    /// From `getsockname(2)`; not expected for a bound socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A `dgram.Socket` handle for sending while this socket keeps working
    /// here.
    ///
    /// ```
    /// use ipc_core::{HandleKind, UdpFamily};
    /// use ipc_net::{Datagram, Received};
    ///
    /// let udp = Datagram::bind("127.0.0.1:0")?;
    /// let handle = udp.to_handle()?;
    /// assert_eq!(handle.kind(), HandleKind::Dgram(UdpFamily::V4));
    /// let Received::Datagram(copy) = Received::from_handle(handle)? else {
    ///     unreachable!()
    /// };
    /// assert_eq!(copy.local_addr()?, udp.local_addr()?); // the same socket
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` from `fcntl(F_DUPFD_CLOEXEC)` when out of
    /// descriptors.
    pub fn to_handle(&self) -> io::Result<Handle> {
        Ok(Handle::new(
            HandleKind::Dgram(self.family),
            rustix::io::fcntl_dupfd_cloexec(self, 0)?,
        ))
    }

    /// Gives the socket away as a `dgram.Socket` handle.
    pub fn into_handle(self) -> Handle {
        Handle::new(HandleKind::Dgram(self.family), OwnedFd::from(self.socket))
    }

    /// The std socket.
    pub fn into_std(self) -> UdpSocket {
        self.socket
    }
}

impl TryFrom<UdpSocket> for Datagram {
    type Error = io::Error;

    fn try_from(socket: UdpSocket) -> io::Result<Datagram> {
        let family = if socket.local_addr()?.is_ipv4() {
            UdpFamily::V4
        } else {
            UdpFamily::V6
        };
        Ok(Datagram { socket, family })
    }
}

impl AsFd for Datagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl From<Datagram> for OwnedFd {
    fn from(d: Datagram) -> OwnedFd {
        d.socket.into()
    }
}
