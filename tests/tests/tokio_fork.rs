//! `ipc_fork::tokio` on a tokio runtime, real processes both ends: a tokio
//! parent (`AsyncChild`) and tokio children (`tokio-child`, which uses
//! `ipc_fork::tokio::parent()` inside `#[tokio::main]`) exchange messages,
//! sockets, servers and UDP sockets both ways; cancelled futures lose
//! nothing; a stopped child holds up nothing but the futures that wait on
//! it. Most run on a current-thread runtime, where one blocking call would
//! stall everything.

use std::os::unix::process::ExitStatusExt;

use integration_tests::{fd_count, serial, signal, Report};
use ipc_core::json::RawJson;
use ipc_core::{Error, Fate};
use ipc_fork::tokio::AsyncChild;
use ipc_fork::{Command, Event};
use ipc_net::{Datagram, Received, Server, Socket};
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKIO_CHILD: &str = env!("CARGO_BIN_EXE_tokio-child");

/// This process's descriptors, counted while no other test runs.
fn fd_count_outside_runtime() -> usize {
    let _serial = serial();
    fd_count()
}

/// Runs `test` on a current-thread runtime (where one blocking call would
/// stall everything), one test at a time: some count descriptors.
fn on_one_thread<F: std::future::Future>(test: F) -> F::Output {
    let _serial = serial();
    // A local, so that it is gone before the lock is released.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(test)
}

/// A `tokio-child echo`, killed if the test fails with it still running
/// (a stopped one would otherwise hold the test's output open forever).
fn spawn() -> AsyncChild {
    AsyncChild::spawn(Command::new(TOKIO_CHILD).arg("echo").kill_on_drop(true))
        .expect("spawn tokio-child")
}

/// The next user message, read as a report (anything else fails).
async fn next_report(child: &mut AsyncChild) -> Report {
    match child.recv().await.expect("event from child") {
        Event::Message(mut msg, None) => msg.parse().expect("a report"),
        other => panic!("expected a report, got {other:?}"),
    }
}

