//! The receive side: bytes from the peer, cut into lines, and a typed
//! record of each line already read for the protocol.
//!
//! `buf[start..end]` holds bytes not yet delivered. Lines are delivered in
//! place (the user's message borrows the buffer). Lines in
//! `buf[start..parsed]` have been through the protocol already, each with a
//! [`Record`] in `records`, in order: a blocking sender reads ahead to find
//! its acknowledgements (and to answer the peer's handles), and the record
//! says what delivery must do with the line later, so no line is read
//! twice. Descriptors are queued with the stream range of the read that
//! brought them (see [`crate::fdqueue`]).
//!
//! With `std` the buffer grows for a long line or a backlog, up to the
//! channel's limit; a line longer than that is discarded up to its newline
//! and reported.

use rustix::fd::BorrowedFd;
use rustix::io::Errno;

use crate::buf::{Buf, Fifo};
use crate::envelope::{self, Cmd, Envelope};
use crate::error::Error;
use crate::fdqueue::FdQueue;
use crate::handle::Handle;
use crate::json::scan::Span;
use crate::message::{Message, Slot};
use crate::sys::{self, ReceivedFds, Wait};

/// Records kept without `std` (each a line read ahead of delivery).
const MAX_RECORDS: usize = 64;
/// Handles claimed ahead of delivery, kept without `std`.
const MAX_CLAIMED: usize = 8;

/// What delivering a line comes to, decided when the line was read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum What {
    /// A message for the user.
    Deliver(Parsed),
    /// Nothing: the channel acted on it (an ACK or NACK).
    Skip,
    /// An error for the user; the channel carries on.
    Fail(Error),
}

/// Where a message to deliver is, relative to its line's first byte.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed {
    /// The JSON value; `None` for a handle message without `msg` (Node's
    /// `undefined`), delivered as `null`.
    pub json: Option<Span>,
    /// The content of its internal `cmd` string, if it is internal.
    pub cmd: Option<Span>,
    /// Whether a handle waits in the claimed queue for it.
    pub handle: bool,
    /// Whether [`Rx::peek_internal`] showed it already.
    pub peeked: bool,
}

impl Parsed {
    /// Delivery of a plain message: the JSON `value`, its internal `cmd`.
    pub fn message(value: Span, cmd: Option<Span>) -> What {
        What::Deliver(Parsed {
            json: Some(value),
            cmd,
            handle: false,
            peeked: false,
        })
    }
}

/// One line read for the protocol, and what delivery does with it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// Bytes of the line, `\n` included; 0 for an error about descriptors
    /// or a skipped over-long line (its bytes are gone already).
    pub len: usize,
    pub what: What,
}

/// A complete line not yet read for the protocol.
#[derive(Debug)]
pub(crate) enum Next {
    /// `buf[start..end]` (without its `\n`), starting at stream `offset`;
    /// `read` is what the line is when it was read in the pass that found
    /// its end ([`envelope::read_stream`]).
    Line {
        start: usize,
        end: usize,
        offset: u64,
        read: Option<Envelope>,
    },
    /// An over-long line ended; it started at this stream offset.
    Skipped {
        offset: u64,
        looked_like_handle: bool,
    },
}

/// An over-long line being discarded.
#[derive(Debug, Clone, Copy)]
struct Skip {
    offset: u64,
    looked_like_handle: bool,
}

pub(crate) struct Rx<const N: usize> {
    buf: Buf<N>,
    start: usize,
    parsed: usize,
    end: usize,
    /// No `\n` in `buf[parsed..searched]`.
    searched: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    skipping: Option<Skip>,
    /// The record of the first line in `buf[start..parsed]`, when there
    /// is one: a poller's `is_ready` reads one line ahead before each
    /// receive, and a slot costs less than the queue.
    first: Option<Record>,
    /// Records of the lines after `first`, in order.
    records: Fifo<Record, MAX_RECORDS>,
    /// Records at the front (`first` being the first) that a peek has
    /// looked at, and their bytes: each is looked at once.
    looked: usize,
    looked_bytes: usize,
    /// Handles of recorded lines, in order.
    claimed: Fifo<Handle, MAX_CLAIMED>,
    pub fds: FdQueue,
    eof: bool,
    /// An error to report before the next line (descriptor overflow).
    pending: Option<Error>,
    /// Most bytes the buffer and records may take.
    limit: usize,
    /// The delivered message's decoded `cmd`, handle, and `null` text.
    cmd: Cmd,
    slot: Slot,
    null: [u8; 4],
}

