//! [`Primary`]: Node's cluster primary as a state machine over a [`Poller`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use ipc_core::{Error, Fate, Handle};
use rustix::io::Errno;

use super::bind::{self, Want};
use super::rr::{Conn, Deal, InFlight, RoundRobin};
use super::wire::{self, Ack, Act, ClusterIn, Reply, Sockname};
use super::{InputError, Policy};
use crate::{ChildId, Command, Event, Poller, Ready, Token};

/// Where the primary's listener tokens start, unless
/// [`with_token_base`](Primary::with_token_base) says otherwise.
pub const TOKEN_BASE: u64 = 1 << 40;

/// What happened in the cluster: one event per call of
/// [`Primary::next`]. Worker events come after the primary has done its
/// part (replied, dealt, cleaned up).
#[non_exhaustive]
#[derive(Debug)]
pub enum ClusterEvent {
    /// The worker said `online` (Node's `'online'`).
    Online(ChildId),
    /// The worker listens (Node's `'listening'`): `address` as the worker
    /// asked (`None`: any), the port it has (the real one for port 0).
    Listening {
        /// The worker.
        worker: ChildId,
        /// `address` of its query (an IP, a path, or `None`).
        address: Option<String>,
        /// The port (or `-1` for a path).
        port: i32,
        /// `addressType`: `4`, `6`, `-1`, `udp4`, `udp6`.
        address_type: String,
    },
    /// A `queryServer` failed: the worker got `-errno` (Node's own
    /// number), the others go on.
    QueryFailed {
        /// The worker.
        worker: ChildId,
        /// The key it asked for.
        key: String,
        /// What binding said (`kind()` is `AddrInUse` for a port taken).
        errno: ipc_core::OsError,
    },
    /// A user message (`process.send()` in the worker), as JSON text. A
    /// handle sent with it is closed.
    Message {
        /// The sender.
        worker: ChildId,
        /// The message.
        json: String,
    },
    /// The worker sent something the protocol does not allow; it was
    /// skipped, and the worker's channel goes on.
    BadInput {
        /// The sender.
        worker: ChildId,
        /// What was wrong.
        error: InputError,
    },
    /// Accepting for a round-robin key failed: out of descriptors (accepting
    /// pauses for [`ACCEPT_PAUSE`]) or another error.
    AcceptFailed {
        /// The key.
        key: String,
        /// The error.
        error: io::Error,
    },
    /// The worker's channel closed (Node's `'disconnect'`). Its keys were
    /// released and its connections in flight dealt to other workers.
    Disconnect {
        /// The worker.
        worker: ChildId,
        /// Whether it left on purpose (Node's `exitedAfterDisconnect`).
        exited_after_disconnect: bool,
    },
    /// The worker exited (Node's `'exit'`); it is out of the poller.
    Exit {
        /// The worker.
        worker: ChildId,
        /// Its status.
        status: ExitStatus,
        /// Whether it left on purpose (Node's `exitedAfterDisconnect`).
        exited_after_disconnect: bool,
    },
    /// One of your own watched descriptors is ready.
    Fd(Token),
    /// The timeout passed.
    Timeout,
}

/// Round-robin connections on their way to one worker at a time. Node's
/// primary sends the next only once the worker answered the last (one);
/// two keep a worker busy while its answer travels back, and a Node worker
/// answers each `newconn` on its own.
pub const IN_FLIGHT_PER_WORKER: usize = 2;

/// How long accepting pauses when out of descriptors.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// What the primary knows of one worker.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Node's `worker.id` (`NODE_UNIQUE_ID`): 1, 2, ... never reused.
    pub id: u32,
    /// The process id.
    pub pid: u32,
    /// It said `online`.
    pub online: bool,
    /// It said `listening` at least once.
    pub listening: bool,
    /// Node's `exitedAfterDisconnect`: the primary disconnected it, or it
    /// asked to leave.
    pub exited_after_disconnect: bool,
    /// Its channel has closed.
    pub disconnected: bool,
    /// Round-robin connections it accepted.
    pub connections: u64,
    /// Entries (keys) it uses.
    entries: Vec<usize>,
}

