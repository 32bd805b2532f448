//! `demo cluster`: Node's cluster primary in Rust, running N workers (Node's
//! own `app.js`, or `demo cluster-worker`) through `ipc_fork::cluster`.
//!
//! One line per worker event on stdout. A worker that dies is replaced
//! (with [`Backoff`] when it keeps dying at once) unless it left on purpose
//! (`exitedAfterDisconnect`); one that sends garbage is
//! killed and replaced. SIGHUP restarts the workers one by one: each new
//! worker listens before its predecessor is disconnected, so the sockets
//! never lack a worker. SIGINT/SIGTERM disconnects every worker, waits for
//! them (killing stragglers after [`STOP_GRACE`]) and exits 0.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ipc_fork::cluster::{ClusterEvent, Primary};
use ipc_fork::{ChildId, Command, Interest, Poller, Token};

use crate::cli::ClusterOpts;
use crate::common::{in_ms, Backoff};
use crate::signals::signal_socket;

/// The signal socket's token.
const SIGNALS: Token = Token(0);
/// How long stopping waits for disconnected workers before killing them.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a rolling restart waits for a new worker to listen.
const LISTEN_WAIT: Duration = Duration::from_secs(30);

/// One of the N places for a worker.
#[derive(Debug, Default)]
struct Slot {
    worker: Option<(ChildId, Instant)>,
    backoff: Backoff,
    start_at: Option<Instant>,
}

/// A rolling restart in progress.
#[derive(Debug, Default)]
struct Rolling {
    /// Slots still to restart.
    todo: Vec<usize>,
    /// The slot being restarted, its new worker, and when to give up.
    current: Option<(usize, ChildId, Instant)>,
}

struct Cluster {
    opts: ClusterOpts,
    poller: Poller,
    primary: Primary,
    slots: Vec<Slot>,
    rolling: Option<Rolling>,
    /// Stopping since then: workers are not replaced.
    stopping: Option<Instant>,
    /// `worker ID (pid PID)` of every worker started, for its last lines.
    names: HashMap<ChildId, String>,
}

/// Runs the primary until SIGINT/SIGTERM; the exit code.
pub fn run(opts: &ClusterOpts) -> i32 {
    match Cluster::new(opts).and_then(Cluster::serve) {
        Ok(()) => 0,
        Err(e) => {
            warn!("demo cluster: {e}");
            1
        }
    }
}

impl Cluster {
    fn new(opts: &ClusterOpts) -> io::Result<Cluster> {
        Ok(Cluster {
            opts: opts.clone(),
            poller: Poller::new()?,
            primary: Primary::new(opts.policy),
            slots: (0..opts.workers)
                .map(|_| Slot {
                    start_at: Some(Instant::now()),
                    ..Slot::default()
                })
                .collect(),
            rolling: None,
            stopping: None,
            names: HashMap::new(),
        })
    }

