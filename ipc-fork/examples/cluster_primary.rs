//! A cluster primary in a few lines: this program starts two workers (this
//! same program again) over Node's cluster protocol; each worker asks the
//! primary for port 0 (`server.listen(0)` in Node's words), and the
//! primary accepts and deals the connections round-robin (`newconn`), as
//! Node's default policy on Linux does. Node workers (`node app.js` using
//! `cluster`) can take the workers' place unchanged.
//!
//! Without arguments it checks itself: 20 connections, each answered, by
//! both workers in turn, then both workers disconnected gracefully.
//!
//! ```sh
//! cargo run -p ipc-fork --example cluster_primary
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ipc_fork::cluster::{self, ClusterEvent, Listener, Policy, Primary, WorkerEvent};
use ipc_fork::{Command, Poller};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const WORKERS: usize = 2;

fn main() -> Result<()> {
    if cluster::is_worker() {
        return worker();
    }
    let mut poller = Poller::new()?;
    let mut primary = Primary::new(Policy::RoundRobin);
    for _ in 0..WORKERS {
        primary.spawn(&mut poller, &mut Command::current_exe()?)?;
    }
    // Wait until every worker listens: they all share one port.
    let mut port = None;
    let mut listening = 0;
    while listening < WORKERS {
        match primary.next(&mut poller, Some(Duration::from_secs(60)))? {
            ClusterEvent::Listening {
                worker, port: p, ..
            } => {
                println!("worker {worker} listening on port {p}");
                port = Some(u16::try_from(p)?);
                listening += 1;
            }
            ClusterEvent::Timeout => return Err("workers did not listen within a minute".into()),
            other => println!("{other:?}"),
        }
    }
    let port = port.ok_or("no port")?;
    // The clients run on a thread: the primary's loop deals their connections.
    let clients = std::thread::spawn(
        move || -> std::result::Result<HashMap<String, usize>, String> {
            let mut answered: HashMap<String, usize> = HashMap::new();
            for _ in 0..20 {
                let mut answer = String::new();
                TcpStream::connect(("127.0.0.1", port))
                    .and_then(|mut c| c.read_to_string(&mut answer))
                    .map_err(|e| e.to_string())?;
                *answered.entry(answer.trim().to_owned()).or_default() += 1;
            }
            Ok(answered)
        },
    );
    while !clients.is_finished() {
        if let ClusterEvent::BadInput { worker, error } =
            primary.next(&mut poller, Some(Duration::from_millis(50)))?
        {
            eprintln!("worker {worker}: {error}");
        }
    }
    let answered = clients.join().map_err(|_| "clients panicked")??;
    println!("answers: {answered:?}");
    assert_eq!(answered.values().sum::<usize>(), 20);
    assert!(answered.keys().all(|a| a.starts_with("hello from ")));
    // Dealt in turn: every worker answered some.
    assert_eq!(answered.len(), WORKERS, "{answered:?}");
    // Graceful stop: Node's worker.disconnect() for each, then their exits.
    let ids: Vec<_> = primary.workers().map(|(id, _)| id).collect();
    for id in ids {
        primary.disconnect(&mut poller, id)?;
    }
    let mut exited = 0;
    while exited < WORKERS {
        match primary.next(&mut poller, Some(Duration::from_secs(60)))? {
            ClusterEvent::Exit {
                worker,
                status,
                exited_after_disconnect,
            } => {
                assert!(
                    status.success() && exited_after_disconnect,
                    "worker {worker}: {status}"
                );
                exited += 1;
            }
            ClusterEvent::Timeout => return Err("workers did not exit within a minute".into()),
            _ => {}
        }
    }
    println!("OK: 20 connections answered by the workers, both stopped");
    Ok(())
}

/// A worker: listens on port 0 through the primary and answers each
/// connection the primary deals it, until disconnected.
fn worker() -> Result<()> {
    let mut worker = cluster::worker()?;
    let Listener::RoundRobin { .. } = worker.listen(None, 0)? else {
        return Err("expected round-robin from this primary".into());
    };
    loop {
        match worker.next_event()? {
            WorkerEvent::Connection { mut socket, .. } => {
                let _ = writeln!(socket, "hello from {}", std::process::id());
            }
            WorkerEvent::Disconnect | WorkerEvent::Closed => {
                worker.finish();
                return Ok(());
            }
            _ => {}
        }
    }
}
