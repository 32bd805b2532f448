//! Received descriptors waiting for the `NODE_HANDLE` line they came with.
//!
//! On a stream socket the kernel ties descriptors to bytes, not to lines:
//! they arrive with the `recvmsg` that returns the first byte of the `sendmsg`
//! that carried them, and on Linux that segment is the last data of the read.
//! Node's sender puts each descriptor on the `sendmsg` of exactly its own
//! wrapper line, so *the line that claims a descriptor is a `NODE_HANDLE` line
//! whose first byte came in the same read*. Each queued descriptor remembers
//! the stream range of its read, and pairing follows that rule in FIFO order:
//!
//! - a descriptor whose read ended before the line starts belongs to no
//!   handle line (it came with plain bytes): it is closed and reported, so it
//!   cannot shift the pairing of every later handle by one;
//! - a descriptor whose read starts after the line starts belongs to a later
//!   line: this line has none (the receiver NACKs).
//!
//! A read whose control data was cut (`MSG_CTRUNC`) leaves a *hole*: the
//! handle line of that read gets "descriptor lost" instead of someone else's.

use rustix::fd::OwnedFd;

use crate::buf::Fifo;

/// Descriptors the queue holds without `std` before it closes new
/// arrivals (with `std` it grows).
pub(crate) const FD_QUEUE_CAPACITY: usize = 16;

/// One received descriptor, or a hole where the kernel dropped some.
#[derive(Debug)]
struct Arrival {
    fd: Option<OwnedFd>,
    /// Stream offsets `[from, to)` of the read that brought it.
    from: u64,
    to: u64,
}

/// What a line at a given stream offset gets from the queue.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The descriptor sent with this line.
    Fd(OwnedFd),
    /// The line's read had its descriptors cut by the kernel.
    Lost,
    /// No descriptor came with this line.
    None,
}

/// Bounded FIFO of received descriptors tagged with their read's range.
#[derive(Debug, Default)]
pub(crate) struct FdQueue {
    q: Fifo<Arrival, FD_QUEUE_CAPACITY>,
}

impl FdQueue {
    /// Queues a descriptor from the read covering `[from, to)`; hands it back
    /// when the queue is full.
    pub fn push(&mut self, fd: OwnedFd, from: u64, to: u64) -> Result<(), OwnedFd> {
        self.q
            .push_back(Arrival {
                fd: Some(fd),
                from,
                to,
            })
            .map_err(|a| a.fd.expect("pushed with an fd"))
    }

    /// Records that the read covering `[from, to)` lost its descriptors.
    /// Returns `false` if the queue is full (the loss is then reported as a
    /// missing descriptor instead).
    pub fn push_hole(&mut self, from: u64, to: u64) -> bool {
        self.q.push_back(Arrival { fd: None, from, to }).is_ok()
    }

    /// Closes descriptors that arrived with bytes before `line_start` and so
    /// belong to no handle line. Returns how many were closed.
    pub fn drop_stale(&mut self, line_start: u64) -> usize {
        let mut closed = 0;
        while self.q.front().is_some_and(|a| a.to <= line_start) {
            if self.q.pop_front().is_some_and(|a| a.fd.is_some()) {
                closed += 1;
            }
        }
        closed
    }

    /// Takes the descriptor sent with the handle line starting at
    /// `line_start` (call [`drop_stale`](Self::drop_stale) first).
    pub fn claim(&mut self, line_start: u64) -> Claim {
        match self.q.front() {
            Some(a) if a.from <= line_start && line_start < a.to => match self.q.pop_front() {
                Some(Arrival { fd: Some(fd), .. }) => Claim::Fd(fd),
                _ => Claim::Lost,
            },
            _ => Claim::None,
        }
    }

    /// Whether any descriptor or hole is queued.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        rustix::io::dup(rustix::stdio::stdin()).unwrap()
    }

    #[test]
    fn pairs_by_read_range() {
        let mut q = FdQueue::default();
        q.push(fd(), 0, 10).unwrap(); // came with plain bytes before the line
        q.push(fd(), 10, 30).unwrap(); // the line at 12 started in this read
        q.push(fd(), 40, 50).unwrap(); // a later line's
        assert_eq!(q.drop_stale(12), 1);
        assert!(matches!(q.claim(12), Claim::Fd(_)));
        assert!(matches!(q.claim(31), Claim::None));
        assert!(q.push_hole(50, 60));
        assert_eq!(q.drop_stale(52), 1);
        assert!(matches!(q.claim(52), Claim::Lost));
        assert!(q.is_empty());
    }
}