/// The next user message's JSON text.
async fn next_text(child: &mut AsyncChild) -> String {
    match child.recv().await.expect("event from child") {
        Event::Message(msg, None) => msg.as_str().to_owned(),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Reads a connection to its end.
async fn read_all(mut stream: tokio::net::TcpStream) -> String {
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// A connected pair: our client end, and the accepted end as a `Socket`.
async fn connection() -> (tokio::net::TcpStream, Socket) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    (client, Socket::try_from(accepted).unwrap())
}

async fn disconnect_and_exit(mut child: AsyncChild) {
    child.disconnect().await.unwrap();
    loop {
        match child.recv().await.unwrap() {
            Event::Disconnect => break,
            Event::Message(m, _) => eprintln!("(late message {})", m.as_str()),
            other => panic!("expected Disconnect, got {other:?}"),
        }
    }
    match child.recv().await.unwrap() {
        Event::Exit(status) => assert!(status.success(), "{status}"),
        other => panic!("expected Exit, got {other:?}"),
    }
    assert!(matches!(child.recv().await, Err(Error::Disconnected)));
}

#[test]
fn messages_sockets_and_servers_both_ways() {
    let before = fd_count_outside_runtime();
    on_one_thread(async {
        let mut child = spawn();
        let started = next_report(&mut child).await;
        // parent() inside #[tokio::main]: the variables were gone, the channel
        // close-on-exec, and a grandchild found no channel.
        assert_eq!(
            started.detail,
            "env_left=false cloexec=true grandchild=NoChannel"
        );

        // Messages, one at a time and many to a write.
        child.send(&("héllo \u{2028}", 1)).await.unwrap();
        assert_eq!(next_text(&mut child).await, "[\"héllo \u{2028}\",1]");
        for seq in 0..1000u32 {
            child.queue(&seq).await.unwrap();
        }
        child.flush().await.unwrap();
        for seq in 0..1000u32 {
            assert_eq!(next_text(&mut child).await, seq.to_string());
        }

        // A socket to the child: it answers, as a tokio stream.
        let (client, socket) = connection().await;
        child
            .send_handle(&"socket", socket.into_handle())
            .await
            .unwrap();
        assert_eq!(next_report(&mut child).await.detail, "socket key=None");
        assert_eq!(read_all(client).await, "socket answered by child\n");

        // A server to the child, by reference; ours closes once it has it.
        let server = Server::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap().as_inet().unwrap();
        child
            .send_handle(&"server", server.to_handle().unwrap())
            .await
            .unwrap();
        drop(server);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(read_all(client).await, "handled by child\n");
        assert_eq!(
            next_report(&mut child).await.detail,
            format!("server {addr}")
        );

        // A UDP socket to the child.
        let udp = Datagram::bind("127.0.0.1:0").unwrap();
        let udp_addr = udp.local_addr().unwrap();
        child.send_handle(&"udp", udp.into_handle()).await.unwrap();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", udp_addr).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong");
        assert_eq!(next_report(&mut child).await.detail, "datagram ping");

        // A server from the child: we accept on it, with tokio.
        child.send(&"give-server").await.unwrap();
        let server = match child.recv().await.unwrap() {
            Event::Message(msg, Some(Ok(Received::Server(s)))) => {
                assert_eq!(msg.as_str(), "\"server-from-child\"");
                s
            }
            other => panic!("expected a server, got {other:?}"),
        };
        let addr = server.local_addr().unwrap().as_inet().unwrap();
        let listener = server.into_tokio_tcp().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.write_all(b"accepted by the parent\n").await.unwrap();
        drop(conn);
        assert_eq!(read_all(client).await, "accepted by the parent\n");
        let gave = next_report(&mut child).await;
        assert_eq!(
            (gave.what.as_str(), gave.detail),
            ("gave-server", addr.to_string())
        );

        // A socket from the child: its connection to our listener.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        child
            .send(&RawJson::new(&format!("{{\"give-socket\":{port}}}")).unwrap())
            .await
            .unwrap();
        let (far_end, _) = listener.accept().await.unwrap();
        let socket = match child.recv().await.unwrap() {
            Event::Message(msg, Some(Ok(Received::Socket(s)))) => {
                assert_eq!(msg.as_str(), "\"socket-from-child\"");
                s
            }
            other => panic!("expected a socket, got {other:?}"),
        };
        let mut stream = socket.into_tokio_tcp().unwrap();
        stream
            .write_all(b"through the child's socket\n")
            .await
            .unwrap();
        drop(stream);
        assert_eq!(read_all(far_end).await, "through the child's socket\n");
        assert_eq!(next_report(&mut child).await.what, "gave-socket");

        disconnect_and_exit(child).await;
    });
    assert_eq!(
        fd_count_outside_runtime(),
        before,
        "descriptors left behind"
    );
}

/// At the send buffer's limit, `queue`, `send` and `send_handle` wait for
/// room (as the blocking calls do) instead of failing with `WouldBlock`;
/// dropped while waiting, none of them queued anything.
#[test]
fn at_the_limit_the_async_sends_wait_for_room() {
    on_one_thread(async {
        let mut child = spawn();
        next_report(&mut child).await;
        child.set_limit(ipc_core::DEFAULT_CAPACITY);
        signal(child.id(), Signal::STOP);
        // Fill the socket and the send buffer up to the limit.
        let payload = "x".repeat(1000);
        let mut queued = 0;
        while child.try_queue(&payload).is_ok() {
            queued += 1;
        }
        // Up to the last bytes: no frame fits now, a handle's neither.
        let mut zeros = 0;
        while child.try_queue(&0).is_ok() {
            zeros += 1;
        }
        assert_eq!(child.try_queue(&0), Err(Error::WouldBlock));
        // Each waits (still pending after a poll) instead of failing.
        let zero = std::time::Duration::ZERO;
        assert!(tokio::time::timeout(zero, child.queue(&payload))
            .await
            .is_err());
        assert!(tokio::time::timeout(zero, child.send(&payload))
            .await
            .is_err());
        let (client, socket) = connection().await;
        let handle_sent = child.send_handle(&"socket", socket.into_handle());
        assert!(tokio::time::timeout(zero, handle_sent).await.is_err());
        drop(client);
        // Room again (the limit also bounds the echoes read back).
        child.set_limit(ipc_core::DEFAULT_LIMIT);
        signal(child.id(), Signal::CONT);
        for _ in 0..queued {
            assert_eq!(next_text(&mut child).await.len(), payload.len() + 2);
        }
        for _ in 0..zeros {
            assert_eq!(next_text(&mut child).await, "0");
        }
        // Nothing of the three came: the next message is the next echo.
        child.send(&"after").await.unwrap();
        assert_eq!(next_text(&mut child).await, "\"after\"");
        disconnect_and_exit(child).await;
    });
}

/// What cannot be sent is an error from the async sends as from the
/// blocking ones (they returned `Ok` and dropped it): nothing goes out, and
/// the channel goes on.
#[test]
fn async_sends_report_what_cannot_be_sent() {
    on_one_thread(async {
        let mut child = spawn();
        next_report(&mut child).await;
        child.set_limit(4096);
        let big = "x".repeat(10_000);
        assert_eq!(child.send(&big).await, Err(Error::MessageTooLarge));
        let not_json = std::collections::HashMap::from([((1, 2), 3)]);
        assert!(matches!(child.send(&not_json).await, Err(Error::Encode(_))));
        child.set_limit(ipc_core::DEFAULT_LIMIT);
        child.send(&"after").await.unwrap();
        assert_eq!(next_text(&mut child).await, "\"after\"");
        disconnect_and_exit(child).await;
    });
}

/// A `recv` dropped while half a line is buffered loses nothing: the next
/// `recv` returns the whole message once the rest comes. Then `recv`
/// dropped over and over by `select!` while the child floods: every message
/// still arrives, once, in order.
#[test]
fn a_cancelled_recv_loses_nothing() {
    on_one_thread(async {
        let mut child = spawn();
        next_report(&mut child).await;
        child
            .send(&RawJson::new(r#"{"split":"halves"}"#).unwrap())
            .await
            .unwrap();
        // The report and the first half of the line came in one write.
        assert_eq!(next_report(&mut child).await.what, "split");
        let zero = std::time::Duration::ZERO;
        assert!(tokio::time::timeout(zero, child.recv()).await.is_err());
        child.send(&"go").await.unwrap();
        assert_eq!(next_text(&mut child).await, "\"halves\"");

        const N: u64 = 20_000;
        child
            .send(&RawJson::new(&format!("{{\"flood\":[{N},100]}}")).unwrap())
            .await
            .unwrap();
        let mut next = 0u64;
        while next < N {
            tokio::select! {
                biased;
                event = child.recv() => match event.unwrap() {
                    Event::Message(mut msg, None) => {
                        let (seq, _payload): (u64, &str) = msg.parse().unwrap();
                        assert_eq!(seq, next);
                        next += 1;
                    }
                    other => panic!("{other:?}"),
                },
                // Ready on its second poll: cancels a recv that had to wait.
                () = tokio::task::yield_now() => {}
            }
        }
        assert_eq!(next_report(&mut child).await.what, "flooded");
        disconnect_and_exit(child).await;
    });
}

/// A `send_handle` dropped before the ACK leaves the hand-off queued: the
/// child gets it, and its fate comes from `recv`, once.
#[test]
fn a_dropped_send_handle_reports_its_fate_through_recv() {
    on_one_thread(async {
        let mut child = spawn();
        next_report(&mut child).await;
        signal(child.id(), Signal::STOP);
        let (client, socket) = connection().await;
        let sent = tokio::time::timeout(
            std::time::Duration::ZERO,
            child.send_handle(&"socket", socket.into_handle()),
        )
        .await;
        assert!(sent.is_err(), "a stopped child acknowledged");
        assert_eq!(child.handles_in_flight(), 1);
        signal(child.id(), Signal::CONT);
        let mut fate = None;
        let mut served = None;
        while fate.is_none() || served.is_none() {
            match child.recv().await.unwrap() {
                Event::Fate(f) => {
                    assert!(fate.is_none(), "two fates");
                    fate = Some(f);
                }
                Event::Message(mut msg, None) => served = Some(msg.parse::<Report>().unwrap()),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(fate, Some(Fate::Acknowledged(t)) if t.get() == 0));
        assert_eq!(served.unwrap().detail, "socket key=None");
        assert_eq!(read_all(client).await, "socket answered by child\n");
        disconnect_and_exit(child).await;
    });
}

/// On a current-thread runtime: one child stopped with a send, a handle and
/// lots of data pending, another stopped with `wait()` pending, while a
/// third is served in full. Nothing blocks; the stopped ones finish once
/// they go on.
#[test]
fn a_stopped_child_never_blocks_the_runtime() {
    on_one_thread(async {
        let (mut stalled, mut waited, mut served) = (spawn(), spawn(), spawn());
        for child in [&mut stalled, &mut waited, &mut served] {
            next_report(child).await;
        }
        let (stalled_pid, waited_pid) = (stalled.id(), waited.id());
        signal(stalled_pid, Signal::STOP);
        signal(waited_pid, Signal::STOP);

        // 4 MiB to a stopped child: far more than a socket holds.
        const BIG: usize = 64 * 1024;
        const COUNT: usize = 64;
        let (stalled_client, stalled_socket) = connection().await;
        let sender = tokio::spawn(async move {
            let payload = "x".repeat(BIG);
            for _ in 0..COUNT {
                stalled.send(&payload).await.unwrap();
            }
            stalled
                .send_handle(&"socket", stalled_socket.into_handle())
                .await
                .unwrap();
            // Its echoes and the report of the socket.
            for _ in 0..COUNT {
                assert_eq!(next_text(&mut stalled).await.len(), BIG + 2);
            }
            assert_eq!(next_report(&mut stalled).await.what, "served");
            stalled
        });
        let waiter = tokio::spawn(async move {
            let status = waited.wait().await.unwrap();
            (waited, status)
        });

        // The third child, served in full meanwhile.
        for i in 0..200u32 {
            served.send(&i).await.unwrap();
            assert_eq!(next_text(&mut served).await, i.to_string());
        }
        for _ in 0..3 {
            let (client, socket) = connection().await;
            served
                .send_handle(&"socket", socket.into_handle())
                .await
                .unwrap();
            assert_eq!(next_report(&mut served).await.what, "served");
            assert_eq!(read_all(client).await, "socket answered by child\n");
        }
        assert!(!sender.is_finished() && !waiter.is_finished());

        signal(stalled_pid, Signal::CONT);
        let stalled = sender.await.unwrap();
        assert_eq!(read_all(stalled_client).await, "socket answered by child\n");
        signal(waited_pid, Signal::KILL);
        let (waited, status) = waiter.await.unwrap();
        assert_eq!(status.signal(), Some(9));
        drop(waited);
        disconnect_and_exit(stalled).await;
        disconnect_and_exit(served).await;
    });
}

/// Children served from several tasks of a multi-threaded runtime at once
/// (the futures are `Send`), each with messages and a socket.
#[test]
fn children_served_from_tasks_on_many_threads() {
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(children_on_many_threads());
}

async fn children_on_many_threads() {
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                let mut child = spawn();
                next_report(&mut child).await;
                for i in 0..100u32 {
                    child.send(&i).await.unwrap();
                    assert_eq!(next_text(&mut child).await, i.to_string());
                }
                let (client, socket) = connection().await;
                child
                    .send_handle(&"socket", socket.into_handle())
                    .await
                    .unwrap();
                assert_eq!(next_report(&mut child).await.what, "served");
                assert_eq!(read_all(client).await, "socket answered by child\n");
                disconnect_and_exit(child).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// A Rust parent's `getConnections()`: sockets accepted by our server and
/// held by the child as tokio streams count until the child drops them.
#[test]
fn converted_sockets_stay_counted_for_the_parent() {
    on_one_thread(async {
        let mut child = spawn();
        next_report(&mut child).await;
        let server = Server::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap().as_inet().unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let socket = server.accept().unwrap();
            child
                .send_handle(&"hold", socket.into_handle())
                .await
                .unwrap();
            assert_eq!(
                next_report(&mut child).await.detail,
                format!("socket key=Some(\"{}\")", server.key())
            );
            clients.push(client);
        }
        let key = server.key();
        expect_count(&mut child, key, 3).await;
        assert_eq!(ipc_fork::connections_total(&server, &[&child]), Some(3));
        child.send(&"release-one").await.unwrap();
        assert_eq!(next_report(&mut child).await.detail, "2");
        expect_count(&mut child, key, 2).await;
        child.send(&"release").await.unwrap();
        assert_eq!(next_report(&mut child).await.what, "released");
        expect_count(&mut child, key, 0).await;
        disconnect_and_exit(child).await;
    });
}

/// Asks the child how many sockets of `key` it holds; expects `n`.
async fn expect_count(child: &mut AsyncChild, key: &str, n: u64) {
    child.request_connection_count(key).await.unwrap();
    // The answer, then the child's report of the question.
    match child.recv().await.unwrap() {
        Event::Internal(msg, None) => assert!(msg.as_str().contains("NODE_SOCKET_COUNT")),
        other => panic!("{other:?}"),
    }
    assert_eq!(child.reported_connections(key), Some(n));
    assert_eq!(next_report(child).await.what, "internal");
}
