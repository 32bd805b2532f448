//! The `tokio` feature: [`AsyncChild`] and [`AsyncParent`], the two ends of
//! the channel with futures for every wait, for servers on tokio.
//!
//! ```no_run
//! use ipc_fork::tokio::AsyncChild;
//! use ipc_fork::{Command, Event};
//! use ipc_net::Server;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Parent: a worker, a listener it serves from too, then its messages.
//! let mut worker = AsyncChild::spawn(Command::current_exe()?.arg("worker"))?;
//! let server = Server::bind("127.0.0.1:0")?;
//! worker.send_handle(&"server", server.to_handle()?).await?;   // resolves on the ACK
//! loop {
//!     match worker.recv().await {
//!         Ok(Event::Exit(status)) => break println!("worker exited: {status}"),
//!         Ok(_) => {}
//!         Err(e) if !e.is_fatal() => eprintln!("skipped: {e}"), // one bad message
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! In the child, [`parent()`] (inside `#[tokio::main]` too); received
//! servers, sockets and UDP sockets become tokio's own types in one call
//! (`socket.into_tokio_tcp()?`, see [`ipc_net::tokio`]).
//!
//! # Cancel safety
//!
//! | call | if the future is dropped before it finishes |
//! |---|---|
//! | `recv` | **cancel-safe**: nothing is taken from the channel until it returns |
//! | `flush` | **cancel-safe**: what is queued stays queued, and goes out with the next call that writes |
//! | `wait` (`AsyncChild`) | **cancel-safe** |
//! | `queue` | **cancel-safe**: it finishes in the poll that queues the message, so a dropped one queued nothing |
//! | `send` | the message was queued on the first poll and is not taken back: it goes out with the next call that writes |
//! | `send_handle` | the hand-off stays queued: its fate comes later from `recv` as [`Event::Fate`](crate::Event::Fate) (or take the handle back first: `queue_handle` + `withdraw`) |
//! | `disconnect` | the channel stays open, with what was queued |
//! | `request_connection_count` | as `send` |
//!
//! `try_queue`, `try_send`, `queue_handle` and `withdraw` never wait. Bound a
//! wait with `tokio::time::timeout` (the channel's own
//! [`set_timeout`](crate::Endpoint::set_timeout) is for blocking calls).
//!
//! # How it waits
//!
//! Each end registers a duplicate of its channel's socket (and an
//! [`AsyncChild`] of its pidfd) with tokio's reactor, and calls the
//! channel's non-blocking operations when tokio says the socket is ready.
//! Every wait also reads, as the blocking calls do: a `send` that waits
//! for room reads the peer's messages (kept for `recv`) and acknowledges
//! its handles, so two peers that write at each other both finish.

