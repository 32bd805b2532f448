//! [`AsyncChild`]: a [`Child`] whose waits are futures.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitStatus;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use ::tokio::time::Interval;
use ipc_core::Error;

use super::io::{register, ChannelIo};
use crate::{Child, Command, Endpoint, Event};

/// Without a pidfd, how often an exit is looked for (as the `Poller` does).
const EXIT_CHECK: Duration = Duration::from_millis(50);

/// A running child with its channel, for tokio: Node's `ChildProcess`,
/// whose waits are futures that never block the runtime.
///
/// [`recv`](Self::recv) reports what [`Child::try_recv`] does, in the same
/// order: messages, internal messages and handle fates, `Disconnect` when
/// the channel closes, and `Exit` with the status; `Exit` comes once the
/// process has ended, before `Disconnect` if a grandchild still holds the
/// channel open. A stopped or slow child holds up only the futures that
/// wait on it.
///
/// ```no_run
/// use ipc_fork::tokio::AsyncChild;
/// use ipc_fork::{Command, Event};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mut child = AsyncChild::spawn(Command::current_exe()?.arg("worker"))?;
/// child.send(&"hello").await?;
/// loop {
///     match child.recv().await {
///         Ok(Event::Message(msg, _)) => println!("child says {}", msg.as_str()),
///         Ok(Event::Exit(status)) => break println!("child exited: {status}"),
///         Ok(_) => {}
///         Err(e) if !e.is_fatal() => eprintln!("skipped: {e}"),
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// It holds two more descriptors than the [`Child`]: duplicates of the
/// channel's socket and of the pidfd, registered with tokio's reactor.
/// Dropping it neither kills nor reaps the process, as with [`Child`].
#[derive(Debug)]
pub struct AsyncChild {
    io: ChannelIo,
    /// The pidfd's duplicate, until the exit is known.
    exit: Option<AsyncFd<OwnedFd>>,
    /// Without a pidfd: the exit check's clock.
    exit_check: Option<Interval>,
    inner: Child,
}

impl AsyncChild {
    /// Starts `command`'s child (fork and exec return at once: the
    /// process starts without waiting for anything it does).
    ///
    /// # Errors
    /// As [`Command::spawn`], or registering with the reactor failed (the
    /// child is then dropped: it sees its channel close).
    ///
    /// # Panics
    /// Outside a tokio runtime, as tokio's own I/O types.
    pub fn spawn(command: &Command) -> io::Result<AsyncChild> {
        AsyncChild::new(command.spawn()?)
    }

    /// Takes a child over, for tokio.
    ///
    /// # Errors
    /// Registering with the reactor failed (out of descriptors).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(child: Child) -> io::Result<AsyncChild> {
        let io = ChannelIo::new(&child)?;
        let exit = match child.exit_fd() {
            Some(fd) if !child.exit_reported() => Some(register(fd, Interest::READABLE)?),
            _ => None,
        };
        Ok(AsyncChild {
            io,
            exit,
            exit_check: None,
            inner: child,
        })
    }

    async_endpoint_methods!();

    /// Waits for the next event: what [`Child::try_recv`] gives once it
    /// has one (see the type's docs for the order), then
    /// `Err(Disconnected)` after both `Disconnect` and `Exit`.
    ///
    /// **Cancel-safe**: nothing is taken from the channel until it
    /// returns, so a `recv` dropped in a `select!` loses no event.
    ///
    /// The event may borrow the channel's buffer (a [`Message`]): keep it
    /// across other `.await`s as long as you like, but take what you need
    /// (`msg.as_str().to_owned()`, `msg.parse()`, the handle) before this
    /// child's next call.
    ///
    /// # Errors
    /// As [`Child::recv`]: a non-fatal error for one bad frame (receive
    /// again), `Disconnected` at the end; `Io` when the reactor fails
    /// (the runtime is shutting down).
    ///
    /// [`Message`]: ipc_core::Message
    pub async fn recv(&mut self) -> Result<Event<'_>, Error> {
        if self.inner.exit_reported() {
            // The pidfd's registration is of no more use.
            self.exit = None;
        }
        // Due replies go out while waiting (`poll_event`) or on receiving.
        poll_fn(|cx| self.poll_recv(cx)).await?;
        self.inner.try_recv()
    }

    /// Ready once `try_recv` has something: an event of the channel, the
    /// exit, or the end; or with the reactor's error.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let endpoint = self.inner.endpoint_mut();
        let open = !endpoint.is_disconnected();
        if open {
            if let Poll::Ready(r) = self.io.poll_event(cx, endpoint) {
                return Poll::Ready(r);
            }
        }
        if self.inner.exit_reported() {
            // Done once the channel is too.
            return if open {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            };
        }
        self.poll_exit(cx).map_err(Error::from)
    }

    /// Ready once the process may have exited (its pidfd is readable), or
    /// with the reactor's error.
    fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(fd) = &self.exit {
            return fd.poll_read_ready(cx).map_ok(drop);
        }
        // No pidfd (Linux before 5.3, or none could be opened): look now
        // and then.
        if matches!(self.inner.try_wait(), Ok(Some(_)) | Err(_)) {
            return Poll::Ready(Ok(()));
        }
        let check = self.exit_check.get_or_insert_with(|| {
            // After a stall, one look, not one per missed tick.
            let mut check = ::tokio::time::interval(EXIT_CHECK);
            check.set_missed_tick_behavior(::tokio::time::MissedTickBehavior::Skip);
            check
        });
        while check.poll_tick(cx).is_ready() {
            if matches!(self.inner.try_wait(), Ok(Some(_)) | Err(_)) {
                return Poll::Ready(Ok(()));
            }
        }
        Poll::Pending
    }

    /// Waits for the process to exit, without blocking the runtime; the
    /// channel stays as it is (see [`Child::wait`]). **Cancel-safe**.
    ///
    /// # Errors
    /// As `std::process::Child::try_wait`.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = poll_fn(|cx| loop {
            if let Some(status) = self.inner.try_wait()? {
                return Poll::Ready(Ok(status));
            }
            std::task::ready!(self.poll_exit(cx))?;
        })
        .await;
        if status.is_ok() {
            self.exit = None;
        }
        status
    }

    /// The exit status if the process has exited (see [`Child::try_wait`]).
    ///
    /// # Errors
    /// As `std::process::Child::try_wait`.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Sends `SIGKILL` (see [`Child::kill`]).
    ///
    /// # Errors
    /// As [`Child::kill`].
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// Sends `signal` (see [`Child::signal`]); Node's `child.kill()` is
    /// `SIGTERM`.
    ///
    /// # Errors
    /// As [`Child::signal`].
    pub fn signal(&self, signal: crate::Signal) -> io::Result<()> {
        self.inner.signal(signal)
    }

    /// The [`Child`], for what this type does not offer. Its blocking calls
    /// would block the runtime's thread: use its `try_` calls, or the async
    /// ones here.
    pub fn get_ref(&self) -> &Child {
        &self.inner
    }

    /// The [`Child`], mutably; see [`get_ref`](Self::get_ref).
    pub fn get_mut(&mut self) -> &mut Child {
        &mut self.inner
    }

    /// The [`Child`] again, for blocking use.
    pub fn into_inner(self) -> Child {
        self.inner
    }
}

/// The channel's descriptor.
impl AsFd for AsyncChild {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRef<Endpoint> for AsyncChild {
    fn as_ref(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}
