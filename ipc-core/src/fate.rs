//! [`Ticket`] and [`Fate`]: what became of each handle sent.

use crate::error::Error;
use crate::handle::Handle;

/// Names one handle hand-off ([`Channel::queue_handle`]); its [`Fate`]
/// carries the same ticket. Tickets of one channel count up from 0.
///
/// [`Channel::queue_handle`]: crate::Channel::queue_handle
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub(crate) u64);

impl Ticket {
    /// The ticket's number (0 for a channel's first hand-off).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl core::fmt::Display for Ticket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What became of a handle sent without waiting: every hand-off ends in
/// exactly one fate.
#[derive(Debug)]
pub enum Fate {
    /// The peer took it (`NODE_HANDLE_ACK`); the channel has closed its
    /// own copy.
    Acknowledged(Ticket),
    /// The peer did not take it, and the handle is yours again: the peer
    /// refused it after every retransmission Node allows
    /// ([`Error::HandleNotReceived`]), the channel closed before the peer
    /// acknowledged ([`Error::Disconnected`]; the peer may or may not
    /// have used it), or it was still queued when the channel failed.
    Returned {
        /// The hand-off.
        ticket: Ticket,
        /// The handle, as it was sent (kind and key included).
        handle: Handle,
        /// Why it came back.
        reason: Error,
    },
}

impl Fate {
    /// The hand-off this fate is about.
    pub fn ticket(&self) -> Ticket {
        match self {
            Fate::Acknowledged(t) | Fate::Returned { ticket: t, .. } => *t,
        }
    }
}
