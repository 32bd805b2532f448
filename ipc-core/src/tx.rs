//! The send side: queued frames, handles awaiting acknowledgement, replies,
//! and the fate of every handle.
//!
//! `buf[head..tail]` holds frames not yet written. Plain frames are written
//! together (one `send` for many). A handle frame goes out alone on a
//! `sendmsg` whose bytes are exactly that line, with its descriptor; from then
//! on everything behind it is held until the peer's `NODE_HANDLE_ACK` or
//! `NACK`, as Node requires. The sent handle frame stays in `buf[keep..head]`
//! so a NACKed socket can be sent again, wrapped once more the way Node does
//! it. Our ACK/NACK replies jump the queue at the next frame boundary: the
//! peer may be holding its own messages until it gets them.
//!
//! Every handle queued ends in one [`Fate`]: acknowledged, or returned with
//! the reason (refused after the retransmissions, or the channel failed).

use rustix::fd::{AsFd, BorrowedFd};

use crate::buf::{Buf, Fifo};
use crate::error::Error;
use crate::fate::{Fate, Ticket};
use crate::handle::{Handle, HandleKind};
use crate::json::JsonError;
use crate::sys::{self, Wait::DontWait};
use crate::wire::{ACK, NACK, NESTED_PREFIX};

/// Handles that may wait in the send queue without `std`.
pub(crate) const MAX_QUEUED_HANDLES: usize = 32;
/// ACK/NACK replies that may wait to be written without `std`.
const MAX_REPLIES: usize = 64;
/// Fates waiting to be taken, without `std`: one per handle in flight.
const MAX_FATES: usize = MAX_QUEUED_HANDLES + 1;
/// Node sends a NACKed socket at most this many more times.
pub(crate) const MAX_HANDLE_RETRANSMISSIONS: u8 = 3;

/// A handle frame in `buf[start..end]` and what travels with it.
#[derive(Debug)]
struct Frame {
    start: usize,
    end: usize,
    handle: Handle,
    retransmits: u8,
    ticket: Ticket,
}

/// Which reply is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    Ack,
    Nack,
}

/// Whether a frame that does not fit next to what is queued may grow the
/// buffer, or should wait for the queue to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// Grow (with `std`, up to the limit): the caller does not wait.
    Grow,
    /// `WouldBlock` unless the frame alone needs more than the buffer has.
    Wait,
}

pub(crate) struct Tx<const N: usize> {
    buf: Buf<N>,
    /// Bytes before `keep` are free.
    keep: usize,
    head: usize,
    tail: usize,
    /// The last write stopped inside a frame.
    mid_frame: bool,
    /// Handle frames not yet sent, in queue order.
    queued: Fifo<Frame, MAX_QUEUED_HANDLES>,
    /// The handle frame sent and not yet acknowledged.
    awaiting: Option<Frame>,
    replies: Fifo<Reply, MAX_REPLIES>,
    /// Bytes of the first reply already written.
    reply_sent: usize,
    fates: Fifo<Fate, MAX_FATES>,
    next_ticket: u64,
    /// Most bytes the buffer may take.
    limit: usize,
    /// Why nothing more can be written, once the peer is gone.
    dead: Option<Error>,
}