/// A key's socket: shared with every worker, or accepted here.
#[derive(Debug)]
pub(crate) enum Kind {
    Shared {
        fd: OwnedFd,
        tag: ipc_core::HandleKind,
    },
    RoundRobin(RoundRobin),
}

/// One key (`address:port:addressType:fd:index`) and its workers.
#[derive(Debug)]
pub(crate) struct Entry {
    pub key: String,
    /// The first non-null `data` a worker sent, echoed to all.
    pub data: Option<String>,
    pub workers: Vec<ChildId>,
    pub kind: Kind,
}

/// Node's cluster primary: owns the listeners, answers the workers'
/// `queryServer`, deals connections round-robin, and tracks each worker
/// through `online`, `listening`, disconnect and exit. You own the
/// [`Poller`] (and may watch your own descriptors in it, with tokens below
/// [`TOKEN_BASE`]); call [`next`](Self::next) in your loop. See the
/// [module](super) for an example.
#[derive(Debug)]
pub struct Primary {
    policy: Policy,
    token_base: u64,
    /// Node's primary numbers every message it sends, across workers.
    seq: u64,
    next_id: u32,
    pub(crate) entries: Vec<Option<Entry>>,
    pub(crate) workers: HashMap<ChildId, WorkerInfo>,
    /// `newconn`s waiting for each worker's answer, with their key.
    flights: HashMap<ChildId, Vec<(usize, InFlight)>>,
    events: VecDeque<ClusterEvent>,
    /// Round-robin listeners paused (out of descriptors) until then.
    paused: Vec<(usize, Instant)>,
}

/// An event taken out of the poller's borrow.
enum Input {
    Cluster(ChildId, Box<ClusterIn>),
    Message(ChildId, String),
    Bad(ChildId, InputError),
    Fate(ChildId, Fate),
    Disconnect(ChildId),
    Exit(ChildId, ExitStatus),
    Accept(usize),
    Nothing,
}

impl Input {
    fn of(id: ChildId, event: Result<Event<'_>, Error>) -> Input {
        match event {
            Ok(Event::Internal(mut msg, _)) => match wire::read(&mut msg) {
                Some(Ok(m)) => Input::Cluster(id, Box::new(m)),
                Some(Err(e)) => Input::Bad(id, InputError::Json(e)),
                None => Input::Nothing,
            },
            Ok(Event::Message(msg, _)) => Input::Message(id, msg.as_str().to_owned()),
            Ok(Event::Fate(f)) => Input::Fate(id, f),
            Ok(Event::Disconnect) => Input::Disconnect(id),
            Ok(Event::Exit(status)) => Input::Exit(id, status),
            Err(e) => Input::Bad(id, InputError::Channel(e)),
        }
    }
}

impl Primary {
    /// A primary with scheduling `policy` and no workers yet.
    pub fn new(policy: Policy) -> Primary {
        Primary {
            policy,
            token_base: TOKEN_BASE,
            seq: 0,
            next_id: 1,
            entries: Vec::new(),
            workers: HashMap::new(),
            flights: HashMap::new(),
            events: VecDeque::new(),
            paused: Vec::new(),
        }
    }

    /// Uses tokens from `base` up for the listeners (one per key).
    pub fn with_token_base(mut self, base: u64) -> Primary {
        self.token_base = base;
        self
    }

    /// The scheduling policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Starts a worker: `cmd` with `NODE_UNIQUE_ID` set (Node's
    /// `cluster.fork()`), added to `poller`.
    ///
    /// # Errors
    /// From starting the process or adding it to the poller.
    pub fn spawn(&mut self, poller: &mut Poller, cmd: &mut Command) -> io::Result<ChildId> {
        let id = self.next_id;
        let child = cmd.env("NODE_UNIQUE_ID", id.to_string()).spawn()?;
        self.next_id += 1;
        let pid = child.id();
        let child_id = poller.add(child)?;
        self.workers.insert(
            child_id,
            WorkerInfo {
                id,
                pid,
                online: false,
                listening: false,
                exited_after_disconnect: false,
                disconnected: false,
                connections: 0,
                entries: Vec::new(),
            },
        );
        Ok(child_id)
    }

