//! Zero-downtime restart, in its smallest form (`demo share-server` does
//! the same on SIGHUP, with workers).
//!
//! A line on stdin asks the server to restart: it starts its successor
//! (this program as it is now on disk, so after an upgrade the new one)
//! with a channel, hands it the listening socket and waits for `"ready"`.
//! Only then does it stop accepting, answer the connection in hand, and
//! exit. The listening socket stays open in one process or the other all
//! along, and its accept queue with it: no client is refused. A successor
//! that fails is killed and the server goes on. The end of stdin stops it.
//!
//! ```sh
//! cargo run -p ipc-fork --example zero_downtime_restart                  # Enter restarts, Ctrl-D stops
//! cargo run -p ipc-fork --example zero_downtime_restart -- --self-check  # three restarts under load, checked
//! ```

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipc_fork::{Command, Event, Parent};
use ipc_net::{Received, Server};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("--self-check") => self_check(),
        Some("--successor") => {
            let (predecessor, server) = take_over()?;
            serve(server, Some(predecessor))
        }
        _ => serve(Server::bind("127.0.0.1:0")?, None),
    }
}

/// Answers every connection with its pid until stdin says restart or ends.
fn serve(server: Server, predecessor: Option<Parent>) -> Result<()> {
    let (stop, stopper) = std::io::pipe()?;
    let listener = server.try_clone()?;
    let accepting = std::thread::spawn(move || -> std::io::Result<()> {
        let reply = format!("hello from {}\n", std::process::id());
        while let Some(mut conn) = listener.accept_until(&stop)? {
            let _ = conn.write_all(reply.as_bytes()); // a client that left
        }
        Ok(())
    });
    let pid = std::process::id();
    println!("listening on {} (pid {pid})", server.local_addr()?);
    if let Some(mut predecessor) = predecessor {
        // Then the channel closes: the predecessor's exit is not ours.
        predecessor.send(&"ready")?;
    }
    for _ in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
        match hand_over(&server) {
            Ok(successor) => {
                println!("successor {successor} ready; draining");
                break;
            }
            Err(e) => eprintln!("restart failed: {e}; still serving"),
        }
    }
    drop(stopper); // stop accepting: the successor (if any) has the queue
    accepting.join().expect("accepting thread")?; // the connection in hand
    println!("pid {pid} exits");
    Ok(())
}

/// Starts the successor, gives it the listener, waits for `"ready"` (each
/// step within 10 s); its pid. A successor that fails is killed.
fn hand_over(server: &Server) -> Result<u32> {
    let mut child = Command::current_exe_on_disk()?.arg("--successor").spawn()?;
    child.set_timeout(Some(Duration::from_secs(10)));
    let mut handshake = || -> Result<()> {
        let handle = server.to_handle()?;
        child
            .send_handle(&"listener", handle)
            .map_err(|e| e.error)?;
        loop {
            match child.recv()? {
                Event::Message(m, _) if m.as_str() == "\"ready\"" => return Ok(()),
                Event::Disconnect | Event::Exit(_) => return Err("it exited".into()),
                _ => {}
            }
        }
    };
    match handshake() {
        Ok(()) => Ok(child.id()),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// The successor's side: the listener the predecessor sends.
fn take_over() -> Result<(Parent, Server)> {
    let mut parent = ipc_fork::parent()?;
    loop {
        let handle = match parent.recv()? {
            Event::Message(_, Some(handle)) => handle?,
            Event::Disconnect => return Err("the predecessor left".into()),
            _ => continue,
        };
        match handle {
            Received::Server(server) => return Ok((parent, server)),
            _ => return Err("not a listener".into()),
        }
    }
}

/// Runs the server, restarts it three times while clients connect without
/// pause, and checks that every client got an answer.
fn self_check() -> Result<()> {
    let mut server = std::process::Command::new(std::env::current_exe()?)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut restart = server.stdin.take().expect("piped");
    // Every generation writes here: successors inherit the pipe.
    let mut lines = BufReader::new(server.stdout.take().expect("piped")).lines();
    let mut line_with = |what: &str| -> Result<String> {
        loop {
            let line = lines.next().ok_or("the servers' output ended")??;
            if line.contains(what) {
                return Ok(line);
            }
        }
    };
    let first = line_with("listening on ")?;
    let addr: SocketAddr = first.split(' ').nth(2).ok_or("no address")?.parse()?;
    let mut pid: u32 = first
        .rsplit(' ')
        .next()
        .ok_or("no pid")?
        .trim_matches(')')
        .parse()?;
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || -> Result<usize> {
                let mut answered = 0;
                while !done.load(Ordering::Relaxed) {
                    let reply = ask(addr)?;
                    if !reply.starts_with("hello from ") {
                        return Err(format!("wrong reply {reply:?}").into());
                    }
                    answered += 1;
                }
                Ok(answered)
            })
        })
        .collect();
    for _ in 0..3 {
        restart.write_all(b"\n")?;
        let ready = line_with(" ready; draining")?;
        let next: u32 = ready.split(' ').nth(1).ok_or("no pid")?.parse()?;
        line_with(&format!("pid {pid} exits"))?;
        // The old one is gone: whoever answers now is the successor.
        assert_eq!(ask(addr)?, format!("hello from {next}\n"));
        pid = next;
    }
    done.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        answered += client.join().expect("client thread")?;
    }
    drop(restart); // the end of stdin stops the last one
    line_with(&format!("pid {pid} exits"))?;
    server.wait()?;
    println!("OK: 3 restarts, {answered} connections, none refused");
    Ok(())
}

/// One short connection: the whole reply.
fn ask(addr: SocketAddr) -> Result<String> {
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut TcpStream::connect(addr)?, &mut reply)?;
    Ok(reply)
}
