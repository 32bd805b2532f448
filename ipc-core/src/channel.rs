//! [`Channel`]: one end of Node's IPC channel over a UNIX stream socket.

use core::time::Duration;

use rustix::event::PollFlags;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};
use serde::Serialize;

use crate::error::{Error, SendError};
use crate::fate::{Fate, Ticket};
use crate::handle::Handle;
use crate::inbound;
use crate::message::Message;
use crate::rx::{Parsed, Rx, What};
use crate::sys::{self, Deadline, Wait};
use crate::tx::{Room, Tx};
use crate::wire;

/// Default capacity of each of the receive and send buffers: 64 KiB, the size
/// of libuv's own read buffer. Without `std` it is also the longest line
/// that can be received or sent; with `std` the buffers grow past it as
/// needed, up to the [limit](Channel::set_limit).
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// Default [limit](Channel::set_limit) on each buffer of a channel with
/// `std`: 1 GiB.
pub const DEFAULT_LIMIT: usize = 1 << 30;

/// One end of a Node-compatible IPC channel.
///
/// `RX` and `TX` are the receive and send buffer sizes in bytes. With the
/// `std` feature they are allocated when the channel is made and grow when
/// a message or a backlog needs more, up to [`set_limit`] (1 GiB by
/// default), shrinking back once idle; without it they are fixed and live
/// inside the `Channel` (128 KiB with the defaults: keep it in a `static`).
/// Sending and receiving small messages never allocates.
///
/// **Both directions always move.** Whenever a call waits (to write, or
/// for an acknowledgement) it also reads what the peer sends, keeping it
/// for [`recv`], so two peers that write at each other both finish.
///
/// The socket is put in blocking mode: a blocking receive waits inside
/// `recvmsg(2)` (one system call per read), and every call that must not
/// wait passes `MSG_DONTWAIT`. So every `try_` call is usable from a
/// poller: register [`AsFd`] for readability always, and for writability
/// while [`wants_write`] is true. Do not read or write the socket yourself.
///
/// ```
/// use ipc_core::{Channel, Error};
/// use std::os::unix::net::UnixStream;
///
/// // Any connected AF_UNIX stream socket; in a child started by Node (or
/// // ipc-fork), the one at NODE_CHANNEL_FD.
/// let (a, b) = UnixStream::pair()?;
/// let mut parent: Channel = Channel::new(a)?; // 64 KiB buffers
/// let mut child: Channel = Channel::new(b)?;
///
/// // Nothing yet: a `try_` call says so instead of waiting.
/// assert_eq!(child.try_recv().err(), Some(Error::WouldBlock));
///
/// parent.send(&[1, 2, 3])?;
/// assert_eq!(child.recv()?.parse::<[u8; 3]>()?, [1, 2, 3]);
///
/// // What was sent before a disconnect still arrives, then the end.
/// parent.queue(&"last")?;
/// parent.disconnect()?;
/// assert_eq!(child.recv()?.as_str(), "\"last\"");
/// assert_eq!(child.recv().err(), Some(Error::Disconnected));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`set_limit`]: Channel::set_limit
/// [`recv`]: Channel::recv
/// [`wants_write`]: Channel::wants_write
pub struct Channel<const RX: usize = DEFAULT_CAPACITY, const TX: usize = DEFAULT_CAPACITY> {
    sock: OwnedFd,
    rx: Rx<RX>,
    tx: Tx<TX>,
    /// [`disconnect`](Channel::disconnect) was called, or reading failed.
    closed: bool,
    timeout: Option<Duration>,
}

/// What [`Channel::recv_incoming`] got.
#[derive(Debug)]
pub enum Incoming<'a, const TX: usize = DEFAULT_CAPACITY> {
    /// A message, and a way to send while it is borrowed.
    Message(Message<'a>, Sender<'a, TX>),
    /// What became of a handle sent without waiting.
    Fate(Fate),
}

/// A delivery found by the receive loop.
enum Got {
    Line(usize, Parsed),
    Fate(Fate),
}

/// Sends while a received [`Message`] is still borrowed (see
/// [`Channel::recv_incoming`]): queues and writes without blocking.
pub struct Sender<'a, const TX: usize> {
    tx: &'a mut Tx<TX>,
    sock: BorrowedFd<'a>,
}

