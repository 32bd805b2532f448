//! [`Poller`]: many children, and your own descriptors, in one thread.
//!
//! One `epoll(7)` set holds every child's channel (readable always,
//! writable while it has bytes to write), every child's `pidfd` (readable
//! when it exits), and the descriptors you [`watch`](Poller::watch).
//! [`next`](Poller::next) returns one thing at a time, tagged with where it
//! came from; children that are ready take turns, so a chatty child cannot
//! starve a quiet one, and a stopped child holds up nothing but itself.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use ipc_core::Error;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
use rustix::event::Timespec;

use crate::child::Child;
use crate::endpoint::Event;

/// Names a child added to a [`Poller`]; stays unique for the poller's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId {
    index: u32,
    generation: u32,
}

impl std::fmt::Display for ChildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "child#{}.{}", self.index, self.generation)
    }
}

/// Names a descriptor you [`watch`](Poller::watch): any number below
/// 2^62, yours to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u64);

/// What to wait for on a watched descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (for a listener: a connection to accept).
    Readable,
    /// Writable.
    Writable,
    /// Either.
    Both,
}

/// What [`Poller::next`] found.
#[derive(Debug)]
pub enum Ready<'a> {
    /// An event from a child, or a non-fatal error about one frame it
    /// sent (the channel goes on). After `Exit` nothing more comes from
    /// it: [`remove`](Poller::remove) it.
    Child(ChildId, Result<Event<'a>, Error>),
    /// A watched descriptor is ready (level-triggered: it is reported again
    /// until you act on it).
    Fd(Token),
    /// The timeout passed with nothing ready.
    Timeout,
}

/// What an epoll entry is about: the low two bits of its data.
const CHANNEL: u64 = 0;
const EXIT: u64 = 1;
const WATCHED: u64 = 2;
/// Readiness entries taken per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 64;
/// Without pidfds, how often children whose channel closed are checked for
/// their exit.
const EXIT_CHECK: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Slot {
    child: Child,
    generation: u32,
    /// Something may be ready: ask the child.
    hot: bool,
    /// epoll reported the channel since it was last read: read it when
    /// asking. Otherwise only what the channel holds already is looked at
    /// (a blocking call may have read ahead), without a system call: epoll
    /// is level-triggered and reports bytes still in the socket.
    readable: bool,
    /// Its channel is registered for writability too.
    out: bool,
    /// Its channel is registered at all: until it is disconnected, after
    /// which the closed socket would be readable forever.
    channel_watched: bool,
    /// Its exit is signalled by a pidfd (else found by asking).
    pidfd: bool,
    /// That pidfd is still registered (until it fires).
    exit_watched: bool,
}

/// Many children and your own descriptors, waited on in one thread.
///
/// ```no_run
/// use ipc_fork::{Command, Event, Poller, Ready, Token};
///
/// let mut poller = Poller::new()?;
/// let a = poller.add(Command::current_exe()?.arg("worker").spawn()?)?;
/// let b = poller.add(Command::current_exe()?.arg("worker").spawn()?)?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// poller.watch(&listener, Token(0), ipc_fork::Interest::Readable)?;
/// loop {
///     match poller.next(None)? {
///         Ready::Child(id, Ok(Event::Message(msg, _))) => println!("{id}: {}", msg.as_str()),
///         Ready::Child(id, Ok(Event::Exit(status))) => {
///             println!("{id} exited: {status}");
///             poller.remove(id);
///         }
///         Ready::Child(id, Err(e)) => eprintln!("{id}: {e}"),
///         Ready::Child(..) => {}
///         Ready::Fd(Token(0)) => {
///             let (conn, _) = listener.accept()?;
///             // ... hand it to a child: poller.child_mut(a).unwrap().queue_handle(..)
///             # drop(conn);
///         }
///         Ready::Fd(_) | Ready::Timeout => {}
///     }
///     # break;
/// }
/// # let _ = b;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Poller {
    epoll: OwnedFd,
    slots: Vec<Option<Slot>>,
    /// Generation the next child in each slot gets.
    generations: Vec<u32>,
    free: Vec<usize>,
    watched: Vec<(RawFd, Token)>,
    fds_ready: VecDeque<Token>,
    /// Where the round of ready children goes on.
    cursor: usize,
    /// Whether a watched descriptor goes before the next child.
    fd_turn: bool,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("epoll", &self.epoll)
            .field("children", &self.len())
            .field("watched", &self.watched.len())
            .finish_non_exhaustive()
    }
}