    /// A worker's state, while it is here (until its exit was reported).
    pub fn worker(&self, id: ChildId) -> Option<&WorkerInfo> {
        self.workers.get(&id)
    }

    /// The workers.
    pub fn workers(&self) -> impl Iterator<Item = (ChildId, &WorkerInfo)> {
        self.workers.iter().map(|(id, w)| (*id, w))
    }

    /// The keys the primary holds a socket for, with their workers.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &[ChildId])> {
        self.entries
            .iter()
            .flatten()
            .map(|e| (e.key.as_str(), e.workers.as_slice()))
    }

    /// Whether `token` names one of the primary's listeners.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.token_base
    }

    /// Disconnects a worker gracefully, as Node's `worker.disconnect()`:
    /// sends `disconnect` and takes it off every key at once (connections
    /// already on their way to it are answered by it, or dealt again). It
    /// closes its servers and its channel, then exits; that comes as
    /// events.
    ///
    /// # Errors
    /// As [`Endpoint::try_send`](crate::Endpoint::try_send); the worker
    /// is off its keys anyway.
    pub fn disconnect(&mut self, poller: &mut Poller, id: ChildId) -> Result<(), Error> {
        if let Some(w) = self.workers.get_mut(&id) {
            w.exited_after_disconnect = true;
        }
        self.release(poller, id);
        let seq = self.next_seq();
        match poller.child_mut(id) {
            Some(child) => child.try_send(&Act::new("disconnect", None, seq)),
            None => Err(Error::Disconnected),
        }
    }

    /// The next cluster event, after doing what the workers asked
    /// (replies, dealing connections); your own descriptors come as
    /// [`ClusterEvent::Fd`]. Waits up to `timeout` (`None`: as long as it
    /// takes).
    ///
    /// # Errors
    /// From the poller.
    pub fn next(
        &mut self,
        poller: &mut Poller,
        timeout: Option<Duration>,
    ) -> io::Result<ClusterEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            let now = Instant::now();
            self.resume_accepting(poller, now)?;
            let mut wait = deadline.map(|d| d.saturating_duration_since(now));
            if let Some(&(_, at)) = self.paused.iter().min_by_key(|(_, at)| *at) {
                let until = at.saturating_duration_since(now);
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
            let input = match poller.next(wait)? {
                Ready::Child(id, event) => Input::of(id, event),
                Ready::Fd(t) if self.owns(t) => Input::Accept((t.0 - self.token_base) as usize),
                Ready::Fd(t) => return Ok(ClusterEvent::Fd(t)),
                Ready::Timeout if deadline.is_some_and(|d| Instant::now() >= d) => {
                    return Ok(ClusterEvent::Timeout)
                }
                Ready::Timeout => Input::Nothing,
            };
            self.apply(poller, input);
        }
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    fn apply(&mut self, poller: &mut Poller, input: Input) {
        match input {
            Input::Cluster(id, m) => self.on_cluster(poller, id, *m),
            Input::Message(worker, json) => self
                .events
                .push_back(ClusterEvent::Message { worker, json }),
            Input::Bad(worker, error) => self
                .events
                .push_back(ClusterEvent::BadInput { worker, error }),
            Input::Fate(id, fate) => self.on_fate(poller, id, fate),
            Input::Disconnect(id) => self.on_disconnect(poller, id),
            Input::Exit(id, status) => {
                self.on_disconnect(poller, id);
                poller.remove(id);
                let eod = self
                    .workers
                    .remove(&id)
                    .is_some_and(|w| w.exited_after_disconnect);
                self.events.push_back(ClusterEvent::Exit {
                    worker: id,
                    status,
                    exited_after_disconnect: eod,
                });
            }
            Input::Accept(e) => self.accept(poller, e),
            Input::Nothing => {}
        }
    }

    fn on_cluster(&mut self, poller: &mut Poller, id: ChildId, m: ClusterIn) {
        if !self.workers.contains_key(&id) {
            return;
        }
        match (m.act.as_deref(), m.seq) {
            (Some("online"), _) => {
                self.worker_mut(id).online = true;
                self.events.push_back(ClusterEvent::Online(id));
            }
            (Some("queryServer"), Some(seq)) => self.query(poller, id, &m, seq),
            (Some("listening"), _) => {
                self.worker_mut(id).listening = true;
                self.events.push_back(ClusterEvent::Listening {
                    worker: id,
                    address: m.address.as_str().map(str::to_owned),
                    port: m.port.as_num().map_or(-1, |p| p as i32),
                    address_type: m.address_type.to_string(),
                });
            }
            (Some("close"), _) => {
                if let Some(e) = m.key.as_deref().and_then(|k| self.find(k)) {
                    self.leave(poller, id, e);
                }
            }
            (Some("exitedAfterDisconnect"), Some(seq)) => {
                self.worker_mut(id).exited_after_disconnect = true;
                let ours = self.next_seq();
                if let Some(child) = poller.child_mut(id) {
                    let _ = child.try_send(&Ack::new(seq, None, ours));
                }
            }
            (Some(act @ ("queryServer" | "exitedAfterDisconnect")), None) => {
                self.events.push_back(ClusterEvent::BadInput {
                    worker: id,
                    error: InputError::MissingSeq(act.to_owned()),
                });
            }
            (None, _) => {
                if let Some(ack) = m.ack {
                    self.newconn_answered(poller, id, ack, m.accepted == Some(true));
                }
            }
            // Node ignores acts it does not know.
            (Some(_), _) => {}
        }
    }

    fn worker_mut(&mut self, id: ChildId) -> &mut WorkerInfo {
        self.workers.get_mut(&id).expect("a known worker")
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.as_ref().is_some_and(|e| e.key == key))
    }

    /// `queryServer`: bind or reuse the key's socket, answer.
    fn query(&mut self, poller: &mut Poller, id: ChildId, m: &ClusterIn, seq: u64) {
        if self.worker_mut(id).exited_after_disconnect {
            return; // as Node: no answer for a worker on its way out
        }
        let key = m.key();
        let found = match self.find(&key) {
            Some(e) => Ok(e),
            None => Want::of(m).and_then(|want| self.create(poller, &key, &want)),
        };
        let e = match found {
            Ok(e) => e,
            Err(errno) => {
                self.reply_error(poller, id, &key, m.data.as_deref(), seq, errno);
                return;
            }
        };
        let entry = self.entries[e].as_mut().expect("a live entry");
        if entry.data.is_none() {
            entry.data.clone_from(&m.data);
        }
        // A worker asking again for a key it serves gets the same answer,
        // not more credits.
        let joined = !entry.workers.contains(&id);
        if joined {
            entry.workers.push(id);
        }
        let w = self.workers.get_mut(&id).expect("a known worker");
        if !w.entries.contains(&e) {
            w.entries.push(e);
        }
        let seq_out = self.next_seq();
        let entry = self.entries[e].as_mut().expect("a live entry");
        let Some(child) = poller.child_mut(id) else {
            return;
        };
        let reply = Reply::new(&entry.key, seq, entry.data.as_deref(), seq_out);
        match &mut entry.kind {
            Kind::Shared { fd, tag } => {
                let reply = Reply {
                    errno: Some(0),
                    ..reply
                };
                // The worker's fate is its own: a shared socket it never
                // took stays ours and the others'.
                match fd.try_clone() {
                    Ok(dup) => {
                        let _ = child.queue_handle(&reply, Handle::new(*tag, dup));
                    }
                    // Out of descriptors: the worker gets the errno, not
                    // silence (it would wait for this answer forever).
                    Err(e) => {
                        let errno = Errno::from_io_error(&e).unwrap_or(Errno::MFILE);
                        let (key, data) = (entry.key.clone(), entry.data.clone());
                        self.reply_error(poller, id, &key, data.as_deref(), seq, errno);
                    }
                }
            }
            Kind::RoundRobin(rr) => {
                let reply = Reply {
                    sockname: rr.sockname.as_ref(),
                    ..reply
                };
                if child.try_send(&reply).is_ok() && joined {
                    rr.free.join(id);
                }
                self.deal(poller, e);
            }
        }
    }

    fn reply_error(
        &mut self,
        poller: &mut Poller,
        id: ChildId,
        key: &str,
        data: Option<&str>,
        seq: u64,
        errno: Errno,
    ) {
        let reply = Reply {
            errno: Some(-errno.raw_os_error()),
            ..Reply::new(key, seq, data, self.next_seq())
        };
        if let Some(child) = poller.child_mut(id) {
            let _ = child.try_send(&reply);
        }
        self.events.push_back(ClusterEvent::QueryFailed {
            worker: id,
            key: key.to_owned(),
            errno: errno.into(),
        });
    }

    /// Binds the socket for a new key; UDP is always shared, as in Node.
    fn create(&mut self, poller: &mut Poller, key: &str, want: &Want) -> Result<usize, Errno> {
        let shared = self.policy == Policy::None || matches!(want, Want::Udp { .. });
        let fd = want.bind(!shared)?;
        let e = self
            .entries
            .iter()
            .position(Option::is_none)
            .unwrap_or_else(|| {
                self.entries.push(None);
                self.entries.len() - 1
            });
        let kind = if shared {
            Kind::Shared {
                fd,
                tag: want.tag(),
            }
        } else {
            let token = Token(self.token_base + e as u64);
            poller
                .watch(&fd, token, crate::Interest::Readable)
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::NOMEM))?;
            let sockname: Option<Sockname> = match want {
                Want::Unix { .. } => None,
                _ => bind::sockname(&fd),
            };
            Kind::RoundRobin(RoundRobin::new(fd, sockname))
        };
        self.entries[e] = Some(Entry {
            key: key.to_owned(),
            data: None,
            workers: Vec::new(),
            kind,
        });
        Ok(e)
    }

    /// Takes worker `id` off every key (disconnect, exit).
    fn release(&mut self, poller: &mut Poller, id: ChildId) {
        let entries = self
            .workers
            .get_mut(&id)
            .map(|w| std::mem::take(&mut w.entries))
            .unwrap_or_default();
        for e in entries {
            self.leave(poller, id, e);
        }
    }

    /// Takes worker `id` off key `e`; the last one out closes it.
    fn leave(&mut self, poller: &mut Poller, id: ChildId, e: usize) {
        if let Some(w) = self.workers.get_mut(&id) {
            w.entries.retain(|&x| x != e);
        }
        let Some(entry) = self.entries.get_mut(e).and_then(Option::as_mut) else {
            return;
        };
        entry.workers.retain(|&w| w != id);
        if let Kind::RoundRobin(rr) = &mut entry.kind {
            rr.free.remove(id);
        }
        if entry.workers.is_empty() {
            if let Some(Entry {
                kind: Kind::RoundRobin(rr),
                ..
            }) = self.entries[e].take()
            {
                let _ = poller.unwatch(&rr.listener);
                self.paused.retain(|(p, _)| *p != e);
                // Its connections still in flight are closed here: the slot
                // may serve another key next, and a late answer must not
                // deal them there.
                for flights in self.flights.values_mut() {
                    flights.retain(|(x, _)| *x != e);
                }
            }
        }
    }

    fn on_disconnect(&mut self, poller: &mut Poller, id: ChildId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.disconnected {
            return;
        }
        w.disconnected = true;
        let eod = w.exited_after_disconnect;
        self.release(poller, id);
        self.requeue_in_flight(poller, id);
        self.events.push_back(ClusterEvent::Disconnect {
            worker: id,
            exited_after_disconnect: eod,
        });
    }

    fn on_fate(&mut self, poller: &mut Poller, id: ChildId, fate: Fate) {
        if let Fate::Returned { ticket, reason, .. } = fate {
            // A newconn the worker never took: the connection goes to
            // another worker (our copy; the returned one is closed).
            if let Some((e, conn)) = self.take_in_flight(id, |f| f.ticket == ticket) {
                self.redeal(poller, e, conn, (!reason.is_fatal()).then_some(id));
            }
        }
    }

    fn accept(&mut self, poller: &mut Poller, e: usize) {
        let Some(Entry {
            kind: Kind::RoundRobin(rr),
            key,
            ..
        }) = self.entries.get_mut(e).and_then(Option::as_mut)
        else {
            return;
        };
        if let Err(error) = rr.accept_some() {
            let exhausted = matches!(
                error,
                Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM
            );
            if exhausted && !self.paused.iter().any(|(p, _)| *p == e) {
                let _ = poller.unwatch(&rr.listener);
                self.paused.push((e, Instant::now() + ACCEPT_PAUSE));
            }
            if !exhausted || rr.note_pause() {
                self.events.push_back(ClusterEvent::AcceptFailed {
                    key: key.clone(),
                    error: error.into(),
                });
            }
        }
        self.deal(poller, e);
    }

    fn resume_accepting(&mut self, poller: &mut Poller, now: Instant) -> io::Result<()> {
        let due: Vec<usize> = self
            .paused
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(e, _)| *e)
            .collect();
        self.paused.retain(|(_, at)| *at > now);
        for e in due {
            if let Some(Entry {
                kind: Kind::RoundRobin(rr),
                ..
            }) = self.entries.get(e).and_then(Option::as_ref)
            {
                let token = Token(self.token_base + e as u64);
                poller.watch(&rr.listener, token, crate::Interest::Readable)?;
            }
        }
        Ok(())
    }

    /// Deals waiting connections of key `e` to its free workers.
    pub(crate) fn deal(&mut self, poller: &mut Poller, e: usize) {
        loop {
            let seq = self.seq;
            let Some((rr, key, _)) = self.rr_mut(e) else {
                return;
            };
            match rr.deal_one(poller, key, seq) {
                Deal::Sent(worker, in_flight) => {
                    self.seq += 1;
                    self.flights.entry(worker).or_default().push((e, in_flight));
                }
                Deal::Skipped => {}
                Deal::Done => return,
            }
        }
    }

    /// A worker's answer to `newconn`.
    fn newconn_answered(&mut self, poller: &mut Poller, id: ChildId, ack: u64, accepted: bool) {
        let Some((e, conn)) = self.take_in_flight(id, |f| f.seq == ack) else {
            return;
        };
        if accepted {
            drop(conn);
            if let Some(w) = self.workers.get_mut(&id) {
                w.connections += 1;
            }
            self.give_back(poller, e, id);
        } else {
            self.redeal(poller, e, conn, Some(id));
        }
    }

    /// A connection a worker refused or never took: to the next worker;
    /// `back` (still serving the key) is free again afterwards.
    fn redeal(&mut self, poller: &mut Poller, e: usize, conn: Conn, back: Option<ChildId>) {
        if let Some((rr, _, _)) = self.rr_mut(e) {
            rr.requeue(conn);
        }
        self.deal(poller, e);
        if let Some(id) = back {
            self.give_back(poller, e, id);
        }
    }

    /// Worker `id` answered a `newconn` of key `e`: its credit comes back
    /// (if it still serves the key), and what waits is dealt.
    fn give_back(&mut self, poller: &mut Poller, e: usize, id: ChildId) {
        if let Some((rr, _, workers)) = self.rr_mut(e) {
            if workers.contains(&id) {
                rr.free.give_back(id);
            }
        }
        self.deal(poller, e);
    }

    /// Key `e`'s round-robin state, key and workers (`None` for a shared
    /// or closed key).
    fn rr_mut(&mut self, e: usize) -> Option<(&mut RoundRobin, &str, &[ChildId])> {
        match self.entries.get_mut(e)?.as_mut()? {
            Entry {
                kind: Kind::RoundRobin(rr),
                key,
                workers,
                ..
            } => Some((rr, key.as_str(), workers.as_slice())),
            _ => None,
        }
    }

    fn take_in_flight(
        &mut self,
        id: ChildId,
        which: impl Fn(&InFlight) -> bool,
    ) -> Option<(usize, Conn)> {
        let flights = self.flights.get_mut(&id)?;
        let i = flights.iter().position(|(_, f)| which(f))?;
        let (e, f) = flights.swap_remove(i);
        Some((e, f.conn))
    }

    /// A worker gone: its connections in flight go to the others.
    fn requeue_in_flight(&mut self, poller: &mut Poller, id: ChildId) {
        for (e, f) in self.flights.remove(&id).unwrap_or_default() {
            self.redeal(poller, e, f.conn, None);
        }
    }
}
