//! [`Endpoint`]: the message side shared by a parent's [`Child`] and a
//! child's [`Parent`].
//!
//! [`Child`]: crate::Child
//! [`Parent`]: crate::Parent

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_core::{Channel, Error, Fate, Handle, Incoming, Key, Message, SendError, Sender, Ticket};
use ipc_net::accounting::{SocketAccounting, SocketAnswer, SocketQuery};
use ipc_net::{HandleError, Received};
use serde::Serialize;

use crate::wake::Wakeup;

/// While this process holds sockets the peer may ask about, how often the
/// calls that send also read the socket for the peer's queries.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// One thing that happened on a channel, in order.
#[derive(Debug)]
pub enum Event<'a> {
    /// A user message, with the handle that came with it, verified and
    /// typed (or the reason it was refused; its descriptor is then closed).
    Message(Message<'a>, Option<Result<Received, HandleError>>),
    /// An internal message (`cmd` starting with `NODE_`). `NODE_SOCKET_*`
    /// queries have already been answered when you see them. A
    /// `NODE_CLUSTER` message's descriptor is not typed here: it stays in
    /// the message ([`Message::take_handle`](ipc_core::Message::take_handle)),
    /// since cluster's shared listeners arrive bound but not yet listening.
    Internal(Message<'a>, Option<Result<Received, HandleError>>),
    /// What became of a handle sent with `queue_handle` (or whose
    /// `send_handle` timed out): acknowledged, or returned with the handle.
    Fate(Fate),
    /// The channel closed: the peer closed it, went away, or
    /// [`disconnect`](Endpoint::disconnect) was called. Handles not yet
    /// acknowledged have come back as `Fate`s before this.
    Disconnect,
    /// The child process ended (only from a [`Child`](crate::Child)).
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
    /// When the calls that send last read the socket for queries.
    looked: Instant,
    /// Ends a blocking receive when a socket dropped in another thread
    /// makes a `NODE_SOCKET_ALL_CLOSED` due (made when first needed).
    wakeup: Option<Arc<Wakeup>>,
}

impl Endpoint {
    pub(crate) fn new(sock: OwnedFd) -> Result<Endpoint, Error> {
        Ok(Endpoint {
            channel: Box::new(Channel::new(sock)?),
            accounting: SocketAccounting::default(),
            reported: Vec::new(),
            disconnected: false,
            looked: Instant::now(),
            wakeup: None,
        })
    }

    /// Sends a message and waits until it is written, reading what the
    /// peer sends meanwhile (see [`Channel::send`]).
    ///
    /// # Errors
    /// As [`Channel::send`]: `Disconnected` once the peer is gone.
    pub fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.send_due_replies();
        let sent = self.channel.send(msg);
        self.answer_ahead();
        sent
    }

    /// Queues a message to leave with others in one write; it goes out at
    /// the next flush point (see [`Channel::queue`]): [`flush`](Self::flush),
    /// any send or receive, or a full send buffer.
    ///
    /// # Errors
    /// As [`Channel::queue`].
    pub fn queue<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        let queued = self.channel.queue(msg);
        self.answer_ahead();
        queued
    }

    /// Queues a message and writes what can go now, never waiting (see
    /// [`Channel::try_send`]): for loops that serve many peers.
    ///
    /// # Errors
    /// As [`Channel::try_send`].
    pub fn try_send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        let sent = self.channel.try_send(msg);
        self.answer_ahead();
        sent
    }

    /// Waits until everything queued is written (see [`Channel::flush`]).
    ///
    /// # Errors
    /// As [`Channel::flush`].
    pub fn flush(&mut self) -> Result<(), Error> {
        self.send_due_replies();
        let flushed = self.channel.flush();
        self.answer_ahead();
        flushed
    }

    /// Sends a message with a handle and waits until the peer has
    /// acknowledged it; our copy of the descriptor is closed by then. A
    /// [`Socket`](ipc_net::Socket) moves (`socket.into_handle()`); a server
    /// is usually sent by reference (`server.to_handle()?`) and keeps working
    /// here.
    ///
    /// # Errors
    /// A [`SendError`] with the handle back whenever the peer did not take
    /// it (refused, or the channel closed); past the
    /// [timeout](Self::set_timeout), `TimedOut`, with the handle if it was
    /// still queued (else its fate comes later as [`Event::Fate`]).
    #[allow(clippy::result_large_err)] // the handle comes back inline
    pub fn send_handle<T: Serialize + ?Sized>(
        &mut self,
        msg: &T,
        handle: Handle,
    ) -> Result<(), SendError> {
        self.send_due_replies();
        let sent = self.channel.send_handle(msg, handle);
        self.answer_ahead();
        sent
    }

    /// Hands a handle over without waiting: it is queued and written as
    /// soon as the protocol allows, and its fate comes later as an
    /// [`Event::Fate`] with the returned ticket. For routers: a peer that
    /// is slow to acknowledge holds up only its own hand-offs.
    ///
    /// ```no_run
    /// use ipc_fork::{Command, Event, Fate};
    /// use ipc_net::Server;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = Server::bind("127.0.0.1:0")?;
    /// let mut child = Command::new("node").arg("worker.js").spawn()?;
    /// let conn = server.accept()?;
    /// let ticket = child.queue_handle(&"socket", conn.into_handle())?;
    /// loop {
    ///     match child.recv()? {
    ///         Event::Fate(Fate::Acknowledged(t)) if t == ticket => break,
    ///         // Refused, or the child went away: the socket is ours again.
    ///         Event::Fate(Fate::Returned { handle, reason, .. }) => {
    ///             eprintln!("not taken ({reason}): {handle:?}");
    ///             break;
    ///         }
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// A [`SendError`] with the handle when it could not be queued
    /// (channel closed, message too large).
    #[allow(clippy::result_large_err)] // the handle comes back inline
    pub fn queue_handle<T: Serialize + ?Sized>(
        &mut self,
        msg: &T,
        handle: Handle,
    ) -> Result<Ticket, SendError> {
        let queued = self.channel.queue_handle(msg, handle);
        self.answer_ahead();
        queued
    }

    /// Takes a queued handle back if none of it has been written yet (see
    /// [`Channel::withdraw`]).
    pub fn withdraw(&mut self, ticket: Ticket) -> Option<Handle> {
        self.channel.withdraw(ticket)
    }

    /// How long each blocking call may wait before `TimedOut` (see
    /// [`Channel::set_timeout`]).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.channel.set_timeout(timeout);
    }

    /// Bounds the memory of each direction (see [`Channel::set_limit`]).
    pub fn set_limit(&mut self, bytes: usize) {
        self.channel.set_limit(bytes);
    }

    /// Waits for the next event. Errors that concern one bad frame leave the
    /// channel usable (`!e.is_fatal()`): log and call again.
    ///
    /// # Errors
    /// `Disconnected` after [`Event::Disconnect`]; `TimedOut` past the
    /// [timeout](Self::set_timeout); a non-fatal error for a bad frame.
    pub fn recv(&mut self) -> Result<Event<'_>, Error> {
        self.next(true)
    }

    /// The next event if there is one now, else `Err(WouldBlock)`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus `WouldBlock`.
    pub fn try_recv(&mut self) -> Result<Event<'_>, Error> {
        self.next(false)
    }

    /// Reads without blocking until an event is ready for
    /// [`try_recv`](Self::try_recv); whether one is (see
    /// [`Channel::prepare`]).
    pub fn prepare(&mut self) -> bool {
        self.send_due_replies();
        self.disconnected || self.channel.prepare()
    }

    /// Whether an event is ready without reading the socket (see
    /// [`Channel::is_ready`]).
    pub fn is_ready(&mut self) -> bool {
        !self.disconnected && self.channel.is_ready()
    }

    #[inline(always)]
    fn next(&mut self, block: bool) -> Result<Event<'_>, Error> {
        if self.disconnected {
            return Err(Error::Disconnected);
        }
        self.send_due_replies();
        // A close request waits for sockets that another thread may drop:
        // then the wait watches for that too.
        let watch_drops = block && self.accounting.waiting();
        if watch_drops {
            self.wait_ready(None)?;
        }
        let got = if block && !watch_drops {
            self.channel.recv_incoming()
        } else {
            self.channel.try_recv_incoming()
        };
        let (msg, sender) = match got {
            Ok(Incoming::Message(msg, sender)) => (msg, sender),
            Ok(Incoming::Fate(fate)) => return Ok(Event::Fate(fate)),
            Err(Error::Disconnected) => {
                self.disconnected = true;
                return Ok(Event::Disconnect);
            }
            Err(e) => return Err(e),
        };
        // Most messages are the user's own, without a handle.
        if msg.handle().is_none() && !msg.is_internal() {
            return Ok(Event::Message(msg, None));
        }
        Self::with_handle_or_internal(&mut self.accounting, &mut self.reported, msg, sender)
    }

    /// The rest of [`next`](Self::next), for a message with a handle or an
    /// internal one.
    #[inline(never)]
    fn with_handle_or_internal<'a>(
        accounting: &mut SocketAccounting,
        reported: &mut Vec<(Key, u64)>,
        mut msg: Message<'a>,
        mut sender: Sender<'a, { ipc_core::DEFAULT_CAPACITY }>,
    ) -> Result<Event<'a>, Error> {
        // Checked first: taking an empty handle slot still moves it. A
        // cluster message keeps its handle raw: a shared listener arrives
        // bound but not listening, which no typed handle is (see
        // `cluster`).
        let taken = if msg.handle().is_some() && msg.cmd() != Some(crate::cluster::wire::CMD) {
            msg.take_handle()
        } else {
            None
        };
        let handle = taken.map(|h| {
            let mut received = Received::from_handle(h)?;
            if let Received::Socket(s) = &mut received {
                accounting.track(s);
            }
            Ok(received)
        });
        if !msg.is_internal() {
            return Ok(Event::Message(msg, handle));
        }
        if !msg.was_peeked() {
            answer_internal(accounting, reported, &msg, &mut sender);
        }
        Ok(Event::Internal(msg, handle))
    }

    /// Answers the peer's `NODE_SOCKET_*` queries among the messages read
    /// ahead of their delivery (a wait to write reads ahead), as Node
    /// answers them as soon as it reads them. While this process holds
    /// sockets the peer may ask about, the socket is also read now and then
    /// ([`LOOK_EVERY`]) here: a process that only sends still answers
    /// `getConnections()` and `close()`.
    pub(crate) fn answer_ahead(&mut self) {
        if self.accounting.has_keys() && self.looked.elapsed() >= LOOK_EVERY {
            self.looked = Instant::now();
            // What it finds is kept for recv; an error shows there too.
            let _ = self.channel.try_read_ahead();
        }
        let (accounting, reported) = (&mut self.accounting, &mut self.reported);
        self.channel
            .peek_internal(|msg, sender| answer_internal(accounting, reported, msg, sender));
        self.send_due_replies();
    }

    /// How long each blocking call may wait (see
    /// [`set_timeout`](Self::set_timeout)).
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.channel.timeout()
    }

    /// Waits until an event is ready (`Ok(false)`) or `also` is readable
    /// (`Ok(true)`), within the channel's timeout. While a close request
    /// waits, a socket dropped in another thread ends the wait too (and its
    /// reply goes out).
    pub(crate) fn wait_ready(&mut self, also: Option<BorrowedFd<'_>>) -> Result<bool, Error> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let deadline = self.channel.timeout().map(|t| Instant::now() + t);
        let wakeup = match &self.wakeup {
            Some(w) => Arc::clone(w),
            None => Arc::clone(self.wakeup.insert(Wakeup::new()?)),
        };
        let waker = wakeup.waker();
        loop {
            self.send_due_replies();
            if self.channel.prepare() {
                return Ok(false);
            }
            if self.accounting.wake_when_due(&waker) {
                continue;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(Error::TimedOut),
                },
                None => None,
            };
            let left = left.map(|t| Timespec {
                tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: t.subsec_nanos().into(),
            });
            let mut events = PollFlags::IN;
            if self.channel.wants_write() {
                events |= PollFlags::OUT;
            }
            let mut fds = [
                PollFd::new(&*self.channel, events),
                PollFd::new(&*wakeup, PollFlags::IN),
                PollFd::new(&*wakeup, PollFlags::IN),
            ];
            let n = match also {
                Some(also) => {
                    fds[2] = PollFd::from_borrowed_fd(also, PollFlags::IN);
                    3
                }
                None => 2,
            };
            match poll(&mut fds[..n], left.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            if also.is_some() && !fds[2].revents().is_empty() && !self.channel.prepare() {
                return Ok(true);
            }
            wakeup.drain();
        }
    }

    /// Sends `NODE_SOCKET_ALL_CLOSED` for keys whose last socket has closed
    /// since the sender asked.
    #[inline(always)]
    pub(crate) fn send_due_replies(&mut self) {
        // Nearly always nothing: no close request waits.
        if self.accounting.waiting() {
            self.send_due_replies_now();
        }
    }

    /// [`send_due_replies`](Self::send_due_replies) once a request waits.
    #[inline(never)]
    fn send_due_replies_now(&mut self) {
        while let Some(reply) = self.accounting.due() {
            let _ = self.channel.try_send(&reply.message());
        }
    }

    /// Closes the channel (Node's `disconnect()`): what is queued goes out
    /// first, then the peer sees EOF.
    ///
    /// # Errors
    /// `Disconnected` the second time (see [`Channel::disconnect`]).
    pub fn disconnect(&mut self) -> Result<(), Error> {
        self.send_due_replies();
        self.channel.disconnect()
    }

    /// Asks the peer how many sockets of `key` (a [`Server::key`]) it still
    /// holds, as Node's `server.getConnections()` does. The answer arrives
    /// as an `Event::Internal` on a later [`recv`](Self::recv); from then
    /// on [`reported_connections`](Self::reported_connections) has it.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// [`Server::key`]: ipc_net::Server::key
    pub fn request_connection_count(&mut self, key: &str) -> Result<(), Error> {
        self.forget_reported(key);
        self.channel.send(&SocketQuery::get_count(key))
    }

    /// Sends the `NODE_SOCKET_ALL_CLOSED` replies due, and has `cx` woken
    /// when another becomes due (a socket dropped in another task is not
    /// otherwise noticed by a receiver waiting on its channel).
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_due_replies(&mut self, cx: &mut std::task::Context<'_>) {
        loop {
            self.send_due_replies();
            if !self.accounting.wake_when_due(cx.waker()) {
                return;
            }
        }
    }

    /// Forgets the peer's last answer for `key`, before asking again.
    pub(crate) fn forget_reported(&mut self, key: &str) {
        self.reported.retain(|(k, _)| k != key);
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
    pub fn is_connected(&self) -> bool {
        !self.disconnected && self.channel.is_connected()
    }

    /// Whether queued bytes wait for the socket to take them: poll for
    /// writability while this is true (see [`Channel::wants_write`]).
    pub fn wants_write(&self) -> bool {
        self.channel.wants_write()
    }

    /// Handles queued or sent whose fate is not known yet.
    pub fn handles_in_flight(&self) -> usize {
        self.channel.handles_in_flight()
    }

    /// The channel itself, for what this type does not offer.
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

impl AsRef<Endpoint> for Endpoint {
    fn as_ref(&self) -> &Endpoint {
        self
    }
}

impl AsFd for Endpoint {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.channel.as_fd()
    }
}

