//! `route-sockets`: the docs' second example, as one event loop.
//!
//! The parent accepts every connection and hands the socket to the
//! `special` worker when the client address is the VIP one, else to
//! `normal`. Everything runs in one [`Poller`]: the listener, both
//! workers' channels (read at all times: what a worker says is logged) and
//! their exits. Hand-offs never wait: each socket is queued on its worker's
//! channel and its fate comes back as an event. So:
//! - a worker that stops acknowledging holds up only its own clients, and
//!   only up to the hand-off timeout: then it is killed and replaced, and
//!   the sockets it never acknowledged go to the replacement;
//! - a worker that dies is restarted, with back-off when it keeps dying
//!   at once; its clients wait for the new one;
//! - out of descriptors, accepting pauses instead of spinning.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipc_core::{Fate, Handle, Ticket};
use ipc_fork::{ChildId, Event, Interest, Poller, Ready, Token};
use ipc_net::Server;

use crate::common::{in_ms, spawn_worker, AcceptPause, Backoff};
use crate::signals::Workers;

/// The listener's token in the poller.
const LISTENER: Token = Token(0);
/// Connections accepted per turn, so workers' events are not starved.
const ACCEPT_BATCH: usize = 32;
/// Lines of worker errors logged per worker before they are only counted.
const ERROR_LINES: u32 = 10;
/// Workers a socket may be on the wire to and be lost with (killed or
/// gone before acknowledging) before it is closed: a worker that answers
/// but never acknowledges would otherwise get it back forever.
const MAX_ATTEMPTS: u8 = 2;

/// A client's socket on its way to a worker, and how many workers it
/// was on the wire to already.
#[derive(Debug)]
struct Client {
    handle: Handle,
    attempts: u8,
}

/// How the router is set up.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// Clients from this address go to `special`.
    pub vip: IpAddr,
    /// Another program to run as the worker (the role is appended).
    pub child_cmd: Option<Vec<String>>,
    /// How long a worker may leave a hand-off unacknowledged before it is
    /// replaced.
    pub handoff_timeout: Duration,
}

/// A worker role and the sockets bound for it.
#[derive(Debug)]
struct Route {
    role: &'static str,
    /// The live worker, with its pid and start time.
    worker: Option<(ChildId, u32, Instant)>,
    /// Hand-offs whose fate is not known yet: the worker (tickets are
    /// per channel), the ticket, and the attempts before this one.
    in_flight: VecDeque<(ChildId, Ticket, u8)>,
    /// When the worker last acknowledged (or got its first hand-off).
    progress: Instant,
    /// Sockets waiting for a worker.
    waiting: VecDeque<Client>,
    /// Restarts after short lives, and when the next start is due.
    backoff: Backoff,
    start_at: Option<Instant>,
    /// Sockets the workers of this role acknowledged.
    delivered: usize,
}

impl Route {
    /// Whether the live worker has hand-offs it has not acknowledged.
    fn stalling(&self) -> bool {
        self.worker
            .is_some_and(|(id, _, _)| self.in_flight.iter().any(|(c, _, _)| *c == id))
    }

    fn new(role: &'static str) -> Route {
        Route {
            role,
            worker: None,
            in_flight: VecDeque::new(),
            progress: Instant::now(),
            waiting: VecDeque::new(),
            backoff: Backoff::default(),
            start_at: Some(Instant::now()),
            delivered: 0,
        }
    }
}

/// A worker process in the poller (live or on its way out).
#[derive(Debug)]
struct Member {
    id: ChildId,
    route: usize,
    pid: u32,
    errors: u32,
}

/// The router: listener, two routes, one poller.
pub struct Router {
    server: Server,
    poller: Poller,
    state: Routes,
    pause: AcceptPause,
    /// The listener is in the poller (not paused).
    listening: bool,
    resume_at: Option<Instant>,
}

/// The routes and their workers: what events change.
struct Routes {
    routes: [Route; 2],
    members: Vec<Member>,
    opts: RouterOptions,
    workers: Workers,
    /// Shutting down: workers that go are not replaced.
    stopping: bool,
}