impl<const TX: usize> core::fmt::Debug for Sender<'_, TX> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sender")
            .field("sock", &self.sock)
            .finish_non_exhaustive()
    }
}

impl<const TX: usize> Sender<'_, TX> {
    /// Like [`Channel::try_send`].
    ///
    /// # Errors
    /// As [`Channel::try_send`].
    pub fn try_send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.tx
            .push_frame(Room::Grow, |buf| wire::plain_frame(buf, msg))?;
        write_now(self.tx, self.sock);
        Ok(())
    }
}

/// Writes what the socket takes now. A peer that went away marks the send
/// side dead (the next send reports it); reading goes on.
#[inline(always)]
fn write_now<const TX: usize>(tx: &mut Tx<TX>, sock: BorrowedFd<'_>) {
    // Inline: on the receive path there is rarely anything to write.
    if tx.wants_write() {
        write_pending(tx, sock);
    }
}

/// [`write_now`] when there is something to write.
#[inline(never)]
fn write_pending<const TX: usize>(tx: &mut Tx<TX>, sock: BorrowedFd<'_>) {
    match tx.flush(sock) {
        Ok(()) | Err(Error::WouldBlock) => {}
        Err(e) => tx.fail(if e.is_fatal() { Error::Disconnected } else { e }),
    }
}

impl<const RX: usize, const TX: usize> core::fmt::Debug for Channel<RX, TX> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Channel")
            .field("sock", &self.sock)
            .field("closed", &self.closed)
            .field("handles_in_flight", &self.tx.in_flight())
            .finish_non_exhaustive()
    }
}

impl<const RX: usize, const TX: usize> Channel<RX, TX> {
    /// Takes over a connected `AF_UNIX` stream socket (and puts it in
    /// blocking mode, see above).
    ///
    /// # Errors
    /// [`Error::Io`] with `ENOTSOCK` for a descriptor that is not a socket,
    /// `EINVAL` for a socket that is not `SOCK_STREAM` (the descriptor is
    /// closed either way). The address family is not checked: a TCP
    /// stream is accepted, but descriptors cannot travel over it.
    pub fn new(sock: impl Into<OwnedFd>) -> Result<Self, Error> {
        let sock = sock.into();
        if rustix::net::sockopt::socket_type(&sock)? != SocketType::STREAM {
            return Err(Error::Io(rustix::io::Errno::INVAL.into()));
        }
        rustix::io::ioctl_fionbio(&sock, false)?;
        Ok(Channel {
            sock,
            rx: Rx::new(DEFAULT_LIMIT),
            tx: Tx::new(DEFAULT_LIMIT),
            closed: false,
            timeout: None,
        })
    }