/// The messaging methods of [`Endpoint`], on a type that holds one in
/// `self.endpoint`: [`Child`](crate::Child) and [`Parent`](crate::Parent)
/// offer them directly, as Node's `child.send()` and `process.send()` do.
macro_rules! endpoint_methods {
    () => {
        /// Sends a message and waits until it is written; see
        /// [`Endpoint::send`].
        ///
        /// # Errors
        /// As [`Endpoint::send`].
        pub fn send<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
        ) -> Result<(), ipc_core::Error> {
            self.endpoint.send(msg)
        }

        /// Queues a message to leave with others; see [`Endpoint::queue`].
        ///
        /// # Errors
        /// As [`Endpoint::queue`].
        pub fn queue<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
        ) -> Result<(), ipc_core::Error> {
            self.endpoint.queue(msg)
        }

        /// Sends without waiting; see [`Endpoint::try_send`].
        ///
        /// # Errors
        /// As [`Endpoint::try_send`].
        pub fn try_send<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
        ) -> Result<(), ipc_core::Error> {
            self.endpoint.try_send(msg)
        }

        /// Waits until everything queued is written; see
        /// [`Endpoint::flush`].
        ///
        /// # Errors
        /// As [`Endpoint::flush`].
        pub fn flush(&mut self) -> Result<(), ipc_core::Error> {
            self.endpoint.flush()
        }

        /// Sends a handle and waits for the peer's acknowledgement; see
        /// [`Endpoint::send_handle`].
        ///
        /// # Errors
        /// As [`Endpoint::send_handle`]: the handle comes back whenever the
        /// peer did not take it.
        #[allow(clippy::result_large_err)] // the handle comes back inline
        pub fn send_handle<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
            handle: ipc_core::Handle,
        ) -> Result<(), ipc_core::SendError> {
            self.endpoint.send_handle(msg, handle)
        }

        /// Hands a handle over without waiting; its fate comes as an
        /// event. See [`Endpoint::queue_handle`].
        ///
        /// # Errors
        /// As [`Endpoint::queue_handle`].
        #[allow(clippy::result_large_err)] // the handle comes back inline
        pub fn queue_handle<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
            handle: ipc_core::Handle,
        ) -> Result<ipc_core::Ticket, ipc_core::SendError> {
            self.endpoint.queue_handle(msg, handle)
        }

        /// Takes a queued handle back if it is not on the wire yet; see
        /// [`Endpoint::withdraw`].
        pub fn withdraw(&mut self, ticket: ipc_core::Ticket) -> Option<ipc_core::Handle> {
            self.endpoint.withdraw(ticket)
        }

        /// How long each blocking call may wait; see
        /// [`Endpoint::set_timeout`].
        pub fn set_timeout(&mut self, timeout: Option<std::time::Duration>) {
            self.endpoint.set_timeout(timeout);
        }

        /// Bounds the channel's memory; see [`Endpoint::set_limit`].
        pub fn set_limit(&mut self, bytes: usize) {
            self.endpoint.set_limit(bytes);
        }

        /// Closes the channel as Node's `disconnect()` does; see
        /// [`Endpoint::disconnect`].
        ///
        /// # Errors
        /// As [`Endpoint::disconnect`].
        pub fn disconnect(&mut self) -> Result<(), ipc_core::Error> {
            self.endpoint.disconnect()
        }

        /// Whether the channel is still open.
        pub fn is_connected(&self) -> bool {
            self.endpoint.is_connected()
        }

        /// Asks the peer how many sockets of `key` it holds; see
        /// [`Endpoint::request_connection_count`].
        ///
        /// # Errors
        /// As [`Endpoint::send`].
        pub fn request_connection_count(&mut self, key: &str) -> Result<(), ipc_core::Error> {
            self.endpoint.request_connection_count(key)
        }

        /// The peer's latest answer for `key`; see
        /// [`Endpoint::reported_connections`].
        pub fn reported_connections(&self, key: &str) -> Option<u64> {
            self.endpoint.reported_connections(key)
        }

        /// Whether queued bytes wait for the socket; see
        /// [`Endpoint::wants_write`].
        pub fn wants_write(&self) -> bool {
            self.endpoint.wants_write()
        }

        /// Handles queued or sent whose fate is not known yet.
        pub fn handles_in_flight(&self) -> usize {
            self.endpoint.handles_in_flight()
        }

        /// The message side as one value (for
        /// [`connections_total`](crate::connections_total)).
        pub fn endpoint(&self) -> &$crate::Endpoint {
            &self.endpoint
        }

        /// The message side, mutably (its [`channel`](Endpoint::channel)
        /// is there too).
        pub fn endpoint_mut(&mut self) -> &mut $crate::Endpoint {
            &mut self.endpoint
        }
    };
}

/// Answers an internal message that asks about our sockets, and notes a
/// count the peer reported.
fn answer_internal(
    accounting: &mut SocketAccounting,
    reported: &mut Vec<(Key, u64)>,
    msg: &Message<'_>,
    sender: &mut Sender<'_, { ipc_core::DEFAULT_CAPACITY }>,
) {
    if let Some(SocketAnswer::Count { key, count }) = SocketAnswer::from_message(msg) {
        match reported.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = count,
            None => reported.push((key, count)),
        }
    }
    if let Some(reply) = accounting.answer(msg) {
        // Best effort, like Node's own replies: a closed channel shows up
        // on the next call anyway.
        let _ = sender.try_send(&reply.message());
    }
}

/// `AsRef<Endpoint>` for a type that holds one in `self.endpoint`.
macro_rules! as_endpoint {
    ($t:ty) => {
        impl AsRef<$crate::Endpoint> for $t {
            fn as_ref(&self) -> &$crate::Endpoint {
                &self.endpoint
            }
        }
    };
}
pub(crate) use as_endpoint;
pub(crate) use endpoint_methods;
