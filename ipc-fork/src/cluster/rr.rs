//! Round-robin dealing (Node's `RoundRobinHandle`): the primary accepts,
//! and each connection goes to the first free worker with `newconn`. A
//! worker may have [`IN_FLIGHT_PER_WORKER`](super::IN_FLIGHT_PER_WORKER)
//! `newconn`s unanswered ([`Credits`]), and gets a credit back when it
//! answers one.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use ipc_core::{Handle, HandleKind, Ticket};
use rustix::io::Errno;
use rustix::net::SocketFlags;

use super::wire::{Act, Sockname};
use crate::{ChildId, Poller};

/// Connections accepted per readiness, so workers' answers are not starved.
const ACCEPT_BATCH: usize = 64;
/// Refusals (`accepted: false`, or a worker gone with it) after which a
/// connection is closed: Node would deal it forever.
const MAX_REFUSALS: u32 = 8;

/// An accepted connection; our copy stays here until a worker accepts it.
#[derive(Debug)]
pub(crate) struct Conn {
    fd: OwnedFd,
    refusals: u32,
}

/// A `newconn` waiting for its answer.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub seq: u64,
    pub ticket: Ticket,
    pub conn: Conn,
}

/// What one dealing step did.
pub(crate) enum Deal {
    /// A connection went to a worker.
    Sent(ChildId, InFlight),
    /// A free worker could not take it (its channel is closing); it is no
    /// longer free.
    Skipped,
    /// Nothing to deal, or no free worker.
    Done,
}

/// The `newconn`s each worker may still take. A worker with nothing in
/// flight is dealt to before any worker gets a second, in turn, so that one
/// request at a time alternates between workers as under Node's primary
/// (whose workers take one at a time).
#[derive(Debug, Default)]
pub(crate) struct Credits {
    /// Workers with nothing in flight, in turn.
    idle: VecDeque<ChildId>,
    /// Workers' further credits, in turn.
    spare: VecDeque<ChildId>,
}

impl Credits {
    /// A worker joins the key with all its credits.
    pub(crate) fn join(&mut self, id: ChildId) {
        self.idle.push_back(id);
        for _ in 1..super::IN_FLIGHT_PER_WORKER {
            self.spare.push_back(id);
        }
    }

    /// The worker to deal to next, if one is free.
    fn take(&mut self) -> Option<ChildId> {
        self.idle.pop_front().or_else(|| self.spare.pop_front())
    }

    /// A credit taken but not used: first in line again.
    fn untake(&mut self, id: ChildId) {
        self.idle.push_front(id);
    }

    /// A worker answered a `newconn`: one credit comes back.
    pub(crate) fn give_back(&mut self, id: ChildId) {
        if self.idle.contains(&id) {
            self.spare.push_back(id);
        } else {
            self.idle.push_back(id);
        }
    }

    /// A worker leaves the key.
    pub(crate) fn remove(&mut self, id: ChildId) {
        self.idle.retain(|&w| w != id);
        self.spare.retain(|&w| w != id);
    }
}

/// A round-robin key's listener, its free workers and waiting connections.
#[derive(Debug)]
pub(crate) struct RoundRobin {
    pub listener: OwnedFd,
    pub sockname: Option<Sockname>,
    pub free: Credits,
    pending: VecDeque<Conn>,
    /// Accepting failed for want of descriptors and that was reported.
    pause_reported: bool,
}

impl RoundRobin {
    pub(crate) fn new(listener: OwnedFd, sockname: Option<Sockname>) -> RoundRobin {
        RoundRobin {
            listener,
            sockname,
            free: Credits::default(),
            pending: VecDeque::new(),
            pause_reported: false,
        }
    }

    /// Accepts a batch of waiting connections.
    pub(crate) fn accept_some(&mut self) -> Result<(), Errno> {
        for _ in 0..ACCEPT_BATCH {
            match rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC) {
                Ok(fd) => {
                    self.pause_reported = false;
                    self.pending.push_back(Conn { fd, refusals: 0 });
                }
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR | Errno::CONNABORTED) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether an out-of-descriptors episode is new (to be reported once).
    pub(crate) fn note_pause(&mut self) -> bool {
        !std::mem::replace(&mut self.pause_reported, true)
    }

    /// Sends the first waiting connection to the first free worker, as
    /// `newconn` number `seq`.
    pub(crate) fn deal_one(&mut self, poller: &mut Poller, key: &str, seq: u64) -> Deal {
        if self.pending.is_empty() {
            return Deal::Done;
        }
        let Some(worker) = self.free.take() else {
            return Deal::Done;
        };
        let Some(child) = poller.child_mut(worker) else {
            return Deal::Skipped;
        };
        let conn = self.pending.pop_front().expect("not empty");
        let dup = match conn.fd.try_clone() {
            Ok(dup) => dup,
            Err(_) => {
                // Out of descriptors: try again at the next event.
                self.pending.push_front(conn);
                self.free.untake(worker);
                return Deal::Done;
            }
        };
        let msg = Act::new("newconn", Some(key), seq);
        match child.queue_handle(&msg, Handle::new(HandleKind::Native, dup)) {
            Ok(ticket) => Deal::Sent(worker, InFlight { seq, ticket, conn }),
            Err(_) => {
                self.pending.push_front(conn);
                Deal::Skipped
            }
        }
    }

    /// A connection back from a worker that refused it or went away: first
    /// in line again, unless it was refused too often (then closed).
    pub(crate) fn requeue(&mut self, mut conn: Conn) {
        conn.refusals += 1;
        if conn.refusals <= MAX_REFUSALS {
            self.pending.push_front(conn);
        }
    }
}