    /// Two connected channels (`socketpair(2)`, close-on-exec).
    ///
    /// # Errors
    /// [`Error::Io`] from `socketpair(2)`: `EMFILE`/`ENFILE` when out of
    /// descriptors, `ENOMEM`/`ENOBUFS` when out of memory.
    pub fn pair() -> Result<(Self, Self), Error> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Self::new(a)?, Self::new(b)?))
    }

    /// Bounds the memory each direction may take (with `std`; without it
    /// the buffers are fixed): a received line longer than `bytes` is
    /// skipped with [`Error::FrameTooLong`], a message longer than `bytes`
    /// is refused with [`Error::MessageTooLarge`], and undelivered messages
    /// stop being read ahead at `bytes` ([`Error::ReceiveBufferFull`] if a
    /// waiting call then cannot progress). Nothing already accepted is
    /// dropped. Default: [`DEFAULT_LIMIT`], 1 GiB.
    pub fn set_limit(&mut self, bytes: usize) {
        self.rx.set_limit(bytes);
        self.tx.set_limit(bytes);
    }

    /// How long each blocking call may wait before it gives up with
    /// [`Error::TimedOut`] (`None`, the default: as long as it takes).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// How long each blocking call may wait (see
    /// [`set_timeout`](Self::set_timeout)).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(self.timeout)
    }

    /// Sends `msg` and waits until it is written to the kernel, reading
    /// what the peer sends meanwhile. Behind an unacknowledged handle that
    /// includes waiting for the peer's ACK.
    ///
    /// # Errors
    /// [`Error::Disconnected`] once the peer is gone, [`Error::Encode`] /
    /// [`Error::MessageTooLarge`] for a message that cannot be sent,
    /// [`Error::TimedOut`] past the [timeout](Self::set_timeout) (the message
    /// stays queued), [`Error::ReceiveBufferFull`] when waiting would need
    /// more room than the limit gives.
    pub fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        let deadline = self.deadline();
        self.push_waiting(deadline, msg)?;
        self.wait_written(deadline)
    }

    /// Queues `msg` without writing it yet, so that many messages leave in
    /// one write. It goes out at the next flush point: [`flush`],
    /// [`try_flush`], [`send`], any [`recv`]/[`try_recv`] (before it reads),
    /// [`disconnect`], dropping the channel (best effort, without waiting),
    /// or when the send buffer is full: then `queue` writes what is queued,
    /// waiting for room (and reading meanwhile) if the socket is full.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// [`flush`]: Self::flush
    /// [`try_flush`]: Self::try_flush
    /// [`send`]: Self::send
    /// [`recv`]: Self::recv
    /// [`try_recv`]: Self::try_recv
    /// [`disconnect`]: Self::disconnect
    pub fn queue<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        let deadline = self.deadline();
        self.push_waiting(deadline, msg)
    }

    /// Queues a plain frame, waiting for room while the buffer is full.
    fn push_waiting<T: Serialize + ?Sized>(
        &mut self,
        deadline: Deadline,
        msg: &T,
    ) -> Result<(), Error> {
        self.check_open()?;
        loop {
            match self
                .tx
                .push_frame(Room::Wait, |buf| wire::plain_frame(buf, msg))
            {
                Err(Error::WouldBlock) => {
                    write_now(&mut self.tx, self.sock.as_fd());
                    if self.tx.wants_write() || self.tx.awaiting_ack() {
                        self.step(deadline, true)?;
                    }
                }
                other => return other,
            }
        }
    }

    /// Queues `msg` and writes what can be written without blocking. With
    /// `std` the send buffer grows to take it (up to the limit).
    ///
    /// # Errors
    /// `WouldBlock` when it was not queued: the buffer is at the limit
    /// (without `std`: full). Otherwise as [`send`](Self::send).
    pub fn try_send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.check_open()?;
        self.tx
            .push_frame(Room::Grow, |buf| wire::plain_frame(buf, msg))?;
        write_now(&mut self.tx, self.sock.as_fd());
        Ok(())
    }

    /// Queues `msg` like [`queue`](Self::queue), but never waits: when the
    /// send buffer is full it writes what the socket takes now, and if the
    /// message still does not fit, gives `Err(WouldBlock)` (wait for the
    /// socket to be writable, while [`wants_write`](Self::wants_write), or
    /// for the peer's ACK, which [`try_read_ahead`](Self::try_read_ahead)
    /// reads, and try again). A message longer than the whole buffer grows
    /// it, up to the limit. For event loops and async runtimes: the buffer
    /// stays bounded as with `queue`.
    ///
    /// # Errors
    /// `WouldBlock` as said; otherwise as [`send`](Self::send).
    pub fn try_queue<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.check_open()?;
        match self
            .tx
            .push_frame(Room::Wait, |buf| wire::plain_frame(buf, msg))
        {
            Err(Error::WouldBlock) => {
                write_now(&mut self.tx, self.sock.as_fd());
                self.tx
                    .push_frame(Room::Wait, |buf| wire::plain_frame(buf, msg))
            }
            other => other,
        }
    }

    /// Sends `msg` with `handle` in a `NODE_HANDLE` wrapper and waits for
    /// its [fate](Fate): `Ok` once the peer acknowledged it (the channel has
    /// closed its own copy of the descriptor by then).
    ///
    /// # Errors
    /// A [`SendError`] with the handle back whenever the peer did not take
    /// it: refused after Node's retransmissions
    /// ([`Error::HandleNotReceived`]), the channel closed
    /// ([`Error::Disconnected`]), or it could not be queued. Past the
    /// [timeout](Self::set_timeout), `TimedOut`: with the handle if it was
    /// still queued (it is withdrawn), else without it, and its fate comes
    /// later from [`next_fate`](Self::next_fate).
    ///
    /// ```
    /// use ipc_core::{Channel, Error, Handle, HandleKind};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (mut parent, mut child) = Channel::<4096, 4096>::pair()?;
    /// // The ACK comes only once the child reads: here, in a thread.
    /// let receiver = std::thread::spawn(move || -> Result<bool, Error> {
    ///     Ok(child.recv()?.take_handle().is_some())
    /// });
    /// let (_ours, theirs) = UnixStream::pair()?;
    /// parent.send_handle("conn", Handle::new(HandleKind::Socket, theirs))?;
    /// assert!(receiver.join().unwrap()?);
    ///
    /// // The child is gone now: the next handle comes back with the error.
    /// let (_ours, theirs) = UnixStream::pair()?;
    /// let failed = parent
    ///     .send_handle("conn", Handle::new(HandleKind::Socket, theirs))
    ///     .unwrap_err();
    /// assert_eq!(failed.error, Error::Disconnected);
    /// assert!(failed.handle.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::result_large_err)] // the handle comes back inline: no allocator
    pub fn send_handle<T: Serialize + ?Sized>(
        &mut self,
        msg: &T,
        handle: Handle,
    ) -> Result<(), SendError> {
        let deadline = self.deadline();
        let ticket = self.push_handle_waiting(deadline, msg, handle)?;
        loop {
            write_now(&mut self.tx, self.sock.as_fd());
            match self.tx.take_fate(ticket) {
                Some(Fate::Acknowledged(_)) => return Ok(()),
                Some(Fate::Returned { handle, reason, .. }) => {
                    return Err(SendError {
                        error: reason,
                        handle: Some(handle),
                    })
                }
                None => {}
            }
            if let Err(error) = self.step(deadline, true) {
                if error.is_fatal() {
                    // Every handle not acknowledged becomes a fate: take it.
                    self.tx.fail(error);
                    continue;
                }
                return Err(SendError {
                    error,
                    handle: self.tx.withdraw(ticket),
                });
            }
        }
    }

    /// Queues a handle, waiting for room; the ticket of its hand-off.
    #[allow(clippy::result_large_err)] // the handle comes back inline
    fn push_handle_waiting<T: Serialize + ?Sized>(
        &mut self,
        deadline: Deadline,
        msg: &T,
        mut handle: Handle,
    ) -> Result<Ticket, SendError> {
        loop {
            if let Err(error) = self.check_open() {
                return Err(SendError {
                    error,
                    handle: Some(handle),
                });
            }
            match self
                .tx
                .push_handle(Room::Wait, handle, |buf, h| wire::handle_frame(buf, msg, h))
            {
                Ok(ticket) => return Ok(ticket),
                Err((Error::WouldBlock | Error::HandleQueueFull, h)) => {
                    handle = h;
                    write_now(&mut self.tx, self.sock.as_fd());
                    if let Err(error) = self.step(deadline, true) {
                        return Err(SendError {
                            error,
                            handle: Some(handle),
                        });
                    }
                }
                Err((error, h)) => {
                    return Err(SendError {
                        error,
                        handle: Some(h),
                    })
                }
            }
        }
    }

    /// Hands `handle` over without waiting: queues it with `msg` and writes
    /// what can be written now. Its [`Fate`] (acknowledged, or returned
    /// with the handle) comes later from [`next_fate`](Self::next_fate),
    /// under the ticket returned here.
    ///
    /// # Errors
    /// A [`SendError`] with the handle when it was not queued: the channel
    /// is closed, the message cannot be encoded or exceeds the limit, or
    /// (without `std`) the queue is full (`HandleQueueFull`, `WouldBlock`).
    #[allow(clippy::result_large_err)] // the handle comes back inline: no allocator
    pub fn queue_handle<T: Serialize + ?Sized>(
        &mut self,
        msg: &T,
        handle: Handle,
    ) -> Result<Ticket, SendError> {
        if let Err(error) = self.check_open() {
            return Err(SendError {
                error,
                handle: Some(handle),
            });
        }
        let ticket = self
            .tx
            .push_handle(Room::Grow, handle, |buf, h| wire::handle_frame(buf, msg, h))
            .map_err(|(error, h)| SendError {
                error,
                handle: Some(h),
            })?;
        write_now(&mut self.tx, self.sock.as_fd());
        Ok(ticket)
    }

    /// The next [`Fate`] of a handle sent with
    /// [`queue_handle`](Self::queue_handle) (or whose `send_handle` timed
    /// out), in the order they became known. Fates are learnt while the
    /// channel reads: from any receive, or a call that waits.
    pub fn next_fate(&mut self) -> Option<Fate> {
        self.tx.next_fate()
    }

    /// The [`Fate`] of the hand-off `ticket` if it is known, taken out of
    /// the order [`next_fate`](Self::next_fate) gives (the other fates stay
    /// there). For a caller that waits for one hand-off without blocking.
    pub fn take_fate(&mut self, ticket: Ticket) -> Option<Fate> {
        self.tx.take_fate(ticket)
    }

    /// Takes a queued handle back if none of it has been written yet (it
    /// waits behind an unacknowledged one); `None` once it is on the wire,
    /// where only its fate can tell.
    pub fn withdraw(&mut self, ticket: Ticket) -> Option<Handle> {
        self.tx.withdraw(ticket)
    }

    /// Waits until everything queued is written, reading the peer's
    /// messages and acknowledgements meanwhile (messages stay buffered for
    /// [`recv`](Self::recv)).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.check_open()?;
        let deadline = self.deadline();
        self.wait_written(deadline)
    }

    fn wait_written(&mut self, deadline: Deadline) -> Result<(), Error> {
        loop {
            write_now(&mut self.tx, self.sock.as_fd());
            self.check_open()?;
            if self.tx.is_written() {
                return Ok(());
            }
            self.step(deadline, true)?;
        }
    }

    /// Writes what can be written without blocking. `Err(WouldBlock)` while
    /// [`wants_write`](Self::wants_write) stays true.
    ///
    /// # Errors
    /// `WouldBlock` as said; `Disconnected` once the peer is gone.
    pub fn try_flush(&mut self) -> Result<(), Error> {
        self.check_open()?;
        write_now(&mut self.tx, self.sock.as_fd());
        self.check_open()?;
        if self.tx.wants_write() {
            return Err(Error::WouldBlock);
        }
        Ok(())
    }

    /// Whether queued bytes could be written now: poll for writability while
    /// this is true. (Bytes held behind an unacknowledged handle need the
    /// peer's ACK instead, which [`try_recv`](Self::try_recv) reads.)
    pub fn wants_write(&self) -> bool {
        self.tx.wants_write()
    }

    /// Whether everything queued has been written to the kernel (a handle
    /// may still await its ACK, with nothing held behind it). What
    /// [`flush`](Self::flush) waits for.
    pub fn is_written(&self) -> bool {
        self.tx.is_written()
    }

    /// Reads once without waiting and puts every complete line through the
    /// protocol, as a waiting call does meanwhile: the peer's ACKs and
    /// NACKs take effect (fates become known), its handles are answered,
    /// its messages are kept for [`recv`](Self::recv). Then writes what is
    /// owed. For event loops and async runtimes, when the socket is
    /// readable while they wait to write or for a fate.
    ///
    /// # Errors
    /// `WouldBlock` when nothing was there to read; `Disconnected` once the
    /// peer has closed (or the channel was closed); `ReceiveBufferFull`
    /// when nothing more can be stored until messages are received; a
    /// fatal `Io` error when reading failed (the channel is closed then).
    pub fn try_read_ahead(&mut self) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Disconnected);
        }
        if !self.rx.can_read() {
            if self.rx.eof() {
                self.peer_gone();
                return Err(Error::Disconnected);
            }
            return Err(Error::ReceiveBufferFull);
        }
        let read = self.read(Wait::DontWait);
        self.read_ahead();
        read
    }

    /// Handles queued or sent whose fate is not known yet.
    pub fn handles_in_flight(&self) -> usize {
        self.tx.in_flight()
    }

    /// Whether the channel is still open: no EOF from the peer, no failed
    /// write, no [`disconnect`](Self::disconnect).
    pub fn is_connected(&self) -> bool {
        !self.closed && !self.rx.eof() && self.tx.dead().is_none()
    }

    /// Waits for the next message. Errors that concern one bad frame leave
    /// the channel usable ([`Error::is_fatal`] is false for them): log them
    /// and call again. After the peer hung up, the messages it sent before
    /// still arrive, then `Err(Disconnected)`.
    ///
    /// # Errors
    /// `Disconnected` at the end; `TimedOut` past the
    /// [timeout](Self::set_timeout); a non-fatal error for a bad frame.
    pub fn recv(&mut self) -> Result<Message<'_>, Error> {
        match self.receive(Some(self.deadline()), false)? {
            Got::Line(at, parsed) => Ok(self.rx.message(at, parsed)),
            Got::Fate(_) => unreachable!("fates are not asked for"),
        }
    }

    /// The next message if one can be had without blocking, else
    /// `Err(WouldBlock)`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv), plus `WouldBlock`.
    pub fn try_recv(&mut self) -> Result<Message<'_>, Error> {
        match self.receive(None, false)? {
            Got::Line(at, parsed) => Ok(self.rx.message(at, parsed)),
            Got::Fate(_) => unreachable!("fates are not asked for"),
        }
    }

    /// Waits for the next message, or for the [`Fate`] of a handle sent
    /// without waiting, whichever is known first. A message comes with a
    /// [`Sender`] usable while it is borrowed: to answer a query, or echo
    /// it, without copying it first.
    ///
    /// ```
    /// use ipc_core::{Channel, Fate, Handle, HandleKind, Incoming};
    ///
    /// let (mut parent, mut child) = Channel::<4096, 4096>::pair()?;
    /// let (_ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    /// let ticket = parent.queue_handle("conn", Handle::new(HandleKind::Socket, theirs))?;
    /// child.send(&"hello")?;
    /// child.recv()?.take_handle(); // the child ACKs as it reads
    ///
    /// let (mut answered, mut acknowledged) = (false, false);
    /// while !(answered && acknowledged) {
    ///     match parent.recv_incoming()? {
    ///         Incoming::Message(msg, mut sender) => {
    ///             assert_eq!(msg.as_str(), "\"hello\"");
    ///             sender.try_send("hello back")?; // while `msg` is borrowed
    ///             answered = true;
    ///         }
    ///         Incoming::Fate(fate) => {
    ///             assert!(matches!(fate, Fate::Acknowledged(t) if t == ticket));
    ///             acknowledged = true;
    ///         }
    ///     }
    /// }
    /// assert_eq!(child.recv()?.as_str(), "\"hello back\"");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    #[inline(always)]
    pub fn recv_incoming(&mut self) -> Result<Incoming<'_, TX>, Error> {
        let got = self.receive(Some(self.deadline()), true)?;
        Ok(self.incoming(got))
    }

    /// [`recv_incoming`](Self::recv_incoming) without waiting: `Err(WouldBlock)` when
    /// nothing is ready.
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv).
    #[inline(always)]
    pub fn try_recv_incoming(&mut self) -> Result<Incoming<'_, TX>, Error> {
        let got = self.receive(None, true)?;
        Ok(self.incoming(got))
    }

    #[inline(always)]
    fn incoming(&mut self, got: Got) -> Incoming<'_, TX> {
        match got {
            Got::Fate(fate) => Incoming::Fate(fate),
            Got::Line(at, parsed) => {
                let sender = Sender {
                    tx: &mut self.tx,
                    sock: self.sock.as_fd(),
                };
                Incoming::Message(self.rx.message(at, parsed), sender)
            }
        }
    }

    /// Shows `f` each internal message (one without a handle) that a wait
    /// read ahead of its delivery, once, in order, with a [`Sender`] to
    /// answer it at once; the message is still delivered later, marked
    /// [`was_peeked`](Message::was_peeked). For the layer that answers
    /// queries as Node does, as soon as they are read, even in a process
    /// that only sends.
    ///
    /// ```
    /// use ipc_core::{json::RawJson, Channel};
    ///
    /// let (mut a, mut b) = Channel::<4096, 4096>::pair()?;
    /// b.send(&RawJson::new(r#"{"cmd":"NODE_x_QUERY"}"#)?)?;
    /// a.try_read_ahead()?; // as a wait to write does
    /// let mut seen = Vec::new();
    /// a.peek_internal(|msg, _sender| seen.push(msg.cmd().unwrap_or_default().to_owned()));
    /// assert_eq!(seen, ["NODE_x_QUERY"]);
    /// let msg = a.recv()?;
    /// assert!(msg.was_peeked() && msg.cmd() == Some("NODE_x_QUERY"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peek_internal(&mut self, mut f: impl FnMut(&Message<'_>, &mut Sender<'_, TX>)) {
        let mut sender = Sender {
            tx: &mut self.tx,
            sock: self.sock.as_fd(),
        };
        self.rx.peek_internal(|msg| f(msg, &mut sender));
    }

    /// Whether something is ready for [`try_recv_incoming`](Self::try_recv_incoming)
    /// without reading the socket: a message or error from a buffered line,
    /// a fate, the end. Cheap (no system call): for pollers, before they
    /// wait, about what a blocking call on this channel read ahead. The
    /// buffered line it looks at is parsed once, here, for the receive
    /// that follows.
    pub fn is_ready(&mut self) -> bool {
        self.closed || self.rx.has_event() || self.tx.has_fate() || self.take_buffered()
    }

    /// Processes buffered lines (acknowledgements take effect, as when
    /// read) until one makes an event, which is kept for the next receive;
    /// whether there is one (or the end).
    fn take_buffered(&mut self) -> bool {
        loop {
            match inbound::next(&mut self.rx, &mut self.tx) {
                Some(record) => {
                    if matches!(record.what, What::Skip) {
                        self.rx.deliver_direct();
                        if self.tx.has_fate() {
                            write_now(&mut self.tx, self.sock.as_fd());
                            return true;
                        }
                        continue;
                    }
                    self.rx.push_record(record);
                    write_now(&mut self.tx, self.sock.as_fd());
                    return true;
                }
                None => return self.rx.eof(),
            }
        }
    }

    /// Reads without blocking until something is ready for
    /// [`try_recv_incoming`](Self::try_recv_incoming) (a message, a fate, an error, the
    /// end); whether it is. For pollers: a readable socket may hold only
    /// part of a line, or only an acknowledgement.
    pub fn prepare(&mut self) -> bool {
        loop {
            if self.is_ready() {
                return true;
            }
            write_now(&mut self.tx, self.sock.as_fd());
            match self.read(Wait::DontWait) {
                Ok(()) => {}
                Err(Error::WouldBlock) => return false,
                Err(_) => return true,
            }
        }
    }

    /// Closes the channel the way Node's `disconnect()` does: what is queued
    /// is written first (waiting for an outstanding handle's ACK), then the
    /// peer sees EOF. Handles still unacknowledged come back as fates.
    ///
    /// # Errors
    /// `Disconnected` the second time; `TimedOut` if writing did not finish
    /// within the [timeout](Self::set_timeout) (the channel is closed
    /// anyway).
    pub fn disconnect(&mut self) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Disconnected);
        }
        let deadline = self.deadline();
        let mut r = self.wait_written(deadline);
        while r.is_ok() && self.tx.awaiting_ack() {
            r = self.step(deadline, true);
        }
        if r == Err(Error::Disconnected) {
            r = Ok(());
        }
        let _ = rustix::net::shutdown(&self.sock, Shutdown::Both);
        self.closed = true;
        self.tx.fail(Error::Disconnected);
        r
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Disconnected);
        }
        match self.tx.dead() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Marks the peer gone for sending: every handle not acknowledged
    /// becomes a returned fate.
    fn peer_gone(&mut self) {
        self.tx.fail(Error::Disconnected);
    }

    /// Waits once for the socket, readable always (unless nothing more can
    /// be stored) and writable while something can be written; then reads
    /// what came. With `ahead`, the lines read go through the protocol at
    /// once (so a waiting sender sees its acknowledgements and the peer's
    /// handles are answered), kept as records for delivery.
    fn step(&mut self, deadline: Deadline, ahead: bool) -> Result<(), Error> {
        let out = self.tx.wants_write();
        let can_read = self.rx.can_read();
        if !out && !can_read {
            if self.rx.eof() {
                self.peer_gone();
                return Err(Error::Disconnected);
            }
            return Err(Error::ReceiveBufferFull);
        }
        let read = if can_read && !out && !deadline.is_set() {
            // Only the peer can move things on: wait inside recvmsg.
            self.read(Wait::AsSocket)
        } else {
            let mut events = PollFlags::empty();
            if out {
                events |= PollFlags::OUT;
            }
            if can_read {
                events |= PollFlags::IN;
            }
            match sys::wait(self.sock.as_fd(), events, deadline)? {
                None => return Err(Error::TimedOut),
                Some(ready)
                    if ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) =>
                {
                    if can_read {
                        self.read(Wait::DontWait)
                    } else {
                        Ok(())
                    }
                }
                Some(_) => Ok(()),
            }
        };
        match read {
            Ok(()) | Err(Error::WouldBlock) => {}
            Err(e) => return Err(e),
        }
        if ahead {
            self.read_ahead();
        }
        Ok(())
    }

    /// Reads once; EOF marks the peer gone for sending.
    fn read(&mut self, wait: Wait) -> Result<(), Error> {
        match self.rx.read(self.sock.as_fd(), wait) {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.peer_gone();
                Ok(())
            }
            Err(e) if e.is_fatal() => {
                self.closed = true;
                self.peer_gone();
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Puts every complete line buffered through the protocol, keeping a
    /// record of each for delivery (an ACK/NACK that is next in line is
    /// just dropped).
    fn read_ahead(&mut self) {
        while self.rx.can_record() {
            let Some(record) = inbound::next(&mut self.rx, &mut self.tx) else {
                break;
            };
            if matches!(record.what, What::Skip) && !self.rx.has_record() {
                self.rx.deliver_direct();
                continue;
            }
            self.rx.push_record(record);
        }
        write_now(&mut self.tx, self.sock.as_fd());
    }

    /// The next line to deliver (its position and what it holds), or with
    /// `fates` the next fate if one is known first. Waits
    /// until `deadline` when one is given, else not at all.
    #[inline(always)]
    fn receive(&mut self, deadline: Option<Deadline>, fates: bool) -> Result<Got, Error> {
        self.rx.forget_handle();
        if self.closed {
            return Err(Error::Disconnected);
        }
        loop {
            if fates {
                if let Some(fate) = self.tx.next_fate() {
                    return Ok(Got::Fate(fate));
                }
            }
            let (at, record) = match self.rx.pop_record() {
                Some(got) => got,
                None => match inbound::next(&mut self.rx, &mut self.tx) {
                    Some(record) => (self.rx.deliver_direct(), record),
                    None => {
                        match self.fill(deadline) {
                            // Handles that came back when the peer left
                            // are reported before the end.
                            Err(Error::Disconnected) if fates && self.tx.has_fate() => {}
                            r => r?,
                        }
                        continue;
                    }
                },
            };
            write_now(&mut self.tx, self.sock.as_fd());
            match record.what {
                What::Skip => continue,
                What::Fail(e) => return Err(e),
                What::Deliver(parsed) => return Ok(Got::Line(at, parsed)),
            }
        }
    }

    /// Gets more bytes for [`receive`](Self::receive): writes what is
    /// owed, then reads, waiting until `deadline` if one is given.
    fn fill(&mut self, deadline: Option<Deadline>) -> Result<(), Error> {
        write_now(&mut self.tx, self.sock.as_fd());
        if self.rx.eof() {
            self.peer_gone();
            return Err(Error::Disconnected);
        }
        match deadline {
            None => match self.read(Wait::DontWait) {
                // Bytes came, or EOF: look again.
                Ok(()) => Ok(()),
                Err(Error::WouldBlock) => Err(Error::WouldBlock),
                Err(e) => Err(e),
            },
            Some(deadline) => self.step(deadline, false),
        }
    }
}

impl<const RX: usize, const TX: usize> Drop for Channel<RX, TX> {
    /// Writes what is queued if the socket takes it now; never waits.
    fn drop(&mut self) {
        if !self.closed {
            write_now(&mut self.tx, self.sock.as_fd());
        }
    }
}

impl<const RX: usize, const TX: usize> AsFd for Channel<RX, TX> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