impl Router {
    /// A router for `server`; workers start on the first [`turn`](Self::turn).
    ///
    /// # Errors
    /// From setting up the poller.
    pub fn new(server: Server, opts: RouterOptions, workers: Workers) -> io::Result<Router> {
        let mut poller = Poller::new()?;
        poller.watch(&server, LISTENER, Interest::Readable)?;
        Ok(Router {
            server,
            poller,
            state: Routes {
                routes: [Route::new("normal"), Route::new("special")],
                members: Vec::new(),
                opts,
                workers,
                stopping: false,
            },
            pause: AcceptPause::default(),
            listening: true,
            resume_at: None,
        })
    }

    /// Sockets acknowledged by the `normal` and `special` workers.
    pub fn delivered(&self) -> (usize, usize) {
        let r = &self.state.routes;
        (r[0].delivered, r[1].delivered)
    }

    /// The pids of the live workers, `normal` then `special`.
    pub fn pids(&self) -> [Option<u32>; 2] {
        [0, 1].map(|r| self.state.routes[r].worker.map(|(_, pid, _)| pid))
    }

    /// Serves until the process is stopped.
    pub fn run(&mut self) -> ! {
        loop {
            if let Err(e) = self.turn() {
                warn!("demo: route-sockets: {e}");
                std::thread::sleep(AcceptPause::RETRY);
            }
        }
    }

    /// Starts due workers, replaces stalled ones, hands waiting sockets
    /// over, and resumes accepting after a pause; never waits.
    ///
    /// # Errors
    /// From the poller.
    pub fn run_timers(&mut self, now: Instant) -> io::Result<()> {
        for r in 0..2 {
            self.state.start_if_due(&mut self.poller, r, now);
            self.state.replace_if_stalled(&mut self.poller, r, now);
            self.state.dispatch(&mut self.poller, r);
        }
        self.resume_if_due(now)
    }

    /// One turn: [`run_timers`](Self::run_timers), then handles one thing
    /// that is ready (waiting for it until the next timer).
    ///
    /// # Errors
    /// From the poller.
    pub fn turn(&mut self) -> io::Result<()> {
        let now = Instant::now();
        self.run_timers(now)?;
        let timeout = self
            .state
            .next_timer(self.resume_at)
            .map(|t| t.saturating_duration_since(now));
        let exited = match self.poller.next(timeout)? {
            Ready::Fd(_) => {
                self.accept_some();
                None
            }
            Ready::Child(id, event) => self.state.on_child(id, event),
            Ready::Timeout => None,
        };
        if let Some(id) = exited {
            self.poller.remove(id);
        }
        Ok(())
    }
}

impl Routes {
    /// An event or error from child `id`; returns `id` once it has exited.
    fn on_child(
        &mut self,
        id: ChildId,
        event: Result<Event<'_>, ipc_core::Error>,
    ) -> Option<ChildId> {
        let m = self.members.iter().position(|m| m.id == id)?;
        match event {
            Ok(event) => return self.on_event(m, event).then_some(id),
            Err(e) => {
                let member = &mut self.members[m];
                member.errors += 1;
                if member.errors <= ERROR_LINES {
                    warn!(
                        "demo: worker {} (pid {}): {e}",
                        self.routes[member.route].role, member.pid
                    );
                }
            }
        }
        None
    }

    /// The soonest moment a timer needs the loop (`also`, if any, too).
    fn next_timer(&self, also: Option<Instant>) -> Option<Instant> {
        let mut soonest = also;
        let mut consider = |t: Instant| soonest = Some(soonest.map_or(t, |s: Instant| s.min(t)));
        for route in &self.routes {
            if let Some(t) = route.start_at {
                consider(t);
            }
            if route.stalling() {
                consider(route.progress + self.opts.handoff_timeout);
            }
        }
        soonest
    }

