//! [`ChannelIo`]: a channel's socket registered with tokio's reactor, and
//! the waiting loops of the async calls on top of the channel's `try_`
//! calls.
//!
//! The channel never blocks here: every read and write it makes passes
//! `MSG_DONTWAIT`. Readiness follows tokio's rule: it is cleared only when
//! an attempt made under the guard found nothing (`WouldBlock`), so no
//! wake-up is lost between the attempt and the wait. As with the blocking
//! calls, every wait also reads (and answers the peer's handles), so two
//! peers that write at each other both finish.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::task::{Context, Poll};

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use ipc_core::{Channel, Error};

use crate::endpoint::Endpoint;

/// Whether a step made progress, or is waiting (its waker registered, or
/// nothing to wait for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Progress,
    Waiting,
}

/// A duplicate of a channel's socket, registered with the reactor. The
/// duplicate shares the socket (and so its readiness) with the channel's
/// own descriptor; owning it makes the registration sound whatever is done
/// with the channel meanwhile.
#[derive(Debug)]
pub(crate) struct ChannelIo {
    fd: AsyncFd<OwnedFd>,
}

impl ChannelIo {
    /// Registers a duplicate of `channel`'s socket, for reading and writing.
    pub fn new(channel: impl AsFd) -> io::Result<ChannelIo> {
        Ok(ChannelIo {
            fd: register(channel, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// Writes while the socket is writable and the channel has bytes for it.
    fn poll_write(&self, cx: &mut Context<'_>, ch: &mut Channel) -> Result<Step, Error> {
        if !ch.wants_write() {
            return Ok(Step::Waiting);
        }
        match self.fd.poll_write_ready(cx) {
            Poll::Pending => Ok(Step::Waiting),
            Poll::Ready(Err(e)) => Err(Error::from(e)),
            Poll::Ready(Ok(mut guard)) => {
                // Other errors leave the send side dead; the caller's check
                // reports them.
                if ch.try_flush() == Err(Error::WouldBlock) {
                    guard.clear_ready();
                }
                Ok(Step::Progress)
            }
        }
    }

    /// Reads once what came, for a caller that waits to write or for a
    /// fate (ACKs take effect, messages are kept for `recv`).
    fn poll_read_ahead(&self, cx: &mut Context<'_>, ch: &mut Channel) -> Result<Step, Error> {
        match self.fd.poll_read_ready(cx) {
            Poll::Pending => Ok(Step::Waiting),
            Poll::Ready(Err(e)) => Err(Error::from(e)),
            Poll::Ready(Ok(mut guard)) => match ch.try_read_ahead() {
                Ok(()) => Ok(Step::Progress),
                Err(Error::WouldBlock) => {
                    guard.clear_ready();
                    Ok(Step::Progress)
                }
                // Nothing more can be stored, but writing may still go on.
                Err(Error::ReceiveBufferFull) if ch.wants_write() => Ok(Step::Waiting),
                Err(e) => Err(e),
            },
        }
    }

    /// Drives the channel (writing when writable, reading when readable)
    /// until `done` gives a result, answering the peer's queries among
    /// what it reads meanwhile. After an error, `done` is asked once more
    /// (a failed channel has settled every fate), else the error is the
    /// result.
    pub fn poll_until<R>(
        &self,
        cx: &mut Context<'_>,
        ep: &mut Endpoint,
        mut done: impl FnMut(&mut Channel) -> Option<Result<R, Error>>,
    ) -> Poll<Result<R, Error>> {
        loop {
            ep.answer_ahead();
            let ch = ep.channel();
            if let Some(r) = done(ch) {
                return Poll::Ready(r);
            }
            let step = self
                .poll_write(cx, ch)
                .and_then(|w| Ok((w, self.poll_read_ahead(cx, ch)?)));
            match step {
                Ok((Step::Waiting, Step::Waiting)) => return Poll::Pending,
                Ok(_) => {}
                Err(e) => return Poll::Ready(done(ch).unwrap_or(Err(e))),
            }
        }
    }

    /// [`poll_until`](Self::poll_until) as a future.
    pub async fn until<R>(
        &self,
        ep: &mut Endpoint,
        mut done: impl FnMut(&mut Channel) -> Option<Result<R, Error>>,
    ) -> Result<R, Error> {
        poll_fn(|cx| self.poll_until(cx, ep, &mut done)).await
    }

    /// Ready once an event can be taken from `ep` without blocking
    /// (`try_recv`): a message, a fate, an error, the end. Writes what the
    /// channel owes meanwhile, `NODE_SOCKET_ALL_CLOSED` replies too as soon
    /// as they become due. An error is the reactor's (the runtime is
    /// shutting down, say): the channel itself would report nothing, so it
    /// is the caller's to return.
    pub fn poll_event(&self, cx: &mut Context<'_>, ep: &mut Endpoint) -> Poll<Result<(), Error>> {
        loop {
            if ep.is_disconnected() || ep.is_ready() {
                return Poll::Ready(Ok(()));
            }
            ep.poll_due_replies(cx);
            let wrote = match self.poll_write(cx, ep.channel()) {
                Ok(step) => step,
                Err(e) => return Poll::Ready(Err(e)),
            };
            match self.fd.poll_read_ready(cx) {
                Poll::Pending if wrote == Step::Waiting => return Poll::Pending,
                Poll::Pending => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::from(e))),
                Poll::Ready(Ok(mut guard)) => {
                    // `prepare` reads until an event is ready, or until the
                    // socket has nothing more.
                    if ep.prepare() {
                        return Poll::Ready(Ok(()));
                    }
                    guard.clear_ready();
                }
            }
        }
    }
}

/// Whether a wait for written bytes is over: `Ok` once everything queued
/// is written, the reason once the channel cannot write any more.
pub(crate) fn written(ch: &mut Channel) -> Option<Result<(), Error>> {
    if !ch.is_connected() {
        // The reason: a closed channel, or why the send side died.
        return Some(Err(ch.try_flush().err().unwrap_or(Error::Disconnected)));
    }
    ch.is_written().then_some(Ok(()))
}

/// Registers a duplicate of `fd` (close-on-exec) with the reactor.
pub(crate) fn register(fd: impl AsFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    let dup = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
    // SAFETY: `dup` is an `OwnedFd` that the `AsyncFd` owns from here on
    // and that nothing else can reach (we never hand out `get_mut` or
    // `into_inner`): it stays open and names the same open file
    // description until the `AsyncFd` is dropped, which is what
    // `register_with_interest` asks.
    #[allow(unsafe_code)]
    let registered = unsafe { AsyncFd::register_with_interest(dup, interest) };
    registered.map_err(|e| e.into_parts().1)
}
