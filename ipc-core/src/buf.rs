//! Storage for the channel: its two byte buffers and its queues.
//!
//! With `std` a [`Buf`] starts at `N` bytes and grows (doubling) when a
//! message or a backlog needs more, up to the channel's limit, and shrinks
//! back to `N` once it has been idle a while; a [`Fifo`] grows as needed.
//! Without `std` both are fixed, inline, and "full" is an error the caller
//! reports. Either way nothing is allocated per message on the common path.

use core::ops::{Deref, DerefMut};

/// Empty rewinds an oversized buffer waits before it shrinks back to `N`:
/// a stream of large messages keeps its room, a burst gives it back.
const IDLE_BEFORE_SHRINK: u8 = 16;

/// A byte buffer of at least `N` bytes (exactly `N` without `std`).
pub(crate) struct Buf<const N: usize> {
    #[cfg(feature = "std")]
    bytes: std::vec::Vec<u8>,
    #[cfg(not(feature = "std"))]
    bytes: [u8; N],
    /// Empty rewinds since the last need for more than `N` bytes.
    idle: u8,
}

impl<const N: usize> Buf<N> {
    pub fn new() -> Self {
        Buf {
            #[cfg(feature = "std")]
            bytes: std::vec![0u8; N],
            #[cfg(not(feature = "std"))]
            bytes: [0; N],
            idle: 0,
        }
    }

    /// Grows to at least `need` bytes, doubling, without passing `limit`
    /// (never below `N`). Returns whether it now holds `need` bytes.
    pub fn grow(&mut self, need: usize, limit: usize) -> bool {
        if need <= self.bytes.len() {
            return true;
        }
        #[cfg(feature = "std")]
        {
            let limit = limit.max(N);
            if need > limit {
                return false;
            }
            let mut size = self.bytes.len().max(1);
            while size < need {
                size = size.saturating_mul(2);
            }
            self.bytes.resize(size.min(limit), 0);
            true
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = limit;
            false
        }
    }

    /// Called each time the buffer empties, with the most bytes it held
    /// since the last call: after enough calls that needed no more than
    /// `N`, an oversized buffer goes back to `N` bytes.
    pub fn emptied(&mut self, used: usize) {
        if self.bytes.len() == N {
            return;
        }
        if used > N {
            self.idle = 0;
            return;
        }
        self.idle += 1;
        if self.idle >= IDLE_BEFORE_SHRINK {
            self.idle = 0;
            #[cfg(feature = "std")]
            {
                self.bytes.truncate(N);
                self.bytes.shrink_to_fit();
            }
        }
    }
}

impl<const N: usize> Deref for Buf<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..]
    }
}

impl<const N: usize> DerefMut for Buf<N> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..]
    }
}

/// A first-in first-out queue: growable with `std`, `N` entries without.
#[derive(Debug)]
pub(crate) struct Fifo<T, const N: usize> {
    #[cfg(feature = "std")]
    q: std::collections::VecDeque<T>,
    #[cfg(not(feature = "std"))]
    q: heapless::Deque<T, N>,
}

impl<T, const N: usize> Default for Fifo<T, N> {
    fn default() -> Self {
        Fifo {
            q: Default::default(),
        }
    }
}

impl<T, const N: usize> Fifo<T, N> {
    /// Appends `item`; hands it back when full (only without `std`).
    #[inline]
    pub fn push_back(&mut self, item: T) -> Result<(), T> {
        #[cfg(feature = "std")]
        {
            self.q.push_back(item);
            Ok(())
        }
        #[cfg(not(feature = "std"))]
        self.q.push_back(item)
    }

    /// Puts `item` first; hands it back when full (only without `std`).
    pub fn push_front(&mut self, item: T) -> Result<(), T> {
        #[cfg(feature = "std")]
        {
            self.q.push_front(item);
            Ok(())
        }
        #[cfg(not(feature = "std"))]
        self.q.push_front(item)
    }

    #[inline]
    pub fn pop_front(&mut self) -> Option<T> {
        let item = self.q.pop_front();
        #[cfg(feature = "std")]
        if self.q.is_empty() && self.q.capacity() > 4 * N.max(1) {
            self.shrink();
        }
        item
    }

    /// Gives back the memory of a queue that grew for a burst.
    #[cfg(feature = "std")]
    #[cold]
    fn shrink(&mut self) {
        self.q.shrink_to(N);
    }

    pub fn front(&self) -> Option<&T> {
        self.q.front()
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Whether a push would fail (never with `std`).
    pub fn is_full(&self) -> bool {
        #[cfg(feature = "std")]
        {
            false
        }
        #[cfg(not(feature = "std"))]
        self.q.is_full()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.q.iter_mut()
    }

    /// The entry at `i` (0 is the front), in constant time.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let (front, back) = self.q.as_mut_slices();
        match i.checked_sub(front.len()) {
            None => front.get_mut(i),
            Some(j) => back.get_mut(j),
        }
    }

    /// Removes and returns the first entry for which `pick` is true,
    /// keeping the order of the rest.
    pub fn take_first(&mut self, mut pick: impl FnMut(&T) -> bool) -> Option<T> {
        let i = self.q.iter().position(&mut pick)?;
        #[cfg(feature = "std")]
        {
            self.q.remove(i)
        }
        #[cfg(not(feature = "std"))]
        {
            // Rotate the entries before it to the back, take it, rotate on.
            let n = self.q.len();
            let mut found = None;
            for k in 0..n {
                let item = self.q.pop_front()?;
                if k == i {
                    found = Some(item);
                } else {
                    let _ = self.q.push_back(item);
                }
            }
            found
        }
    }
}
