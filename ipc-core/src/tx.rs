//! The send side: queued frames, handles awaiting acknowledgement, replies.
//!
//! `buf[head..tail]` holds frames not yet written. Plain frames are written
//! together (one `send` for many). A handle frame goes out alone on a
//! `sendmsg` whose bytes are exactly that line, with its descriptor; from then
//! on everything behind it is held until the peer's `NODE_HANDLE_ACK` or
//! `NACK`, as Node requires. The sent handle frame stays in `buf[keep..head]`
//! so a NACKed socket can be sent again, wrapped once more the way Node does
//! it. Our ACK/NACK replies jump the queue at the next frame boundary: the
//! peer may be holding its own messages until it gets them.

use rustix::fd::{AsFd, BorrowedFd};

use crate::buf::{zeroed, Buf};
use crate::error::Error;
use crate::handle::{Handle, HandleKind, UdpFamily};
use crate::json::JsonError;
use crate::sys::{self, Wait::DontWait};
use crate::wire::{ACK, NACK, NESTED_PREFIX};

/// Handles that may wait in the send queue.
pub const MAX_QUEUED_HANDLES: usize = 32;
/// ACK/NACK replies that may wait to be written.
const MAX_REPLIES: usize = 64;
/// Node sends a NACKed socket at most this many more times.
pub const MAX_HANDLE_RETRANSMISSIONS: u8 = 3;

/// A handle frame in `buf[start..end]` and what travels with it.
#[derive(Debug)]
struct Frame {
    start: usize,
    end: usize,
    handle: Handle,
    retransmits: u8,
}

/// Which reply is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    Ack,
    Nack,
}

/// A one-byte code for a handle kind (for read-ahead marks).
pub(crate) fn kind_code(kind: HandleKind) -> u8 {
    match kind {
        HandleKind::Server => 0,
        HandleKind::Socket => 1,
        HandleKind::Native => 2,
        HandleKind::Dgram(UdpFamily::V4) => 3,
        HandleKind::Dgram(UdpFamily::V6) => 4,
        HandleKind::DgramNative => 5,
    }
}

/// The kind behind [`kind_code`].
pub(crate) fn kind_from_code(code: u8) -> HandleKind {
    match code {
        0 => HandleKind::Server,
        1 => HandleKind::Socket,
        2 => HandleKind::Native,
        3 => HandleKind::Dgram(UdpFamily::V4),
        4 => HandleKind::Dgram(UdpFamily::V6),
        _ => HandleKind::DgramNative,
    }
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
    queued: heapless::Deque<Frame, MAX_QUEUED_HANDLES>,
    /// The handle frame sent and not yet acknowledged.
    awaiting: Option<Frame>,
    replies: heapless::Deque<Reply, MAX_REPLIES>,
    /// Bytes of the first reply already written.
    reply_sent: usize,
}

