//! [`Channel`]: one end of Node's IPC channel over a UNIX stream socket.

use rustix::event::PollFlags;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType};
use serde::Serialize;

use crate::envelope::{self, Envelope};

use crate::error::{Error, SendError};
use crate::fdqueue::Claim;
use crate::handle::Handle;
use crate::json::scan::Span;
use crate::message::Message;
use crate::rx::{Delivery, Json, Line, Next, Rx, MARK_DONE, MARK_GAVE_UP, MARK_STRAY};
use crate::sys::{self, Wait};
use crate::tx::{kind_code, kind_from_code, Reply, Tx};
use crate::wire;

/// Default capacity of each of the receive and send buffers: 64 KiB, the size
/// of libuv's own read buffer. The receive capacity is the longest line that
/// can be received; the send capacity the longest that can be sent.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;

/// One end of a Node-compatible IPC channel.
///
/// `RX` and `TX` are the receive and send buffer sizes in bytes. With the
/// `std` feature they are allocated once, when the channel is made; without
/// it they live inside the `Channel` (128 KiB with the defaults: keep it in
/// a `static`). Sending and receiving never allocate.
///
/// The socket is put in blocking mode: a blocking receive waits inside
/// `recvmsg(2)` (one system call per read), and every call that must not
/// wait passes `MSG_DONTWAIT`. So every `try_` call is usable from a
/// poller: register [`AsFd`] for readability always, and for writability
/// while [`wants_write`] is true. Do not read or write the socket yourself.
///
/// [`wants_write`]: Channel::wants_write
pub struct Channel<const RX: usize = DEFAULT_CAPACITY, const TX: usize = DEFAULT_CAPACITY> {
    sock: OwnedFd,
    rx: Rx<RX>,
    tx: Tx<TX>,
    closed: bool,
}

/// What processing one received line came to.
#[allow(clippy::large_enum_variant)] // short-lived; boxing would allocate
enum Outcome {
    Deliver(Delivery),
    Skip,
    Fail(Error),
}

/// Sends while a received [`Message`] is still borrowed (see
/// [`Channel::recv_with_sender`]): queues and writes without blocking.
pub struct Sender<'a, const TX: usize> {
    tx: &'a mut Tx<TX>,
    sock: BorrowedFd<'a>,
    closed: &'a mut bool,
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
    pub fn try_send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        if *self.closed {
            return Err(Error::Disconnected);
        }
        self.tx.push_frame(|buf| wire::plain_frame(buf, msg))?;
        match self.tx.flush(self.sock) {
            Ok(()) | Err(Error::WouldBlock) => Ok(()),
            Err(e) => {
                *self.closed |= e.is_fatal();
                Err(e)
            }
        }
    }
}

impl<const RX: usize, const TX: usize> core::fmt::Debug for Channel<RX, TX> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Channel")
            .field("sock", &self.sock)
            .field("closed", &self.closed)
            .field("handles_in_flight", &self.tx.handles_in_flight())
            .finish_non_exhaustive()
    }
}

impl<const RX: usize, const TX: usize> Channel<RX, TX> {
    /// Takes over a connected `AF_UNIX` stream socket (and puts it in
    /// blocking mode, see above). Fails with `ENOTSOCK`/`EINVAL` for
    /// anything else.
    pub fn new(sock: impl Into<OwnedFd>) -> Result<Self, Error> {
        let sock = sock.into();
        if rustix::net::sockopt::socket_type(&sock)? != SocketType::STREAM {
            return Err(Error::Io(rustix::io::Errno::INVAL));
        }
        rustix::io::ioctl_fionbio(&sock, false)?;
        Ok(Channel {
            sock,
            rx: Rx::new(),
            tx: Tx::new(),
            closed: false,
        })
    }

