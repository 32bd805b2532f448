//! [`Child`]: the parent's view of a child process and its channel.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};

use ipc_core::Error;

use crate::endpoint::{as_endpoint, endpoint_methods, Endpoint, Event};
use crate::signal::Signal;

/// A running child with its channel: Node's `ChildProcess`.
///
/// Messages go through the methods it shares with [`Parent`] (`send`,
/// `recv`, `send_handle`, ...); the process is controlled here.
/// [`recv`](Child::recv) reports, in order: messages, internal messages and
/// handle fates, `Disconnect` when the channel closes (the child exited,
/// crashed, or disconnected), then `Exit` with the exit status.
///
/// Dropping a `Child` closes the channel but neither kills nor reaps the
/// process (as with `std::process::Child`, and as Node's children outlive
/// their `ChildProcess`): a child that exits later stays a zombie until this
/// process exits. Call [`wait`](Child::wait) (or read `Exit`) to reap it,
/// or start it with [`Command::kill_on_drop`](crate::Command::kill_on_drop)
/// to have the drop kill and reap it.
///
/// ```
/// use ipc_fork::{Command, Event};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Any program can be a child; this one ignores its channel and exits 3.
/// let mut child = Command::new("/bin/sh").args(["-c", "exit 3"]).spawn()?;
/// assert!(matches!(child.recv()?, Event::Disconnect));
/// match child.recv()? {
///     Event::Exit(status) => assert_eq!(status.code(), Some(3)),
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
///
/// [`Parent`]: crate::Parent
#[derive(Debug)]
pub struct Child {
    process: std::process::Child,
    endpoint: Endpoint,
    /// `pidfd_open(2)`: readable once the process has exited.
    pidfd: Option<OwnedFd>,
    status: Option<ExitStatus>,
    exit_reported: bool,
    /// [`Command::kill_on_drop`](crate::Command::kill_on_drop).
    kill_on_drop: bool,
}

impl Child {
    pub(crate) fn new(
        process: std::process::Child,
        sock: OwnedFd,
        kill_on_drop: bool,
    ) -> io::Result<Child> {
        let endpoint = Endpoint::new(sock).map_err(io::Error::from)?;
        let pidfd = rustix::process::Pid::from_raw(process.id() as i32).and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        Ok(Child {
            process,
            endpoint,
            pidfd,
            status: None,
            exit_reported: false,
            kill_on_drop,
        })
    }