impl Poller {
    /// An empty poller.
    ///
    /// # Errors
    /// From `epoll_create1(2)`.
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            epoll: epoll::create(CreateFlags::CLOEXEC)?,
            slots: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            watched: Vec::new(),
            fds_ready: VecDeque::new(),
            cursor: 0,
            fd_turn: false,
        })
    }

    /// Takes `child` in; its events come from [`next`](Self::next).
    ///
    /// # Errors
    /// From `epoll_ctl(2)`; the child is dropped then (closing its channel).
    pub fn add(&mut self, child: Child) -> io::Result<ChildId> {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            self.slots.len() - 1
        });
        let data = (index as u64) << 2;
        epoll::add(
            &self.epoll,
            &child,
            EventData::new_u64(data | CHANNEL),
            EventFlags::IN | EventFlags::RDHUP,
        )?;
        let exit_watched = match child.exit_fd() {
            Some(fd) => {
                epoll::add(
                    &self.epoll,
                    fd,
                    EventData::new_u64(data | EXIT),
                    EventFlags::IN,
                )?;
                true
            }
            None => false,
        };
        let generation = self.generations[index];
        self.slots[index] = Some(Slot {
            child,
            generation,
            hot: true,
            readable: true,
            out: false,
            channel_watched: true,
            pidfd: exit_watched,
            exit_watched,
        });
        Ok(ChildId {
            index: index as u32,
            generation,
        })
    }

    fn slot(&self, id: ChildId) -> Option<&Slot> {
        self.slots
            .get(id.index as usize)?
            .as_ref()
            .filter(|s| s.generation == id.generation)
    }

    fn slot_mut(&mut self, id: ChildId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.index as usize)?
            .as_mut()
            .filter(|s| s.generation == id.generation)
    }

    /// Takes a child out (its events stop); `None` if it is not here.
    pub fn remove(&mut self, id: ChildId) -> Option<Child> {
        self.slot(id)?;
        let slot = self.slots[id.index as usize].take()?;
        if slot.channel_watched {
            let _ = epoll::delete(&self.epoll, &slot.child);
        }
        if slot.exit_watched {
            if let Some(fd) = slot.child.exit_fd() {
                let _ = epoll::delete(&self.epoll, fd);
            }
        }
        self.generations[id.index as usize] = slot.generation.wrapping_add(1);
        self.free.push(id.index as usize);
        Some(slot.child)
    }

    /// The child `id`, to send to it or look at it.
    pub fn child(&self, id: ChildId) -> Option<&Child> {
        self.slot(id).map(|s| &s.child)
    }

    /// The child `id`, mutably. Whatever a blocking call on it reads ahead
    /// is still reported by [`next`](Self::next).
    pub fn child_mut(&mut self, id: ChildId) -> Option<&mut Child> {
        let slot = self.slot_mut(id)?;
        slot.hot = true;
        Some(&mut slot.child)
    }

    /// The children, with their ids.
    pub fn children(&self) -> impl Iterator<Item = (ChildId, &Child)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref().map(|s| {
                (
                    ChildId {
                        index: i as u32,
                        generation: s.generation,
                    },
                    &s.child,
                )
            })
        })
    }

    /// How many children are here.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether no child is here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for `fd` too; it is reported as [`Ready::Fd`]`(token)`. The
    /// descriptor stays yours: [`unwatch`](Self::unwatch) it before you
    /// close it.
    ///
    /// # Errors
    /// `InvalidInput` for a token of 2^62 or more; else from
    /// `epoll_ctl(2)` (`EEXIST` if it is watched already).
    pub fn watch(&mut self, fd: impl AsFd, token: Token, interest: Interest) -> io::Result<()> {
        if token.0 >= 1 << 62 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "tokens must be below 2^62",
            ));
        }
        let flags = match interest {
            Interest::Readable => EventFlags::IN,
            Interest::Writable => EventFlags::OUT,
            Interest::Both => EventFlags::IN | EventFlags::OUT,
        };
        epoll::add(
            &self.epoll,
            &fd,
            EventData::new_u64(token.0 << 2 | WATCHED),
            flags,
        )?;
        self.watched.push((fd.as_fd().as_raw_fd(), token));
        Ok(())
    }

    /// Stops waiting for `fd`; a readiness already found for it is dropped.
    ///
    /// # Errors
    /// From `epoll_ctl(2)` (`ENOENT` if it was not watched).
    pub fn unwatch(&mut self, fd: impl AsFd) -> io::Result<()> {
        epoll::delete(&self.epoll, &fd)?;
        let raw = fd.as_fd().as_raw_fd();
        if let Some(i) = self.watched.iter().position(|(r, _)| *r == raw) {
            let (_, token) = self.watched.swap_remove(i);
            self.fds_ready.retain(|t| *t != token);
        }
        Ok(())
    }

    /// The next thing that is ready: an event from a child, a watched
    /// descriptor, or [`Ready::Timeout`] after `timeout` (`None`: wait as
    /// long as it takes). Never blocks on any one child.
    ///
    /// # Errors
    /// From `epoll_wait(2)` or `epoll_ctl(2)`.
    ///
    /// # Panics
    /// Never: a child is only reported ready while it is in the poller.
    pub fn next(&mut self, timeout: Option<Duration>) -> io::Result<Ready<'_>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.fd_turn {
                if let Some(token) = self.fds_ready.pop_front() {
                    self.fd_turn = false;
                    return Ok(Ready::Fd(token));
                }
            }
            self.fd_turn = true;
            if let Some(i) = self.next_ready_child() {
                let slot = self.slots[i].as_mut().expect("a ready child is here");
                let id = ChildId {
                    index: i as u32,
                    generation: slot.generation,
                };
                return Ok(Ready::Child(id, slot.child.try_recv()));
            }
            if let Some(token) = self.fds_ready.pop_front() {
                return Ok(Ready::Fd(token));
            }
            if self.sync()? {
                continue;
            }
            // Nothing is ready: whatever woke the last wait, the time is up.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Ready::Timeout);
            }
            let mut wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if self.needs_exit_checks() {
                wait = Some(wait.map_or(EXIT_CHECK, |w| w.min(EXIT_CHECK)));
            }
            self.wait(wait)?;
        }
    }

    /// The next child, in turn, with an event ready.
    fn next_ready_child(&mut self) -> Option<usize> {
        let n = self.slots.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let Some(slot) = self.slots[i].as_mut() else {
                continue;
            };
            if !slot.hot {
                continue;
            }
            // The exit is only looked for once its pidfd fired, or without
            // one (then on every round).
            let ready = slot
                .child
                .ready_for_poller(slot.readable, !slot.exit_watched);
            slot.readable = false;
            if ready {
                self.cursor = i + 1;
                return Some(i);
            }
            slot.hot = false;
        }
        None
    }

    /// Before waiting: registers writability for children with bytes to
    /// write, takes disconnected channels out of the set, and marks
    /// children with something already buffered. Returns whether any child
    /// is ready without waiting.
    fn sync(&mut self) -> io::Result<bool> {
        let mut any = false;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            if slot.channel_watched && slot.child.endpoint().is_disconnected() {
                // Its end was reported; its exit comes by the pidfd (or by
                // asking).
                let _ = epoll::delete(&self.epoll, &slot.child);
                slot.channel_watched = false;
            }
            if !slot.channel_watched {
                continue;
            }
            let out = slot.child.wants_write();
            if out != slot.out {
                let mut flags = EventFlags::IN | EventFlags::RDHUP;
                if out {
                    flags |= EventFlags::OUT;
                }
                let data = EventData::new_u64((i as u64) << 2 | CHANNEL);
                epoll::modify(&self.epoll, &slot.child, data, flags)?;
                slot.out = out;
            }
            if slot.child.is_ready() {
                slot.hot = true;
                any = true;
            }
        }
        Ok(any)
    }

    /// Whether some child's exit can only be found by asking (no pidfd).
    fn needs_exit_checks(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|s| !s.pidfd && !s.child.is_finished())
    }

    /// One `epoll_wait`; marks what it found.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        let none = epoll::Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        };
        // On the stack, not in the poller: rustix's event type is not Send.
        let mut events = [none; EVENTS_PER_WAIT];
        let n = match epoll::wait(&self.epoll, &mut events[..], timeout.as_ref()) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for event in &events[..n] {
            let data = event.data.u64();
            let (key, kind) = (data >> 2, data & 3);
            if kind == WATCHED {
                let token = Token(key);
                if !self.fds_ready.contains(&token) {
                    self.fds_ready.push_back(token);
                }
                continue;
            }
            let Some(Some(slot)) = self.slots.get_mut(key as usize) else {
                continue;
            };
            slot.hot = true;
            if kind == CHANNEL {
                slot.readable = true;
            }
            if kind == EXIT && slot.exit_watched {
                // Readable until reaped; the child's try_recv reaps it.
                let _ = slot
                    .child
                    .exit_fd()
                    .map(|fd| epoll::delete(&self.epoll, fd));
                slot.exit_watched = false;
            }
        }
        for slot in self.slots.iter_mut().flatten() {
            if !slot.pidfd && !slot.child.is_finished() {
                slot.hot = true;
            }
        }
        Ok(())
    }
}
