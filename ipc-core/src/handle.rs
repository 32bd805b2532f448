//! Handles: a descriptor plus the type tag Node puts on the wire.

use core::fmt;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

/// Longest `key` (Node's `server._connectionKey`, e.g. `4:127.0.0.1:0` or
/// `-1:/run/app.sock:-1`) kept from a received handle message. A longer key
/// is dropped, with the handle still delivered.
pub const MAX_KEY_LEN: usize = 128;

/// A connection key as Node writes it: `addressType:address:port`.
pub type Key = heapless::String<MAX_KEY_LEN>;

/// How a handle keeps its key: boxed with `std`, so that a `Handle` (and
/// every event that carries one) stays two words; inline without.
#[cfg(feature = "std")]
type StoredKey = std::boxed::Box<Key>;
#[cfg(not(feature = "std"))]
type StoredKey = Key;

/// The address family of a UDP handle (`dgramType` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UdpFamily {
    /// `udp4`
    V4,
    /// `udp6`
    V6,
}

impl UdpFamily {
    /// The `dgramType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            UdpFamily::V4 => "udp4",
            UdpFamily::V6 => "udp6",
        }
    }
}

/// What a handle claims to be: the `type` of a `NODE_HANDLE` message.
///
/// The tag is the *sender's claim*. `ipc-net` checks it against the kernel
/// before building a typed object.
///
/// ```
/// use ipc_core::{HandleKind, UdpFamily};
///
/// assert_eq!(HandleKind::Server.tag(), "net.Server");
/// assert_eq!(
///     HandleKind::from_tag("dgram.Socket", Some("udp6")),
///     Some(HandleKind::Dgram(UdpFamily::V6))
/// );
/// // A dgram.Socket needs its dgramType; unknown tags are refused.
/// assert_eq!(HandleKind::from_tag("dgram.Socket", None), None);
/// assert_eq!(HandleKind::from_tag("net.Pipe", None), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandleKind {
    /// `net.Server`: a listening stream socket (TCP or UNIX).
    Server,
    /// `net.Socket`: a connected stream socket. The only kind Node
    /// retransmits after a `NODE_HANDLE_NACK`.
    Socket,
    /// `net.Native`: a raw TCP or pipe handle.
    Native,
    /// `dgram.Socket`: a UDP socket of the given family.
    Dgram(UdpFamily),
    /// `dgram.Native`: a raw UDP handle.
    DgramNative,
}

impl HandleKind {
    /// The `type` string on the wire.
    pub fn tag(self) -> &'static str {
        match self {
            HandleKind::Server => "net.Server",
            HandleKind::Socket => "net.Socket",
            HandleKind::Native => "net.Native",
            HandleKind::Dgram(_) => "dgram.Socket",
            HandleKind::DgramNative => "dgram.Native",
        }
    }

    /// Parses a wire `type` (and `dgramType`, needed for `dgram.Socket`).
    pub fn from_tag(tag: &str, dgram_type: Option<&str>) -> Option<Self> {
        Self::from_tag_bytes(tag.as_bytes(), dgram_type.map(str::as_bytes))
    }

    /// [`from_tag`](Self::from_tag) on the decoded bytes of the strings.
    pub(crate) fn from_tag_bytes(tag: &[u8], dgram_type: Option<&[u8]>) -> Option<Self> {
        Some(match tag {
            b"net.Server" => HandleKind::Server,
            b"net.Socket" => HandleKind::Socket,
            b"net.Native" => HandleKind::Native,
            b"dgram.Native" => HandleKind::DgramNative,
            b"dgram.Socket" => HandleKind::Dgram(match dgram_type? {
                b"udp4" => UdpFamily::V4,
                b"udp6" => UdpFamily::V6,
                _ => return None,
            }),
            _ => return None,
        })
    }
}

impl fmt::Display for HandleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// A descriptor travelling with a message, and what it claims to be.
///
/// Owning: dropping a `Handle` closes its descriptor, so a message nobody
/// looked at cannot leak one. Sending a `Handle` moves it into the channel,
/// which closes its copy once the peer acknowledged receipt.
///
/// ```
/// use ipc_core::{Channel, Handle, HandleKind, Key};
/// use std::net::{TcpListener, TcpStream};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let client = TcpStream::connect(listener.local_addr()?)?;
/// let (conn, _) = listener.accept()?;
///
/// // A connection, tagged as Node tags it, with its server's key.
/// let key = Key::try_from("4:127.0.0.1:0").unwrap();
/// let handle = Handle::new(HandleKind::Socket, conn).with_key(key);
///
/// let (mut parent, mut child) = Channel::<4096, 4096>::pair()?;
/// parent.queue_handle("conn", handle)?;
/// let received = child.recv()?.take_handle().unwrap();
/// assert_eq!((received.kind(), received.key()), (HandleKind::Socket, Some("4:127.0.0.1:0")));
/// // A new descriptor for the same connection; `ipc_net` checks and types it.
/// let (_kind, fd, _key) = received.into_parts();
/// let conn = TcpStream::from(fd);
/// assert_eq!(conn.peer_addr()?, client.local_addr()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Handle {
    kind: HandleKind,
    fd: OwnedFd,
    key: Option<StoredKey>,
}

impl Handle {
    /// Pairs `fd` with its type tag.
    pub fn new(kind: HandleKind, fd: impl Into<OwnedFd>) -> Self {
        Handle {
            kind,
            fd: fd.into(),
            key: None,
        }
    }

    /// Sets the connection key (`net.Socket` from a server, as Node does),
    /// which the receiver uses to answer `NODE_SOCKET_*` queries.
    pub fn with_key(mut self, key: Key) -> Self {
        self.key = Some(key.into());
        self
    }

    /// What the sender says this is.
    pub fn kind(&self) -> HandleKind {
        self.kind
    }

    /// The connection key, if the sender set one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.as_str())
    }

    /// Takes the descriptor out.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Takes everything out.
    pub fn into_parts(self) -> (HandleKind, OwnedFd, Option<Key>) {
        #[cfg(feature = "std")]
        let key = self.key.map(|k| *k);
        #[cfg(not(feature = "std"))]
        let key = self.key;
        (self.kind, self.fd, key)
    }
}

impl AsFd for Handle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<Handle> for OwnedFd {
    fn from(h: Handle) -> OwnedFd {
        h.fd
    }
}
