//! Node 20's `NODE_SOCKET_*` protocol: who still holds a server's sockets.
//!
//! A Node process that sent sockets accepted by its server asks every
//! receiver how many it still holds (`server.getConnections()` sends
//! `NODE_SOCKET_GET_COUNT`) and waits for all of them to close
//! (`server.close()` sends `NODE_SOCKET_NOTIFY_CLOSE` and expects
//! `NODE_SOCKET_ALL_CLOSED`). A receiver that never answers stalls both.
//! [`SocketAccounting`] is the receiver's side; [`SocketQuery`] and
//! [`SocketAnswer`] the sender's.

use std::sync::Arc;
use std::task::Waker;

use ipc_core::{Key, Message};
use serde::{Deserialize, Serialize};

use crate::socket::Socket;
use crate::tally::{Count, Tally};

/// Internal command asking for a count.
pub const GET_COUNT: &str = "NODE_SOCKET_GET_COUNT";
/// Internal command answering with a count.
pub const COUNT: &str = "NODE_SOCKET_COUNT";
/// Internal command asking to be told when all sockets are closed.
pub const NOTIFY_CLOSE: &str = "NODE_SOCKET_NOTIFY_CLOSE";
/// Internal command telling that all sockets of a key are closed.
pub const ALL_CLOSED: &str = "NODE_SOCKET_ALL_CLOSED";

/// A `NODE_SOCKET_*` message, as Node writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketMessage<'a> {
    /// One of the four commands above.
    pub cmd: &'a str,
    /// The server's connection key.
    pub key: &'a str,
    /// The count, in `NODE_SOCKET_COUNT` only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<u64>,
}

/// The receiver's side: counts the sockets received per key and answers.
#[derive(Debug, Default)]
pub struct SocketAccounting {
    keys: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    key: Key,
    tally: Arc<Tally>,
    close_requested: bool,
}

/// A reply owed to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `NODE_SOCKET_COUNT`.
    Count {
        /// The key asked about.
        key: Key,
        /// Sockets of that key still open here.
        count: usize,
    },
    /// `NODE_SOCKET_ALL_CLOSED`.
    AllClosed {
        /// The key whose sockets are all closed.
        key: Key,
    },
}

impl Reply {
    /// The message to send.
    pub fn message(&self) -> SocketMessage<'_> {
        match self {
            Reply::Count { key, count } => SocketMessage {
                cmd: COUNT,
                key,
                count: Some(*count as u64),
            },
            Reply::AllClosed { key } => SocketMessage {
                cmd: ALL_CLOSED,
                key,
                count: None,
            },
        }
    }
}

impl SocketAccounting {
    fn entry(&mut self, key: &str) -> &mut Entry {
        let i = match self.keys.iter().position(|e| e.key == key) {
            Some(i) => i,
            None => {
                let key = Key::try_from(key).unwrap_or_default();
                self.keys.push(Entry {
                    key,
                    tally: Arc::default(),
                    close_requested: false,
                });
                self.keys.len() - 1
            }
        };
        &mut self.keys[i]
    }

    /// Counts a received socket under its key until it is dropped.
    pub fn track(&mut self, socket: &mut Socket) {
        if let Some(key) = socket.key().map(Key::try_from).and_then(Result::ok) {
            let counted = Count::new(&self.entry(&key).tally);
            socket.set_counted(counted);
        }
    }

    /// Whether a socket with a key was ever received: only then may the
    /// peer ask about one.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Sockets of `key` still open here.
    pub fn count(&self, key: &str) -> usize {
        self.keys
            .iter()
            .find(|e| e.key == key)
            .map_or(0, |e| e.tally.open())
    }