    /// Returns whether the member exited (and was dropped from the list).
    fn on_event(&mut self, m: usize, event: Event<'_>) -> bool {
        let (id, r, pid) = {
            let member = &self.members[m];
            (member.id, member.route, member.pid)
        };
        let route = &mut self.routes[r];
        let current = route.worker.is_some_and(|(w, _, _)| w == id);
        let mut gone = false;
        let mut exited = false;
        match event {
            Event::Message(msg, handle) => {
                say!("worker {} (pid {pid}) says {}", route.role, msg.as_str());
                if handle.is_some() {
                    warn!("demo: worker {} sent a handle; closed", route.role);
                }
            }
            Event::Internal(..) => {}
            Event::Fate(Fate::Acknowledged(ticket)) => {
                route.in_flight.retain(|&(c, t, _)| (c, t) != (id, ticket));
                route.delivered += 1;
                if current {
                    route.progress = Instant::now();
                }
            }
            Event::Fate(Fate::Returned {
                ticket,
                handle,
                reason,
            }) => {
                let attempts = route
                    .in_flight
                    .iter()
                    .find(|&&(c, t, _)| (c, t) == (id, ticket))
                    .map_or(0, |(_, _, a)| a + 1);
                route.in_flight.retain(|&(c, t, _)| (c, t) != (id, ticket));
                if !reason.is_fatal() {
                    warn!(
                        "demo: worker {} (pid {pid}) refused a socket ({reason}); closed it",
                        route.role
                    );
                } else if attempts >= MAX_ATTEMPTS {
                    warn!(
                        "demo: closed a socket that {attempts} {} workers never acknowledged",
                        route.role
                    );
                } else {
                    // The worker went away before taking it: the next
                    // worker of this role gets it.
                    route.waiting.push_back(Client { handle, attempts });
                }
            }
            Event::Disconnect => gone = current,
            Event::Exit(status) => {
                say!("worker {} (pid {pid}) exited: {status}", route.role);
                gone = current;
                exited = true;
                self.members.remove(m);
                if let Ok(mut pids) = self.workers.lock() {
                    pids.retain(|p| *p != pid);
                }
            }
        }
        if gone {
            self.worker_gone(r, pid);
        }
        exited
    }

    /// The route's worker is gone: its sockets wait for the next one,
    /// started at once or, after a short life, with back-off.
    fn worker_gone(&mut self, r: usize, pid: u32) {
        let route = &mut self.routes[r];
        let Some((_, _, started)) = route.worker.take() else {
            return;
        };
        if self.stopping {
            return;
        }
        let now = Instant::now();
        let delay = route.backoff.after_exit(now.duration_since(started));
        say!(
            "worker {} (pid {pid}) is gone; starting another{}",
            route.role,
            in_ms(delay)
        );
        route.start_at = Some(now + delay);
    }

    fn start_if_due(&mut self, poller: &mut Poller, r: usize, now: Instant) {
        let route = &mut self.routes[r];
        if route.worker.is_some() || route.start_at.is_none_or(|t| t > now) {
            return;
        }
        route.start_at = None;
        let started =
            spawn_worker(self.opts.child_cmd.as_deref(), Some(route.role)).and_then(|child| {
                let pid = child.id();
                Ok((poller.add(child)?, pid))
            });
        match started {
            Ok((id, pid)) => {
                if let Ok(mut pids) = self.workers.lock() {
                    pids.push(pid);
                }
                route.worker = Some((id, pid, now));
                route.progress = now;
                self.members.push(Member {
                    id,
                    route: r,
                    pid,
                    errors: 0,
                });
                say!("worker {} started (pid {pid})", route.role);
            }
            Err(e) => {
                let delay = route.backoff.after_failed_start();
                warn!(
                    "demo: cannot start worker {} ({e}); trying again in {} ms",
                    route.role,
                    delay.as_millis()
                );
                route.start_at = Some(now + delay);
            }
        }
    }

