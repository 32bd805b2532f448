//! [`Endpoint`]: the message side shared by a parent's [`Child`] and a
//! child's [`Parent`].
//!
//! [`Child`]: crate::Child
//! [`Parent`]: crate::Parent

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use ipc_core::Key;
use ipc_core::{Channel, Error, Handle, Message, SendError};
use ipc_net::accounting::{SocketAccounting, SocketAnswer, SocketQuery};
use ipc_net::{HandleError, Received};
use serde::Serialize;

/// One thing that happened on a channel, in order.
#[derive(Debug)]
pub enum Event<'a> {
    /// A user message, with the handle that came with it, verified and
    /// typed (or the reason it was refused; its descriptor is then closed).
    Message(Message<'a>, Option<Result<Received, HandleError>>),
    /// An internal message (`cmd` starting with `NODE_`). `NODE_SOCKET_*`
    /// queries have already been answered when you see them.
    Internal(Message<'a>, Option<Result<Received, HandleError>>),
    /// The channel closed: the peer closed it, went away, or
    /// [`disconnect`](Endpoint::disconnect) was called.
    Disconnect,
    /// The child process ended (only from [`Child::recv`](crate::Child::recv),
    /// after `Disconnect`).
    Exit(std::process::ExitStatus),
}

/// A channel plus the bookkeeping Node's protocol expects of a process:
/// sockets received per key, and the `NODE_SOCKET_*` answers.
#[derive(Debug)]
pub struct Endpoint {
    channel: Box<Channel>,
    accounting: SocketAccounting,
    /// The peer's latest `NODE_SOCKET_COUNT` answer per key.
    reported: Vec<(Key, u64)>,
    disconnected: bool,
}

impl Endpoint {
    pub(crate) fn new(sock: OwnedFd) -> Result<Endpoint, Error> {
        Ok(Endpoint {
            channel: Box::new(Channel::new(sock)?),
            accounting: SocketAccounting::default(),
            reported: Vec::new(),
            disconnected: false,
        })
    }

    /// Sends a message and waits until it is written (see
    /// [`Channel::send`]).
    pub fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.channel.send(msg)
    }

    /// Queues a message to leave with others in one write; it goes out at
    /// the next flush point (see [`Channel::queue`]): [`flush`](Self::flush),
    /// any send or receive, or a full send buffer.
    pub fn queue<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.channel.queue(msg)
    }

    /// Waits until everything queued is written (see [`Channel::flush`]).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.channel.flush()
    }

    /// Sends a message with a handle and waits until the peer has
    /// acknowledged it; our copy of the descriptor is closed by then. A
    /// [`Socket`](ipc_net::Socket) moves (`socket.into_handle()`); a server
    /// is usually sent by reference (`server.to_handle()?`) and keeps working
    /// here.
    ///
    /// Waiting keeps a blocking program simple: nothing lingers. To pipeline
    /// many handles, use [`channel`](Self::channel)`().try_send_handle` and
    /// read the acknowledgements with `try_recv` from a poller.
    #[allow(clippy::result_large_err)] // the handle comes back inline
    pub fn send_handle<T: Serialize + ?Sized>(
        &mut self,
        msg: &T,
        handle: Handle,
    ) -> Result<(), SendError> {
        self.channel.send_handle(msg, handle)?;
        self.channel.wait_acks().map_err(|error| {
            // The peer went away before acknowledging: the handle is still
            // ours (it may or may not have been used there).
            let handle = if error.is_fatal() {
                self.channel.take_unacknowledged()
            } else {
                None
            };
            SendError { error, handle }
        })
    }

    /// Waits for the next event. Errors that concern one bad frame leave the
    /// channel usable (`!e.is_fatal()`): log and call again.
    pub fn recv(&mut self) -> Result<Event<'_>, Error> {
        self.next(true)
    }

    /// The next event if there is one now, else `Err(WouldBlock)`.
    pub fn try_recv(&mut self) -> Result<Event<'_>, Error> {
        self.next(false)
    }

    fn next(&mut self, block: bool) -> Result<Event<'_>, Error> {
        if self.disconnected {
            return Err(Error::Disconnected);
        }
        self.send_due_replies();
        let (mut msg, mut sender) = match self.channel.recv_with_sender(block) {
            Ok(got) => got,
            Err(Error::Disconnected) => {
                self.disconnected = true;
                return Ok(Event::Disconnect);
            }
            Err(e) => {
                if e.is_fatal() {
                    self.disconnected = true;
                }
                return Err(e);
            }
        };
        let handle = msg.take_handle().map(|h| {
            let mut received = Received::from_handle(h)?;
            if let Received::Socket(s) = &mut received {
                self.accounting.track(s);
            }
            Ok(received)
        });
        if !msg.is_internal() {
            return Ok(Event::Message(msg, handle));
        }
        if let Some(SocketAnswer::Count { key, count }) = SocketAnswer::from_message(&msg) {
            match self.reported.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = count,
                None => self.reported.push((key, count)),
            }
        }
        if let Some(reply) = self.accounting.answer(&msg) {
            // Best effort, like Node's own replies: a closed channel shows
            // up on the next call anyway.
            let _ = sender.try_send(&reply.message());
        }

        Ok(Event::Internal(msg, handle))
    }

    /// Sends `NODE_SOCKET_ALL_CLOSED` for keys whose last socket has closed
    /// since the sender asked.
    fn send_due_replies(&mut self) {
        while let Some(reply) = self.accounting.due() {
            let _ = self.channel.send(&reply.message());
        }
    }

    /// Closes the channel (Node's `disconnect()`): what is queued goes out
    /// first, then the peer sees EOF. `Err(Disconnected)` the second time.
    pub fn disconnect(&mut self) -> Result<(), Error> {
        self.send_due_replies();
        self.channel.disconnect()
    }

    /// Asks the peer how many sockets of `key` (a [`Server::key`]) it still
    /// holds, as Node's `server.getConnections()` does. The answer arrives
    /// as an `Event::Internal` on a later [`recv`](Self::recv); from then
    /// on [`reported_connections`](Self::reported_connections) has it.
    ///
    /// [`Server::key`]: ipc_net::Server::key
    pub fn request_connection_count(&mut self, key: &str) -> Result<(), Error> {
        self.reported.retain(|(k, _)| k != key);
        self.channel.send(&SocketQuery::get_count(key))
    }

    /// The peer's answer to the latest
    /// [`request_connection_count`](Self::request_connection_count) for
    /// `key`, once it has arrived.
    pub fn reported_connections(&self, key: &str) -> Option<u64> {
        self.reported
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, n)| *n)
    }

    /// Whether the channel is still open.
    pub fn connected(&self) -> bool {
        !self.disconnected && self.channel.is_connected()
    }

    /// The channel itself, for non-blocking use with a poller.
    pub fn channel(&mut self) -> &mut Channel {
        &mut self.channel
    }

    /// The received-socket counts answered to `NODE_SOCKET_*` queries.
    pub fn accounting(&self) -> &SocketAccounting {
        &self.accounting
    }

    pub(crate) fn is_disconnected(&self) -> bool {
        self.disconnected
    }
}

impl AsFd for Endpoint {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.channel.as_fd()
    }
}
