//! The child side of the integration tests: one program, several roles,
//! chosen by the first argument. Every role speaks through `ipc_fork::parent`.

use std::io::{Read, Write};

use demo::linger::answer;
use integration_tests::Report;
use ipc_core::json::RawJson;
use ipc_fork::Event;
use ipc_net::{Received, Server};

fn main() {
    // Its descriptors are there from the start, for the reports' counts.
    demo::linger::start();
    let role = std::env::args().nth(1).unwrap_or_default();
    match role.as_str() {
        "no-channel" => match ipc_fork::parent() {
            Err(e) => println!("{e:?}"),
            Ok(_) => println!("has a channel"),
        },
        "channel-check" => channel_check(),
        "listen-fds" => listen_fds(),
        "raw-worker" => raw_worker(),
        "exec-into" => exec_into(),
        _ => with_parent(&role),
    }
    // Answered clients close first (each within the linger time).
    demo::linger::drain();
}

/// What `parent()` says, and what became of stdin and stdout (which the
/// tests name as the channel): `closed`, `cloexec` or `inherit`.
fn channel_check() {
    use std::os::fd::AsFd;
    // Kept until the states are read: dropping it closes the channel.
    let parent = ipc_fork::parent();
    let verdict = match &parent {
        Err(e) => format!("{e:?}"),
        Ok(_) => "has a channel".to_owned(),
    };
    let state = |fd: std::os::fd::BorrowedFd<'_>| match rustix::io::fcntl_getfd(fd) {
        Err(_) => "closed",
        Ok(flags) if flags.contains(rustix::io::FdFlags::CLOEXEC) => "cloexec",
        Ok(_) => "inherit",
    };
    println!(
        "{verdict} fd0={} fd1={}",
        state(std::io::stdin().as_fd()),
        state(std::io::stdout().as_fd())
    );
}

