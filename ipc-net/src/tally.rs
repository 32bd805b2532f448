//! Counting the connections a server has open.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

/// Open connections of one server (or, on a receiver, of one `key`), and
/// whether any has been sent to another process.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    open: AtomicUsize,
    sent_away: AtomicBool,
    /// Woken when the last open connection closes.
    idle: Mutex<Option<Waker>>,
}

impl Tally {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn sent_away(&self) -> bool {
        self.sent_away.load(Ordering::Acquire)
    }

    /// Wakes `waker` (once) when the count next falls to zero.
    pub fn wake_when_idle(&self, waker: &Waker) {
        if let Ok(mut idle) = self.idle.lock() {
            if !idle.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *idle = Some(waker.clone());
            }
        }
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
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waker = self.0.idle.lock().ok().and_then(|mut w| w.take());
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}
