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
#[derive(Debug)]
pub struct Datagram {
    socket: UdpSocket,
    family: UdpFamily,
}

impl Datagram {
    /// Binds a UDP socket.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Datagram> {
        UdpSocket::bind(addr).and_then(Datagram::try_from)
    }

    /// Adopts a descriptor after checking with the kernel that it is a UDP
    /// socket of `family`. On error it is closed.
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

    /// Sends one datagram to `addr`.
    pub fn send_to(&self, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
        blocking(self, PollFlags::OUT, || {
            rustix::net::sendto(self, buf, SendFlags::NOSIGNAL, &addr)
        })
    }

    /// Waits for one datagram; returns its length and sender.
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
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A `dgram.Socket` handle for sending while this socket keeps working
    /// here.
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
