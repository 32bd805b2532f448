//! [`Worker`]: the worker side, under any cluster primary (Node's or
//! [`Primary`](super::Primary)).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::os::fd::OwnedFd;

use ipc_core::Error;
use ipc_net::{Datagram, HandleError, Server, Socket};
use rustix::io::Errno;

use super::wire::{self, Ack, Act, AddressType, ClusterIn, Query};
use crate::{Event, Parent, ParentError};

/// Whether this process was started as a cluster worker (`NODE_UNIQUE_ID`
/// was set at startup).
pub fn is_worker() -> bool {
    worker_id().is_some()
}

/// This worker's id (Node's `cluster.worker.id`; a non-number gives 0,
/// as in Node), `None` when not a worker.
pub fn worker_id() -> Option<u32> {
    crate::startup::channel_env()
        .unique_id
        .map(|id| id.trim().parse().unwrap_or(0))
}

/// Joins the cluster: takes the parent channel and says `online`.
///
/// # Errors
/// [`ClusterError::NotAWorker`] without `NODE_UNIQUE_ID`;
/// [`ClusterError::Parent`] without a usable channel;
/// [`ClusterError::Channel`] when `online` cannot be sent.
pub fn worker() -> Result<Worker, ClusterError> {
    let id = worker_id().ok_or(ClusterError::NotAWorker)?;
    let parent = crate::parent().map_err(ClusterError::Parent)?;
    let mut worker = Worker {
        parent,
        id,
        seq: 0,
        indexes: HashMap::new(),
        keys: Vec::new(),
        events: VecDeque::new(),
    };
    let seq = worker.next_seq();
    worker
        .parent
        .send(&Act::new("online", None, seq))
        .map_err(ClusterError::Channel)?;
    Ok(worker)
}

