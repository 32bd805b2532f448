//! The primary's sockets, made as Node's `net._createServerHandle` and
//! `dgram._createSocketHandle` make them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use ipc_core::HandleKind;
use rustix::io::Errno;
use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};

use super::wire::{ClusterIn, Scalar, Sockname};

/// What a `queryServer` asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Want {
    /// TCP on `ip` (`None`: any, dual-stack), IPv6-only when `v6only`.
    Tcp {
        ip: Option<IpAddr>,
        port: u16,
        v6only: bool,
        backlog: u32,
    },
    /// UDP on `ip`.
    Udp { ip: IpAddr, port: u16, flags: u32 },
    /// A UNIX stream socket at an absolute path.
    Unix { path: String, backlog: u32 },
}

/// libuv's `UV_UDP_REUSEADDR`.
const UDP_REUSEADDR: u32 = 4;

impl Want {
    /// Reads the query, `Err(EINVAL)` for what Node would not send (or
    /// what this primary does not serve: `listen({fd})`).
    pub(crate) fn of(q: &ClusterIn) -> Result<Want, Errno> {
        let backlog = q.backlog.as_backlog().unwrap_or(super::BACKLOG);
        let flags = q.flags.unwrap_or(0);
        let ip = |s: &Scalar| match s {
            Scalar::Null | Scalar::Undefined => Ok(None),
            Scalar::Str(a) => a.parse::<IpAddr>().map(Some).map_err(|_| Errno::INVAL),
            _ => Err(Errno::INVAL),
        };
        match (&q.address_type, q.port.as_port()) {
            (Scalar::Str(t), Some(port)) if t == "udp4" || t == "udp6" => {
                let any = if t == "udp4" {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                };
                Ok(Want::Udp {
                    ip: ip(&q.address)?.unwrap_or(any),
                    port,
                    flags,
                })
            }
            (Scalar::Num(t), Some(port)) if *t == 4.0 || *t == 6.0 => Ok(Want::Tcp {
                ip: ip(&q.address)?,
                port,
                v6only: flags & 1 == 1,
                backlog,
            }),
            (Scalar::Num(t), _) if *t == -1.0 => match q.address.as_str() {
                Some(path) if path.starts_with('/') => Ok(Want::Unix {
                    path: path.to_owned(),
                    backlog,
                }),
                _ => Err(Errno::INVAL),
            },
            _ => Err(Errno::INVAL),
        }
    }

    /// The tag a shared reply carries.
    pub(crate) fn tag(&self) -> HandleKind {
        match self {
            Want::Udp { .. } => HandleKind::DgramNative,
            _ => HandleKind::Native,
        }
    }

    /// Binds (and for round-robin, listens): Node's `SO_REUSEADDR`,
    /// `IPV6_V6ONLY`, and `::` falling back to `0.0.0.0` for "any".
    pub(crate) fn bind(&self, listen: bool) -> Result<OwnedFd, Errno> {
        match self {
            Want::Tcp {
                ip: None,
                port,
                backlog,
                ..
            } => {
                let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, *port));
                match inet(SocketType::STREAM, any6, false, false) {
                    Ok(fd) => finish(fd, listen, *backlog),
                    Err(Errno::AFNOSUPPORT | Errno::ADDRNOTAVAIL) => {
                        let any4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port));
                        finish(
                            inet(SocketType::STREAM, any4, false, false)?,
                            listen,
                            *backlog,
                        )
                    }
                    Err(e) => Err(e),
                }
            }
            Want::Tcp {
                ip: Some(ip),
                port,
                v6only,
                backlog,
            } => finish(
                inet(SocketType::STREAM, (*ip, *port).into(), *v6only, false)?,
                listen,
                *backlog,
            ),
            Want::Udp { ip, port, flags } => inet(
                SocketType::DGRAM,
                (*ip, *port).into(),
                flags & 1 == 1,
                flags & UDP_REUSEADDR != 0,
            ),
            Want::Unix { path, backlog } => {
                let fd =
                    rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, FLAGS, None)?;
                let addr = rustix::net::SocketAddrUnix::new(path.as_str())?;
                rustix::net::bind(&fd, &addr)?;
                finish(fd, listen, *backlog)
            }
        }
    }
}

/// Every socket the primary makes is close-on-exec and non-blocking, as
/// libuv makes those of Node's own primary: a shared socket's mode belongs
/// to every worker holding it, and when two event loops are woken for one
/// connection, the one that loses the race must get `EAGAIN` from
/// `accept` (or `recv`), not block in it (it would never read its channel
/// again, `disconnect` included).
const FLAGS: SocketFlags = SocketFlags::CLOEXEC.union(SocketFlags::NONBLOCK);

/// A bound socket; TCP gets `SO_REUSEADDR` always, UDP when asked.
fn inet(ty: SocketType, addr: SocketAddr, v6only: bool, reuse: bool) -> Result<OwnedFd, Errno> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = rustix::net::socket_with(family, ty, FLAGS, None)?;
    if ty == SocketType::STREAM || reuse {
        sockopt::set_socket_reuseaddr(&fd, true)?;
    }
    if family == AddressFamily::INET6 {
        sockopt::set_ipv6_v6only(&fd, v6only)?;
    }
    rustix::net::bind(&fd, &addr)?;
    Ok(fd)
}

/// Listens when asked (round-robin: the primary accepts).
fn finish(fd: OwnedFd, listen: bool, backlog: u32) -> Result<OwnedFd, Errno> {
    if listen {
        rustix::net::listen(&fd, backlog.min(i32::MAX as u32) as i32)?;
    }
    Ok(fd)
}

/// What `getsockname` says, as Node's `sockname` (`None` for UNIX).
pub(crate) fn sockname(fd: &OwnedFd) -> Option<Sockname> {
    let addr = rustix::net::getsockname(fd).ok()?;
    let addr = SocketAddr::try_from(addr).ok()?;
    Some(Sockname {
        address: addr.ip().to_string(),
        family: if addr.is_ipv4() { "IPv4" } else { "IPv6" },
        port: addr.port(),
    })
}

#[cfg(test)]
mod nonblocking {
    use super::*;

    /// Every socket the primary binds leaves non-blocking: shared TCP
    /// (policy none: bound, not listening), listening (round-robin), UDP
    /// (always shared) and UNIX, since a shared socket's mode is every
    /// holder's.
    #[test]
    fn every_socket_is_non_blocking() {
        let path = std::env::temp_dir().join(format!("bind-test-{}.sock", std::process::id()));
        let local = IpAddr::from([127, 0, 0, 1]);
        let wants = [
            Want::Tcp {
                ip: Some(local),
                port: 0,
                v6only: false,
                backlog: 16,
            },
            Want::Udp {
                ip: local,
                port: 0,
                flags: 0,
            },
            Want::Unix {
                path: path.to_str().unwrap().to_owned(),
                backlog: 16,
            },
        ];
        for want in &wants {
            for listen in [false, true] {
                let _ = std::fs::remove_file(&path);
                if listen && matches!(want, Want::Udp { .. }) {
                    continue;
                }
                let fd = want.bind(listen).unwrap();
                let flags = rustix::fs::fcntl_getfl(&fd).unwrap();
                assert!(
                    flags.contains(rustix::fs::OFlags::NONBLOCK),
                    "{want:?} listen={listen}"
                );
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}