impl<const N: usize> Rx<N> {
    pub fn new(limit: usize) -> Self {
        const { assert!(N >= 64, "the receive buffer must hold at least 64 bytes") };
        Rx {
            buf: Buf::new(),
            start: 0,
            parsed: 0,
            end: 0,
            searched: 0,
            base: 0,
            skipping: None,
            first: None,
            records: Fifo::default(),
            looked: 0,
            looked_bytes: 0,
            claimed: Fifo::default(),
            fds: FdQueue::default(),
            eof: false,
            pending: None,
            limit,
            cmd: Cmd::new(),
            slot: Slot::default(),
            null: *b"null",
        }
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The longest line (its `\n` included) that may be delivered.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the peer closed its end (everything buffered still counts).
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// Whether a line (or an error) is waiting for delivery.
    pub fn has_record(&self) -> bool {
        self.first.is_some()
    }

    /// Whether a record that delivers something (a message or an error)
    /// is waiting: an ACK read ahead behind other records waits as a record
    /// too, to keep the lines in order, but delivers nothing, so it is
    /// passed over here.
    pub fn has_event(&mut self) -> bool {
        while matches!(
            self.first,
            Some(Record {
                what: What::Skip,
                ..
            })
        ) {
            self.pop_record();
        }
        self.first.is_some()
    }

    /// An error to report now, before the next line.
    pub fn take_pending(&mut self) -> Option<Error> {
        self.pending.take()
    }

    /// Bytes the records take, counted against the limit.
    fn records_bytes(&self) -> usize {
        (usize::from(self.first.is_some()) + self.records.len()) * core::mem::size_of::<Record>()
    }

    /// Whether one more line can be read ahead of delivery now.
    pub fn can_record(&self) -> bool {
        !self.records.is_full()
            && !self.claimed.is_full()
            && self.buf.len() + self.records_bytes() + core::mem::size_of::<Record>() <= self.limit
    }

    /// The line `buf[start..end]`.
    pub fn line(&mut self, start: usize, end: usize) -> &mut [u8] {
        &mut self.buf[start..end]
    }

    /// Takes the next complete line not yet read for the protocol, if one
    /// is buffered.
    #[inline(always)]
    pub fn next_line(&mut self) -> Option<Next> {
        // Nothing after the lines read: a ping-pong's every receive starts
        // so, and goes to the socket at once.
        if self.parsed == self.end && self.skipping.is_none() {
            return None;
        }
        // A line not searched yet is first read straight from the buffer,
        // which finds its end too. If that fails (the line is incomplete,
        // or not a good message), the search below takes over and does not
        // come back here for the same line.
        if self.searched <= self.parsed && self.skipping.is_none() {
            let start = self.parsed;
            if let Some((len, read)) = envelope::read_stream(&self.buf[start..self.end]) {
                self.parsed = start + len + 1;
                self.searched = self.parsed;
                return Some(Next::Line {
                    start,
                    end: start + len,
                    offset: self.base + start as u64,
                    read: Some(read),
                });
            }
        }
        let from = self.searched.max(self.parsed);
        let Some(i) = crate::bytes::find(&self.buf[from..self.end], b'\n') else {
            self.searched = self.end;
            if self.skipping.is_some() {
                // Nothing of an over-long line is kept.
                self.base += self.end as u64;
                self.start = 0;
                self.parsed = 0;
                self.end = 0;
                self.searched = 0;
            }
            return None;
        };
        let nl = from + i;
        let start = self.parsed;
        self.parsed = nl + 1;
        self.searched = self.parsed;
        if let Some(skip) = self.skipping.take() {
            // What remained of the over-long line goes without a record.
            self.start = self.parsed;
            return Some(Next::Skipped {
                offset: skip.offset,
                looked_like_handle: skip.looked_like_handle,
            });
        }
        Some(Next::Line {
            start,
            end: nl,
            offset: self.base + start as u64,
            read: None,
        })
    }

    /// Stream offset of the next line to read for the protocol.
    pub fn next_offset(&self) -> u64 {
        match self.skipping {
            Some(skip) => skip.offset,
            None => self.base + self.parsed as u64,
        }
    }

    /// Keeps `record` for the line just taken with
    /// [`next_line`](Self::next_line) (or a zero-length one), to deliver
    /// after the records before it. Only when
    /// [`can_record`](Self::can_record).
    pub fn push_record(&mut self, record: Record) {
        if self.first.is_none() {
            self.first = Some(record);
        } else {
            let _ = self.records.push_back(record);
        }
    }

    /// Keeps the handle of the line just read until that line is
    /// delivered; `false` (the handle is closed) if there is no room
    /// (only without `std`).
    pub fn hold_claimed(&mut self, handle: Handle) -> bool {
        self.claimed.push_back(handle).is_ok()
    }

    /// Takes the record of the next line to deliver, if it was read ahead.
    #[inline(always)]
    pub fn pop_record(&mut self) -> Option<(usize, Record)> {
        let r = self.first.take()?;
        if !self.records.is_empty() {
            self.first = self.records.pop_front();
        }
        if self.looked > 0 {
            self.looked -= 1;
            self.looked_bytes -= r.len;
        }
        let at = self.start;
        self.start += r.len;
        Some((at, r))
    }

    /// Delivery of a line just taken with `next_line` while no records
    /// were waiting: it leaves the buffer.
    pub fn deliver_direct(&mut self) -> usize {
        let at = self.start;
        self.start = self.parsed;
        at
    }

    /// The message of the line at `at` that `parsed` describes, with its
    /// handle if it has one, borrowing the buffer.
    #[inline(always)]
    pub fn message(&mut self, at: usize, parsed: Parsed) -> Message<'_> {
        if parsed.handle {
            self.slot.handle = self.claimed.pop_front();
        }
        self.slot.peeked = parsed.peeked;
        let cmd = parsed.cmd.map(|span| {
            envelope::decode_cmd(
                Span {
                    start: at + span.start,
                    end: at + span.end,
                }
                .of(&self.buf),
                &mut self.cmd,
            )
        });
        let json: &mut [u8] = match parsed.json {
            Some(span) => &mut self.buf[at + span.start..at + span.end],
            None => {
                self.null = *b"null";
                &mut self.null[..]
            }
        };
        let cmd = cmd.map(|_| self.cmd.as_str());
        Message::new(json, cmd, &mut self.slot)
    }