    fn serve(mut self) -> io::Result<()> {
        let signals = signal_socket(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP])?;
        self.poller.watch(&signals, SIGNALS, Interest::Readable)?;
        say!(
            "cluster: primary pid {}, policy {}, {} workers: {}",
            std::process::id(),
            self.opts.policy,
            self.opts.workers,
            self.opts.cmd.join(" ")
        );
        loop {
            let now = Instant::now();
            self.start_due(now);
            self.roll(now);
            if self.stopping.is_some() && self.primary.workers().next().is_none() {
                say!("cluster: every worker is gone; exiting");
                return Ok(());
            }
            let timeout = self.next_timer().map(|t| t.saturating_duration_since(now));
            match self.primary.next(&mut self.poller, timeout)? {
                ClusterEvent::Fd(SIGNALS) => self.on_signals(&signals),
                event => self.on_event(event),
            }
        }
    }

    /// `worker ID (pid PID)` for log lines.
    fn name(&self, id: ChildId) -> &str {
        self.names.get(&id).map_or("worker ?", String::as_str)
    }

    fn on_event(&mut self, event: ClusterEvent) {
        match event {
            ClusterEvent::Online(id) => say!("{} online", self.name(id)),
            ClusterEvent::Listening {
                worker,
                address,
                port,
                address_type,
            } => {
                say!(
                    "{} listening on port {port} (address {}, addressType {address_type})",
                    self.name(worker),
                    address.as_deref().unwrap_or("any")
                );
            }
            ClusterEvent::QueryFailed { worker, key, errno } => {
                say!("{} cannot listen on {key}: {errno}", self.name(worker));
            }
            ClusterEvent::Message { worker, json } => say!("{} says {json}", self.name(worker)),
            ClusterEvent::BadInput { worker, error } => {
                say!("{} sent garbage ({error}); replacing it", self.name(worker));
                if let Some(child) = self.poller.child_mut(worker) {
                    let _ = child.kill();
                }
            }
            ClusterEvent::AcceptFailed { key, error } => {
                warn!("demo cluster: accept {key}: {error}")
            }
            ClusterEvent::Disconnect {
                worker,
                exited_after_disconnect,
            } => {
                let dealt = self.primary.worker(worker).map_or(0, |w| w.connections);
                say!(
                    "{} disconnected (exitedAfterDisconnect={exited_after_disconnect}, {dealt} connections dealt)",
                    self.name(worker)
                );
            }
            ClusterEvent::Exit {
                worker,
                status,
                exited_after_disconnect,
            } => {
                say!(
                    "{} exited: {status} (exitedAfterDisconnect={exited_after_disconnect})",
                    self.name(worker)
                );
                self.exited(worker, exited_after_disconnect);
                self.names.remove(&worker);
            }
            _ => {}
        }
    }

    /// A worker exited: its slot gets another one, unless stopping or it
    /// left on purpose (as Node's docs do: `exitedAfterDisconnect`).
    fn exited(&mut self, id: ChildId, on_purpose: bool) {
        if let Some(r) = &mut self.rolling {
            if r.current.is_some_and(|(_, new, _)| new == id) {
                say!("rolling restart: the new worker died before listening; the old one stays");
                r.current = None;
            }
        }
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.worker.is_some_and(|(w, _)| w == id))
        else {
            return;
        };
        let (_, started) = slot.worker.take().expect("found by its worker");
        if self.stopping.is_some() {
            return;
        }
        if on_purpose {
            say!("cluster: the worker left on purpose; not replaced");
            return;
        }
        let delay = slot.backoff.after_exit(started.elapsed());
        say!("cluster: starting a replacement{}", in_ms(delay));
        slot.start_at = Some(Instant::now() + delay);
    }

    fn spawn(&mut self) -> io::Result<ChildId> {
        let (program, args) = self.opts.cmd.split_first().expect("a command");
        let mut cmd = Command::new(program);
        cmd.args(args);
        let id = self.primary.spawn(&mut self.poller, &mut cmd)?;
        if let Some(w) = self.primary.worker(id) {
            let name = format!("worker {} (pid {})", w.id, w.pid);
            self.names.insert(id, name);
        }
        Ok(id)
    }

    fn start_due(&mut self, now: Instant) {
        if self.stopping.is_some() {
            return;
        }
        for i in 0..self.slots.len() {
            if self.slots[i].start_at.is_none_or(|t| t > now) {
                continue;
            }
            self.slots[i].start_at = None;
            match self.spawn() {
                Ok(id) => {
                    self.slots[i].worker = Some((id, now));
                    say!("{} started", self.name(id));
                }
                Err(e) => {
                    let delay = self.slots[i].backoff.after_failed_start();
                    warn!(
                        "demo cluster: cannot start a worker ({e}); again{}",
                        in_ms(delay)
                    );
                    self.slots[i].start_at = Some(now + delay);
                }
            }
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        let starts = self.slots.iter().filter_map(|s| s.start_at);
        let rolling = self
            .rolling
            .as_ref()
            .and_then(|r| r.current.map(|(_, _, t)| t));
        let stopping = self.stopping.map(|t| t + STOP_GRACE);
        starts.chain(rolling).chain(stopping).min()
    }

    fn on_signals(&mut self, signals: &UnixStream) {
        let mut got = [0u8; 16];
        let n = (&*signals).read(&mut got).unwrap_or(0);
        for &sig in &got[..n] {
            match i32::from(sig) {
                libc::SIGHUP if self.stopping.is_none() => self.start_rolling(),
                libc::SIGHUP => {}
                sig => self.stop(if sig == libc::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                }),
            }
        }
    }

    fn stop(&mut self, why: &str) {
        if self.stopping.is_some() {
            return;
        }
        say!("cluster: stopped by {why}; disconnecting the workers");
        self.stopping = Some(Instant::now());
        self.rolling = None;
        let ids: Vec<ChildId> = self.primary.workers().map(|(id, _)| id).collect();
        for id in ids {
            let _ = self.primary.disconnect(&mut self.poller, id);
        }
    }

    fn start_rolling(&mut self) {
        if self.rolling.is_some() {
            say!("rolling restart: already in progress");
            return;
        }
        let todo: Vec<usize> = (0..self.slots.len())
            .rev()
            .filter(|&i| self.slots[i].worker.is_some())
            .collect();
        say!("rolling restart: {} workers", todo.len());
        self.rolling = Some(Rolling {
            todo,
            current: None,
        });
    }

    /// Moves a rolling restart on: a new worker for the next slot; once it
    /// listens, the old one is disconnected.
    fn roll(&mut self, now: Instant) {
        if let Some(stuck) = self.stopping {
            if now >= stuck + STOP_GRACE {
                self.kill_stragglers();
            }
        }
        let Some(mut r) = self.rolling.take() else {
            return;
        };
        if let Some((slot, new, deadline)) = r.current {
            let listening = self.primary.worker(new).is_some_and(|w| w.listening);
            if listening {
                let old = self.slots[slot].worker.replace((new, now));
                if let Some((old, _)) = old {
                    say!(
                        "rolling restart: {} replaces {}",
                        self.name(new),
                        self.name(old)
                    );
                    let _ = self.primary.disconnect(&mut self.poller, old);
                }
                r.current = None;
            } else if now >= deadline {
                say!(
                    "rolling restart: {} did not listen in time; killed, the old one stays",
                    self.name(new)
                );
                if let Some(child) = self.poller.child_mut(new) {
                    let _ = child.kill();
                }
                r.current = None;
            } else {
                self.rolling = Some(r);
                return;
            }
        }
        while r.current.is_none() {
            let Some(slot) = r.todo.pop() else {
                say!("rolling restart: done");
                return;
            };
            if self.slots[slot].worker.is_none() {
                continue;
            }
            match self.spawn() {
                Ok(new) => {
                    say!("{} started (rolling restart)", self.name(new));
                    r.current = Some((slot, new, now + LISTEN_WAIT));
                }
                Err(e) => warn!("demo cluster: rolling restart: cannot start a worker: {e}"),
            }
        }
        self.rolling = Some(r);
    }

    fn kill_stragglers(&mut self) {
        let ids: Vec<ChildId> = self.primary.workers().map(|(id, _)| id).collect();
        for id in ids {
            warn!(
                "demo cluster: {} did not leave in time; killing it",
                self.name(id)
            );
            if let Some(child) = self.poller.child_mut(id) {
                let _ = child.kill();
            }
        }
        self.stopping = Some(Instant::now());
    }
}