    /// Two connected channels (`socketpair(2)`, close-on-exec).
    pub fn pair() -> Result<(Self, Self), Error> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Self::new(a)?, Self::new(b)?))
    }

    /// Sends `msg` and waits until it is written to the kernel. Behind an
    /// unacknowledged handle that includes waiting for the peer's ACK.
    pub fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.check_open()?;
        loop {
            match self.tx.push_frame(|buf| wire::plain_frame(buf, msg)) {
                Err(Error::WouldBlock) => self.step(true)?,
                other => break other?,
            }
        }
        self.flush()
    }

    /// Queues `msg` without writing it yet, so that many messages leave in
    /// one `sendmsg`. It goes out at the next flush point: [`flush`],
    /// [`try_flush`], [`send`], [`send_handle`], any [`recv`]/[`try_recv`]
    /// (before it reads), [`disconnect`], dropping the channel (best effort,
    /// without waiting), or when the send buffer is full: then `queue`
    /// writes what is queued, waiting for room if the socket is full.
    ///
    /// [`flush`]: Self::flush
    /// [`try_flush`]: Self::try_flush
    /// [`send`]: Self::send
    /// [`send_handle`]: Self::send_handle
    /// [`recv`]: Self::recv
    /// [`try_recv`]: Self::try_recv
    /// [`disconnect`]: Self::disconnect
    pub fn queue<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.check_open()?;
        loop {
            match self.tx.push_frame(|buf| wire::plain_frame(buf, msg)) {
                Err(Error::WouldBlock) => self.step(true)?,
                other => return other,
            }
        }
    }

    /// Queues `msg` and writes what can be written without blocking.
    /// `Err(WouldBlock)` if the send buffer has no room for it now (it was
    /// not queued).
    pub fn try_send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), Error> {
        self.check_open()?;
        self.tx.push_frame(|buf| wire::plain_frame(buf, msg))?;
        self.flush_quietly()
    }

    /// Sends `msg` with `handle` in a `NODE_HANDLE` wrapper, and waits until
    /// it is written (not until the peer has it: the channel keeps the
    /// descriptor open until the peer's ACK, then closes it). On failure
    /// before the handle was queued, it comes back in the error.
    #[allow(clippy::result_large_err)] // the handle comes back inline: no allocator
    pub fn send_handle<T: Serialize + ?Sized>(
        &mut self,
        msg: &T,
        handle: Handle,
    ) -> Result<(), SendError> {
        let mut handle = handle;
        loop {
            if let Err(error) = self.check_open() {
                return Err(SendError {
                    error,
                    handle: Some(handle),
                });
            }
            match self
                .tx
                .push_handle(handle, |buf, h| wire::handle_frame(buf, msg, h))
            {
                Ok(()) => break,
                Err((Error::WouldBlock | Error::HandleQueueFull, h)) => {
                    handle = h;
                    if let Err(error) = self.step(true) {
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
        self.flush().map_err(|error| {
            // A handle that never went out is still the caller's.
            let handle = if error.is_fatal() {
                self.tx.reclaim_unsent()
            } else {
                None
            };
            SendError { error, handle }
        })
    }

    /// [`send_handle`](Self::send_handle) without blocking: queues the
    /// handle message and writes what it can. `WouldBlock` or
    /// `HandleQueueFull` hand the handle back.
    #[allow(clippy::result_large_err)] // the handle comes back inline: no allocator
    pub fn try_send_handle<T: Serialize + ?Sized>(
        &mut self,
        msg: &T,
        handle: Handle,
    ) -> Result<(), SendError> {
        if let Err(error) = self.check_open() {
            return Err(SendError {
                error,
                handle: Some(handle),
            });
        }
        self.tx
            .push_handle(handle, |buf, h| wire::handle_frame(buf, msg, h))
            .map_err(|(error, h)| SendError {
                error,
                handle: Some(h),
            })?;
        self.flush_quietly().map_err(|error| SendError {
            error,
            handle: None,
        })
    }

    /// Waits until everything queued is written, reading the peer's
    /// acknowledgements as needed (messages that arrive meanwhile stay
    /// buffered for [`recv`](Self::recv)).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.check_open()?;
        while !self.tx.is_written() {
            self.step(false)?;
        }
        Ok(())
    }

    /// Waits until every handle sent has been acknowledged (or given up
    /// after NACKs) and everything queued is written: the channel's copies
    /// of the descriptors are closed by then.
    pub fn wait_acks(&mut self) -> Result<(), Error> {
        self.flush()?;
        while self.tx.handles_in_flight() > 0 {
            self.step(true)?;
        }
        self.flush()
    }

    /// After the channel closed: a handle that was sent but never
    /// acknowledged, back to the caller (the channel still held its copy).
    /// The peer may or may not have used it before it went away. Call again
    /// for the next; `None` when there are no more. Handles queued behind it
    /// come back too, in order.
    pub fn take_unacknowledged(&mut self) -> Option<Handle> {
        if !self.closed {
            return None;
        }
        self.tx
            .reclaim_unacknowledged()
            .or_else(|| self.tx.reclaim_unsent())
    }

    /// Writes what can be written without blocking. `Err(WouldBlock)` while
    /// [`wants_write`](Self::wants_write) stays true.
    pub fn try_flush(&mut self) -> Result<(), Error> {
        self.check_open()?;
        let r = self.tx.flush(self.sock.as_fd());
        self.note(r)
    }

    /// Whether queued bytes could be written now: poll for writability while
    /// this is true. (Bytes held behind an unacknowledged handle need the
    /// peer's ACK instead, which [`try_recv`](Self::try_recv) reads.)
    pub fn wants_write(&self) -> bool {
        self.tx.wants_write()
    }

    /// Handles sent or queued whose ACK has not arrived yet.
    pub fn handles_in_flight(&self) -> usize {
        self.tx.handles_in_flight()
    }

    /// Whether the channel is still open (no EOF, no disconnect).
    pub fn is_connected(&self) -> bool {
        !self.closed
    }

    /// Waits for the next message. Errors that concern one bad frame leave
    /// the channel usable ([`Error::is_fatal`] is false for them).
    pub fn recv(&mut self) -> Result<Message<'_>, Error> {
        let d = self.receive(true)?;
        Ok(self.rx.message(d))
    }

    /// The next message if one can be had without blocking, else
    /// `Err(WouldBlock)`.
    pub fn try_recv(&mut self) -> Result<Message<'_>, Error> {
        let d = self.receive(false)?;
        Ok(self.rx.message(d))
    }

    /// [`recv`](Self::recv) (or, with `block == false`, `try_recv`), plus a
    /// [`Sender`] usable while the message is borrowed: to answer a query
    /// before handing the message on.
    pub fn recv_with_sender(
        &mut self,
        block: bool,
    ) -> Result<(Message<'_>, Sender<'_, TX>), Error> {
        let d = self.receive(block)?;
        let sender = Sender {
            tx: &mut self.tx,
            sock: self.sock.as_fd(),
            closed: &mut self.closed,
        };
        Ok((self.rx.message(d), sender))
    }

    /// Closes the channel the way Node's `disconnect()` does: what is queued
    /// is written first (waiting for an outstanding handle's ACK), then the
    /// peer sees EOF. A second call is `Err(Disconnected)`.
    pub fn disconnect(&mut self) -> Result<(), Error> {
        self.check_open()?;
        let mut r = self.flush();
        while r.is_ok() && self.tx.awaiting_ack() {
            r = self.step(true);
        }
        let _ = rustix::net::shutdown(&self.sock, Shutdown::Both);
        self.closed = true;
        r
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.closed {
            Err(Error::Disconnected)
        } else {
            Ok(())
        }
    }

    /// Marks the channel closed on fatal errors, passing the error on.
    fn note(&mut self, r: Result<(), Error>) -> Result<(), Error> {
        if let Err(e) = r {
            if e.is_fatal() {
                self.closed = true;
            }
        }
        r
    }

    /// Writes what it can; a full socket is not an error here.
    fn flush_quietly(&mut self) -> Result<(), Error> {
        if !self.tx.wants_write() {
            return Ok(());
        }
        match self.tx.flush(self.sock.as_fd()) {
            Err(Error::WouldBlock) => Ok(()),
            r => self.note(r),
        }
    }

    /// One blocking step for a sender: write what can be written, else wait
    /// until writing is possible or an acknowledgement can be read. Waits
    /// for an ACK when `need_ack` (it frees buffer or queue room), or when
    /// bytes are held behind the unacknowledged handle.
    fn step(&mut self, need_ack: bool) -> Result<(), Error> {
        self.check_open()?;
        self.flush_quietly()?;
        let mut events = PollFlags::empty();
        if self.tx.wants_write() {
            events |= PollFlags::OUT;
        }
        if self.tx.awaiting_ack() && (need_ack || !self.tx.is_written()) {
            events |= PollFlags::IN;
        }
        if events.is_empty() {
            return Ok(());
        }
        if events == PollFlags::IN {
            // Only an answer can move things on: wait for it in recvmsg.
            return self.read_ahead(Wait::AsSocket);
        }
        let ready = sys::wait(self.sock.as_fd(), events)?;
        if ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            self.read_ahead(Wait::DontWait)?;
        }
        Ok(())
    }

    /// Reads without delivering, and handles any ACK/NACK found.
    fn read_ahead(&mut self, wait: Wait) -> Result<(), Error> {
        let r = match self.rx.read(self.sock.as_fd(), wait) {
            Ok(true) | Err(Error::WouldBlock) => Ok(()),
            Ok(false) => Err(Error::Disconnected),
            Err(e) => Err(e),
        };
        self.note(r)?;
        while let Some((s, e)) = self.rx.next_unlooked() {
            let line = &mut self.rx.buf[s..e];
            let Some(&first) = line.first() else { continue };
            if first <= MARK_GAVE_UP {
                // Not JSON anyway; keep it that way without looking like a mark.
                line[0] = 0x7f;
                continue;
            }
            let answer = match envelope::read(line) {
                Ok(Envelope::Ack) => self.tx.on_ack(),
                Ok(Envelope::Nack) => self.tx.on_nack(),
                _ => continue,
            };
            // Nothing left to deliver: drop it now if it is next, so a
            // sender that never calls recv does not fill up with ACKs.
            if answer.is_ok() && self.rx.consume_front(s, e) {
                continue;
            }
            let line = &mut self.rx.buf[s..e];
            match answer {
                Ok(()) => line[0] = MARK_DONE,
                Err(Error::HandleNotReceived(kind)) => {
                    line[0] = MARK_GAVE_UP;
                    line[1] = kind_code(kind);
                }
                Err(_) => line[0] = MARK_STRAY,
            }
        }
        Ok(())
    }

    fn receive(&mut self, block: bool) -> Result<Delivery, Error> {
        self.check_open()?;
        loop {
            if let Some(e) = self.rx.pending.take() {
                return Err(e);
            }
            // Descriptors that came with bytes already delivered belong to
            // no handle line: close them now and say so.
            let stale = self.rx.fds.drop_stale(self.rx.next_offset());
            if stale > 0 {
                return Err(Error::UnclaimedFds(stale));
            }
            if !self.tx.can_reply() {
                // Too many ACK/NACKs owed: get them out before taking more.
                self.flush_quietly()?;
                if !self.tx.can_reply() {
                    if !block {
                        return Err(Error::WouldBlock);
                    }
                    self.step(false)?;
                    continue;
                }
            }
            let outcome = match self.rx.next() {
                Some(Next::Line(line)) => self.process(line),
                Some(Next::Skipped {
                    offset,
                    looked_like_handle,
                }) => {
                    self.reject(offset, looked_like_handle);
                    Outcome::Fail(Error::FrameTooLong)
                }
                None => {
                    if self.rx.eof {
                        self.closed = true;
                        return Err(Error::Disconnected);
                    }
                    self.flush_quietly()?;
                    // Nothing to write: a blocking receive waits in recvmsg.
                    let wait = if block && !self.tx.wants_write() {
                        Wait::AsSocket
                    } else {
                        Wait::DontWait
                    };
                    match self.rx.read(self.sock.as_fd(), wait) {
                        Ok(_) => continue,
                        Err(Error::WouldBlock) if !block => return Err(Error::WouldBlock),
                        Err(Error::WouldBlock) => {
                            let mut events = PollFlags::IN;
                            if self.tx.wants_write() {
                                events |= PollFlags::OUT;
                            }
                            sys::wait(self.sock.as_fd(), events)?;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            self.flush_quietly()?;
            match outcome {
                Outcome::Skip => continue,
                Outcome::Fail(e) => return Err(e),
                Outcome::Deliver(d) => return Ok(d),
            }
        }
    }

    /// Deals with a line that is not a good message: a descriptor that came
    /// with it is closed, and a sender waiting for an answer gets a NACK.
    fn reject(&mut self, offset: u64, looked_like_handle: bool) {
        let claimed = !matches!(self.rx.fds.claim(offset), Claim::None);
        if claimed || looked_like_handle {
            // can_reply() was checked before the line was taken.
            let _ = self.tx.push_reply(Reply::Nack);
        }
    }

    fn process(&mut self, line: Line) -> Outcome {
        let bytes = &mut self.rx.buf[line.start..line.end];
        if line.looked_at {
            match bytes.first() {
                Some(&MARK_DONE) => return Outcome::Skip,
                Some(&MARK_STRAY) => return Outcome::Fail(Error::StrayAck),
                Some(&MARK_GAVE_UP) => {
                    return Outcome::Fail(Error::HandleNotReceived(kind_from_code(bytes[1])))
                }
                _ => {}
            }
        }
        let read = match core::str::from_utf8(bytes) {
            Ok(_) => envelope::read(bytes),
            Err(e) => Err(crate::json::JsonError::InvalidUtf8 {
                offset: e.valid_up_to(),
            }),
        };
        let at = |span: Span| Json::At(line.start + span.start, line.start + span.end);
        match read {
            Err(e) => {
                let looks = envelope::looks_like_handle(bytes);
                self.reject(line.offset, looks);
                Outcome::Fail(Error::BadFrame(e))
            }
            Ok(Envelope::Ack) => self
                .tx
                .on_ack()
                .map_or_else(Outcome::Fail, |()| Outcome::Skip),
            Ok(Envelope::Nack) => self
                .tx
                .on_nack()
                .map_or_else(Outcome::Fail, |()| Outcome::Skip),
            Ok(Envelope::Message { value, cmd }) => Outcome::Deliver(Delivery {
                json: at(value),
                cmd,
                handle: None,
            }),
            Ok(Envelope::Handle {
                kind,
                msg,
                msg_cmd,
                key,
            }) => {
                let claim = self.rx.fds.claim(line.offset);
                let reply = if matches!(claim, Claim::Fd(_)) {
                    Reply::Ack
                } else {
                    Reply::Nack
                };
                let _ = self.tx.push_reply(reply);
                match (claim, kind) {
                    (Claim::Fd(fd), Some(kind)) => {
                        let mut handle = Handle::new(kind, fd);
                        if let Some(key) = key {
                            handle = handle.with_key(key);
                        }
                        let json = if msg == Span::default() {
                            Json::Null
                        } else {
                            at(msg)
                        };
                        Outcome::Deliver(Delivery {
                            json,
                            cmd: msg_cmd,
                            handle: Some(handle),
                        })
                    }
                    (Claim::Fd(_closed), None) => Outcome::Fail(Error::UnknownHandleType),
                    (Claim::Lost, _) => Outcome::Fail(Error::FdsTruncated),
                    (Claim::None, _) => Outcome::Fail(Error::HandleWithoutFd),
                }
            }
        }
    }
}

impl<const RX: usize, const TX: usize> Drop for Channel<RX, TX> {
    /// Writes what is queued if the socket takes it now; never waits.
    fn drop(&mut self) {
        if !self.closed && self.tx.wants_write() {
            let _ = self.tx.flush(self.sock.as_fd());
        }
    }
}

impl<const RX: usize, const TX: usize> AsFd for Channel<RX, TX> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
