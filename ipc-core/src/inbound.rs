//! Reading received lines for the protocol: what each line means for the
//! user, and what the channel does about it at once (apply the peer's
//! ACK/NACK to our sent handles, claim the line's descriptor, owe the peer
//! its ACK/NACK). Each line goes through here exactly once, whether it is
//! delivered at once or read ahead by a waiting sender.

use crate::envelope::{self, Envelope};
use crate::error::Error;
use crate::fdqueue::Claim;
use crate::handle::{Handle, HandleKind, Key};
use crate::json::scan::Span;
use crate::json::JsonError;
use crate::rx::{Next, Parsed, Record, Rx, What};
use crate::tx::{Reply, Tx};

/// A zero-length record: an error to report where it happened.
fn fail(e: Error) -> Record {
    Record {
        len: 0,
        what: What::Fail(e),
    }
}

/// Reads the next buffered line (or an error due before it) for the
/// protocol. `None` when no complete line is buffered, or when the reply a
/// handle line needs cannot be owed yet (write the owed ones first). The
/// handle of a handle line waits in `rx` for its delivery (it is large:
/// it does not travel with the record).
#[inline(always)]
pub(crate) fn next<const RX: usize, const TX: usize>(
    rx: &mut Rx<RX>,
    tx: &mut Tx<TX>,
) -> Option<Record> {
    if let Some(e) = rx.take_pending() {
        return Some(fail(e));
    }
    if !tx.can_reply() {
        return None;
    }
    // Descriptors that came with bytes before the next line belong to no
    // handle line: close them now and say so.
    let stale = rx.fds.drop_stale(rx.next_offset());
    if stale > 0 {
        return Some(fail(Error::UnclaimedFds(stale)));
    }
    match rx.next_line()? {
        Next::Skipped {
            offset,
            looked_like_handle,
        } => {
            reject(rx, tx, offset, looked_like_handle);
            Some(fail(Error::FrameTooLong))
        }
        // Most lines: a message read in the pass that found the line's
        // end. Handled here, with nothing else to look at (measured: 26
        // instructions a message less than going through `line`).
        Next::Line {
            start,
            end,
            offset,
            read: Some(Envelope::Message { value, cmd }),
        } => {
            let len = end + 1 - start;
            if len > rx.limit() {
                return Some(too_long(rx, tx, start, end, offset));
            }
            Some(Record {
                len,
                what: Parsed::message(value, cmd),
            })
        }
        Next::Line {
            start,
            end,
            offset,
            read,
        } => {
            if end + 1 - start > rx.limit() {
                return Some(too_long(rx, tx, start, end, offset));
            }
            Some(line(rx, tx, start, end, offset, read))
        }
    }
}

/// A complete line, within the buffer, but longer than the limit: refused
/// like one that did not fit (in order, its bytes delivered as nothing).
#[cold]
#[inline(never)]
fn too_long<const RX: usize, const TX: usize>(
    rx: &mut Rx<RX>,
    tx: &mut Tx<TX>,
    start: usize,
    end: usize,
    offset: u64,
) -> Record {
    let looks = envelope::looks_like_handle(rx.line(start, end));
    reject(rx, tx, offset, looks);
    Record {
        len: end + 1 - start,
        what: What::Fail(Error::FrameTooLong),
    }
}

/// Reads the line `start..end` (its `\n` at `end`), unless that was done:
/// `read`.
#[inline(never)]
fn line<const RX: usize, const TX: usize>(
    rx: &mut Rx<RX>,
    tx: &mut Tx<TX>,
    start: usize,
    end: usize,
    offset: u64,
    read: Option<Envelope>,
) -> Record {
    let len = end + 1 - start;
    let record = |what| Record { len, what };
    let envelope = match read {
        Some(envelope) => envelope,
        None => match read_line(rx.line(start, end)) {
            Ok(envelope) => envelope,
            Err((e, looks)) => {
                reject(rx, tx, offset, looks);
                return record(What::Fail(Error::BadFrame(e)));
            }
        },
    };
    let answered = |r: Result<(), Error>| match r {
        Ok(()) => What::Skip,
        Err(e) => What::Fail(e),
    };
    record(match envelope {
        Envelope::Message { value, cmd } => Parsed::message(value, cmd),
        Envelope::Ack => answered(tx.on_ack()),
        Envelope::Nack => answered(tx.on_nack()),
        Envelope::Handle {
            kind,
            msg,
            msg_cmd,
            key,
        } => {
            let key = envelope::key_of(rx.line(start, end), key);
            handle_line(rx, tx, offset, kind, key, msg, msg_cmd)
        }
    })
}

/// What delivering a handle line comes to: its descriptor claimed (and the
/// ACK or NACK owed), then held for the message.
fn handle_line<const RX: usize, const TX: usize>(
    rx: &mut Rx<RX>,
    tx: &mut Tx<TX>,
    offset: u64,
    kind: Option<HandleKind>,
    key: Option<Key>,
    msg: Option<Span>,
    msg_cmd: Option<Span>,
) -> What {
    let claim = rx.fds.claim(offset);
    let reply = match claim {
        Claim::Fd(_) => Reply::Ack,
        _ => Reply::Nack,
    };
    // next() checked that a reply can be owed.
    let _ = tx.push_reply(reply);
    match (claim, kind) {
        (Claim::Fd(fd), Some(kind)) => {
            let mut handle = Handle::new(kind, fd);
            if let Some(key) = key {
                handle = handle.with_key(key);
            }
            if rx.hold_claimed(handle) {
                What::Deliver(Parsed {
                    json: msg,
                    cmd: msg_cmd,
                    handle: true,
                    peeked: false,
                })
            } else {
                What::Fail(Error::FdQueueFull)
            }
        }
        (Claim::Fd(_closed), None) => What::Fail(Error::UnknownHandleType),
        (Claim::Lost, _) => What::Fail(Error::FdsTruncated),
        (Claim::None, _) => What::Fail(Error::HandleWithoutFd),
    }
}

/// Reads a line that was not read in the pass that found its end; an
/// error comes with whether the line looks like a handle message.
fn read_line(bytes: &[u8]) -> Result<Envelope, (JsonError, bool)> {
    // The scan checks UTF-8 as it goes (inside strings; outside them only
    // ASCII is JSON): a line that reads is valid UTF-8. A stray non-ASCII
    // byte outside a string is reported as what it is.
    envelope::read(bytes).map_err(|e| {
        let e = match e {
            JsonError::Syntax { offset } if bytes.get(offset).is_some_and(|&b| b >= 0x80) => {
                match core::str::from_utf8(bytes) {
                    Err(e) => JsonError::InvalidUtf8 {
                        offset: e.valid_up_to(),
                    },
                    Ok(_) => e,
                }
            }
            e => e,
        };
        (e, envelope::looks_like_handle(bytes))
    })
}

/// Deals with a line that is not a good message: a descriptor that came
/// with it is closed, and a sender waiting for an answer gets a NACK.
fn reject<const RX: usize, const TX: usize>(
    rx: &mut Rx<RX>,
    tx: &mut Tx<TX>,
    offset: u64,
    looked_like_handle: bool,
) {
    let claimed = !matches!(rx.fds.claim(offset), Claim::None);
    if claimed || looked_like_handle {
        // next() checked that a reply can be owed.
        let _ = tx.push_reply(Reply::Nack);
    }
}
