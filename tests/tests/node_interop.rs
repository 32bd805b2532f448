//! Wire compatibility with a real `node`, both directions. Without `node`
//! on the machine these tests say so and pass, except under CI, where
//! `node` is required (`.ci/run` installs it).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

use integration_tests::have_node;
use ipc_fork::{Command, Event};
use ipc_net::Server;

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");

#[test]
fn node_parent_drives_a_rust_child() {
    if !have_node() {
        return;
    }
    integration_tests::node_script_passes("parent-of-rust.js", &[CHILD]);
}

/// `server.close()` and `getConnections()` of a Node parent are answered
/// by a Rust child whose socket is dropped in another thread while it
/// waits in `recv`, and by one that only sends.
#[test]
fn node_parent_gets_socket_answers_from_busy_children() {
    if !have_node() {
        return;
    }
    integration_tests::node_script_passes("socket-queries.js", &[CHILD]);
}

fn recv_json(child: &mut ipc_fork::Child) -> String {
    match child.recv().expect("event") {
        Event::Message(m, None) => m.as_str().to_owned(),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn rust_parent_drives_a_node_child() {
    if !have_node() {
        return;
    }
    let mut child = Command::new("node")
        .arg(integration_tests::node_script("child.js"))
        .spawn()
        .unwrap();
    // Non-ASCII, U+2028, escapes and nesting survive the round trip.
    #[derive(serde::Serialize)]
    struct Msg<'a> {
        text: &'a str,
        nested: (u32, Option<bool>, &'a str),
    }
    child
        .send(&Msg {
            text: "héllo \u{2028} \"q\" \\ 😀",
            nested: (1, None, "ü"),
        })
        .unwrap();
    assert_eq!(
        recv_json(&mut child),
        "{\"text\":\"héllo \u{2028} \\\"q\\\" \\\\ 😀\",\"nested\":[1,null,\"ü\"]}"
    );

    // A server, by reference: the Node child accepts and answers.
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap().as_inet().unwrap();
    child
        .send_handle(&"server", server.to_handle().unwrap())
        .unwrap();
    assert_eq!(
        recv_json(&mut child),
        "{\"served\":\"server\",\"listening\":true}"
    );
    drop(server); // only the child accepts now
    let mut line = String::new();
    BufReader::new(TcpStream::connect(addr).unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "handled by node child\n");

    // A socket, moved.
    let server = Server::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(server.local_addr().unwrap().as_inet().unwrap()).unwrap();
    let conn = server.accept().unwrap();
    child.send_handle(&"socket", conn.into_handle()).unwrap();
    assert_eq!(
        recv_json(&mut child),
        "{\"served\":\"socket\",\"remote\":\"127.0.0.1\"}"
    );
    let mut line = String::new();
    BufReader::new(client).read_line(&mut line).unwrap();
    assert_eq!(line, "socket answered by node child\n");

    // A UDP socket, both families: Node rebuilds a dgram.Socket from dgramType.
    for (local, family) in [("127.0.0.1:0", "udp4"), ("[::1]:0", "udp6")] {
        let d = ipc_net::Datagram::bind(local).unwrap();
        let addr = d.local_addr().unwrap();
        child.send_handle(&"udp", d.into_handle()).unwrap();
        assert_eq!(
            recv_json(&mut child),
            format!(r#"{{"served":"udp","type":"{family}"}}"#)
        );
        let client = std::net::UdpSocket::bind(local).unwrap();
        client.send_to(b"ping", addr).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong ping");
    }

    child.disconnect().unwrap();
    assert!(matches!(child.recv().unwrap(), Event::Disconnect));
    match child.recv().unwrap() {
        Event::Exit(status) => assert!(status.success(), "{status}"),
        other => panic!("{other:?}"),
    }
}
