//! [`AsyncParent`] and [`parent`]: the child's side, for tokio.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use ipc_core::Error;

use super::io::ChannelIo;
use crate::{Endpoint, Event, Parent, ParentError};

/// The channel to the process that started this one, for tokio: Node's
/// `process.send()` and `process.on('message')`, whose waits are futures.
/// Get it with [`parent`].
///
/// ```no_run
/// use ipc_fork::Event;
/// use ipc_net::Received;
/// use tokio::io::AsyncWriteExt;
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let mut parent = ipc_fork::tokio::parent()?;
///     loop {
///         match parent.recv().await {
///             Ok(Event::Message(_, Some(Ok(Received::Socket(socket))))) => {
///                 // Counted until dropped: a Node parent's getConnections() stays right.
///                 let mut stream = socket.into_tokio_tcp()?;
///                 tokio::spawn(async move { stream.write_all(b"hello\n").await });
///             }
///             Ok(Event::Message(msg, _)) => println!("parent says {}", msg.as_str()),
///             Ok(Event::Disconnect) => return Ok(()),
///             Ok(_) => {}
///             Err(e) if !e.is_fatal() => eprintln!("skipped: {e}"),
///             Err(e) => return Err(e.into()),
///         }
///     }
/// }
/// ```
///
/// It holds one more descriptor than the [`Parent`]: a duplicate of the
/// channel's socket, registered with tokio's reactor.
#[derive(Debug)]
pub struct AsyncParent {
    io: ChannelIo,
    inner: Parent,
}

/// Finds the channel the parent passed, as [`crate::parent`] does, for
/// tokio. Sound inside `#[tokio::main]`, with the runtime's threads already
/// running: the environment was read, and `NODE_CHANNEL_FD` and
/// `NODE_CHANNEL_SERIALIZATION_MODE` removed, before `main`, so this
/// process's own children never inherit them.
///
/// # Errors
/// As [`crate::parent`]; registering with the reactor failed
/// ([`ParentError::Channel`]).
///
/// # Panics
/// Outside a tokio runtime, as tokio's own I/O types.
pub fn parent() -> Result<AsyncParent, ParentError> {
    let parent = crate::parent()?;
    AsyncParent::new(parent).map_err(|e| ParentError::Channel(e.into()))
}

impl AsyncParent {
    /// Takes a [`Parent`] over, for tokio.
    ///
    /// # Errors
    /// Registering with the reactor failed (out of descriptors).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(parent: Parent) -> io::Result<AsyncParent> {
        Ok(AsyncParent {
            io: ChannelIo::new(&parent)?,
            inner: parent,
        })
    }

    async_endpoint_methods!();

    /// Waits for the next event; see [`Parent::recv`].
    ///
    /// **Cancel-safe**: nothing is taken from the channel until it
    /// returns, so a `recv` dropped in a `select!` loses no event.
    ///
    /// The event may borrow the channel's buffer (a [`Message`]): keep it
    /// across other `.await`s as long as you like, but take what you need
    /// before this channel's next call.
    ///
    /// # Errors
    /// As [`Parent::recv`]: a non-fatal error for one bad frame (receive
    /// again), `Disconnected` after [`Event::Disconnect`]; `Io` when the
    /// reactor fails (the runtime is shutting down).
    ///
    /// [`Message`]: ipc_core::Message
    pub async fn recv(&mut self) -> Result<Event<'_>, Error> {
        // Due replies go out while waiting (`poll_event`) or on receiving.
        let endpoint = self.inner.endpoint_mut();
        poll_fn(|cx| self.io.poll_event(cx, endpoint)).await?;
        self.inner.try_recv()
    }

    /// The [`Parent`], for what this type does not offer. Its blocking
    /// calls would block the runtime's thread: use its `try_` calls, or the
    /// async ones here.
    pub fn get_ref(&self) -> &Parent {
        &self.inner
    }

    /// The [`Parent`], mutably; see [`get_ref`](Self::get_ref).
    pub fn get_mut(&mut self) -> &mut Parent {
        &mut self.inner
    }

    /// The [`Parent`] again, for blocking use.
    pub fn into_inner(self) -> Parent {
        self.inner
    }
}

/// The channel's descriptor.
impl AsFd for AsyncParent {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRef<Endpoint> for AsyncParent {
    fn as_ref(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}
