//! Reading received lines for the protocol: what each line means for the
//! user, and what the channel does about it at once (apply the peer's
//! ACK/NACK to our sent handles, claim the line's descriptor, owe the peer
//! its ACK/NACK). Each line goes through here exactly once, whether it is
//! delivered at once or read ahead by a waiting sender.

use crate::envelope::{self, Envelope};
use crate::error::Error;
use crate::fdqueue::Claim;
use crate::handle::Handle;
use crate::json::JsonError;
use crate::rx::{Next, Parsed, Record, Rx, What};
use crate::tx::{Reply, Tx};

/// A zero-length record: an error to report where it happened.
fn fail(e: Error) -> (Record, Option<Handle>) {
    (
        Record {
            len: 0,
            what: What::Fail(e),
        },
        None,
    )
}

/// Reads the next buffered line (or an error due before it) for the
/// protocol. `None` when no complete line is buffered, or when the reply a
/// handle line needs cannot be owed yet (write the owed ones first).
pub(crate) fn next<const RX: usize, const TX: usize>(
    rx: &mut Rx<RX>,
    tx: &mut Tx<TX>,
) -> Option<(Record, Option<Handle>)> {
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
        Next::Line { start, end, offset } => Some(line(rx, tx, start, end, offset)),
    }
}

/// Reads the line `start..end` (its `\n` at `end`).
fn line<const RX: usize, const TX: usize>(
    rx: &mut Rx<RX>,
    tx: &mut Tx<TX>,
    start: usize,
    end: usize,
    offset: u64,
) -> (Record, Option<Handle>) {
    let len = end + 1 - start;
    let record = |what| Record { len, what };
    let bytes = rx.line(start, end);
    let read = match core::str::from_utf8(bytes) {
        Ok(_) => envelope::read(bytes),
        Err(e) => Err(JsonError::InvalidUtf8 {
            offset: e.valid_up_to(),
        }),
    };
    let envelope = match read {
        Ok(envelope) => envelope,
        Err(e) => {
            let looks = envelope::looks_like_handle(bytes);
            reject(rx, tx, offset, looks);
            return (record(What::Fail(Error::BadFrame(e))), None);
        }
    };
    let answered = |r: Result<(), Error>| match r {
        Ok(()) => What::Skip,
        Err(e) => What::Fail(e),
    };
    match envelope {
        Envelope::Ack => (record(answered(tx.on_ack())), None),
        Envelope::Nack => (record(answered(tx.on_nack())), None),
        Envelope::Message { value, cmd } => (
            record(What::Deliver(Parsed {
                json: Some(value),
                cmd,
                handle: false,
            })),
            None,
        ),
        Envelope::Handle {
            kind,
            msg,
            msg_cmd,
            key,
        } => {
            let claim = rx.fds.claim(offset);
            let reply = match claim {
                Claim::Fd(_) => Reply::Ack,
                _ => Reply::Nack,
            };
            // next() checked that a reply can be owed.
            let _ = tx.push_reply(reply);
            let what = |e| (record(What::Fail(e)), None);
            match (claim, kind) {
                (Claim::Fd(fd), Some(kind)) => {
                    let mut handle = Handle::new(kind, fd);
                    if let Some(key) = key {
                        handle = handle.with_key(key);
                    }
                    let parsed = Parsed {
                        json: msg,
                        cmd: msg_cmd,
                        handle: true,
                    };
                    (record(What::Deliver(parsed)), Some(handle))
                }
                (Claim::Fd(_closed), None) => what(Error::UnknownHandleType),
                (Claim::Lost, _) => what(Error::FdsTruncated),
                (Claim::None, _) => what(Error::HandleWithoutFd),
            }
        }
    }
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