    endpoint_methods!();

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// Waits for the next event; after `Disconnect` that is `Exit` (it
    /// waits for the process), then `Err(Disconnected)`.
    ///
    /// With a [timeout](Self::set_timeout), every wait gives up at it,
    /// the wait for the exit too, and the wait for a message also watches
    /// the process: its `Exit` comes as it happens, even while a grandchild
    /// that inherited the channel keeps it open. Without one, a wait for a
    /// message sits in `recvmsg(2)` alone (the quickest round trip), so such
    /// an `Exit` comes once the channel closes; [`try_recv`](Self::try_recv),
    /// [`Poller`](crate::Poller) and `AsyncChild` always watch the exit.
    ///
    /// # Errors
    /// As [`Endpoint::recv`]; `TimedOut` past the timeout, the wait for the
    /// exit included.
    pub fn recv(&mut self) -> Result<Event<'_>, Error> {
        if !self.endpoint.is_disconnected() {
            if !self.exit_reported && self.endpoint.timeout().is_some() && self.exited_first()? {
                if let Some(status) = self.try_wait().map_err(Error::from)? {
                    self.exit_reported = true;
                    return Ok(Event::Exit(status));
                }
            }
            return self.endpoint.recv();
        }
        if self.exit_reported {
            return Err(Error::Disconnected);
        }
        let status = self.wait_within(self.endpoint.timeout())?;
        self.exit_reported = true;
        Ok(Event::Exit(status))
    }

    /// Waits until the channel has an event (`false`) or the process has
    /// exited (`true`), within the timeout; `false` at once without a
    /// pidfd (the exit is found by asking after the channel closes).
    fn exited_first(&mut self) -> Result<bool, Error> {
        match &self.pidfd {
            Some(pidfd) => self.endpoint.wait_ready(Some(pidfd.as_fd())),
            None => Ok(false),
        }
    }

    /// Waits for the exit, giving up after `timeout` if there is one.
    fn wait_within(&mut self, timeout: Option<std::time::Duration>) -> Result<ExitStatus, Error> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let Some(timeout) = timeout else {
            return self.wait().map_err(Error::from);
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait().map_err(Error::from)? {
                return Ok(status);
            }
            let left = deadline
                .checked_duration_since(std::time::Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or(Error::TimedOut)?;
            match &self.pidfd {
                Some(pidfd) => {
                    let left = Timespec {
                        tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                        tv_nsec: left.subsec_nanos().into(),
                    };
                    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
                    match poll(&mut fds, Some(&left)) {
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                // Kernels before 5.3: ask again now and then.
                None => std::thread::sleep(left.min(std::time::Duration::from_millis(10))),
            }
        }
    }

    /// The next event if there is one now, else `Err(WouldBlock)`. `Exit`
    /// comes once the process has ended, even while something else (a
    /// grandchild) keeps the channel open.
    ///
    /// # Errors
    /// As [`Endpoint::try_recv`].
    pub fn try_recv(&mut self) -> Result<Event<'_>, Error> {
        if !self.endpoint.is_disconnected() && self.endpoint.prepare() {
            return self.endpoint.try_recv();
        }
        if !self.exit_reported {
            if let Some(status) = self.try_wait().map_err(Error::from)? {
                self.exit_reported = true;
                return Ok(Event::Exit(status));
            }
        }
        if self.endpoint.is_disconnected() && self.exit_reported {
            return Err(Error::Disconnected);
        }
        Err(Error::WouldBlock)
    }

    /// Reads without blocking until an event is ready for
    /// [`try_recv`](Self::try_recv); whether one is.
    pub fn prepare(&mut self) -> bool {
        if !self.endpoint.is_disconnected() && self.endpoint.prepare() {
            return true;
        }
        !self.exit_reported && matches!(self.try_wait(), Ok(Some(_)) | Err(_))
    }

    /// [`prepare`](Self::prepare) for the [`Poller`](crate::Poller), which
    /// knows more: the socket is read only when `read` (epoll reported it),
    /// else only what the channel holds is looked at; the exit is looked
    /// for only when `reap` (the pidfd fired, or there is none), not with
    /// a `wait4(2)` on every round.
    pub(crate) fn ready_for_poller(&mut self, read: bool, reap: bool) -> bool {
        if !self.endpoint.is_disconnected() {
            let ready = if read {
                self.endpoint.prepare()
            } else {
                self.endpoint.send_due_replies();
                self.endpoint.is_ready()
            };
            if ready {
                return true;
            }
        }
        reap && !self.exit_reported && matches!(self.try_wait(), Ok(Some(_)) | Err(_))
    }

    /// Whether an event of the channel is ready without reading the socket
    /// (the process's exit shows on [`exit_fd`](Self::exit_fd)).
    pub fn is_ready(&mut self) -> bool {
        self.endpoint.is_ready()
    }

    /// Whether `Exit` has been reported.
    #[cfg(feature = "tokio")]
    pub(crate) fn exit_reported(&self) -> bool {
        self.exit_reported
    }

    /// Whether every event has been reported: the channel closed and the
    /// exit status read.
    pub fn is_finished(&self) -> bool {
        self.exit_reported && self.endpoint.is_disconnected()
    }

    /// Sends `SIGKILL` to the child if it still runs (std's meaning;
    /// Node's `child.kill()` sends `SIGTERM`, see [`signal`](Self::signal)).
    ///
    /// # Errors
    /// As `std::process::Child::kill`.
    pub fn kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        self.process.kill()
    }

    /// Sends `signal` to the child, unless it has been reaped already
    /// (then it does nothing). `child.signal(Signal::TERM)` is Node's
    /// `subprocess.kill()`. The signal goes through the child's pidfd where
    /// the kernel has them, so it can never reach another process that
    /// reused the pid.
    ///
    /// # Errors
    /// As `kill(2)`: `EPERM` when the child now runs as a user this
    /// process may not signal. A child that exited but is not reaped yet
    /// still takes signals (they are ignored), so that is not an error.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        if let Some(pidfd) = &self.pidfd {
            return rustix::process::pidfd_send_signal(pidfd, signal.to_rustix())
                .map_err(io::Error::from);
        }
        let pid = rustix::process::Pid::from_raw(self.process.id() as i32)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such process"))?;
        rustix::process::kill_process(pid, signal.to_rustix()).map_err(io::Error::from)
    }

    /// Waits for the child to exit. The channel stays as it is: call
    /// [`disconnect`](Self::disconnect) first to ask a child that waits for
    /// messages to finish.
    ///
    /// # Errors
    /// As `std::process::Child::wait`.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.process.wait()?;
        self.reaped(status);
        Ok(status)
    }

    /// The exit status if the child has exited.
    ///
    /// # Errors
    /// As `std::process::Child::try_wait`.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let status = self.process.try_wait()?;
        if let Some(status) = status {
            self.reaped(status);
        }
        Ok(status)
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        self.pidfd = None;
    }

    /// A descriptor that becomes readable when the process exits (its
    /// `pidfd`), while it has not been reaped; `None` on kernels without
    /// `pidfd_open(2)` (before Linux 5.3).
    pub fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// The child's stdin, when started [`silent`](crate::Command::silent).
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.process.stdin.take()
    }

    /// The parent's end of the child's stdout pipe, once, when it was
    /// [`Stdio::Piped`](crate::Stdio::Piped) (or [`silent`](crate::Command::silent)).
    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.process.stdout.take()
    }

    /// The parent's end of the child's stderr pipe, once, when it was
    /// [`Stdio::Piped`](crate::Stdio::Piped) (or [`silent`](crate::Command::silent)).
    pub fn stderr(&mut self) -> Option<ChildStderr> {
        self.process.stderr.take()
    }
}

/// The channel's descriptor (poll it for readability; see
/// [`Endpoint::wants_write`] for writability).
impl AsFd for Child {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.endpoint.as_fd()
    }
}

/// With [`Command::kill_on_drop`](crate::Command::kill_on_drop): kills the
/// child if it still runs, and reaps it.
impl Drop for Child {
    fn drop(&mut self) {
        if self.kill_on_drop && self.status.is_none() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

as_endpoint!(Child);
