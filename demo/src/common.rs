//! Pieces both scenarios use: replies, starting workers, serving a listener.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_fork::{Child, Command};
use ipc_net::{Server, Socket};

/// What the parent answers on the shared server.
pub const PARENT_REPLY: &[u8] = b"handled by parent\n";
/// What a worker answers on the shared server.
pub const CHILD_REPLY: &[u8] = b"handled by child\n";

/// What a worker of `role` answers on a routed socket.
pub fn role_reply(role: &str) -> String {
    format!("You were handled as a {role} person\n")
}

/// Starts a worker: this executable in the `worker` role, or `child_cmd`
/// (with `role` appended, as the docs' `fork('child.js', ['normal'])`).
pub fn spawn_worker(child_cmd: Option<&[String]>, role: Option<&str>) -> io::Result<Child> {
    let mut cmd = match child_cmd {
        Some([program, args @ ..]) => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
        _ => {
            let mut c = Command::current_exe()?;
            c.arg("worker");
            c
        }
    };
    if let Some(role) = role {
        cmd.arg(role);
    }
    cmd.spawn()
}

/// Threads that handle every connection their servers accept, until
/// stopped. Stopping (or dropping) lets each finish the
/// connection in hand, then joins them: what is still queued in the kernel
/// is left to the other processes that hold the listener. That is how a
/// process leaves a shared listener without refusing anyone.
#[derive(Debug)]
pub struct Serving {
    /// Closed to stop: the read end then polls readable.
    stopper: Option<io::PipeWriter>,
    stop: Arc<io::PipeReader>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Serving {
    /// No thread yet.
    ///
    /// # Errors
    /// From `pipe2(2)`.
    pub fn new() -> io::Result<Serving> {
        crate::linger::start();
        let (stop, stopper) = io::pipe()?;
        Ok(Serving {
            stopper: Some(stopper),
            stop: Arc::new(stop),
            threads: Vec::new(),
        })
    }

    /// Starts a thread that answers every connection `server` accepts with
    /// `reply`, then closes it (see [`serve_with`](Self::serve_with)).
    pub fn serve(&mut self, server: Server, reply: &'static [u8]) {
        self.serve_with(server, move |conn| crate::linger::answer(conn, reply));
    }

    /// Starts a thread that gives every connection `server` accepts to
    /// `handle`. Out of descriptors, it pauses instead of spinning (see
    /// [`AcceptPause`]).
    pub fn serve_with(&mut self, server: Server, handle: impl Fn(Socket) + Send + 'static) {
        let stop = Arc::clone(&self.stop);
        self.threads.push(std::thread::spawn(move || {
            let mut pause = AcceptPause::default();
            loop {
                match server.accept_until(&*stop) {
                    Ok(Some(conn)) => {
                        pause.accepted();
                        handle(conn);
                    }
                    Ok(None) => return,
                    Err(e) => match pause.failed(&e) {
                        Some(wait) => std::thread::sleep(wait),
                        None if e.kind() == io::ErrorKind::ConnectionAborted => {}
                        None => {
                            warn!("demo: accept failed: {e}");
                            return;
                        }
                    },
                }
            }
        }));
    }

    /// Stops accepting and waits until every thread has answered the
    /// connection it holds.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stopper = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Accepting while the process is out of descriptors (`EMFILE`, `ENFILE`)
/// or memory: the connection stays queued in the kernel, so accepting
/// again at once would fail again, spinning a core and flooding the log.
/// Instead the caller waits [`AcceptPause::RETRY`] between attempts (the
/// clients wait in the listen queue), and one line is logged when an
/// episode starts and one when it ends.
#[derive(Debug, Default)]
pub struct AcceptPause {
    /// When the current episode started, and the attempts that failed.
    episode: Option<(Instant, u64)>,
}

impl AcceptPause {
    /// How long to wait before trying again.
    pub const RETRY: Duration = Duration::from_millis(100);

    /// After a failed accept: how long to wait before the next attempt for
    /// errors that only time cures; `None` for the others.
    pub fn failed(&mut self, e: &io::Error) -> Option<Duration> {
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if !exhausted {
            return None;
        }
        match &mut self.episode {
            Some((_, failures)) => *failures += 1,
            None => {
                warn!("demo: cannot accept ({e}); pausing until descriptors free up");
                self.episode = Some((Instant::now(), 1));
            }
        }
        Some(Self::RETRY)
    }

    /// After a successful accept: ends an episode, saying how long it was.
    pub fn accepted(&mut self) {
        if let Some((since, failures)) = self.episode.take() {
            warn!(
                "demo: accepting again after {} ms ({failures} attempts failed)",
                since.elapsed().as_millis()
            );
        }
    }
}

/// The listener to serve: the one systemd passed (`LISTEN_FDS`), else a
/// new one on `127.0.0.1:port`.
pub fn listener(port: u16) -> io::Result<Server> {
    let passed = ipc_net::systemd::listen_servers()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    match passed.into_iter().next() {
        Some((name, server)) => {
            say!("using the listener passed by systemd ({name})");
            Ok(server)
        }
        None => Server::bind(("127.0.0.1", port)),
    }
}

/// Restarting a worker that keeps dying at once: a worker that lived less
/// than [`Backoff::SHORT_LIFE`] (or could not be started) counts as a
/// failure, and its successor waits, doubling from [`Backoff::FIRST`] up
/// to [`Backoff::MAX`]; one that lived longer is replaced at once.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// A worker that dies sooner than this after its start failed at once.
    pub const SHORT_LIFE: Duration = Duration::from_secs(1);
    /// The first wait.
    pub const FIRST: Duration = Duration::from_millis(100);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(5);

    /// After a worker that lived `lived` is gone: how long its successor
    /// waits.
    pub fn after_exit(&mut self, lived: Duration) -> Duration {
        if lived < Self::SHORT_LIFE {
            self.after_failed_start()
        } else {
            self.failures = 0;
            Duration::ZERO
        }
    }

    /// After a start failed: how long until the next attempt.
    pub fn after_failed_start(&mut self) -> Duration {
        self.failures += 1;
        let shift = self.failures.saturating_sub(1).min(16);
        (Self::FIRST * (1u32 << shift)).min(Self::MAX)
    }

    /// Forgets the failures (a worker replaced on purpose).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// " in N ms" for a non-zero delay, for log lines.
pub fn in_ms(delay: Duration) -> String {
    if delay.is_zero() {
        String::new()
    } else {
        format!(" in {} ms", delay.as_millis())
    }
}
