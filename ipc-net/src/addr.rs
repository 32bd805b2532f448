//! Socket addresses of either family.

use std::fmt;

/// The address of a handle: IP or UNIX domain.
#[derive(Debug, Clone)]
pub enum Addr {
    /// An IPv4 or IPv6 address and port.
    Inet(std::net::SocketAddr),
    /// A UNIX-domain address (path, abstract or unnamed).
    Unix(std::os::unix::net::SocketAddr),
}

impl Addr {
    /// The IP address and port, if this is one.
    pub fn as_inet(&self) -> Option<std::net::SocketAddr> {
        match self {
            Addr::Inet(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(a) => a.fmt(f),
            Addr::Unix(a) => match a.as_pathname() {
                Some(p) => p.display().fmt(f),
                None => f.write_str("(unnamed)"),
            },
        }
    }
}