    /// Shows `f` each internal message without a handle that was read
    /// ahead of its delivery and not shown before, in order (the message
    /// is delivered later as usual, marked
    /// [`was_peeked`](Message::was_peeked)).
    pub fn peek_internal(&mut self, mut f: impl FnMut(&Message<'_>)) {
        let waiting = usize::from(self.first.is_some()) + self.records.len();
        while self.looked < waiting {
            let record = match self.looked {
                0 => self.first.as_mut(),
                k => self.records.get_mut(k - 1),
            };
            let Some(record) = record else { break };
            let line_at = self.start + self.looked_bytes;
            self.looked += 1;
            self.looked_bytes += record.len;
            let What::Deliver(parsed) = &mut record.what else {
                continue;
            };
            let (Some(cmd), Some(json), false, false) =
                (parsed.cmd, parsed.json, parsed.handle, parsed.peeked)
            else {
                continue;
            };
            parsed.peeked = true;
            let of = |span: Span| Span {
                start: line_at + span.start,
                end: line_at + span.end,
            };
            envelope::decode_cmd(of(cmd).of(&self.buf), &mut self.cmd);
            let span = of(json);
            // Shown, not lent: the text stays as it is for its delivery,
            // and no handle comes with it.
            let mut slot = Slot {
                handle: None,
                peeked: true,
            };
            let msg = Message::new(
                &mut self.buf[span.start..span.end],
                Some(self.cmd.as_str()),
                &mut slot,
            );
            f(&msg);
        }
    }

    /// Closes the last delivered message's handle if nobody took it.
    pub fn forget_handle(&mut self) {
        if self.slot.handle.is_some() {
            self.slot.handle = None;
        }
    }

    /// Whether complete lines wait to be read for the protocol, or
    /// records for delivery.
    fn has_lines(&self) -> bool {
        self.has_record()
            || (self.skipping.is_none()
                && crate::bytes::find(&self.buf[self.parsed..self.end], b'\n').is_some())
    }

    /// Starts again at the front of the buffer once everything read has
    /// been taken, so that a steady exchange keeps using the same few cache
    /// lines instead of walking through the whole buffer.
    fn rewind_if_empty(&mut self) {
        if self.start == self.end && self.skipping.is_none() {
            self.buf.emptied(self.end);
            self.base += self.start as u64;
            self.start = 0;
            self.parsed = 0;
            self.end = 0;
            self.searched = 0;
        }
    }

    /// Makes room at the end of the buffer: moves the live bytes to the
    /// front, or grows the buffer (with `std`, up to the limit). With
    /// neither possible, a buffer holding one unfinished line starts
    /// discarding it (it is too long); `ReceiveBufferFull` if lines waiting
    /// for delivery fill it.
    fn make_room(&mut self) -> Result<(), Error> {
        if self.end < self.buf.len() {
            return Ok(());
        }
        let limit = self.limit.saturating_sub(self.records_bytes());
        // A long unfinished line would be copied to the front again and
        // again as its later parts arrive: grow instead, while the buffer
        // is less than four times what has to move.
        let live = self.end - self.start;
        if self.start > 0
            && live > self.buf.len() / 4
            && self.skipping.is_none()
            && self.buf.grow(self.buf.len() + 1, limit)
        {
            return Ok(());
        }
        if self.start > 0 {
            let by = self.start;
            self.buf.copy_within(by..self.end, 0);
            self.base += by as u64;
            self.end -= by;
            self.parsed -= by;
            self.searched = self.searched.saturating_sub(by);
            self.start = 0;
            return Ok(());
        }
        if self.skipping.is_none() && self.buf.grow(self.end + 1, limit) {
            return Ok(());
        }
        if self.has_lines() {
            return Err(Error::ReceiveBufferFull);
        }
        if self.skipping.is_none() {
            self.skipping = Some(Skip {
                offset: self.base,
                looked_like_handle: envelope::looks_like_handle(&self.buf[..self.end]),
            });
        }
        self.base += self.end as u64;
        self.end = 0;
        self.parsed = 0;
        self.searched = 0;
        Ok(())
    }

    /// Whether a read could store anything now.
    pub fn can_read(&self) -> bool {
        !self.eof
            && (self.end < self.buf.len()
                || self.start > 0
                || self.buf.len() + self.records_bytes() < self.limit
                || !self.has_lines())
    }

    /// Reads once from `sock`, waiting for data as `wait` says
    /// (`Err(WouldBlock)` when it must not wait and nothing is there).
    /// `Ok(false)` at EOF.
    pub fn read(&mut self, sock: BorrowedFd<'_>, wait: Wait) -> Result<bool, Error> {
        if self.eof {
            return Ok(false);
        }
        self.rewind_if_empty();
        self.make_room()?;
        let mut fds = ReceivedFds::new();
        let got = match sys::recv_with_fds(sock, &mut self.buf[self.end..], &mut fds, wait) {
            Ok(got) => got,
            // A peer that closes with unread data makes us see ECONNRESET.
            Err(Errno::CONNRESET) => {
                self.eof = true;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let from = self.base + self.end as u64;
        let to = from + got.bytes as u64;
        for fd in fds {
            if self.fds.push(fd, from, to).is_err() {
                self.pending.get_or_insert(Error::FdQueueFull);
            }
        }
        if got.fds_truncated && !self.fds.push_hole(from, to) {
            self.pending.get_or_insert(Error::FdQueueFull);
        }
        self.end += got.bytes;
        if got.bytes == 0 {
            self.eof = true;
        }
        Ok(got.bytes > 0)
    }
}