/// Hands the socket it gets to a thread that drops it once the client
/// says a line; meanwhile the main thread reports the sender's close
/// request (`saw-notify`) and goes back to a blocking receive, which that
/// drop must end with the `NODE_SOCKET_ALL_CLOSED` the sender waits for.
fn socket_in_thread(mut parent: ipc_fork::Parent) {
    use std::io::BufRead;
    let mut worker = None;
    loop {
        match parent.recv() {
            Ok(Event::Message(_, Some(Ok(Received::Socket(s))))) => {
                worker = Some(std::thread::spawn(move || {
                    let mut line = String::new();
                    let _ = std::io::BufReader::new(&s).read_line(&mut line);
                }));
                parent.send(&"got").unwrap();
            }
            Ok(Event::Internal(msg, _)) if msg.cmd() == Some(ipc_net::accounting::NOTIFY_CLOSE) => {
                parent.send(&"saw-notify").unwrap();
            }
            Ok(Event::Disconnect) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if let Some(worker) = worker {
        worker.join().unwrap();
    }
}

/// Takes one socket, then only sends (a message every 20 ms, until the
/// parent leaves) and never receives: the parent's `getConnections()` is
/// answered all the same, as a Node child answers it.
fn send_only(mut parent: ipc_fork::Parent) {
    let _held = loop {
        match parent.recv() {
            Ok(Event::Message(_, Some(Ok(Received::Socket(s))))) => break s,
            Ok(_) => {}
            Err(_) => return,
        }
    };
    for i in 0u64.. {
        if parent.send(&i).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn fd_count() -> usize {
    integration_tests::fd_count()
}

fn with_parent(role: &str) {
    let mut parent = ipc_fork::parent().expect("parent channel");
    let env_left = std::env::var_os("NODE_CHANNEL_FD").is_some()
        || std::env::var_os("NODE_CHANNEL_SERIALIZATION_MODE").is_some();
    let report = |parent: &mut ipc_fork::Parent, what: &str, detail: String| {
        let r = Report::new(what, detail, fd_count());
        match parent.send(&r) {
            Ok(()) => {}
            // The parent finished the test and left: nothing to report to.
            Err(ipc_core::Error::Disconnected) => {
                demo::linger::drain();
                std::process::exit(0)
            }
            Err(e) => panic!("report: {e}"),
        }
    };
    match role {
        "exit" => {
            let code = std::env::args()
                .nth(2)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            println!("exiting {code}");
            eprintln!("to stderr");
            std::process::exit(code);
        }
        "respawn-deleted" => {
            // Its own file gone, it starts itself again (`exit 7`).
            std::fs::remove_file(std::env::current_exe().unwrap()).unwrap();
            let started = ipc_fork::Command::current_exe().and_then(|mut c| {
                c.args(["exit", "7"]);
                c.spawn()
            });
            let detail = match started {
                Ok(mut child) => format!("{:?}", child.wait().map(|s| s.code())),
                Err(e) => format!("{:?}", e.kind()),
            };
            report(&mut parent, "respawned", detail);
            return;
        }
        "crash-mid-message" => {
            // Half a line on the channel, then die.
            let fd = rustix::io::fcntl_dupfd_cloexec(&parent, 0).unwrap();
            let mut raw = std::os::unix::net::UnixStream::from(fd);
            raw.write_all(b"{\"half\":").unwrap();
            std::process::abort();
        }
        "rlimit" => return at_fd_limit(parent),
        "socket-in-thread" => return socket_in_thread(parent),
        "send-only" => return send_only(parent),
        "flood" => return flood(parent),
        "disconnect" => {
            parent.send(&"bye").unwrap();
            parent.disconnect().unwrap();
            std::process::exit(0);
        }
        _ => {}
    }
    // "echo": report the start state, then serve whatever comes.
    let cloexec = rustix::io::fcntl_getfd(&parent)
        .unwrap()
        .contains(rustix::io::FdFlags::CLOEXEC);
    // Sockets among the open descriptors: only the channel may be one.
    let sockets: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            target
                .to_string_lossy()
                .starts_with("socket:")
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    report(
        &mut parent,
        "started",
        format!(
            "env_left={env_left} cloexec={cloexec} sockets={}",
            sockets.join(",")
        ),
    );

    let mut held = Vec::new();
    loop {
        let event = match parent.recv() {
            Ok(e) => e,
            Err(e) if !e.is_fatal() => {
                let detail = e.to_string();
                report(&mut parent, "error", detail);
                continue;
            }
            Err(e) => panic!("channel failed: {e}"),
        };
        match event {
            Event::Message(msg, None) => {
                if msg.as_str() == "\"release\"" {
                    held.clear();
                    report(&mut parent, "released", String::new());
                    continue;
                }
                let text = msg.as_str().to_owned();
                parent.send(&RawJson::new(&text).unwrap()).unwrap();
            }
            Event::Message(msg, Some(Err(e))) => {
                let detail = format!("{} {e:?}", msg.as_str());
                report(&mut parent, "refused", detail);
            }
            Event::Message(msg, Some(Ok(received))) => {
                let hold = msg.as_str() == "\"hold\"";
                let detail = serve(received, hold, &mut held);
                report(&mut parent, "served", detail);
            }
            Event::Internal(msg, _) => {
                let detail = msg.as_str().to_owned();
                report(&mut parent, "internal", detail);
            }
            Event::Fate(fate) => report(&mut parent, "fate", format!("{fate:?}")),
            Event::Disconnect | Event::Exit(_) => break,
        }
    }
}

/// Uses a received handle for real and says what happened.
fn serve(received: Received, hold: bool, held: &mut Vec<ipc_net::Socket>) -> String {
    match received {
        Received::Server(server) => {
            let conn = server.accept().unwrap();
            // Without reading the request, as the demo: closed lingering.
            answer(conn, b"handled by child\n");
            format!("server {}", server.local_addr().unwrap())
        }
        Received::Socket(mut socket) => {
            let detail = format!("socket key={:?}", socket.key());
            if hold {
                socket.write_all(b"socket answered by child\n").unwrap();
                held.push(socket);
            } else {
                answer(socket, b"socket answered by child\n");
            }
            detail
        }
        Received::Datagram(d) => {
            let mut buf = [0u8; 64];
            let (n, from) = d.recv_from(&mut buf).unwrap();
            d.send_to(b"pong", from).unwrap();
            format!("datagram {}", String::from_utf8_lossy(&buf[..n]))
        }
    }
}

/// `exec-into PROGRAM ARGS..`: becomes PROGRAM through `Command::exec`,
/// keeping descriptor 7 (which the test placed) at 7.
fn exec_into() {
    let args: Vec<String> = std::env::args().skip(2).collect();
    // SAFETY: descriptor 7 was placed by the test's Command and nothing
    // else in this process owns it.
    let seven = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(7) };
    let e = ipc_fork::Command::new(&args[0])
        .args(&args[1..])
        .fd(7, seven)
        .exec();
    panic!("exec {}: {e}", args[0]);
}

/// Adopts the listener systemd (or a test) passed, says where it listens,
/// and answers one connection.
fn listen_fds() {
    let servers = ipc_net::systemd::listen_servers().expect("LISTEN_FDS");
    let left = std::env::var_os("LISTEN_FDS").is_some();
    let [(name, server)]: [(String, Server); 1] = servers.try_into().expect("exactly one listener");
    println!(
        "listening {} name={name} env_left={left}",
        server.local_addr().unwrap()
    );
    std::io::stdout().flush().unwrap();
    let mut conn = server.accept().unwrap();
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).unwrap();
    conn.write_all(b"adopted\n").unwrap();
}

/// Receives a handle while out of descriptors (the kernel drops it and sets
/// MSG_CTRUNC), frees them, and receives the sender's retransmission.
fn at_fd_limit(mut parent: ipc_fork::Parent) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let say = |parent: &mut ipc_fork::Parent, what: &str, detail: String| {
        // No fd count here: reading /proc/self/fd needs a descriptor.
        parent.send(&Report::new(what, detail, 0)).unwrap();
    };
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(64),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let mut fillers = Vec::new();
    while let Ok(fd) = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdin(), 0) {
        fillers.push(fd);
    }
    say(&mut parent, "full", fillers.len().to_string());
    match parent.recv() {
        Err(e) => {
            let detail = format!("{e:?}");
            say(&mut parent, "error", detail);
        }
        Ok(other) => {
            let detail = format!("{other:?}");
            say(&mut parent, "unexpected", detail);
        }
    }
    drop(fillers);
    let detail = match parent.recv() {
        Ok(Event::Message(msg, Some(Ok(Received::Socket(mut s))))) => {
            s.write_all(b"socket answered by child\n").unwrap();
            format!("{} with a socket", msg.as_str())
        }
        other => format!("unexpected {other:?}"),
    };
    say(&mut parent, "served", detail);
    while !matches!(parent.recv(), Ok(Event::Disconnect) | Err(_)) {}
}