/// Why a worker could not do what was asked.
#[non_exhaustive]
#[derive(Debug)]
pub enum ClusterError {
    /// Not started as a cluster worker (no `NODE_UNIQUE_ID`).
    NotAWorker,
    /// No parent channel.
    Parent(ParentError),
    /// The channel failed.
    Channel(Error),
    /// The primary refused the listen with this errno (Node's `-errno`):
    /// `EADDRINUSE` for a port taken, `EACCES`, `EADDRNOTAVAIL`, ...
    Refused {
        /// The key asked for.
        key: String,
        /// The error, as Node's `bind` would report it (`kind()` is
        /// `AddrInUse` for a port taken).
        errno: ipc_core::OsError,
    },
    /// The primary's handle is not a usable socket.
    Handle(HandleError),
    /// The channel closed while waiting for the primary's answer.
    Closed,
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::NotAWorker => f.write_str("not a cluster worker (NODE_UNIQUE_ID unset)"),
            ClusterError::Parent(e) => write!(f, "{e}"),
            ClusterError::Channel(e) => write!(f, "cluster channel: {e}"),
            ClusterError::Refused { key, errno } => write!(f, "bind {key}: {errno}"),
            ClusterError::Handle(e) => write!(f, "primary's handle: {e}"),
            ClusterError::Closed => f.write_str("the primary closed the channel"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// What [`Worker::listen`] got.
#[derive(Debug)]
pub enum Listener {
    /// Policy `none` (or a shared handle): the listening socket itself;
    /// accept from it.
    Shared(Server),
    /// Round-robin: the primary accepts; connections arrive as
    /// [`WorkerEvent::Connection`] with this key.
    RoundRobin {
        /// The key (`address:port:addressType:fd:index`).
        key: String,
        /// The port the primary listens on (`None` for a path).
        port: Option<u16>,
    },
}

/// What a worker hears from its primary.
#[non_exhaustive]
#[derive(Debug)]
pub enum WorkerEvent {
    /// A round-robin connection, already accepted (`accepted: true` was
    /// sent).
    Connection {
        /// The listener's key.
        key: String,
        /// The connection.
        socket: Socket,
    },
    /// The primary asked this worker to leave (Node's `disconnect`): its
    /// listeners were closed (`close` sent). Finish what is in progress,
    /// then drop the worker (or call [`Worker::finish`]) and exit.
    Disconnect,
    /// A user message from the primary (`worker.send()`), as JSON text.
    Message(String),
    /// The channel closed without a `disconnect`: Node's worker exits(0).
    Closed,
}

/// A registered listener (a key this worker told the primary about).
#[derive(Debug)]
struct Registered {
    key: String,
    round_robin: bool,
}

/// The worker side of the cluster protocol.
#[derive(Debug)]
pub struct Worker {
    parent: Parent,
    id: u32,
    seq: u64,
    /// Node's `indexes`: the next index per `address:port:addressType:fd`.
    indexes: HashMap<String, u32>,
    keys: Vec<Registered>,
    /// Events that arrived while waiting for an answer.
    events: VecDeque<WorkerEvent>,
}

impl Worker {
    /// Node's `cluster.worker.id`.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    /// Listens on TCP `port` at `ip` (`None`: every address, as Node's
    /// `listen(port)`) through the primary. Port 0 gives every worker of
    /// the cluster the same port.
    ///
    /// # Errors
    /// [`ClusterError::Refused`] with the primary's errno (the key is not
    /// registered then); `Channel`/`Closed` when the primary is gone;
    /// `Handle` for a handle that is not a socket.
    pub fn listen(&mut self, ip: Option<IpAddr>, port: u16) -> Result<Listener, ClusterError> {
        let address_type = match ip {
            Some(IpAddr::V6(_)) => AddressType::Tcp6,
            _ => AddressType::Tcp4,
        };
        let address = ip.map(|ip| ip.to_string());
        let (key, mut reply, fd, query) =
            self.query(address.as_deref(), port, address_type, Some(0))?;
        let listener = match fd {
            Some(fd) => {
                // Node's primary only binds; every worker listens.
                rustix::net::listen(&fd, super::BACKLOG as i32)
                    .map_err(|e| self.refuse(&key, e))?;
                let actual = super::bind::sockname(&fd).map(|s| s.port);
                if port != 0 && actual != Some(port) {
                    return Err(self.refuse(&key, Errno::ADDRINUSE));
                }
                reply.port = actual;
                Listener::Shared(Server::from_fd(fd).map_err(ClusterError::Handle)?)
            }
            None => {
                let actual = reply.port;
                if port != 0 && actual.is_some_and(|p| p != port) {
                    return Err(self.refuse(&key, Errno::ADDRINUSE));
                }
                Listener::RoundRobin {
                    key: key.clone(),
                    port: actual,
                }
            }
        };
        self.keys.push(Registered {
            key,
            round_robin: matches!(listener, Listener::RoundRobin { .. }),
        });
        self.say_listening(query, reply.port.unwrap_or(port));
        Ok(listener)
    }

    /// Binds UDP `port` at `ip` through the primary (Node's `dgram` in a
    /// worker): every worker shares the primary's socket.
    ///
    /// # Errors
    /// As [`listen`](Self::listen).
    pub fn bind_udp(&mut self, ip: IpAddr, port: u16) -> Result<Datagram, ClusterError> {
        let address_type = match ip {
            IpAddr::V4(_) => AddressType::Udp4,
            IpAddr::V6(_) => AddressType::Udp6,
        };
        let address = ip.to_string();
        let (key, _, fd, query) = self.query(Some(&address), port, address_type, None)?;
        let fd = fd.ok_or_else(|| self.refuse(&key, Errno::INVAL))?;
        let datagram = Datagram::from_fd(fd, None).map_err(ClusterError::Handle)?;
        let actual = datagram.local_addr().map_or(port, |a| a.port());
        self.keys.push(Registered {
            key,
            round_robin: false,
        });
        self.say_listening(query, actual);
        Ok(datagram)
    }

    /// Closes the listener of `key` (Node's `server.close()` in a worker):
    /// the primary forgets this worker for it.
    ///
    /// # Errors
    /// As [`Endpoint::send`](crate::Endpoint::send).
    pub fn close(&mut self, key: &str) -> Result<(), ClusterError> {
        self.keys.retain(|k| k.key != key);
        let seq = self.next_seq();
        self.parent
            .send(&Act::new("close", Some(key), seq))
            .map_err(ClusterError::Channel)
    }

    /// Leaves the cluster on purpose (Node's `cluster.worker.disconnect()`):
    /// closes every listener, sends `exitedAfterDisconnect`, waits for the
    /// primary's ack, and closes the channel.
    ///
    /// # Errors
    /// As [`close`](Self::close); `Closed` if the primary went away first.
    pub fn leave(mut self) -> Result<(), ClusterError> {
        self.close_all()?;
        let seq = self.next_seq();
        self.parent
            .send(&Act::new("exitedAfterDisconnect", None, seq))
            .map_err(ClusterError::Channel)?;
        self.answer(seq)?;
        self.finish();
        Ok(())
    }

    /// Closes the channel (what a Node worker does once its servers are
    /// closed after a `disconnect`).
    pub fn finish(mut self) {
        let _ = self.parent.disconnect();
    }

    /// Waits for the primary's next event. Round-robin connections are
    /// answered (`accepted`) before they are returned.
    ///
    /// # Errors
    /// From the channel; non-fatal ones concern one frame and the worker
    /// goes on.
    pub fn next_event(&mut self) -> Result<WorkerEvent, Error> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            match self.recv_cluster()? {
                Some(Got::Cluster(m, fd)) => {
                    if let Some(e) = self.on_cluster(m, fd) {
                        return Ok(e);
                    }
                }
                Some(Got::Message(text)) => return Ok(WorkerEvent::Message(text)),
                Some(Got::Closed) => return Ok(WorkerEvent::Closed),
                None => {}
            }
        }
    }

