//! Counting the connections a server has open.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Open connections of one server (or, on a receiver, of one `key`), and
/// whether any has been sent to another process.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    open: AtomicUsize,
    sent_away: AtomicBool,
}

impl Tally {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn sent_away(&self) -> bool {
        self.sent_away.load(Ordering::Acquire)
    }
}

/// One counted connection: counts while it lives.
#[derive(Debug)]
pub(crate) struct Count(Arc<Tally>);

impl Count {
    pub fn new(tally: &Arc<Tally>) -> Self {
        tally.open.fetch_add(1, Ordering::AcqRel);
        Count(Arc::clone(tally))
    }

    /// The connection leaves for another process: the count is no longer
    /// known here.
    pub fn send_away(self) {
        self.0.sent_away.store(true, Ordering::Release);
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}