/// A routing worker that speaks the protocol by hand, to misbehave on
/// purpose: `raw-worker MODE ROLE` answers each socket with the role's line
/// and then, by MODE: `chatty` acknowledges and sends a status message;
/// `ack-twice` acknowledges twice; `never-ack` never acknowledges.
fn raw_worker() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, role) = (args[2].clone(), args[3].clone());
    let parent = ipc_fork::parent().expect("parent channel");
    // Our own copy of the channel: the library (which answers for itself)
    // is out of the way once `parent` is dropped.
    let fd = rustix::io::fcntl_dupfd_cloexec(&parent, 0).unwrap();
    drop(parent);
    let mut peer = integration_tests::RawPeer::new(fd);
    const ACK: &[u8] = b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n";
    let reply = format!("You were handled as a {role} person\n");
    while let Some((_line, fds)) = peer.try_read_line() {
        for fd in fds {
            answer(
                ipc_net::Socket::from(std::net::TcpStream::from(fd)),
                reply.as_bytes(),
            );
        }
        match mode.as_str() {
            "chatty" => {
                peer.write(ACK, &[]);
                peer.write(b"{\"status\":\"served one\"}\n", &[]);
            }
            "ack-twice" => {
                peer.write(ACK, &[]);
                peer.write(ACK, &[]);
            }
            _ => {}
        }
    }
}

/// `flood N send|queue`: sends N numbers before reading anything, then
/// reads the parent's N numbers (checking their order) and reports.
fn flood(mut parent: ipc_fork::Parent) {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args[2].parse().unwrap();
    let queue = args[3] == "queue";
    for i in 0..n {
        if queue {
            parent.queue(&i).unwrap();
        } else {
            parent.send(&i).unwrap();
        }
    }
    parent.flush().unwrap();
    let mut next = 0u64;
    while next < n {
        match parent.recv() {
            Ok(Event::Message(mut msg, None)) => {
                assert_eq!(msg.parse::<u64>().unwrap(), next);
                next += 1;
            }
            other => panic!("flood child got {other:?}"),
        }
    }
    parent.send(&("received", next)).unwrap();
    while !matches!(parent.recv(), Ok(Event::Disconnect) | Err(_)) {}
}