impl<const N: usize> Tx<N> {
    pub fn new(limit: usize) -> Self {
        const { assert!(N >= 64, "the send buffer must hold at least 64 bytes") };
        Tx {
            buf: Buf::new(),
            keep: 0,
            head: 0,
            tail: 0,
            mid_frame: false,
            queued: Fifo::default(),
            awaiting: None,
            replies: Fifo::default(),
            reply_sent: 0,
            fates: Fifo::default(),
            next_ticket: 0,
            limit,
            dead: None,
        }
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Why writing is over, if it is.
    pub fn dead(&self) -> Option<Error> {
        self.dead
    }

    /// Moves the live bytes to the front of the buffer.
    fn compact(&mut self) {
        let by = self.keep;
        if by == 0 {
            return;
        }
        self.buf.copy_within(self.keep..self.tail, 0);
        self.keep = 0;
        self.head -= by;
        self.tail -= by;
        for f in self.queued.iter_mut().chain(self.awaiting.as_mut()) {
            f.start -= by;
            f.end -= by;
        }
    }

    /// Encodes a frame at the tail with `encode`, returning its length.
    /// `WouldBlock` when it does not fit now but might after a flush;
    /// `MessageTooLarge` when it is longer than the limit (or would not fit
    /// even alone at it).
    fn append(
        &mut self,
        room: Room,
        encode: impl Fn(&mut [u8]) -> Result<usize, JsonError>,
    ) -> Result<usize, Error> {
        if let Some(e) = self.dead {
            return Err(e);
        }
        if self.keep == self.tail {
            // Nothing queued or kept: start at the front again, where the
            // cache lines are warm.
            self.buf.emptied(self.tail);
            self.keep = 0;
            self.head = 0;
            self.tail = 0;
        }
        loop {
            match encode(&mut self.buf[self.tail..]) {
                // Also when the buffer had room anyway: the limit is the
                // largest message.
                Ok(n) if n > self.limit => return Err(Error::MessageTooLarge),
                Ok(n) => {
                    self.tail += n;
                    return Ok(n);
                }
                Err(JsonError::BufferFull) => {}
                Err(e) => return Err(Error::Encode(e)),
            }
            if self.keep > 0 {
                self.compact();
                continue;
            }
            let alone = self.tail == 0;
            if !alone && room == Room::Wait {
                return Err(Error::WouldBlock);
            }
            if !self.buf.grow(self.buf.len() + 1, self.limit) {
                return Err(if alone {
                    Error::MessageTooLarge
                } else {
                    Error::WouldBlock
                });
            }
        }
    }

    /// Queues a plain frame.
    pub fn push_frame(
        &mut self,
        room: Room,
        encode: impl Fn(&mut [u8]) -> Result<usize, JsonError>,
    ) -> Result<(), Error> {
        self.append(room, encode).map(drop)
    }

    /// Queues a handle frame and gives it a ticket; the handle comes back
    /// if it was not queued.
    #[allow(clippy::result_large_err)] // the handle comes back inline: no allocator
    pub fn push_handle(
        &mut self,
        room: Room,
        handle: Handle,
        encode: impl Fn(&mut [u8], &Handle) -> Result<usize, JsonError>,
    ) -> Result<Ticket, (Error, Handle)> {
        #[cfg(not(feature = "std"))]
        if self.queued.is_full() || self.in_flight() + self.fates.len() >= MAX_FATES {
            return Err((Error::HandleQueueFull, handle));
        }
        match self.append(room, |buf| encode(buf, &handle)) {
            Ok(n) => {
                let ticket = Ticket(self.next_ticket);
                self.next_ticket += 1;
                let frame = Frame {
                    start: self.tail - n,
                    end: self.tail,
                    handle,
                    retransmits: 0,
                    ticket,
                };
                // Cannot fail: checked above.
                let _ = self.queued.push_back(frame);
                Ok(ticket)
            }
            Err(e) => Err((e, handle)),
        }
    }

    /// Takes a handle back out of the queue if none of its frame has been
    /// written yet.
    pub fn withdraw(&mut self, ticket: Ticket) -> Option<Handle> {
        let head = self.head;
        let f = self
            .queued
            .take_first(|f| f.ticket == ticket && f.start >= head)?;
        let len = f.end - f.start;
        self.buf.copy_within(f.end..self.tail, f.start);
        self.tail -= len;
        for q in self.queued.iter_mut().filter(|q| q.start > f.start) {
            q.start -= len;
            q.end -= len;
        }
        Some(f.handle)
    }

    /// The next fate not yet taken.
    pub fn next_fate(&mut self) -> Option<Fate> {
        self.fates.pop_front()
    }

    /// Whether some fate waits to be taken.
    pub fn has_fate(&self) -> bool {
        !self.fates.is_empty()
    }

    /// The fate of `ticket`, once it is known.
    pub fn take_fate(&mut self, ticket: Ticket) -> Option<Fate> {
        self.fates.take_first(|f| f.ticket() == ticket)
    }

    fn settle(&mut self, fate: Fate) {
        // Without std, push_handle kept a place for every fate.
        let _ = self.fates.push_back(fate);
    }

    /// The peer cannot be written to any more: every handle not yet
    /// acknowledged comes back with `reason`, and what is queued is dropped.
    pub fn fail(&mut self, reason: Error) {
        if self.dead.is_some() {
            return;
        }
        self.dead = Some(reason);
        while let Some(f) = self.awaiting.take().or_else(|| self.queued.pop_front()) {
            self.settle(Fate::Returned {
                ticket: f.ticket,
                handle: f.handle,
                reason,
            });
        }
        while self.replies.pop_front().is_some() {}
        self.keep = 0;
        self.head = 0;
        self.tail = 0;
        self.mid_frame = false;
    }

    /// Owes the peer a reply. `WouldBlock` if too many are owed already
    /// (only without `std`).
    pub fn push_reply(&mut self, reply: Reply) -> Result<(), Error> {
        if self.dead.is_some() {
            return Ok(());
        }
        self.replies.push_back(reply).map_err(|_| Error::WouldBlock)
    }

    /// Whether a reply can be queued now.
    pub fn can_reply(&self) -> bool {
        !self.replies.is_full()
    }

    /// Whether there are bytes that can be written now (not held by an ACK).
    pub fn wants_write(&self) -> bool {
        self.dead.is_none()
            && (!self.replies.is_empty()
                || (self.head < self.tail && (self.awaiting.is_none() || self.mid_frame)))
    }

    /// Whether everything queued has been written (a handle may still await
    /// its ACK, with nothing behind it).
    pub fn is_written(&self) -> bool {
        self.head == self.tail && self.replies.is_empty()
    }

    /// Whether a handle is waiting for the peer's ACK or NACK.
    pub fn awaiting_ack(&self) -> bool {
        self.awaiting.is_some()
    }

    /// Handles sent or queued and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.queued.len() + usize::from(self.awaiting.is_some())
    }

