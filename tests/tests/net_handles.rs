//! ipc-net: each handle kind sent to a real child process and used there;
//! every kind of type lie refused with no descriptor leaked; connection
//! counts; socket activation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use integration_tests::next_report;
use ipc_core::{Handle, HandleKind, UdpFamily};
use ipc_fork::Command;
use ipc_net::{Datagram, Server, Socket};

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");

fn echo_child() -> (ipc_fork::Child, usize) {
    let mut child = Command::new(CHILD).arg("echo").spawn().unwrap();
    let start = next_report(&mut child);
    assert_eq!(start.what, "started");
    (child, start.fds)
}

fn read_line(r: impl Read) -> String {
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).unwrap();
    line
}

#[test]
fn server_sent_by_reference_serves_in_the_child() {
    let (mut child, _) = echo_child();
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().as_inet().unwrap();
    child
        .send_handle(&"server", server.to_handle().unwrap())
        .unwrap();
    // Only the child accepts here, so the answer must be the child's.
    let client = TcpStream::connect(addr).unwrap();
    assert_eq!(read_line(client), "handled by child\n");
    assert_eq!(next_report(&mut child).what, "served");
    // The parent's copy still works.
    let _c = TcpStream::connect(addr).unwrap();
    server.accept().unwrap();
    child.disconnect().unwrap();
}

#[test]
fn accepted_socket_moves_to_the_child_and_is_answered() {
    let (mut child, _) = echo_child();
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().as_inet().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let conn = server.accept().unwrap();
    assert_eq!(server.connections(), Some(1));
    child.send_handle(&"socket", conn.into_handle()).unwrap();
    // Once a socket has left, the count is unknown here.
    assert_eq!(server.connections(), None);
    assert_eq!(read_line(client), "socket answered by child\n");
    let report = next_report(&mut child);
    assert_eq!(report.detail, "socket key=Some(\"4:127.0.0.1:0\")");
    child.disconnect().unwrap();
}

#[test]
fn connection_count_follows_accept_and_drop() {
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().as_inet().unwrap();
    assert_eq!(server.connections(), Some(0));
    let _c1 = TcpStream::connect(addr).unwrap();
    let _c2 = TcpStream::connect(addr).unwrap();
    let a = server.accept().unwrap();
    let b = server.accept().unwrap();
    assert_eq!(server.connections(), Some(2));
    drop(a);
    assert_eq!(server.connections(), Some(1));
    drop(b);
    assert_eq!(server.connections(), Some(0));
    // maxConnections: a connection over the limit is closed at once.
    server.set_max_connections(Some(1));
    let _c3 = TcpStream::connect(addr).unwrap();
    let kept = server.accept().unwrap();
    let mut c4 = TcpStream::connect(addr).unwrap();
    std::thread::scope(|s| {
        let accepting = s.spawn(|| server.accept().unwrap());
        // c4 is refused while `kept` is open: it reads EOF.
        let mut buf = [0u8; 1];
        assert_eq!(c4.read(&mut buf).unwrap_or(0), 0);
        drop(kept);
        let mut c5 = TcpStream::connect(addr).unwrap();
        let mut served = accepting.join().unwrap();
        served.write_all(b"!").unwrap();
        c5.read_exact(&mut buf).unwrap();
    });
}