/// The messaging methods shared by [`AsyncChild`] and [`AsyncParent`]: a
/// type with the registered socket in `self.io` and the blocking end
/// (with `endpoint()` / `endpoint_mut()`) in `self.inner`.
macro_rules! async_endpoint_methods {
    () => {
        /// Sends a message and waits until it is written to the kernel,
        /// reading what the peer sends meanwhile (behind an unacknowledged
        /// handle that includes waiting for the peer's ACK); see
        /// [`Endpoint::send`](crate::Endpoint::send).
        ///
        /// Not cancel-safe: once queued (on the first poll, unless the send
        /// buffer is at its [limit](Self::set_limit): then once there is
        /// room), a dropped future does not take the message back (it goes
        /// out with the next call that writes).
        ///
        /// # Errors
        /// `Disconnected` once the peer is gone; `Encode` or
        /// `MessageTooLarge` for a message that cannot be sent;
        /// `ReceiveBufferFull` when waiting would need more room than the
        /// [limit](Self::set_limit).
        pub async fn send<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
        ) -> Result<(), ipc_core::Error> {
            let endpoint = self.inner.endpoint_mut();
            endpoint.send_due_replies();
            loop {
                match endpoint.channel().try_send(msg) {
                    Ok(()) => break,
                    // At the limit, wait for the buffer to drain first.
                    Err(ipc_core::Error::WouldBlock) => {
                        self.io.until(endpoint, $crate::tokio::io::written).await?
                    }
                    // Too large, not encodable, the channel closed: not sent.
                    Err(e) => return Err(e),
                }
            }
            self.io.until(endpoint, $crate::tokio::io::written).await
        }

        /// Queues a message to leave with others in one write: it goes out
        /// with [`flush`](Self::flush) or any call that writes. Returns at
        /// once while the send buffer has room; when it is full, writes
        /// what the socket takes, and waits for room if the socket is full
        /// too (reading meanwhile), as the blocking
        /// [`Endpoint::queue`](crate::Endpoint::queue) does: the buffer
        /// stays bounded. **Cancel-safe**: if the future is dropped before
        /// it finishes, the message was not queued.
        ///
        /// # Errors
        /// As [`send`](Self::send).
        pub async fn queue<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
        ) -> Result<(), ipc_core::Error> {
            let endpoint = self.inner.endpoint_mut();
            match endpoint.channel().try_queue(msg) {
                Err(ipc_core::Error::WouldBlock) => {
                    // Not again at once: first write (or wait) for room.
                    let mut tried = true;
                    self.io
                        .until(endpoint, |ch| {
                            if std::mem::take(&mut tried) {
                                return None;
                            }
                            match ch.try_queue(msg) {
                                Err(ipc_core::Error::WouldBlock) => None,
                                done => Some(done),
                            }
                        })
                        .await
                }
                done => done,
            }
        }

        /// Queues a message if the send buffer has room (after writing what
        /// the socket takes), never waiting; see
        /// [`Channel::try_queue`](ipc_core::Channel::try_queue).
        ///
        /// # Errors
        /// `WouldBlock` when it did not fit: `flush().await` and try again;
        /// otherwise as [`send`](Self::send).
        pub fn try_queue<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
        ) -> Result<(), ipc_core::Error> {
            self.inner.endpoint_mut().channel().try_queue(msg)
        }

        /// Queues a message and writes what can go now, never waiting; see
        /// [`Endpoint::try_send`](crate::Endpoint::try_send).
        ///
        /// # Errors
        /// As [`Endpoint::try_send`](crate::Endpoint::try_send).
        pub fn try_send<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
        ) -> Result<(), ipc_core::Error> {
            self.inner.endpoint_mut().try_send(msg)
        }

        /// Waits until everything queued is written, reading what the peer
        /// sends meanwhile. **Cancel-safe**: what is not written yet stays
        /// queued.
        ///
        /// # Errors
        /// As [`send`](Self::send).
        pub async fn flush(&mut self) -> Result<(), ipc_core::Error> {
            let endpoint = self.inner.endpoint_mut();
            endpoint.send_due_replies();
            self.io.until(endpoint, $crate::tokio::io::written).await
        }

        /// Sends a message with a handle and resolves once the peer has
        /// acknowledged it (our copy of the descriptor is closed by then);
        /// see [`Endpoint::send_handle`](crate::Endpoint::send_handle).
        /// Other hand-offs' fates stay for [`recv`](Self::recv).
        ///
        /// If the future is dropped first, the hand-off stays queued and
        /// its fate comes later from `recv` as an
        /// [`Event::Fate`](crate::Event::Fate). To be able to take the
        /// handle back, use [`queue_handle`](Self::queue_handle) and
        /// [`withdraw`](Self::withdraw).
        ///
        /// At the send buffer's [limit](Self::set_limit) it waits for room
        /// first, as the blocking `send_handle` does.
        ///
        /// # Errors
        /// A [`SendError`](ipc_core::SendError) with the handle back
        /// whenever the peer did not take it: refused after Node's
        /// retransmissions (`HandleNotReceived`), the channel closed
        /// (`Disconnected`), or it could not be queued.
        #[allow(clippy::result_large_err)] // the handle comes back inline
        pub async fn send_handle<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
            mut handle: ipc_core::Handle,
        ) -> Result<(), ipc_core::SendError> {
            let endpoint = self.inner.endpoint_mut();
            endpoint.send_due_replies();
            let ticket = loop {
                match endpoint.channel().queue_handle(msg, handle) {
                    Err(ipc_core::SendError {
                        error: ipc_core::Error::WouldBlock,
                        handle: Some(back),
                    }) => {
                        handle = back;
                        if let Err(error) =
                            self.io.until(endpoint, $crate::tokio::io::written).await
                        {
                            return Err(ipc_core::SendError {
                                error,
                                handle: Some(handle),
                            });
                        }
                    }
                    queued => break queued?,
                }
            };
            let fate = self
                .io
                .until(endpoint, |ch| ch.take_fate(ticket).map(Ok))
                .await;
            match fate {
                Ok(ipc_core::Fate::Acknowledged(_)) => Ok(()),
                Ok(ipc_core::Fate::Returned { handle, reason, .. }) => Err(ipc_core::SendError {
                    error: reason,
                    handle: Some(handle),
                }),
                Err(error) => Err(ipc_core::SendError {
                    error,
                    handle: endpoint.channel().withdraw(ticket),
                }),
            }
        }

        /// Hands a handle over without waiting; its fate comes later from
        /// [`recv`](Self::recv) as an [`Event::Fate`](crate::Event::Fate)
        /// with the returned ticket. See
        /// [`Endpoint::queue_handle`](crate::Endpoint::queue_handle).
        ///
        /// # Errors
        /// A [`SendError`](ipc_core::SendError) with the handle when it
        /// could not be queued (channel closed, message too large).
        #[allow(clippy::result_large_err)] // the handle comes back inline
        pub fn queue_handle<T: serde::Serialize + ?Sized>(
            &mut self,
            msg: &T,
            handle: ipc_core::Handle,
        ) -> Result<ipc_core::Ticket, ipc_core::SendError> {
            self.inner.endpoint_mut().queue_handle(msg, handle)
        }

        /// Takes a queued handle back if none of it is on the wire yet; see
        /// [`Endpoint::withdraw`](crate::Endpoint::withdraw).
        pub fn withdraw(&mut self, ticket: ipc_core::Ticket) -> Option<ipc_core::Handle> {
            self.inner.endpoint_mut().withdraw(ticket)
        }

        /// Closes the channel as Node's `disconnect()` does: what is queued
        /// is written first (an outstanding handle's ACK awaited), then the
        /// peer sees EOF; see
        /// [`Endpoint::disconnect`](crate::Endpoint::disconnect). Dropped
        /// before it finishes, it leaves the channel open.
        ///
        /// # Errors
        /// `Disconnected` the second time; `ReceiveBufferFull` if waiting
        /// for the ACK needed more room than the limit (the channel is left
        /// open then).
        pub async fn disconnect(&mut self) -> Result<(), ipc_core::Error> {
            let endpoint = self.inner.endpoint_mut();
            endpoint.send_due_replies();
            self.io
                .until(endpoint, |ch| {
                    let settled = ch.is_written() && ch.handles_in_flight() == 0;
                    (settled || !ch.is_connected()).then_some(Ok(()))
                })
                .await?;
            // Nothing is left to wait for: this closes at once.
            endpoint.channel().disconnect()
        }

        /// Asks the peer how many sockets of `key` it still holds, as
        /// Node's `server.getConnections()` does; the answer comes as an
        /// `Event::Internal` from a later [`recv`](Self::recv), and from
        /// then on [`reported_connections`](Self::reported_connections) has
        /// it. See
        /// [`Endpoint::request_connection_count`](crate::Endpoint::request_connection_count).
        ///
        /// # Errors
        /// As [`send`](Self::send).
        pub async fn request_connection_count(&mut self, key: &str) -> Result<(), ipc_core::Error> {
            self.inner.endpoint_mut().forget_reported(key);
            self.send(&ipc_net::accounting::SocketQuery::get_count(key))
                .await
        }

        /// The peer's answer to the latest
        /// [`request_connection_count`](Self::request_connection_count)
        /// for `key`, once it has arrived.
        pub fn reported_connections(&self, key: &str) -> Option<u64> {
            self.inner.endpoint().reported_connections(key)
        }

        /// Bounds the memory of each direction of the channel; see
        /// [`Endpoint::set_limit`](crate::Endpoint::set_limit).
        pub fn set_limit(&mut self, bytes: usize) {
            self.inner.endpoint_mut().set_limit(bytes);
        }

        /// Whether the channel is still open.
        pub fn is_connected(&self) -> bool {
            self.inner.endpoint().is_connected()
        }

        /// Handles queued or sent whose fate is not known yet.
        pub fn handles_in_flight(&self) -> usize {
            self.inner.endpoint().handles_in_flight()
        }

        /// The message side, to read its state (for
        /// [`connections_total`](crate::connections_total), or its
        /// [`accounting`](crate::Endpoint::accounting)).
        pub fn endpoint(&self) -> &crate::Endpoint {
            self.inner.endpoint()
        }
    };
}

mod child;
mod io;
mod parent;

pub use child::AsyncChild;
pub use parent::{parent, AsyncParent};
