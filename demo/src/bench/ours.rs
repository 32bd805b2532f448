//! Our side of each figure: this executable as parent and as child
//! (`bench-child`, `worker`), over `ipc-fork`'s channel.

use std::io;
use std::time::Instant;

use ipc_core::Message;
use ipc_fork::{Child, Command, Event};

use super::allocs::allocations;
use super::Msg;

/// Starts this executable as `bench-child ARGS`.
fn bench_child(args: &[&str]) -> io::Result<Child> {
    Command::current_exe()?
        .arg("bench-child")
        .args(args)
        .spawn()
}

/// Waits for the child's next user message and reads it with `read` (only
/// what `read` asks of it is looked at).
fn answer<T>(child: &mut Child, read: impl FnOnce(&Message<'_>) -> T) -> io::Result<T> {
    loop {
        match child.recv() {
            Ok(Event::Message(m, _)) => return Ok(read(&m)),
            Ok(Event::Internal(..)) => {}
            other => return Err(io::Error::other(format!("bench child: {other:?}"))),
        }
    }
}

/// Disconnects and waits for the child to exit.
fn finish(mut child: Child) -> io::Result<()> {
    child.disconnect()?;
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("bench child: {status}")))
    }
}

/// Messages/s from the child's ready message until it has counted all `n`,
/// so that its start-up is not counted. Messages are queued and leave many
/// to a write.
pub(super) fn throughput(n: u64, payload: &str) -> io::Result<f64> {
    let mut child = bench_child(&["count", &n.to_string()])?;
    answer(&mut child, |_| ())?; // "ready"
    let start = Instant::now();
    for seq in 0..n {
        child.queue(&Msg { seq, payload })?;
    }
    child.flush()?;
    answer(&mut child, |_| ())?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    finish(child)?;
    Ok(rate)
}

/// Our side of the `rtt` figure: the `echo` child, pinged with the small
/// message one round trip at a time.
pub(super) struct Echo {
    child: Child,
    payload: String,
    seq: u64,
}

impl Echo {
    pub(super) fn start() -> io::Result<Echo> {
        Ok(Echo {
            child: bench_child(&["echo"])?,
            payload: "x".repeat(16),
            seq: 0,
        })
    }
}

impl super::Pinger for Echo {
    fn ping(&mut self) -> io::Result<f64> {
        let t = Instant::now();
        self.child.send(&Msg {
            seq: self.seq,
            payload: &self.payload,
        })?;
        answer(&mut self.child, |_| ())?;
        self.seq += 1;
        Ok(t.elapsed().as_secs_f64() * 1e6)
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        finish(self.child)
    }
}

/// Heap allocations per small message, sender and receiver together, over
/// `n` messages after as many to warm up; `None` without the counting
/// allocator.
pub(super) fn allocs_per_msg(n: u64) -> io::Result<Option<f64>> {
    let mut child = bench_child(&["allocs", &n.to_string(), &n.to_string()])?;
    let payload = "x".repeat(16);
    let send_all = |child: &mut Child| -> io::Result<()> {
        for seq in 0..n {
            child.send(&Msg {
                seq,
                payload: &payload,
            })?;
        }
        Ok(())
    };
    send_all(&mut child)?; // warm-up
    let before = allocations();
    send_all(&mut child)?;
    let ours = before.zip(allocations()).map(|(b, a)| a - b);
    let theirs: Option<u64> = answer(&mut child, |m| m.as_str().parse().ok())?;
    finish(child)?;
    Ok(ours
        .zip(theirs)
        .map(|(ours, theirs)| (ours + theirs) as f64 / n as f64))
}

/// Sockets/s, `n` connections with `in_flight` clients at a time; the
/// parent accepts each and sends it to the child, which writes one byte.
pub(super) fn socket_handoff(n: usize, in_flight: usize, workers: usize) -> io::Result<f64> {
    use ipc_fork::{Fate, Interest, Poller, Ready, Token};
    let server = ipc_net::Server::bind("127.0.0.1:0")?;
    let addr = server.local_addr()?.as_inet().expect("TCP");
    let mut poller = Poller::new()?;
    let ids = (0..workers)
        .map(|_| poller.add(bench_child(&["handoff"])?))
        .collect::<io::Result<Vec<_>>>()?;
    poller.watch(&server, Token(0), Interest::Readable)?;
    let start = Instant::now();
    std::thread::scope(|s| -> io::Result<()> {
        let clients = s.spawn(|| {
            let r = super::clients::run(addr, n, in_flight);
            if r.is_err() {
                // Wakes the loop below with an error instead of leaving it
                // waiting for connections that will not come.
                let _ = rustix::net::shutdown(&server, rustix::net::Shutdown::Read);
            }
            r
        });
        // Accept and hand over without waiting: each worker's channel
        // queues its sockets, and acknowledgements come back as fates.
        let (mut accepted, mut acknowledged) = (0, 0);
        while acknowledged < n {
            match poller.next(None)? {
                Ready::Fd(_) => loop {
                    let conn = match server.try_accept() {
                        Ok(conn) => conn,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    };
                    let id = ids[accepted % ids.len()];
                    accepted += 1;
                    let child = poller.child_mut(id).expect("a worker");
                    child
                        .queue_handle(&"socket", conn.into_handle())
                        .map_err(|e| io::Error::from(e.error))?;
                },
                Ready::Child(_, Ok(Event::Fate(Fate::Acknowledged(_)))) => acknowledged += 1,
                Ready::Child(_, Ok(Event::Fate(Fate::Returned { reason, .. }))) => {
                    return Err(io::Error::other(format!("a socket came back: {reason}")))
                }
                Ready::Child(_, Ok(_)) | Ready::Timeout => {}
                Ready::Child(_, Err(e)) => return Err(e.into()),
            }
        }
        clients
            .join()
            .map_err(|_| io::Error::other("clients panicked"))?
    })?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    for id in ids {
        finish(poller.remove(id).expect("a worker"))?;
    }
    Ok(rate)
}

/// µs to send a fresh listening server and hear back from the child that
/// rebuilt it, sorted.
pub(super) fn server_handoff(n: usize) -> io::Result<Vec<f64>> {
    let mut child = bench_child(&["handoff"])?;
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let server = ipc_net::Server::bind("127.0.0.1:0")?;
        let t = Instant::now();
        child
            .send_handle(&"server", server.to_handle()?)
            .map_err(|e| io::Error::from(e.error))?;
        answer(&mut child, |_| ())?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    finish(child)?;
    us.sort_by(f64::total_cmp);
    Ok(us)
}