    /// The message side, for what this type does not offer (sending user
    /// messages, polling its descriptor).
    pub fn parent(&mut self) -> &mut Parent {
        &mut self.parent
    }

    /// Acts on an unsolicited cluster message.
    fn on_cluster(&mut self, m: ClusterIn, fd: Option<OwnedFd>) -> Option<WorkerEvent> {
        match m.act.as_deref() {
            Some("newconn") => {
                let key = m.key.unwrap_or_default();
                let ours = self.keys.iter().any(|k| k.round_robin && k.key == key);
                let socket = fd.filter(|_| ours).and_then(|fd| Socket::from_fd(fd).ok());
                let seq = self.next_seq();
                if let Some(ack) = m.seq {
                    let _ = self
                        .parent
                        .try_send(&Ack::new(ack, Some(socket.is_some()), seq));
                }
                socket.map(|socket| WorkerEvent::Connection { key, socket })
            }
            Some("disconnect") => {
                let _ = self.close_all();
                Some(WorkerEvent::Disconnect)
            }
            _ => None,
        }
    }

    fn close_all(&mut self) -> Result<(), ClusterError> {
        for k in std::mem::take(&mut self.keys) {
            self.close(&k.key)?;
        }
        Ok(())
    }

    /// Sends a `queryServer` and waits for its answer.
    fn query(
        &mut self,
        address: Option<&str>,
        port: u16,
        address_type: AddressType,
        backlog: Option<u32>,
    ) -> Result<(String, Answer, Option<OwnedFd>, QueryParts), ClusterError> {
        let udp = matches!(address_type, AddressType::Udp4 | AddressType::Udp6);
        let fd_part = if udp { "-1" } else { "undefined" };
        let type_text = match address_type {
            AddressType::Tcp4 => "4",
            AddressType::Tcp6 => "6",
            AddressType::Udp4 => "udp4",
            AddressType::Udp6 => "udp6",
        };
        let tuple = format!("{}:{port}:{type_text}:{fd_part}", address.unwrap_or("null"));
        let slot = self.indexes.entry(tuple.clone()).or_insert(0);
        let index = *slot;
        *slot += 1;
        let key = format!("{tuple}:{index}");
        let parts = QueryParts {
            index,
            address: address.map(str::to_owned),
            address_type,
            fd: udp.then_some(-1),
            flags: (udp || address.is_some()).then_some(0),
            backlog,
        };
        let seq = self.next_seq();
        self.parent
            .send(&parts.message("queryServer", port, seq))
            .map_err(ClusterError::Channel)?;
        let (m, fd) = self.answer(seq)?;
        if let Some(errno) = m.errno.as_num().filter(|&n| n != 0.0) {
            return Err(ClusterError::Refused {
                key,
                errno: ipc_core::OsError::from_raw((-errno) as i32),
            });
        }
        let answer = Answer {
            port: m.sockname.and_then(|s| s.port),
        };
        Ok((key, answer, fd, parts))
    }

