//! The receive side: a fixed buffer of bytes from the peer, cut into lines.
//!
//! `buf[start..end]` holds bytes not yet delivered. Lines are delivered in
//! place (the user's message borrows the buffer), and the buffer is compacted
//! only when it needs room. A line longer than the whole buffer is discarded
//! up to its newline and reported. Descriptors are queued with the stream
//! range of the read that brought them (see [`crate::fdqueue`]).
//!
//! A blocking sender waiting for `NODE_HANDLE_ACK` may read ahead: it handles
//! acknowledgements beyond `start` and marks their lines (first byte below
//! 0x03, which no JSON line starts with) so delivery skips them later.

use rustix::fd::BorrowedFd;
use rustix::io::Errno;

use crate::buf::{zeroed, Buf};
use crate::envelope::{self, Cmd};
use crate::error::Error;
use crate::fdqueue::FdQueue;
use crate::handle::Handle;
use crate::message::Message;
use crate::sys::{self, ReceivedFds, Wait};

/// First byte of a read-ahead line whose ACK/NACK was handled.
pub(crate) const MARK_DONE: u8 = 0x00;
/// First byte of a read-ahead line that was a stray ACK/NACK.
pub(crate) const MARK_STRAY: u8 = 0x01;
/// First byte of a read-ahead NACK that made us give a handle up; the second
/// byte says which kind (see [`crate::tx::kind_code`]).
pub(crate) const MARK_GAVE_UP: u8 = 0x02;

/// Where the JSON of a message to deliver is.
#[derive(Debug)]
pub(crate) enum Json {
    At(usize, usize),
    /// A handle message without `msg` (Node: `undefined`).
    Null,
}

/// A message ready for the user, by position in the buffer.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub json: Json,
    pub cmd: Option<Cmd>,
    pub handle: Option<Handle>,
}

/// A complete line, by index into the buffer and by stream offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    pub start: usize,
    /// Index of the `\n`.
    pub end: usize,
    /// Stream offset of the first byte.
    pub offset: u64,
    /// Seen by read-ahead: a first byte below 0x03 is a mark.
    pub looked_at: bool,
}

/// What the next line is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Next {
    Line(Line),
    /// An over-long line ended; it started at this stream offset.
    Skipped {
        offset: u64,
        looked_like_handle: bool,
    },
}

pub(crate) struct Rx<const N: usize> {
    pub buf: Buf<N>,
    start: usize,
    end: usize,
    /// No `\n` in `buf[start..searched]`.
    searched: usize,
    /// Read-ahead has looked at the lines in `buf[start..looked]`.
    looked: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Discarding an over-long line: its start offset and whether it looked
    /// like a `NODE_HANDLE`.
    skipping: Option<(u64, bool)>,
    pub fds: FdQueue,
    pub eof: bool,
    /// An error to report before the next line (descriptor overflow).
    pub pending: Option<Error>,
    /// Backing for the `null` of a handle message without `msg`.
    pub null: [u8; 4],
}

impl<const N: usize> Rx<N> {
    pub fn new() -> Self {
        const { assert!(N >= 64, "the receive buffer must hold at least 64 bytes") };
        Rx {
            buf: zeroed(),
            start: 0,
            end: 0,
            searched: 0,
            looked: 0,
            base: 0,
            skipping: None,
            fds: FdQueue::default(),
            eof: false,
            pending: None,
            null: *b"null",
        }
    }

    /// Index just past the next `\n` at or after `from`, searching no
    /// further than `end`.
    fn newline_from(&self, from: usize) -> Option<usize> {
        crate::bytes::find(&self.buf[from..self.end], b'\n').map(|i| from + i)
    }

    /// Takes the next complete line, if one is buffered.
    pub fn next(&mut self) -> Option<Next> {
        let nl = self.newline_from(self.searched.max(self.start));
        let Some(nl) = nl else {
            self.searched = self.end;
            if self.skipping.is_some() {
                // Nothing of an over-long line is kept.
                self.base += self.end as u64;
                self.start = 0;
                self.end = 0;
                self.searched = 0;
                self.looked = 0;
            }
            return None;
        };
        let line = Line {
            start: self.start,
            end: nl,
            offset: self.base + self.start as u64,
            looked_at: nl < self.looked,
        };
        self.start = nl + 1;
        self.searched = self.start;
        if let Some((offset, looked_like_handle)) = self.skipping.take() {
            return Some(Next::Skipped {
                offset,
                looked_like_handle,
            });
        }
        Some(Next::Line(line))
    }

    /// The message `d` describes, borrowing the buffer.
    pub fn message(&mut self, d: Delivery) -> Message<'_> {
        let json = match d.json {
            Json::At(s, e) => &mut self.buf[s..e],
            Json::Null => {
                self.null = *b"null";
                &mut self.null[..]
            }
        };
        Message::new(json, d.cmd, d.handle)
    }

    /// Stream offset where the next line to deliver starts.
    pub fn next_offset(&self) -> u64 {
        match self.skipping {
            Some((offset, _)) => offset,
            None => self.base + self.start as u64,
        }
    }

    /// Takes the next line read-ahead has not looked at, leaving it buffered
    /// for delivery.
    pub fn next_unlooked(&mut self) -> Option<(usize, usize)> {
        if self.skipping.is_some() {
            return None;
        }
        let from = self.looked.max(self.start);
        let nl = self.newline_from(from)?;
        self.looked = nl + 1;
        Some((from, nl))
    }

    /// Consumes the line `buf[start..=end]` if it is the next to deliver
    /// (read-ahead handled it completely: nothing is left to deliver).
    /// Returns whether it did.
    pub fn consume_front(&mut self, start: usize, end: usize) -> bool {
        if self.skipping.is_some() || start != self.start {
            return false;
        }
        self.start = end + 1;
        self.searched = self.searched.max(self.start);
        true
    }

    /// Whether complete lines are waiting for delivery.
    fn has_lines(&self) -> bool {
        self.skipping.is_none() && self.newline_from(self.searched.max(self.start)).is_some()
    }

    /// Starts again at the front of the buffer once everything read has
    /// been taken, so that a steady exchange keeps using the same few cache
    /// lines instead of walking through the whole buffer.
    fn rewind_if_empty(&mut self) {
        if self.start == self.end && self.skipping.is_none() {
            self.base += self.start as u64;
            self.start = 0;
            self.end = 0;
            self.searched = 0;
            self.looked = 0;
        }
    }

    /// Makes room at the end of the buffer. With none to be had, a buffer
    /// holding one unfinished line starts discarding it (it is too long);
    /// `ReceiveBufferFull` if undelivered lines fill it.
    fn make_room(&mut self) -> Result<(), Error> {
        if self.end < N {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.searched = self.searched.saturating_sub(self.start);
            self.looked = self.looked.saturating_sub(self.start);
            self.start = 0;
            return Ok(());
        }
        if self.has_lines() {
            return Err(Error::ReceiveBufferFull);
        }
        if self.skipping.is_none() {
            self.skipping = Some((
                self.base,
                envelope::looks_like_handle(&self.buf[..self.end]),
            ));
        }
        self.base += self.end as u64;
        self.end = 0;
        self.searched = 0;
        self.looked = 0;
        Ok(())
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
