//! The tokio child of the integration tests: `ipc_fork::tokio::parent()`
//! inside `#[tokio::main]` (the runtime's threads already run), every
//! received handle converted to tokio's types in one call. It speaks the
//! same reports as `test-child echo` (so `tests/node/parent-of-rust.js`
//! drives either), plus a few requests of its own:
//!
//! - `"hold"` with a socket: answer it, then keep it (as a tokio stream)
//!   until `"release"` (all) or `"release-one"` (the oldest);
//! - `"hold-until-eof"` with a socket: answer it, then keep it in a task of
//!   its own until the client closes (nothing on the channel says when);
//! - `"give-server"`: bind a server, send it, and let go of our copy once
//!   the parent acknowledged it;
//! - `{"give-socket": PORT}`: connect to `127.0.0.1:PORT` and send that
//!   connection;
//! - `{"flood": [N, LEN]}`: send N messages of LEN bytes (`send().await`
//!   each), then report;
//! - `{"split": TEXT}` (letters only): write a `split` report and the first
//!   half of the line `"TEXT"` in one write, then, on the next message,
//!   the rest: the parent holds half a line meanwhile.

use std::collections::VecDeque;

use integration_tests::Report;
use ipc_core::json::RawJson;
use ipc_fork::tokio::AsyncParent;
use ipc_fork::Event;
use ipc_net::{Counted, Received, Server, Socket};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request among the messages.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Request {
    GiveSocket(u16),
    Flood(u64, usize),
    Split(String),
}

async fn report(parent: &mut AsyncParent, what: &str, detail: String) {
    let r = Report::new(what, detail, integration_tests::fd_count());
    match parent.send(&r).await {
        Ok(()) => {}
        // The parent finished the test and left: nothing to report to.
        Err(ipc_core::Error::Disconnected) => std::process::exit(0),
        Err(e) => panic!("report: {e}"),
    }
}

#[tokio::main]
async fn main() {
    let role = std::env::args().nth(1).unwrap_or_default();
    assert_eq!(role, "echo", "tokio-child has one role: echo");
    let mut parent = ipc_fork::tokio::parent().expect("parent channel");
    let started = started_state(&parent);
    report(&mut parent, "started", started).await;

    let mut held: VecDeque<Counted<tokio::net::TcpStream>> = VecDeque::new();
    loop {
        let event = match parent.recv().await {
            Ok(e) => e,
            Err(e) if !e.is_fatal() => {
                report(&mut parent, "error", e.to_string()).await;
                continue;
            }
            Err(e) => panic!("channel failed: {e}"),
        };
        match event {
            Event::Message(msg, None) => {
                let text = msg.as_str().to_owned();
                match text.as_str() {
                    "\"release\"" => {
                        held.clear();
                        report(&mut parent, "released", String::new()).await;
                    }
                    "\"release-one\"" => {
                        held.pop_front();
                        let left = held.len().to_string();
                        report(&mut parent, "released-one", left).await;
                    }
                    "\"give-server\"" => give_server(&mut parent).await,
                    _ => match ipc_core::json::from_slice_mut(&mut text.clone().into_bytes()) {
                        Ok(Request::GiveSocket(port)) => give_socket(&mut parent, port).await,
                        Ok(Request::Flood(n, len)) => flood(&mut parent, n, len).await,
                        Ok(Request::Split(text)) => split(&mut parent, &text).await,
                        Err(_) => parent.send(&RawJson::new(&text).unwrap()).await.unwrap(),
                    },
                }
            }
            Event::Message(msg, Some(Err(e))) => {
                let detail = format!("{} {e:?}", msg.as_str());
                report(&mut parent, "refused", detail).await;
            }
            Event::Message(msg, Some(Ok(received))) => {
                let hold = match msg.as_str() {
                    "\"hold\"" => Hold::UntilReleased,
                    "\"hold-until-eof\"" => Hold::UntilEof,
                    _ => Hold::No,
                };
                let detail = serve(received, hold, &mut held).await;
                report(&mut parent, "served", detail).await;
            }
            Event::Internal(msg, _) => {
                let detail = msg.as_str().to_owned();
                report(&mut parent, "internal", detail).await;
            }
            Event::Fate(fate) => report(&mut parent, "fate", format!("{fate:?}")).await,
            Event::Disconnect | Event::Exit(_) => break,
        }
    }
}

