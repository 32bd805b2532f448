//! A pre-fork pool with respawn, on one thread: the parent binds a
//! listener, starts N workers (this same program) and hands each the
//! listener; they all accept from it. A [`Poller`] watches every worker:
//! messages are logged, and a worker that exits is replaced, with a
//! back-off that doubles while replacements keep dying young.
//!
//! Without arguments it checks itself: requests answered, a worker
//! SIGKILLed, its replacement up and serving, then a graceful stop. With
//! `--serve [N]` it serves on 127.0.0.1:8000 until killed.
//!
//! ```sh
//! cargo run -p ipc-fork --example prefork_pool
//! cargo run -p ipc-fork --example prefork_pool -- --serve 4   # then: nc 127.0.0.1 8000
//! ```

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ipc_fork::{ChildId, Command, Event, Poller, Ready, Signal};
use ipc_net::{Received, Server};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    if ipc_fork::has_parent() {
        return worker();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve = args.first().map(String::as_str) == Some("--serve");
    let workers: usize = args.get(1).map_or(Ok(2), |n| n.parse())?;
    let server = Server::bind(if serve {
        "127.0.0.1:8000"
    } else {
        "127.0.0.1:0"
    })?;
    let addr = server.local_addr()?.as_inet().ok_or("not TCP")?;
    let mut pool = Pool {
        poller: Poller::new()?,
        server,
        started: HashMap::new(),
        backoff: FIRST_BACKOFF,
    };
    for _ in 0..workers {
        pool.start()?;
    }
    println!("listening on {addr} with {workers} workers");
    if serve {
        loop {
            pool.step(None)?;
        }
    }
    self_check(&mut pool, addr, workers)
}

/// The first wait before a replacement.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before a replacement.
const MAX_BACKOFF: Duration = Duration::from_millis(6400);

struct Pool {
    poller: Poller,
    server: Server,
    /// When each worker started: one that dies within a second is young.
    started: HashMap<ChildId, Instant>,
    /// The wait before the next replacement; doubles while they die young.
    backoff: Duration,
}

impl Pool {
    /// Starts a worker and hands it the listener (by reference: ours
    /// stays open for the next one).
    fn start(&mut self) -> Result<ChildId> {
        let mut child = Command::current_exe()?.kill_on_drop(true).spawn()?;
        child.send_handle(&"listen", self.server.to_handle()?)?;
        let id = self.poller.add(child)?;
        self.started.insert(id, Instant::now());
        Ok(id)
    }

    /// Handles what is ready; returns the worker that replaced one that
    /// exited, if that happened.
    fn step(&mut self, timeout: Option<Duration>) -> Result<Option<ChildId>> {
        match self.poller.next(timeout)? {
            Ready::Child(id, Ok(Event::Message(msg, _))) => println!("{id}: {}", msg.as_str()),
            Ready::Child(id, Ok(Event::Exit(status))) => {
                self.poller.remove(id);
                let young = self
                    .started
                    .remove(&id)
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
                // Back to the first wait once one lived; doubles (up to
                // 6.4 s) while replacements die young.
                if !young {
                    self.backoff = FIRST_BACKOFF;
                }
                println!("{id} exited ({status}); replacing it in {:?}", self.backoff);
                std::thread::sleep(self.backoff); // a real pool would use a timer
                if young {
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
                return Ok(Some(self.start()?));
            }
            Ready::Child(id, Err(e)) if !e.is_fatal() => eprintln!("{id}: skipped: {e}"),
            Ready::Child(id, Err(e)) => eprintln!("{id}: channel failed: {e}"),
            Ready::Child(..) | Ready::Fd(_) | Ready::Timeout => {}
        }
        Ok(None)
    }
}

/// Asks once; the pid of the worker that answered.
fn ask(addr: SocketAddr) -> Result<u32> {
    let mut answer = String::new();
    TcpStream::connect(addr)?.read_to_string(&mut answer)?;
    let pid = answer.strip_prefix("hello from ").ok_or("bad answer")?;
    Ok(pid.trim().parse()?)
}

fn self_check(pool: &mut Pool, addr: SocketAddr, workers: usize) -> Result<()> {
    let pids: HashSet<u32> = pool.poller.children().map(|(_, c)| c.id()).collect();
    assert_eq!(pids.len(), workers);
    for _ in 0..16 {
        assert!(pids.contains(&ask(addr)?));
    }
    // Kill one worker; the pool replaces it while the others serve.
    let (_, victim) = pool.poller.children().next().ok_or("no worker")?;
    let victim_pid = victim.id();
    victim.signal(Signal::KILL)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let replacement = loop {
        assert!(Instant::now() < deadline, "no replacement within a minute");
        if let Some(id) = pool.step(Some(Duration::from_secs(1)))? {
            break id;
        }
    };
    let new_pid = pool.poller.child(replacement).ok_or("replacement")?.id();
    for _ in 0..16 {
        let pid = ask(addr)?;
        assert_ne!(pid, victim_pid, "a dead worker answered");
    }
    // Graceful stop: disconnect each worker, wait for its exit.
    let ids: Vec<ChildId> = pool.poller.children().map(|(id, _)| id).collect();
    for id in ids {
        let mut child = pool.poller.remove(id).ok_or("worker")?;
        child.disconnect()?;
        loop {
            if let Event::Exit(status) = child.recv()? {
                assert!(status.success(), "worker {}: {status}", child.id());
                break;
            }
        }
    }
    println!("OK: served, replaced worker {victim_pid} with {new_pid}, stopped");
    Ok(())
}

/// A worker: accepts from the listener it is given, answers each
/// connection with its pid, and exits when the parent disconnects.
fn worker() -> Result<()> {
    let mut parent = ipc_fork::parent()?;
    loop {
        match parent.recv() {
            Ok(Event::Message(_, Some(Ok(Received::Server(server))))) => {
                std::thread::spawn(move || {
                    while let Ok(mut conn) = server.accept() {
                        let _ = writeln!(conn, "hello from {}", std::process::id());
                    }
                });
            }
            Ok(Event::Disconnect) => return Ok(()),
            Ok(_) => {}
            Err(e) if !e.is_fatal() => eprintln!("worker: skipped: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}