    /// A worker that left hand-offs unacknowledged past the timeout is
    /// killed; the sockets come back as fates and go to its successor.
    fn replace_if_stalled(&mut self, poller: &mut Poller, r: usize, now: Instant) {
        let route = &mut self.routes[r];
        let Some((id, pid, _)) = route.worker else {
            return;
        };
        if !route.stalling() || now < route.progress + self.opts.handoff_timeout {
            return;
        }
        warn!(
            "demo: worker {} (pid {pid}) left {} socket(s) unacknowledged for {} ms; replacing it",
            route.role,
            route.in_flight.iter().filter(|(c, _, _)| *c == id).count(),
            self.opts.handoff_timeout.as_millis()
        );
        if let Some(child) = poller.child_mut(id) {
            // What it never got goes straight to its successor; only the
            // socket on the wire comes back as a fate, counted.
            route.in_flight.retain(|&(c, ticket, attempts)| {
                if c != id {
                    return true;
                }
                match child.withdraw(ticket) {
                    Some(handle) => {
                        route.waiting.push_back(Client { handle, attempts });
                        false
                    }
                    None => true,
                }
            });
            let _ = child.kill();
        }
        route.worker = None;
        route.backoff.reset();
        route.start_at = Some(now);
    }

    /// Hands the waiting sockets of route `r` to its worker.
    fn dispatch(&mut self, poller: &mut Poller, r: usize) {
        let route = &mut self.routes[r];
        let Some((id, _, _)) = route.worker else {
            return;
        };
        let Some(child) = poller.child_mut(id) else {
            return;
        };
        while let Some(client) = route.waiting.pop_front() {
            match child.queue_handle(&"socket", client.handle) {
                Ok(ticket) => {
                    if !route.stalling() {
                        route.progress = Instant::now();
                    }
                    route.in_flight.push_back((id, ticket, client.attempts));
                }
                Err(e) => {
                    // The channel is closing: keep it for the next worker.
                    if let Some(handle) = e.handle {
                        route.waiting.push_front(Client {
                            handle,
                            attempts: client.attempts,
                        });
                    }
                    break;
                }
            }
        }
    }
}

impl Router {
    /// Accepts what is waiting (a batch), routing each socket.
    fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            match self.server.try_accept() {
                Ok(conn) => {
                    self.pause.accepted();
                    let from = conn
                        .peer_addr()
                        .ok()
                        .and_then(|a| a.as_inet())
                        .map(|a| a.ip());
                    let r = usize::from(from == Some(self.state.opts.vip));
                    self.state.routes[r].waiting.push_back(Client {
                        handle: conn.into_handle(),
                        attempts: 0,
                    });
                    self.state.dispatch(&mut self.poller, r);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    match self.pause.failed(&e) {
                        Some(wait) => {
                            // Out of descriptors: stop watching the listener
                            // (it would stay readable) and try again later.
                            if self.listening && self.poller.unwatch(&self.server).is_ok() {
                                self.listening = false;
                            }
                            self.resume_at = Some(Instant::now() + wait);
                        }
                        None => warn!("demo: accept failed: {e}"),
                    }
                    return;
                }
            }
        }
    }

    /// Watches the listener again once a pause is over.
    fn resume_if_due(&mut self, now: Instant) -> io::Result<()> {
        if self.resume_at.is_some_and(|t| t <= now) {
            self.resume_at = None;
            if !self.listening {
                self.poller
                    .watch(&self.server, LISTENER, Interest::Readable)?;
                self.listening = true;
            }
        }
        Ok(())
    }

    /// Disconnects every worker and waits for them to exit.
    ///
    /// # Errors
    /// From the poller.
    pub fn shut_down(mut self) -> io::Result<()> {
        self.state.stopping = true;
        for member in &self.state.members {
            if let Some(child) = self.poller.child_mut(member.id) {
                let _ = child.disconnect();
            }
        }
        while !self.state.members.is_empty() {
            let exited = match self.poller.next(None)? {
                Ready::Child(id, event) => self.state.on_child(id, event),
                _ => None,
            };
            if let Some(id) = exited {
                self.poller.remove(id);
            }
        }
        Ok(())
    }
}
