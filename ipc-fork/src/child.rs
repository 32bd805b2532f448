//! [`Child`]: the parent's view of a child process and its channel.

use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};

use ipc_core::Error;

use crate::endpoint::{Endpoint, Event};

/// A running child with its channel. Messages go through the
/// [`Endpoint`] it dereferences to; the process is controlled here.
///
/// [`recv`](Child::recv) reports, in order: messages, internal messages,
/// `Disconnect` when the channel closes (the child exited, crashed, or
/// disconnected), then `Exit` with the exit status.
#[derive(Debug)]
pub struct Child {
    process: std::process::Child,
    endpoint: Endpoint,
    exited: bool,
}

impl Child {
    pub(crate) fn new(process: std::process::Child, sock: OwnedFd) -> io::Result<Child> {
        let endpoint = Endpoint::new(sock).map_err(io::Error::from)?;
        Ok(Child {
            process,
            endpoint,
            exited: false,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// Waits for the next event; after `Disconnect` that is `Exit` (it
    /// waits for the process), then `Err(Disconnected)`.
    pub fn recv(&mut self) -> Result<Event<'_>, Error> {
        if self.endpoint.is_disconnected() {
            if self.exited {
                return Err(Error::Disconnected);
            }
            let status = self.process.wait().map_err(io_to_error)?;
            self.exited = true;
            return Ok(Event::Exit(status));
        }
        self.endpoint.recv()
    }

    /// Sends `SIGKILL` to the child (if it still runs).
    pub fn kill(&mut self) -> io::Result<()> {
        self.process.kill()
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: rustix::process::Signal) -> io::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.process.id() as i32)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such process"))?;
        rustix::process::kill_process(pid, signal).map_err(io::Error::from)
    }

    /// Waits for the child to exit. The channel is closed first on our side
    /// only if the child already closed it; call
    /// [`disconnect`](Endpoint::disconnect) to ask a child that waits for
    /// messages to finish.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.process.wait()?;
        self.exited = true;
        Ok(status)
    }

    /// The exit status if the child has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let status = self.process.try_wait()?;
        self.exited |= status.is_some();
        Ok(status)
    }

    /// The child's stdin, when started [`silent`](crate::Command::silent).
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.process.stdin.take()
    }

    /// The child's stdout, when started silent.
    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.process.stdout.take()
    }

    /// The child's stderr, when started silent.
    pub fn stderr(&mut self) -> Option<ChildStderr> {
        self.process.stderr.take()
    }
}

fn io_to_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(code) => Error::Io(rustix::io::Errno::from_raw_os_error(code)),
        None => Error::Io(rustix::io::Errno::IO),
    }
}

impl Deref for Child {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl DerefMut for Child {
    fn deref_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }
}
