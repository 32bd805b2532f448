//! share-server's zero-downtime restart, both halves.
//!
//! The old server ([`hand_over`]) starts its successor: this program as it
//! is now on disk, with the same options and `--successor`, as a child
//! with the channel. It sends it the listening socket (a copy: it keeps
//! serving from its own) and waits, up to the restart timeout, for
//! `"ready"`. The successor ([`take_over`]) receives the listener, starts
//! its own worker on it, and says `"ready"` once both accept. Only then
//! does the old one stop accepting and drain; the kernel's accept queue
//! belongs to the socket, not to a process, so at every moment someone
//! holds the listener and no connection is refused. If the successor
//! dies, refuses the listener or is not ready in time, it is killed, and
//! the old server goes on as before.
//!
//! The successor then owns the only channel to the old server; it closes
//! it after "ready", so neither the old server's exit nor anything it does
//! can stop it (it is reparented to init or the nearest subreaper).

use std::time::{Duration, Instant};

use ipc_fork::{Child, Command, Event, Parent};
use ipc_net::{Received, Server};

use crate::cli::Serve;
use crate::signals::Workers;

/// What a successor says once it serves (`"ready"`), as it arrives.
const READY: &str = "\"ready\"";

/// The successor's side: the listener its predecessor hands over, and the
/// channel to say `"ready"` on (see [`ready`]).
///
/// # Errors
/// No channel, the channel closed, nothing within `timeout`, or a handle
/// that is not a listening socket.
pub fn take_over(timeout: Duration) -> Result<(Parent, Server), String> {
    let mut parent = ipc_fork::parent().map_err(|e| e.to_string())?;
    parent.set_timeout(Some(timeout));
    loop {
        match parent.recv() {
            Ok(Event::Message(_, Some(Ok(Received::Server(server))))) => {
                return Ok((parent, server))
            }
            Ok(Event::Message(_, Some(Err(e)))) => return Err(format!("the listener: {e}")),
            Ok(Event::Message(m, _)) => warn!("demo: predecessor says {}", m.as_str()),
            Ok(Event::Internal(..) | Event::Fate(_)) => {}
            Ok(Event::Disconnect | Event::Exit(_)) => return Err("the predecessor left".into()),
            Err(e) if !e.is_fatal() => warn!("demo: predecessor: {e}"),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The successor serves: tells the predecessor, and closes the channel.
/// A predecessor gone already is no reason to stop: this process holds
/// the listener now.
pub fn ready(mut predecessor: Parent) {
    if let Err(e) = predecessor.send(&"ready") {
        warn!("restart: the predecessor is gone ({e}); serving on");
    }
}

/// The old server's side: starts the successor, hands it `server`, and
/// waits until it is ready. While it starts, the successor is one of
/// `workers` (a SIGTERM stops it too); once ready it is on its own.
///
/// # Errors
/// A line for the log when the successor could not start or failed; it
/// has been killed and reaped then.
pub fn hand_over(server: &Server, opts: &Serve, workers: &Workers) -> Result<Child, String> {
    let deadline = Instant::now() + opts.restart_timeout;
    let mut cmd = Command::current_exe_on_disk().map_err(|e| e.to_string())?;
    cmd.args(opts.successor_args());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start a successor: {e}"))?;
    let pid = child.id();
    say!("restart: starting successor {pid}");
    workers.lock().unwrap().push(pid);
    let outcome = handshake(&mut child, server, deadline);
    workers.lock().unwrap().retain(|p| *p != pid);
    match outcome {
        Ok(()) => {
            say!("restart: successor {pid} ready; draining");
            Ok(child)
        }
        Err(e) => {
            let status = end(&mut child, deadline).map_err(|e| e.to_string())?;
            Err(format!("successor {pid} failed: {e} ({status})"))
        }
    }
}

/// Gives a failed successor until `deadline` to exit (one whose channel
/// closed is usually on its way out: its own status says more than
/// SIGKILL's), then kills it; reaps it.
fn end(child: &mut Child, deadline: Instant) -> std::io::Result<std::process::ExitStatus> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    if let Some(exit) = child.exit_fd() {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let left = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&exit, PollFlags::IN)];
            match poll(&mut fds, Some(&left)) {
                Err(rustix::io::Errno::INTR) => continue,
                _ => break,
            }
        }
    }
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    child.kill()?;
    child.wait()
}

/// Sends the listener and waits for `"ready"`, until `deadline`.
fn handshake(child: &mut Child, server: &Server, deadline: Instant) -> Result<(), String> {
    let left = || deadline.saturating_duration_since(Instant::now());
    child.set_timeout(Some(left()));
    let handle = server.to_handle().map_err(|e| e.to_string())?;
    child
        .send_handle(&"server", handle)
        .map_err(|e| format!("the listener was not taken: {e}"))?;
    loop {
        child.set_timeout(Some(left()));
        match child.recv() {
            Ok(Event::Message(m, _)) if m.as_str() == READY => return Ok(()),
            Ok(Event::Message(m, _)) => say!("successor says {}", m.as_str()),
            Ok(Event::Internal(..) | Event::Fate(_)) => {}
            Ok(Event::Disconnect | Event::Exit(_)) => return Err("gone before ready".into()),
            Err(ipc_core::Error::TimedOut) => return Err("not ready in time".into()),
            Err(e) if !e.is_fatal() => warn!("demo: successor: {e}"),
            Err(e) => return Err(e.to_string()),
        }
    }
}
