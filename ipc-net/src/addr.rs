//! Socket addresses of either family.

use std::fmt;

/// The address of a handle: IP or UNIX domain.
///
/// ```
/// use ipc_net::{Addr, Server};
///
/// let tcp = Server::bind("127.0.0.1:0")?;
/// assert!(matches!(tcp.local_addr()?, Addr::Inet(a) if a.ip().is_loopback()));
///
/// let path = std::env::temp_dir().join(format!("ipc-net-addr-{}.sock", std::process::id()));
/// let unix = Server::bind_unix(&path)?;
/// let addr = unix.local_addr()?;
/// assert_eq!(addr.as_inet(), None);
/// assert_eq!(addr.to_string(), path.display().to_string());
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
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