impl<const N: usize> Tx<N> {
    pub fn new() -> Self {
        const { assert!(N >= 64, "the send buffer must hold at least 64 bytes") };
        Tx {
            buf: zeroed(),
            keep: 0,
            head: 0,
            tail: 0,
            mid_frame: false,
            queued: heapless::Deque::new(),
            awaiting: None,
            replies: heapless::Deque::new(),
            reply_sent: 0,
        }
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
    /// `WouldBlock` when it does not fit now but might after a flush.
    fn append(
        &mut self,
        encode: impl Fn(&mut [u8]) -> Result<usize, JsonError>,
    ) -> Result<usize, Error> {
        if self.keep == self.tail {
            // Nothing queued or kept: start at the front again, where the
            // cache lines are warm.
            self.keep = 0;
            self.head = 0;
            self.tail = 0;
        }
        for attempt in 0..2 {
            match encode(&mut self.buf[self.tail..]) {
                Ok(n) => {
                    self.tail += n;
                    return Ok(n);
                }
                Err(JsonError::BufferFull) if attempt == 0 && self.keep > 0 => self.compact(),
                Err(JsonError::BufferFull) if self.keep == self.tail => {
                    return Err(Error::MessageTooLarge)
                }
                Err(JsonError::BufferFull) => return Err(Error::WouldBlock),
                Err(e) => return Err(Error::Encode(e)),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Queues a plain frame.
    pub fn push_frame(
        &mut self,
        encode: impl Fn(&mut [u8]) -> Result<usize, JsonError>,
    ) -> Result<(), Error> {
        self.append(encode).map(drop)
    }

    /// Queues a handle frame; the handle comes back if it was not queued.
    #[allow(clippy::result_large_err)] // the handle comes back inline: no allocator
    pub fn push_handle(
        &mut self,
        handle: Handle,
        encode: impl Fn(&mut [u8], &Handle) -> Result<usize, JsonError>,
    ) -> Result<(), (Error, Handle)> {
        if self.queued.is_full() {
            return Err((Error::HandleQueueFull, handle));
        }
        match self.append(|buf| encode(buf, &handle)) {
            Ok(n) => {
                let frame = Frame {
                    start: self.tail - n,
                    end: self.tail,
                    handle,
                    retransmits: 0,
                };
                // Cannot fail: checked above.
                let _ = self.queued.push_back(frame);
                Ok(())
            }
            Err(e) => Err((e, handle)),
        }
    }

    /// Takes back the last queued handle if none of its frame has been
    /// written: after a fatal error it never reached the peer, and the
    /// caller still owns it.
    pub fn reclaim_unsent(&mut self) -> Option<Handle> {
        if self.queued.back().is_none_or(|f| f.start < self.head) {
            return None;
        }
        let f = self.queued.pop_back()?;
        self.tail = f.start;
        Some(f.handle)
    }

    /// Takes back the handle whose ACK never came (the channel closed): our
    /// copy was still open, so the caller gets it back.
    pub fn reclaim_unacknowledged(&mut self) -> Option<Handle> {
        self.awaiting.take().map(|f| f.handle)
    }

    /// Owes the peer a reply. `WouldBlock` if too many are owed already.
    pub fn push_reply(&mut self, reply: Reply) -> Result<(), Error> {
        self.replies.push_back(reply).map_err(|_| Error::WouldBlock)
    }

    /// Whether a reply can be queued now.
    pub fn can_reply(&self) -> bool {
        !self.replies.is_full()
    }

    /// Whether there are bytes that can be written now (not held by an ACK).
    pub fn wants_write(&self) -> bool {
        !self.replies.is_empty()
            || (self.head < self.tail && (self.awaiting.is_none() || self.mid_frame))
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
    pub fn handles_in_flight(&self) -> usize {
        self.queued.len() + usize::from(self.awaiting.is_some())
    }

    /// Writes as much as can go now without blocking. `Ok` when what is left
    /// (if anything) is held behind an unacknowledged handle,
    /// `Err(WouldBlock)` when the socket is full.
    pub fn flush(&mut self, sock: BorrowedFd<'_>) -> Result<(), Error> {
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
    /// closed and the queue moves on.
    pub fn on_ack(&mut self) -> Result<(), Error> {
        self.take_answered().map(drop).ok_or(Error::StrayAck)
    }

    /// The peer's `NODE_HANDLE_NACK`: a socket is sent again (up to
    /// [`MAX_HANDLE_RETRANSMISSIONS`] times) wrapped in a `net.Native`
    /// wrapper, as Node does; anything else is given up.
    pub fn on_nack(&mut self) -> Result<(), Error> {
        let mut f = self.take_answered().ok_or(Error::StrayAck)?;
        let kind = f.handle.kind();
        if kind != HandleKind::Socket || f.retransmits >= MAX_HANDLE_RETRANSMISSIONS {
            return Err(Error::HandleNotReceived(kind));
        }
        if f.retransmits > 0 {
            // Already in its nested form: Node wraps the *original* wrapper
            // once on every retransmission, so the same bytes go again.
            f.retransmits += 1;
            self.head = f.start;
            self.keep = f.start;
            self.mid_frame = false;
            return self
                .queued
                .push_front(f)
                .map_err(|f| Error::HandleNotReceived(f.handle.kind()));
        }
        // Rebuild in place, ending where the old frame ended:
        // prefix + old line without its '\n' + "}\n".
        let extra = NESTED_PREFIX.len() + 1;
        if f.start < extra {
            let shift = extra - f.start;
            if self.tail + shift > N {
                return Err(Error::HandleNotReceived(kind));
            }
            self.buf.copy_within(f.start..self.tail, f.start + shift);
            for q in self.queued.iter_mut().chain(core::iter::once(&mut f)) {
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
        // If the queue filled up meanwhile, the handle is given up (closed).
        self.queued
            .push_front(f)
            .map_err(|f| Error::HandleNotReceived(f.handle.kind()))
    }
}