/// What the start looked like: the channel variables gone, the channel
/// close-on-exec and the only socket, and a grandchild that finds no
/// channel.
fn started_state(parent: &AsyncParent) -> String {
    let env_left = std::env::var_os("NODE_CHANNEL_FD").is_some()
        || std::env::var_os("NODE_CHANNEL_SERIALIZATION_MODE").is_some();
    let cloexec = rustix::io::fcntl_getfd(parent)
        .unwrap()
        .contains(rustix::io::FdFlags::CLOEXEC);
    // test-child, built next to this program.
    let test_child = std::env::current_exe()
        .unwrap()
        .with_file_name("test-child");
    let grandchild = std::process::Command::new(test_child)
        .arg("no-channel")
        .output()
        .expect("grandchild");
    let grandchild = String::from_utf8_lossy(&grandchild.stdout);
    format!(
        "env_left={env_left} cloexec={cloexec} grandchild={}",
        grandchild.trim()
    )
}

/// How long to keep a received socket.
#[derive(PartialEq)]
enum Hold {
    No,
    UntilReleased,
    UntilEof,
}

/// Uses a received handle, as tokio's own type, and says what happened.
async fn serve(
    received: Received,
    hold: Hold,
    held: &mut VecDeque<Counted<tokio::net::TcpStream>>,
) -> String {
    match received {
        Received::Server(server) => {
            let addr = server.local_addr().unwrap();
            let listener = server.into_tokio_tcp().unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"handled by child\n").await.unwrap();
            format!("server {addr}")
        }
        Received::Socket(socket) => {
            let detail = format!("socket key={:?}", socket.key());
            let mut stream = socket.into_tokio_tcp().unwrap();
            stream
                .write_all(b"socket answered by child\n")
                .await
                .unwrap();
            match hold {
                Hold::No => {}
                Hold::UntilReleased => held.push_back(stream),
                Hold::UntilEof => {
                    tokio::spawn(async move {
                        let mut rest = Vec::new();
                        let _ = stream.read_to_end(&mut rest).await;
                    });
                }
            }
            detail
        }
        Received::Datagram(d) => {
            let udp = d.into_tokio().unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = udp.recv_from(&mut buf).await.unwrap();
            udp.send_to(b"pong", from).await.unwrap();
            format!("datagram {}", String::from_utf8_lossy(&buf[..n]))
        }
    }
}

/// Sends a fresh server to the parent; once it is acknowledged only the
/// parent holds it.
async fn give_server(parent: &mut AsyncParent) {
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    parent
        .send_handle(&"server-from-child", server.into_handle())
        .await
        .unwrap();
    report(parent, "gave-server", addr.to_string()).await;
}

/// Connects to the parent's port and sends the connection over.
async fn give_socket(parent: &mut AsyncParent, port: u16) {
    let conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let local = conn.local_addr().unwrap();
    let socket = Socket::try_from(conn).unwrap();
    parent
        .send_handle(&"socket-from-child", socket.into_handle())
        .await
        .unwrap();
    report(parent, "gave-socket", local.to_string()).await;
}

/// Sends `n` messages of `len` bytes, each awaited.
async fn split(parent: &mut AsyncParent, text: &str) {
    parent.flush().await.unwrap();
    let mut first = [0u8; 512];
    let report = Report::new("split", String::new(), integration_tests::fd_count());
    let mut n = ipc_core::json::to_slice(&report, &mut first).unwrap();
    first[n] = b'\n';
    n += 1;
    let line = format!("\"{text}\"\n");
    let (head, tail) = line.as_bytes().split_at(line.len() / 2);
    first[n..n + head.len()].copy_from_slice(head);
    n += head.len();
    // One write: the parent has the half line once it has the report.
    assert_eq!(rustix::io::write(&*parent, &first[..n]).unwrap(), n);
    parent.recv().await.unwrap();
    assert_eq!(rustix::io::write(&*parent, tail).unwrap(), tail.len());
}

async fn flood(parent: &mut AsyncParent, n: u64, len: usize) {
    let payload = "x".repeat(len);
    for seq in 0..n {
        parent.send(&(seq, &payload)).await.unwrap();
    }
    report(parent, "flooded", n.to_string()).await;
}