/// A socket converted to a std stream stays counted until the stream is
/// dropped: by its server, and by a receiver's `NODE_SOCKET_*` accounting.
/// Converting to the wrong kind is an `InvalidInput` error.
#[test]
fn converted_sockets_stay_counted() {
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().as_inet().unwrap();
    let _c1 = TcpStream::connect(addr).unwrap();
    let stream = server.accept().unwrap().into_tcp().unwrap();
    assert!(stream.is_counted());
    assert_eq!(server.connections(), Some(1));
    drop(stream);
    assert_eq!(server.connections(), Some(0));
    let _c2 = TcpStream::connect(addr).unwrap();
    let uncounted = server.accept().unwrap().into_tcp().unwrap().into_inner();
    assert_eq!(server.connections(), Some(0));
    drop(uncounted);

    // Received with a key: counted for the sender's getConnections().
    let _c3 = TcpStream::connect(addr).unwrap();
    let handle = server.accept().unwrap().into_handle();
    let mut accounting = ipc_net::accounting::SocketAccounting::default();
    let ipc_net::Received::Socket(mut received) = ipc_net::Received::from_handle(handle).unwrap()
    else {
        panic!("not a socket");
    };
    accounting.track(&mut received);
    let mut stream = received.into_tcp().unwrap();
    assert_eq!(accounting.count(server.key()), 1);
    stream.write_all(b"still a stream").unwrap();
    drop(stream);
    assert_eq!(accounting.count(server.key()), 0);

    let (a, _b) = UnixStream::pair().unwrap();
    let err = Socket::from(a).into_tcp().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let path = std::env::temp_dir().join(format!("ipc-net-convert-{}", std::process::id()));
    let unix = Server::bind_unix(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        unix.into_tcp().unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn unix_listener_serves_in_the_child() {
    let dir = std::env::temp_dir().join(format!("ipc-net-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.sock");
    let _ = std::fs::remove_file(&path);
    let (mut child, _) = echo_child();
    let server = Server::bind_unix(&path).unwrap();
    assert_eq!(server.key(), format!("-1:{}:-1", path.display()));
    child.send_handle(&"server", server.into_handle()).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    assert_eq!(read_line(client), "handled by child\n");
    assert!(next_report(&mut child).detail.starts_with("server "));
    child.disconnect().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn datagram_round_trip_through_the_child() {
    for local in ["127.0.0.1:0", "[::1]:0"] {
        datagram_round_trip(local);
    }
}

fn datagram_round_trip(local: &str) {
    let (mut child, _) = echo_child();
    let d = Datagram::bind(local).unwrap();
    let addr = d.local_addr().unwrap();
    let family = if addr.is_ipv4() {
        UdpFamily::V4
    } else {
        UdpFamily::V6
    };
    assert_eq!(d.family(), family);
    child.send_handle(&"udp", d.into_handle()).unwrap();
    let client = UdpSocket::bind(local).unwrap();
    client.send_to(b"ping", addr).unwrap();
    let mut buf = [0u8; 8];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"pong"[..], addr));
    assert_eq!(next_report(&mut child).detail, "datagram ping");
    child.disconnect().unwrap();
}

/// Lies: the tag says one thing, the kernel another. The child refuses each
/// with a typed error, closes the descriptor (its count stays put), and the
/// channel keeps working.
#[test]
fn type_lies_are_refused_without_leaks() {
    let (mut child, baseline) = echo_child();
    let file: OwnedFd = std::fs::File::open("/proc/self/status").unwrap().into();
    let (pipe_r, _pipe_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let udp: OwnedFd = UdpSocket::bind("127.0.0.1:0").unwrap().into();
    let bound_not_listening = || -> OwnedFd {
        let s = rustix::net::socket_with(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::bind(&s, &"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap()).unwrap();
        s
    };
    let listener: OwnedFd = TcpListener::bind("127.0.0.1:0").unwrap().into();
    let tcp4: OwnedFd = UdpSocket::bind("127.0.0.1:0").unwrap().into();
    // A UDP socket with a peer: only its type tells it from a connection.
    let connected_udp: OwnedFd = {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect(u.local_addr().unwrap()).unwrap();
        u.into()
    };
    let lies = [
        (HandleKind::Server, file, "NotASocket"),
        (HandleKind::Socket, pipe_r, "NotASocket"),
        (HandleKind::Server, udp, "WrongType"),
        (HandleKind::Socket, connected_udp, "WrongType"),
        (HandleKind::Server, bound_not_listening(), "NotListening"),
        (HandleKind::Socket, bound_not_listening(), "NotConnected"),
        (HandleKind::Socket, listener, "Listening"),
        (HandleKind::Dgram(UdpFamily::V6), tcp4, "WrongFamily"),
    ];
    for (kind, fd, want) in lies {
        child.send_handle(&"lie", Handle::new(kind, fd)).unwrap();
        let r = next_report(&mut child);
        assert_eq!(
            (r.what.as_str(), r.detail.as_str()),
            ("refused", format!("\"lie\" {want}").as_str())
        );
        assert_eq!(r.fds, baseline, "child leaked a descriptor after {want}");
    }
    child.send(&"still there").unwrap();
    match child.recv().unwrap() {
        ipc_fork::Event::Message(m, None) => assert_eq!(m.as_str(), "\"still there\""),
        other => panic!("{other:?}"),
    }
    child.disconnect().unwrap();
}

/// The other tests of this file open and close descriptors on their own
/// threads meanwhile, so the process's count proves nothing here: each lie
/// is moved to a number far above those in use (new descriptors take the
/// lowest free one), and that number must be closed after the refusal.
fn far_up(fd: impl Into<OwnedFd>) -> (OwnedFd, String) {
    use std::os::fd::AsRawFd;
    let moved = rustix::io::fcntl_dupfd_cloexec(fd.into(), 256).unwrap();
    let path = format!("/proc/self/fd/{}", moved.as_raw_fd());
    (moved, path)
}

#[test]
fn received_lies_in_process_close_the_descriptor() {
    let gone = |path: &str| !std::path::Path::new(path).exists();
    let (file, path) = far_up(std::fs::File::open("/proc/self/status").unwrap());
    assert_eq!(
        Server::from_fd(file).unwrap_err(),
        ipc_net::HandleError::NotASocket
    );
    assert!(gone(&path), "{path} left open");
    let (a, _b) = UnixStream::pair().unwrap();
    let (a, path) = far_up(a);
    assert_eq!(
        Server::from_fd(a).unwrap_err(),
        ipc_net::HandleError::NotListening
    );
    assert!(gone(&path), "{path} left open");
    let (a, b) = UnixStream::pair().unwrap();
    let mut s = Socket::from_fd(a.into()).unwrap();
    s.write_all(b"x").unwrap();
    let mut got = [0u8];
    (&b).read_exact(&mut got).unwrap();
}

/// `LISTEN_FDS` adoption from systemd's own tool, when the machine has it
/// (from a parent that places the listener itself: command.rs,
/// `channel_moves_aside_for_a_listener_at_three`).
#[test]
fn listen_fds_with_systemd_socket_activate() {
    let Some((port, mut proc)) =
        integration_tests::socket_activate(&["--fdname=web", CHILD, "listen-fds"])
    else {
        return;
    };
    // It listens before it starts the child; the child starts on the first
    // connection.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"ping").unwrap();
    assert_eq!(read_line(&mut c), "adopted\n");
    let mut out = String::new();
    proc.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(
        out.trim(),
        format!("listening 127.0.0.1:{port} name=web env_left=false")
    );
    assert!(proc.wait().unwrap().success());
}

/// Node's `getConnections()` from the sending side: sockets still here plus
/// what the receiver reports for the server's key.
#[test]
fn aggregated_connection_count_across_processes() {
    let (mut child, _) = echo_child();
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().as_inet().unwrap();
    let _clients: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let kept = server.accept().unwrap();
    for _ in 0..2 {
        let conn = server.accept().unwrap();
        child.send_handle(&"hold", conn.into_handle()).unwrap();
        assert_eq!(next_report(&mut child).what, "served");
    }
    assert_eq!(server.connections(), None, "unknown here once sockets left");
    assert_eq!(server.local_connections(), 1);
    child.request_connection_count(server.key()).unwrap();
    assert_eq!(
        ipc_fork::connections_total(&server, &[&child]),
        None,
        "no answer yet"
    );
    // The answer comes as an internal event; the child also reports the query.
    let mut answered = false;
    while !answered {
        match child.recv().unwrap() {
            ipc_fork::Event::Internal(m, None) => answered = m.cmd() == Some("NODE_SOCKET_COUNT"),
            ipc_fork::Event::Message(..) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ipc_fork::connections_total(&server, &[&child]), Some(3));
    drop(kept);
    child.disconnect().unwrap();
}

/// An abstract UNIX listener (no path in the file system) works the same.
#[test]
fn abstract_unix_listener_serves_in_the_child() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
    let name = format!("ipc-net-test-{}", std::process::id());
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let server = Server::from(UnixListener::bind_addr(&addr).unwrap());
    let (mut child, _) = echo_child();
    child.send_handle(&"server", server.into_handle()).unwrap();
    let client = UnixStream::connect_addr(&addr).unwrap();
    assert_eq!(read_line(client), "handled by child\n");
    assert_eq!(next_report(&mut child).what, "served");
    child.disconnect().unwrap();
}

/// `accept_until` accepts while `stop` is quiet, wakes a thread blocked in
/// it when the pipe's write end closes, and then takes no connection: the
/// one waiting stays queued for whoever else holds the listener.
#[test]
fn accept_until_stops_on_the_pipe_and_leaves_the_queue() {
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().as_inet().unwrap();
    let (stop, stopper) = std::io::pipe().unwrap();
    let _first = TcpStream::connect(addr).unwrap();
    assert!(server.accept_until(&stop).unwrap().is_some());
    let other = server.try_clone().unwrap();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let waiting = std::thread::spawn(move || {
        tid_tx.send(rustix::thread::gettid()).unwrap();
        server.accept_until(&stop).unwrap().is_none()
    });
    // Closed once the thread sleeps in its wait, not before it gets there.
    let tid = tid_rx.recv().unwrap().as_raw_nonzero().get() as u32;
    integration_tests::eventually("the thread waits in accept_until", || {
        integration_tests::stat_field(tid, 3) == "S"
    });
    drop(stopper);
    assert!(waiting.join().unwrap(), "stopped without a connection");
    let _second = TcpStream::connect(addr).unwrap();
    // A byte, not just the close: a child another test is forking holds a
    // copy of the write end until it execs, and `stop` reads as ready only
    // once the last copy is closed.
    let (stop, mut stopper) = std::io::pipe().unwrap();
    stopper.write_all(b"!").unwrap();
    drop(stopper);
    assert!(other.accept_until(&stop).unwrap().is_none(), "stop wins");
    assert!(other.try_accept().is_ok(), "the connection is still queued");
}