    /// Writes as much as can go now without blocking. `Ok` when what is left
    /// (if anything) is held behind an unacknowledged handle,
    /// `Err(WouldBlock)` when the socket is full.
    pub fn flush(&mut self, sock: BorrowedFd<'_>) -> Result<(), Error> {
        if let Some(e) = self.dead {
            return Err(e);
        }
        loop {
            // A reply already started must finish; a new one waits for a
            // frame boundary.
            if let Some(&reply) = self.replies.front() {
                if self.reply_sent > 0 || !self.mid_frame {
                    let bytes = if reply == Reply::Ack { ACK } else { NACK };
                    self.reply_sent +=
                        sys::send_with_fds(sock, &bytes[self.reply_sent..], &[], DontWait)?;
                    if self.reply_sent == bytes.len() {
                        self.replies.pop_front();
                        self.reply_sent = 0;
                    }
                    continue;
                }
            }
            if self.head == self.tail {
                return Ok(());
            }
            // The rest of a handle frame whose first bytes (and fd) went out.
            if let Some(a) = &self.awaiting {
                if self.head < a.end {
                    let end = a.end;
                    self.write_plain(sock, end)?;
                    continue;
                }
                return Ok(());
            }
            match self.queued.front() {
                Some(f) if f.start == self.head => {
                    let end = f.end;
                    let n = sys::send_with_fds(
                        sock,
                        &self.buf[self.head..end],
                        &[f.handle.as_fd()],
                        DontWait,
                    )?;
                    self.head += n;
                    self.mid_frame = self.head < end;
                    self.awaiting = self.queued.pop_front();
                }
                Some(f) => {
                    let end = f.start;
                    self.write_plain(sock, end)?;
                }
                None => self.write_plain(sock, self.tail)?,
            }
        }
    }