    /// The next cluster message (with its descriptor), user message, or the
    /// end; `None` for other events. A cluster message that does not read
    /// is `Err(BadFrame)`.
    fn recv_cluster(&mut self) -> Result<Option<Got>, Error> {
        Ok(Some(match self.parent.recv()? {
            Event::Internal(mut msg, _) => match wire::read(&mut msg) {
                Some(Ok(m)) => Got::Cluster(m, msg.take_handle().map(OwnedFd::from)),
                Some(Err(e)) => return Err(Error::BadFrame(e)),
                None => return Ok(None),
            },
            Event::Message(msg, _) => Got::Message(msg.as_str().to_owned()),
            Event::Disconnect => Got::Closed,
            _ => return Ok(None),
        }))
    }

    /// Waits for the answer to our message `seq`; what else comes meanwhile
    /// is acted on and kept for [`next_event`](Self::next_event).
    fn answer(&mut self, seq: u64) -> Result<(ClusterIn, Option<OwnedFd>), ClusterError> {
        loop {
            let (m, fd) = match self.recv_cluster() {
                Ok(Some(Got::Cluster(m, fd))) => (m, fd),
                Ok(Some(Got::Message(text))) => {
                    self.events.push_back(WorkerEvent::Message(text));
                    continue;
                }
                Ok(Some(Got::Closed)) | Err(Error::Disconnected) => {
                    self.events.push_back(WorkerEvent::Closed);
                    return Err(ClusterError::Closed);
                }
                Ok(None) => continue,
                // A bad frame while we wait for our answer: no event can
                // report it (`next_event` does, outside a wait); skipped.
                Err(e) if !e.is_fatal() => continue,
                Err(e) => return Err(ClusterError::Channel(e)),
            };
            if m.ack == Some(seq) && m.act.is_none() {
                return Ok((m, fd));
            }
            if let Some(e) = self.on_cluster(m, fd) {
                self.events.push_back(e);
            }
        }
    }

    /// A refused listen: tells the primary the key is closed, as Node's
    /// worker does when its server fails.
    fn refuse(&mut self, key: &str, errno: Errno) -> ClusterError {
        let _ = self.close(key);
        ClusterError::Refused {
            key: key.to_owned(),
            errno: errno.into(),
        }
    }

    fn say_listening(&mut self, query: QueryParts, port: u16) {
        let seq = self.next_seq();
        let _ = self.parent.send(&query.message("listening", port, seq));
    }
}

/// What [`Worker::recv_cluster`] got.
#[allow(clippy::large_enum_variant)] // one at a time, moved once: no box
enum Got {
    Cluster(ClusterIn, Option<OwnedFd>),
    Message(String),
    Closed,
}

/// What a `queryServer` answer said besides its errno.
struct Answer {
    /// `sockname.port` (round-robin), or the port listened on (shared).
    port: Option<u16>,
}

/// A query's members, for `queryServer` and again for `listening`.
struct QueryParts {
    index: u32,
    address: Option<String>,
    address_type: AddressType,
    fd: Option<i32>,
    flags: Option<u32>,
    backlog: Option<u32>,
}

impl QueryParts {
    fn message(&self, act: &'static str, port: u16, seq: u64) -> Query<'_> {
        Query {
            cmd: wire::CMD,
            act,
            index: self.index,
            data: None,
            address: self.address.as_deref(),
            port,
            address_type: self.address_type,
            fd: self.fd,
            flags: self.flags,
            backlog: self.backlog,
            seq,
        }
    }
}
