//! Both directions always move: peers that write before they read, messages
//! of any size and depth, and the memory limit's edge, across real
//! processes (and a real `node`).

use integration_tests::{have_node, socket_pair, RawPeer};
use ipc_core::{Channel, Error};
use ipc_fork::{Command, Event};

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");
const DEMO: &str = env!("CARGO_BIN_EXE_demo-under-test");

/// Parent and child each send `n` numbers before reading any: both finish,
/// and every number arrives in order.
fn both_write_first(n: u64, mode: &str) {
    let mut child = Command::new(CHILD)
        .args(["flood", &n.to_string(), mode])
        .spawn()
        .unwrap();
    for i in 0..n {
        if mode == "queue" {
            child.queue(&i).unwrap();
        } else {
            child.send(&i).unwrap();
        }
    }
    child.flush().unwrap();
    for want in 0..n {
        match child.recv() {
            Ok(Event::Message(mut msg, None)) => assert_eq!(msg.parse::<u64>().unwrap(), want),
            other => panic!("expected {want}, got {other:?}"),
        }
    }
    match child.recv() {
        Ok(Event::Message(mut msg, None)) => {
            assert_eq!(msg.parse::<(&str, u64)>().unwrap(), ("received", n))
        }
        other => panic!("expected the child's count, got {other:?}"),
    }
    child.disconnect().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_million_each_way_with_send_before_reading() {
    both_write_first(1_000_000, "send");
}

#[test]
fn a_million_each_way_with_queue_before_reading() {
    both_write_first(1_000_000, "queue");
}

/// A peer in another language writing 100,000 lines to `demo worker`
/// with plain blocking writes before reading its echoes.
#[test]
fn demo_worker_echoes_a_flood_from_a_parent_that_reads_last() {
    // The child's channel, read and written raw through a copy of our end
    // (the `Child` itself is never asked to read).
    let mut worker = ipc_fork::Command::new(DEMO).arg("worker").spawn().unwrap();
    let ours = rustix::io::fcntl_dupfd_cloexec(&worker, 0).unwrap();
    let mut peer = RawPeer::new(ours);
    let n = 100_000;
    let mut all = Vec::new();
    for i in 0..n {
        all.extend_from_slice(format!("{{\"seq\":{i}}}\n").as_bytes());
    }
    peer.write(&all, &[]);
    for i in 0..n {
        assert_eq!(peer.read_text(), format!("{{\"seq\":{i}}}"));
    }
    drop(peer);
    worker.disconnect().unwrap(); // our last copy of the channel: EOF for the worker
    assert!(worker.wait().unwrap().success());
}

/// The messages a Node peer can send: long strings and deep nesting.
fn big_messages() -> Vec<String> {
    let mut v: Vec<String> = [64 * 1024, 1024 * 1024, 32 * 1024 * 1024]
        .iter()
        .map(|&len| format!("{{\"len\":{len},\"s\":\"{}\"}}", "x".repeat(len)))
        .collect();
    let depth = 4_000;
    v.push(format!("{}0{}", "[".repeat(depth), "]".repeat(depth)));
    v
}

/// Sends each of [`big_messages`] to an echoing child and checks the echo.
fn echo_each(child: &mut ipc_fork::Child) {
    for m in big_messages() {
        child
            .send(&ipc_core::json::RawJson::new(&m).unwrap())
            .unwrap();
        match child.recv() {
            Ok(Event::Message(msg, None)) => assert!(msg.as_str() == m, "{} bytes", m.len()),
            other => panic!("expected the echo, got {other:?}"),
        }
    }
}

#[test]
fn big_and_deep_messages_both_ways_between_rust_processes() {
    let mut child = Command::new(CHILD).arg("echo").spawn().unwrap();
    integration_tests::next_report(&mut child);
    echo_each(&mut child);
    child.disconnect().unwrap();
}

#[test]
fn big_and_deep_messages_both_ways_with_a_node_child() {
    if !have_node() {
        return;
    }
    let mut child = Command::new("node")
        .arg(integration_tests::node_script("child.js"))
        .spawn()
        .unwrap();
    echo_each(&mut child);
    child.disconnect().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn big_and_deep_messages_both_ways_with_a_node_parent_and_demo_worker() {
    if !have_node() {
        return;
    }
    integration_tests::node_script_passes("big-messages.js", &[DEMO]);
}

/// Past the limit a line is skipped with a typed error; the next arrives.
/// A message past the limit is refused; the next one goes.
#[test]
fn past_the_limit_a_typed_error_and_the_next_message_arrives() {
    let (ours, theirs) = socket_pair();
    let mut ch = Box::new(Channel::<4096, 4096>::new(ours).unwrap());
    ch.set_limit(64 * 1024);
    let peer = RawPeer::new(theirs);
    let writer = std::thread::spawn(move || {
        let big = format!("\"{}\"\n", "y".repeat(200 * 1024));
        peer.write(big.as_bytes(), &[]);
        peer.write(b"\"next\"\n", &[]);
        peer
    });
    assert_eq!(ch.recv().unwrap_err(), Error::FrameTooLong);
    assert_eq!(ch.recv().unwrap().as_str(), "\"next\"");
    let mut peer = writer.join().unwrap();
    assert_eq!(
        ch.send(&"z".repeat(100 * 1024)).unwrap_err(),
        Error::MessageTooLarge
    );
    ch.send(&"fits").unwrap();
    assert_eq!(peer.read_text(), "\"fits\"");
}