    /// Answers an internal `NODE_SOCKET_GET_COUNT` or
    /// `NODE_SOCKET_NOTIFY_CLOSE` (the message itself is left as it is);
    /// `None` for other messages and for a close request that must wait for sockets to close (see
    /// [`due`](Self::due)).
    pub fn answer(&mut self, msg: &Message<'_>) -> Option<Reply> {
        let cmd = msg.cmd()?;
        if cmd != GET_COUNT && cmd != NOTIFY_CLOSE {
            return None;
        }
        let asked = cmd == GET_COUNT;
        let mut copy = [0u8; COPY_LEN];
        let parsed = parse_copy(msg, &mut copy)?;
        let entry = self.entry(parsed.key);
        let (key, count) = (entry.key.clone(), entry.tally.open());
        if asked {
            return Some(Reply::Count { key, count });
        }
        if count == 0 {
            return Some(Reply::AllClosed { key });
        }
        entry.close_requested = true;
        None
    }

    /// A `NODE_SOCKET_ALL_CLOSED` that has become due since the close
    /// request, because the last socket of its key was dropped.
    pub fn due(&mut self) -> Option<Reply> {
        let e = self
            .keys
            .iter_mut()
            .find(|e| e.close_requested && e.tally.open() == 0)?;
        e.close_requested = false;
        Some(Reply::AllClosed { key: e.key.clone() })
    }

    /// Whether a close request waits for sockets still open.
    #[inline]
    pub fn waiting(&self) -> bool {
        self.keys.iter().any(|e| e.close_requested)
    }

    /// Has `waker` woken when a close request that waits for sockets
    /// becomes [due](Self::due) (its last socket is dropped, anywhere), for
    /// an async receiver that is not woken by anything else meanwhile;
    /// whether one is due already.
    pub fn wake_when_due(&self, waker: &Waker) -> bool {
        let mut due = false;
        for e in self.keys.iter().filter(|e| e.close_requested) {
            e.tally.wake_when_idle(waker);
            // After registering: a drop just before it is not missed.
            due |= e.tally.open() == 0;
        }
        due
    }
}

/// The sender's questions to a receiver about the sockets of `key`.
#[derive(Debug, Clone, Copy)]
pub struct SocketQuery;

impl SocketQuery {
    /// `{"cmd":"NODE_SOCKET_GET_COUNT","key":K}`.
    pub fn get_count(key: &str) -> SocketMessage<'_> {
        SocketMessage {
            cmd: GET_COUNT,
            key,
            count: None,
        }
    }

    /// `{"cmd":"NODE_SOCKET_NOTIFY_CLOSE","key":K}`.
    pub fn notify_close(key: &str) -> SocketMessage<'_> {
        SocketMessage {
            cmd: NOTIFY_CLOSE,
            key,
            count: None,
        }
    }
}

/// A receiver's answer, read back by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAnswer {
    /// `NODE_SOCKET_COUNT`.
    Count {
        /// The key.
        key: Key,
        /// Sockets of it the receiver holds.
        count: u64,
    },
    /// `NODE_SOCKET_ALL_CLOSED`.
    AllClosed {
        /// The key.
        key: Key,
    },
}

impl SocketAnswer {
    /// Reads an answer from an internal message (left as it is); `None` for
    /// anything else.
    pub fn from_message(msg: &Message<'_>) -> Option<SocketAnswer> {
        let cmd = msg.cmd()?;
        if cmd != COUNT && cmd != ALL_CLOSED {
            return None;
        }
        let mut copy = [0u8; COPY_LEN];
        let m = parse_copy(msg, &mut copy)?;
        let key = Key::try_from(m.key).ok()?;
        Some(match m.count {
            Some(count) if m.cmd == COUNT => SocketAnswer::Count { key, count },
            _ => SocketAnswer::AllClosed { key },
        })
    }
}

/// Room for a `NODE_SOCKET_*` message: a key of up to
/// [`ipc_core::MAX_KEY_LEN`] bytes, escaped, plus the rest.
const COPY_LEN: usize = 8 * ipc_core::MAX_KEY_LEN;

/// Parses a `NODE_SOCKET_*` message from a copy of its text, so the message
/// stays readable for the caller.
fn parse_copy<'b>(msg: &Message<'_>, copy: &'b mut [u8; COPY_LEN]) -> Option<SocketMessage<'b>> {
    let text = msg.as_str().as_bytes();
    let buf = copy.get_mut(..text.len())?;
    buf.copy_from_slice(text);
    ipc_core::json::from_slice_mut(buf).ok()
}
