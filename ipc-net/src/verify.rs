//! What the kernel says a descriptor is, and the errors for a lie.

use std::fmt;
use std::os::fd::AsFd;

use ipc_core::OsError;
use rustix::net::{sockopt, AddressFamily, SocketType};

/// Why a received descriptor was refused. The descriptor has been closed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// Not a socket at all (a file, a pipe, ...).
    NotASocket,
    /// A socket of another type than the tag says (e.g. UDP tagged
    /// `net.Server`).
    WrongType,
    /// An address family this library does not serve (only IPv4, IPv6 and
    /// UNIX).
    UnsupportedFamily,
    /// Tagged `net.Server` but not listening (bound or connected only).
    NotListening,
    /// Tagged `net.Socket` but it is a listening socket.
    Listening,
    /// Tagged `net.Socket` but it has no peer.
    NotConnected,
    /// A `dgram.Socket` whose family differs from its `dgramType`.
    WrongFamily,
    /// The kernel refused to say.
    Io(OsError),
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandleError::NotASocket => "received descriptor is not a socket",
            HandleError::WrongType => "received socket is of another type than its tag",
            HandleError::UnsupportedFamily => "received socket is not IPv4, IPv6 or UNIX",
            HandleError::NotListening => "received net.Server is not listening",
            HandleError::Listening => "received net.Socket is a listening socket",
            HandleError::NotConnected => "received net.Socket is not connected",
            HandleError::WrongFamily => "received dgram.Socket family differs from its dgramType",
            HandleError::Io(_) => "could not inspect received descriptor",
        })?;
        if let HandleError::Io(e) = self {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HandleError {}

impl From<HandleError> for std::io::Error {
    fn from(e: HandleError) -> Self {
        match e {
            HandleError::Io(errno) => errno.into(),
            e => std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }
    }
}

/// Address families a handle can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
    /// UNIX domain (`AF_UNIX`), path or abstract.
    Unix,
}

/// A socket as the kernel describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kernel {
    pub stream: bool,
    pub family: Family,
    pub listening: bool,
}

/// Asks the kernel what `fd` is: `SO_TYPE`, `SO_DOMAIN`, `SO_ACCEPTCONN`.
pub(crate) fn inspect(fd: impl AsFd) -> Result<Kernel, HandleError> {
    let fd = fd.as_fd();
    let ty = match sockopt::socket_type(fd) {
        Ok(ty) => ty,
        Err(rustix::io::Errno::NOTSOCK) => return Err(HandleError::NotASocket),
        Err(e) => return Err(HandleError::Io(e.into())),
    };
    let stream = match ty {
        SocketType::STREAM => true,
        SocketType::DGRAM => false,
        _ => return Err(HandleError::WrongType),
    };
    let family = sockopt::socket_domain(fd).map_err(|e| HandleError::Io(e.into()))?;
    let family = family_of(family).ok_or(HandleError::UnsupportedFamily)?;
    let listening =
        stream && sockopt::socket_acceptconn(fd).map_err(|e| HandleError::Io(e.into()))?;
    Ok(Kernel {
        stream,
        family,
        listening,
    })
}

/// Whether `fd` is a stream socket (`SO_TYPE`).
pub(crate) fn is_stream(fd: impl AsFd) -> Result<bool, HandleError> {
    match sockopt::socket_type(fd) {
        Ok(ty) => Ok(ty == SocketType::STREAM),
        Err(rustix::io::Errno::NOTSOCK) => Err(HandleError::NotASocket),
        Err(e) => Err(HandleError::Io(e.into())),
    }
}

/// The family of the socket's peer, if it has one (`getpeername(2)`) of a
/// family we serve: a socket's peer is of its own family.
pub(crate) fn peer_family(fd: impl AsFd) -> Option<Family> {
    let fd = fd.as_fd();
    let family = match rustix::net::getpeername(fd).ok()? {
        Some(peer) => peer.address_family(),
        // A peer address of no bytes at all: ask the socket itself.
        None => sockopt::socket_domain(fd).ok()?,
    };
    family_of(family)
}

/// Our name for a socket family, if we serve it.
fn family_of(family: AddressFamily) -> Option<Family> {
    match family {
        AddressFamily::INET => Some(Family::V4),
        AddressFamily::INET6 => Some(Family::V6),
        AddressFamily::UNIX => Some(Family::Unix),
        _ => None,
    }
}