    /// Writes `buf[head..end]`, which carries no descriptor.
    fn write_plain(&mut self, sock: BorrowedFd<'_>, end: usize) -> Result<(), Error> {
        let n = sys::send_with_fds(sock, &self.buf[self.head..end], &[], DontWait)?;
        self.head += n;
        self.mid_frame = self.buf[self.head - 1] != b'\n';
        if self.awaiting.is_none() {
            self.keep = self.head;
        }
        Ok(())
    }

    /// The awaited handle, if its frame is completely written (a peer cannot
    /// answer a line it has not seen whole).
    fn take_answered(&mut self) -> Option<Frame> {
        if self.awaiting.as_ref().is_some_and(|a| self.head >= a.end) {
            self.keep = self.head;
            return self.awaiting.take();
        }
        None
    }

    /// The peer's `NODE_HANDLE_ACK`: it has the descriptor, so our copy is
    /// closed and the queue moves on. `StrayAck` when nothing awaited one.
    pub fn on_ack(&mut self) -> Result<(), Error> {
        let f = self.take_answered().ok_or(Error::StrayAck)?;
        self.settle(Fate::Acknowledged(f.ticket));
        Ok(())
    }

    /// The peer's `NODE_HANDLE_NACK`: a socket is sent again (up to
    /// [`MAX_HANDLE_RETRANSMISSIONS`] times) wrapped in a `net.Native`
    /// wrapper, as Node does; anything else comes back to the caller.
    pub fn on_nack(&mut self) -> Result<(), Error> {
        let mut f = self.take_answered().ok_or(Error::StrayAck)?;
        let kind = f.handle.kind();
        if kind != HandleKind::Socket || f.retransmits >= MAX_HANDLE_RETRANSMISSIONS {
            self.give_back(f, Error::HandleNotReceived(kind));
            return Ok(());
        }
        if f.retransmits == 0 {
            if !self.nest(&mut f) {
                self.give_back(f, Error::HandleNotReceived(kind));
                return Ok(());
            }
        } else {
            // Already in its nested form: Node wraps the *original* wrapper
            // once on every retransmission, so the same bytes go again.
            f.retransmits += 1;
            self.head = f.start;
            self.keep = f.start;
            self.mid_frame = false;
        }
        if let Err(f) = self.queued.push_front(f) {
            self.give_back(f, Error::HandleQueueFull);
        }
        Ok(())
    }

    fn give_back(&mut self, f: Frame, reason: Error) {
        self.settle(Fate::Returned {
            ticket: f.ticket,
            handle: f.handle,
            reason,
        });
    }

    /// Rewrites the answered frame `f` in its nested `net.Native` form,
    /// ending where the old frame ended (prefix + old line without its
    /// `\n` + `}\n`), to be sent next. `false` if there is no room.
    fn nest(&mut self, f: &mut Frame) -> bool {
        let extra = NESTED_PREFIX.len() + 1;
        if f.start < extra {
            let shift = extra - f.start;
            if self.tail + shift > self.buf.len() && !self.buf.grow(self.tail + shift, self.limit) {
                return false;
            }
            self.buf.copy_within(f.start..self.tail, f.start + shift);
            for q in self.queued.iter_mut().chain(core::iter::once(&mut *f)) {
                q.start += shift;
                q.end += shift;
            }
            self.head += shift;
            self.tail += shift;
        }
        let (start, end) = (f.start - extra, f.end);
        self.buf.copy_within(f.start..end - 1, f.start - 1);
        self.buf[start..start + NESTED_PREFIX.len()].copy_from_slice(NESTED_PREFIX);
        self.buf[end - 2..end].copy_from_slice(b"}\n");
        f.start = start;
        f.retransmits += 1;
        self.head = start;
        self.keep = start;
        self.mid_frame = false;
        true
    }
}
