//! ipc-core's channel over a real socketpair, against a raw peer that reads
//! and writes exact bytes (as a Node process would put them on the wire).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use integration_tests::{default_sigpipe, fd_count, serial, RawPeer};
use ipc_core::{Channel, Error, Fate, Handle, HandleKind, Incoming};
use serde::{Deserialize, Serialize};

type Small = Channel<4096, 4096>;

fn channel_and_peer() -> (Box<Small>, RawPeer) {
    integration_tests::channel_and_peer()
}

/// A connected stream pair: the first end to send, the second to check it.
fn stream_pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

#[test]
fn plain_internal_and_handle_messages_round_trip() {
    let _serial = serial();
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Hello<'a> {
        hello: u32,
        s: &'a str,
        nested: (bool, Option<u8>),
    }
    let (mut a, mut b) = Small::pair().unwrap();
    a.send(&Hello {
        hello: 1,
        s: "line\nbreak \u{2028} é \"q\" 😀",
        nested: (true, None),
    })
    .unwrap();
    a.send(&42).unwrap();
    a.send(&serde_json_like::Custom {
        cmd: "NODE_custom",
        x: 1,
    })
    .unwrap();
    let (mut ours, theirs) = stream_pair();
    let ticket = a
        .queue_handle(&"socket", Handle::new(HandleKind::Socket, theirs))
        .unwrap();

    let mut m = b.recv().unwrap();
    assert!(!m.is_internal() && m.handle().is_none());
    assert_eq!(
        m.parse::<Hello>().unwrap(),
        Hello {
            hello: 1,
            s: "line\nbreak \u{2028} é \"q\" 😀",
            nested: (true, None)
        }
    );
    assert_eq!(b.recv().unwrap().as_str(), "42");
    let m = b.recv().unwrap();
    assert!(m.is_internal());
    assert_eq!(m.cmd(), Some("NODE_custom"));
    let mut m = b.recv().unwrap();
    assert_eq!(m.as_str(), "\"socket\"");
    let handle = m.take_handle().expect("handle");
    assert_eq!(handle.kind(), HandleKind::Socket);
    // The descriptor works: bytes written through it reach the other end.
    let mut s = UnixStream::from(handle.into_fd());
    s.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    ours.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    // The ACK went back and released the sender's copy.
    a.send(&"after").unwrap();
    assert_eq!(b.recv().unwrap().as_str(), "\"after\"");
    assert_eq!(a.handles_in_flight(), 0);
    assert!(matches!(a.next_fate(), Some(Fate::Acknowledged(t)) if t == ticket));
    assert!(a.next_fate().is_none());
}

mod serde_json_like {
    #[derive(serde::Serialize)]
    pub struct Custom<'a> {
        pub cmd: &'a str,
        pub x: u32,
    }

    #[derive(serde::Serialize)]
    pub struct After<'a> {
        pub after: &'a str,
    }
}

#[test]
fn received_descriptors_are_cloexec() {
    let _serial = serial();
    let (mut a, mut b) = Small::pair().unwrap();
    let (_x, y) = stream_pair();
    a.queue_handle(&1, Handle::new(HandleKind::Socket, y))
        .unwrap();
    let mut m = b.recv().unwrap();
    let fd = m.take_handle().unwrap();
    let flags = rustix::io::fcntl_getfd(&fd).unwrap();
    assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
}

/// Section 6 of the protocol notes, frame by frame, as our encoder writes
/// them and as our decoder reads Node's.
#[test]
fn frames_match_nodes_bytes() {
    let _serial = serial();
    let (mut ch, mut peer) = channel_and_peer();
    #[derive(Serialize)]
    struct Hello<'a> {
        hello: u32,
        s: &'a str,
    }
    // The transcript's string has a lone surrogate, which a Rust string
    // cannot hold; the rest must match byte for byte.
    ch.send(&Hello {
        hello: 1,
        s: "line\nbreak \u{2028} é \"q\"",
    })
    .unwrap();
    assert_eq!(
        peer.read_line().0,
        b"{\"hello\":1,\"s\":\"line\\nbreak \xe2\x80\xa8 \xc3\xa9 \\\"q\\\"\"}\n"
    );
    ch.send(&42).unwrap();
    assert_eq!(peer.read_line().0, b"42\n");
    ch.send(&serde_json_like::Custom {
        cmd: "NODE_custom",
        x: 1,
    })
    .unwrap();
    assert_eq!(peer.read_line().0, b"{\"cmd\":\"NODE_custom\",\"x\":1}\n");

    let (_x, y) = stream_pair();
    ch.queue_handle("server", Handle::new(HandleKind::Server, y))
        .unwrap();
    let (line, fds) = peer.read_line();
    assert_eq!(
        line,
        b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Server\",\"msg\":\"server\"}\n"
    );
    assert_eq!((line.len(), fds.len()), (57, 1));
    peer.write(b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n", &[]);
    // Reading it (here, a receive that finds no message) settles the fate.
    assert_eq!(ch.try_recv().unwrap_err(), Error::WouldBlock);
    assert!(matches!(ch.next_fate(), Some(Fate::Acknowledged(_))));

    let (_x, y) = stream_pair();
    let key = ipc_core::Key::try_from("4:127.0.0.1:0").unwrap();
    ch.queue_handle("socket", Handle::new(HandleKind::Socket, y).with_key(key))
        .unwrap();
    // Held back until the ACK, like Node's "after":"socket-queued".
    ch.try_send(&serde_json_like::After {
        after: "socket-queued",
    })
    .unwrap();
    let (line, fds) = peer.read_line();
    assert_eq!(line, b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":\"socket\",\"key\":\"4:127.0.0.1:0\"}\n");
    assert_eq!((line.len(), fds.len()), (79, 1));
    assert!(!peer.has_data(), "a message went out before the ACK");
    peer.write(b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n", &[]);
    // Reading the ACK releases the queue.
    assert_eq!(ch.try_recv().unwrap_err(), Error::WouldBlock);
    assert_eq!(peer.read_text(), r#"{"after":"socket-queued"}"#);

    // Node's own line, lone surrogate and all, decodes (to U+FFFD).
    peer.write(
        b"{\"hello\":1,\"s\":\"line\\nbreak \xe2\x80\xa8 \xc3\xa9 \\ud800 \\\"q\\\"\"}\n",
        &[],
    );
    #[derive(Deserialize)]
    struct Got<'a> {
        s: &'a str,
    }
    assert_eq!(
        ch.recv().unwrap().parse::<Got>().unwrap().s,
        "line\nbreak \u{2028} é \u{fffd} \"q\""
    );
}

const ACK: &[u8] = b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n";
const NACK: &[u8] = b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n";

fn handle_line(kind: &str, msg: &str) -> Vec<u8> {
    format!("{{\"cmd\":\"NODE_HANDLE\",\"type\":\"{kind}\",\"msg\":{msg}}}\n").into_bytes()
}

/// Several handle messages whose bytes arrive in pieces, split inside lines
/// and with descriptors riding on the first piece of each line: each
/// descriptor reaches its own message.
#[test]
fn descriptors_pair_with_their_lines_across_split_reads() {
    let _serial = serial();
    let before = fd_count();
    let (mut ch, peer) = channel_and_peer();
    let mut ends = Vec::new();
    for i in 0..5 {
        let (ours, theirs) = stream_pair();
        let line = handle_line("net.Socket", &i.to_string());
        // First 7 bytes carry the fd; the rest of the line follows in 3
        // separate writes, after a plain message's tail.
        peer.write(b"\"plain-", &[]);
        peer.write(b"before\"\n", &[]);
        peer.write(&line[..7], &[&theirs]);
        drop(theirs);
        for chunk in line[7..].chunks(line.len() / 3) {
            peer.write(chunk, &[]);
        }
        ends.push(ours);
    }
    for (i, ours) in ends.iter_mut().enumerate() {
        assert_eq!(ch.recv().unwrap().as_str(), "\"plain-before\"");
        let mut m = ch.recv().unwrap();
        assert_eq!(m.as_str(), i.to_string());
        let mut s = UnixStream::from(m.take_handle().unwrap().into_fd());
        s.write_all(&[i as u8]).unwrap();
        let mut b = [0u8];
        ours.read_exact(&mut b).unwrap();
        assert_eq!(b[0], i as u8, "descriptor {i} went to the wrong message");
    }
    drop((ch, peer, ends));
    assert_eq!(fd_count(), before);
}

#[test]
fn exactly_one_ack_per_handle_line_and_nack_without_fd() {
    let _serial = serial();
    let (mut ch, mut peer) = channel_and_peer();
    let (_x, y) = stream_pair();
    peer.write(&handle_line("net.Server", "\"s\""), &[&y]);
    assert!(ch.recv().unwrap().handle().is_some());
    assert_eq!(peer.read_line().0, ACK);
    // Node's retransmission of a NACKed socket: unwrapped, one ACK.
    let nested = br#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_HANDLE","type":"net.Socket","msg":"socket","key":"6::::0"}}"#;
    peer.write(&[&nested[..], b"\n"].concat(), &[&y]);
    let m = ch.recv().unwrap();
    assert_eq!(m.as_str(), "\"socket\"");
    let h = m.handle().unwrap();
    assert_eq!((h.kind(), h.key()), (HandleKind::Socket, Some("6::::0")));
    assert_eq!(peer.read_line().0, ACK);
    // No descriptor: NACK, a typed error, and the channel goes on.
    peer.write(&handle_line("net.Socket", "1"), &[]);
    peer.write(b"\"next\"\n", &[]);
    assert_eq!(ch.recv().unwrap_err(), Error::HandleWithoutFd);
    assert_eq!(peer.read_line().0, NACK);
    assert_eq!(ch.recv().unwrap().as_str(), "\"next\"");
    assert!(!peer.has_data(), "more than one reply per handle line");
}

#[test]
fn bad_lines_are_typed_errors_and_the_next_message_arrives() {
    let _serial = serial();
    let before = fd_count();
    let (mut ch, mut peer) = channel_and_peer();
    ch.set_limit(4096);
    let long = vec![b'x'; 10_000];
    peer.write(b"{\"broken\":\n", &[]);
    peer.write(b"\n", &[]);
    peer.write(b"\"ok1\"\n", &[]);
    peer.write(b"\"", &[]);
    peer.write(&long, &[]);
    peer.write(b"\"\n\"ok2\"\n", &[]);
    peer.write(b"\"\xff\xfe\"\n\"ok3\"\r\n", &[]);
    // An over-long handle line with its descriptor: the fd is closed and
    // the waiting sender gets a NACK.
    let (x, y) = stream_pair();
    let mut big = handle_line("net.Socket", &format!("\"{}\"", "y".repeat(5000)));
    peer.write(&big[..10], &[&y]);
    drop(y);
    peer.write(&big.split_off(10), &[]);
    peer.write(b"{\"ok\":4}\n", &[]);

    assert!(matches!(ch.recv().unwrap_err(), Error::BadFrame(_)));
    assert!(matches!(
        ch.recv().unwrap_err(),
        Error::BadFrame(ipc_core::json::JsonError::Empty)
    ));
    assert_eq!(ch.recv().unwrap().as_str(), "\"ok1\"");
    assert_eq!(ch.recv().unwrap_err(), Error::FrameTooLong);
    assert_eq!(ch.recv().unwrap().as_str(), "\"ok2\"");
    assert!(matches!(
        ch.recv().unwrap_err(),
        Error::BadFrame(ipc_core::json::JsonError::InvalidUtf8 { .. })
    ));
    assert_eq!(ch.recv().unwrap().as_str(), "\"ok3\"");
    assert_eq!(ch.recv().unwrap_err(), Error::FrameTooLong);
    assert_eq!(ch.recv().unwrap().as_str(), "{\"ok\":4}");
    assert_eq!(peer.read_line().0, NACK);
    drop((ch, peer, x));
    assert_eq!(fd_count(), before);
}

#[test]
fn truncated_control_data_is_reported_and_nothing_leaks() {
    let _serial = serial();
    let before = fd_count();
    let (mut ch, mut peer) = channel_and_peer();
    // More descriptors than the receiver takes in one call: just over the
    // limit (the rounded-up control space still holds them), and far over
    // (the kernel cuts them: MSG_CTRUNC).
    for n in [ipc_core::sys::MAX_FDS_PER_CALL + 1, 40] {
        let pairs: Vec<_> = (0..n).map(|_| stream_pair()).collect();
        let fds: Vec<&dyn AsFd> = pairs.iter().map(|(_, t)| t as &dyn AsFd).collect();
        peer.write_many_fds(&handle_line("net.Socket", "1"), &fds);
        peer.write(b"\"after\"\n", &[]);
        assert_eq!(
            ch.recv().unwrap_err(),
            Error::FdsTruncated,
            "{n} descriptors"
        );
        assert_eq!(peer.read_line().0, NACK);
        assert_eq!(ch.recv().unwrap().as_str(), "\"after\"");
    }
    drop((ch, peer));
    assert_eq!(fd_count(), before);
}

#[test]
fn descriptors_without_a_handle_line_are_closed_not_misdelivered() {
    let _serial = serial();
    let before = fd_count();
    let (mut ch, mut peer) = channel_and_peer();
    let (x, stray) = stream_pair();
    peer.write(b"\"plain with fd\"\n", &[&stray]);
    drop((x, stray));
    let (mut ours, theirs) = stream_pair();
    peer.write(&handle_line("net.Socket", "\"real\""), &[&theirs]);
    drop(theirs);
    assert_eq!(ch.recv().unwrap().as_str(), "\"plain with fd\"");
    assert_eq!(ch.recv().unwrap_err(), Error::UnclaimedFds(1));
    let mut m = ch.recv().unwrap();
    let mut s = UnixStream::from(m.take_handle().unwrap().into_fd());
    s.write_all(b"!").unwrap();
    let mut b = [0u8];
    ours.read_exact(&mut b).unwrap();
    assert_eq!(peer.read_line().0, ACK);
    drop((ch, peer, s, ours));
    assert_eq!(fd_count(), before);
}

/// A stray descriptor is reported (and closed) as soon as the line it came
/// with has been delivered, not only once more bytes arrive: a receive
/// with nothing buffered goes to the socket at once, but not past it.
#[test]
fn a_stray_descriptor_is_reported_before_the_next_read() {
    let _serial = serial();
    let before = fd_count();
    let (mut ch, peer) = channel_and_peer();
    let (x, stray) = stream_pair();
    peer.write(b"\"plain with fd\"\n", &[&stray]);
    drop((x, stray));
    assert_eq!(ch.recv().unwrap().as_str(), "\"plain with fd\"");
    // The peer sends nothing more: without the report this would wait.
    ch.set_timeout(Some(std::time::Duration::from_secs(30)));
    assert_eq!(ch.recv().unwrap_err(), Error::UnclaimedFds(1));
    drop((ch, peer));
    assert_eq!(fd_count(), before);
}

#[test]
fn unknown_handle_type_is_acked_and_closed() {
    let _serial = serial();
    let before = fd_count();
    let (mut ch, mut peer) = channel_and_peer();
    let (_x, y) = stream_pair();
    peer.write(&handle_line("net.Whatever", "1"), &[&y]);
    drop(y);
    peer.write(b"2\n", &[]);
    assert_eq!(ch.recv().unwrap_err(), Error::UnknownHandleType);
    assert_eq!(peer.read_line().0, ACK);
    assert_eq!(ch.recv().unwrap().as_str(), "2");
    drop((ch, peer, _x));
    assert_eq!(fd_count(), before);
}

#[test]
fn stray_ack_is_ignored_with_a_diagnostic() {
    let _serial = serial();
    let (mut ch, peer) = channel_and_peer();
    peer.write(ACK, &[]);
    peer.write(NACK, &[]);
    peer.write(b"3\n", &[]);
    assert_eq!(ch.recv().unwrap_err(), Error::StrayAck);
    assert_eq!(ch.recv().unwrap_err(), Error::StrayAck);
    assert_eq!(ch.recv().unwrap().as_str(), "3");
}

#[test]
fn nacked_socket_is_retransmitted_nested_three_times_then_given_up() {
    let _serial = serial();
    let before = fd_count();
    let (mut ch, mut peer) = channel_and_peer();
    let (_x, y) = stream_pair();
    let ticket = ch
        .queue_handle(&"socket", Handle::new(HandleKind::Socket, y))
        .unwrap();
    let (first, fds) = peer.read_line();
    assert_eq!(fds.len(), 1);
    drop(fds);
    let inner = &first[..first.len() - 1];
    for _ in 0..3 {
        peer.write(NACK, &[]);
        assert_eq!(ch.try_recv().unwrap_err(), Error::WouldBlock);
        let (line, fds) = peer.read_line();
        let want = [
            &br#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":"#[..],
            inner,
            b"}\n",
        ]
        .concat();
        assert_eq!(
            String::from_utf8_lossy(&line),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(fds.len(), 1);
    }
    peer.write(NACK, &[]);
    // Given up: the handle comes back to its owner, with the reason.
    match ch.try_recv_incoming() {
        Ok(Incoming::Fate(Fate::Returned {
            ticket: t,
            handle,
            reason,
        })) => {
            assert_eq!(t, ticket);
            assert_eq!(reason, Error::HandleNotReceived(HandleKind::Socket));
            assert_eq!(handle.kind(), HandleKind::Socket);
        }
        other => panic!("expected the handle back, got {other:?}"),
    }
    assert_eq!(ch.handles_in_flight(), 0);
    drop((ch, peer, _x));
    assert_eq!(fd_count(), before);
}

/// The blocking form reports the same: an error with the handle.
#[test]
fn send_handle_returns_a_refused_handle_with_the_error() {
    let _serial = serial();
    let (mut ch, mut peer) = channel_and_peer();
    let t = std::thread::spawn(move || {
        for _ in 0..4 {
            let (_, fds) = peer.read_line();
            assert_eq!(fds.len(), 1);
            peer.write(NACK, &[]);
        }
        peer
    });
    let (_x, y) = stream_pair();
    let e = ch
        .send_handle(&"socket", Handle::new(HandleKind::Socket, y))
        .unwrap_err();
    assert_eq!(e.error, Error::HandleNotReceived(HandleKind::Socket));
    assert_eq!(e.handle.map(|h| h.kind()), Some(HandleKind::Socket));
    let _peer = t.join().unwrap();
}

#[test]
fn nacked_server_is_not_retransmitted() {
    let _serial = serial();
    let (mut ch, mut peer) = channel_and_peer();
    let (_x, y) = stream_pair();
    ch.queue_handle(&"server", Handle::new(HandleKind::Server, y))
        .unwrap();
    ch.try_send(&"held").unwrap();
    peer.read_line();
    peer.write(NACK, &[]);
    assert!(matches!(
        ch.try_recv_incoming(),
        Ok(Incoming::Fate(Fate::Returned {
            reason: Error::HandleNotReceived(HandleKind::Server),
            ..
        }))
    ));
    assert_eq!(peer.read_text(), "\"held\"");
}

/// A blocking sender with a second handle to send waits for the first ACK,
/// reading ahead; a message the peer sent meanwhile is kept for recv.
#[test]
fn blocking_sender_reads_ahead_for_acks_and_keeps_messages() {
    let _serial = serial();
    let (mut ch, peer) = channel_and_peer();
    let mut peer = peer;
    let t = std::thread::spawn(move || {
        let (l1, f1) = peer.read_line();
        assert_eq!(f1.len(), 1, "{}", String::from_utf8_lossy(&l1));
        peer.write(b"\"meanwhile\"\n", &[]);
        peer.write(ACK, &[]);
        let (_, f2) = peer.read_line();
        assert_eq!(f2.len(), 1);
        peer.write(ACK, &[]);
        peer
    });
    for _ in 0..2 {
        let (_x, y) = stream_pair();
        ch.send_handle(&"s", Handle::new(HandleKind::Socket, y))
            .unwrap();
    }
    let _peer = t.join().unwrap();
    assert_eq!(ch.recv().unwrap().as_str(), "\"meanwhile\"");
    // The read-ahead ACK lines are not delivered again.
    assert_eq!(ch.try_recv().unwrap_err(), Error::WouldBlock);
    assert_eq!(ch.handles_in_flight(), 0);
}

/// An ACK read ahead behind a message waits as a record of its own (the
/// lines stay in order) but delivers nothing: once the message is taken,
/// the channel is not ready, as `try_recv_incoming` agrees (a poller or
/// runtime that trusted `is_ready` got `WouldBlock` from its receive).
#[test]
fn an_ack_read_ahead_behind_a_message_makes_nothing_ready() {
    let _serial = serial();
    let (mut ch, peer) = channel_and_peer();
    let (_x, y) = stream_pair();
    let ticket = ch
        .queue_handle(&"s", Handle::new(HandleKind::Socket, y))
        .unwrap();
    let mut peer = peer;
    let (_, fds) = peer.read_line();
    assert_eq!(fds.len(), 1);
    peer.write(b"\"meanwhile\"\n", &[]);
    peer.write(ACK, &[]);
    // Both lines are read ahead (they are in the socket already): the
    // message, then the ACK behind it.
    while ch.handles_in_flight() > 0 {
        ch.try_read_ahead().unwrap();
    }
    let mut events = Vec::new();
    while ch.is_ready() {
        events.push(match ch.try_recv_incoming().unwrap() {
            ipc_core::Incoming::Fate(f) => format!("{:?}", f.ticket() == ticket),
            ipc_core::Incoming::Message(m, _) => m.as_str().to_owned(),
        });
    }
    assert_eq!(events, ["true", "\"meanwhile\""]);
    assert!(!ch.prepare(), "ready with nothing to deliver");
    assert_eq!(ch.try_recv_incoming().unwrap_err(), Error::WouldBlock);
}

#[test]
fn eof_and_reset_mean_disconnected_and_send_after_is_channel_closed() {
    let _serial = serial();
    let (mut ch, peer) = channel_and_peer();
    peer.write(b"\"last\"\n\"partial", &[]);
    drop(peer);
    assert_eq!(ch.recv().unwrap().as_str(), "\"last\"");
    assert_eq!(ch.recv().unwrap_err(), Error::Disconnected);
    assert!(!ch.is_connected());
    assert_eq!(ch.send(&1).unwrap_err(), Error::Disconnected);

    // Closing with unread data gives the peer ECONNRESET, not EOF.
    let (mut ch, peer) = channel_and_peer();
    ch.send(&"unread").unwrap();
    drop(peer);
    assert_eq!(ch.recv().unwrap_err(), Error::Disconnected);
}

#[test]
fn dead_peer_is_an_error_not_sigpipe() {
    let _serial = serial();
    default_sigpipe();
    let (mut ch, peer) = channel_and_peer();
    drop(peer);
    let err = ch.send(&"into the void").unwrap_err();
    assert_eq!(err, Error::Disconnected);
    assert!(err.is_fatal());
    let (_x, y) = stream_pair();
    let (mut a, b) = Small::pair().unwrap();
    drop(b);
    let e = a
        .send_handle(&1, Handle::new(HandleKind::Socket, y))
        .unwrap_err();
    assert_eq!(e.error, Error::Disconnected);
}

#[test]
fn disconnect_gives_the_peer_eof_and_a_second_call_errors() {
    let _serial = serial();
    let (mut a, mut b) = Small::pair().unwrap();
    a.send(&"bye").unwrap();
    a.disconnect().unwrap();
    assert_eq!(a.disconnect().unwrap_err(), Error::Disconnected);
    assert_eq!(b.recv().unwrap().as_str(), "\"bye\"");
    assert_eq!(b.recv().unwrap_err(), Error::Disconnected);
}

#[test]
fn too_large_message_is_refused_and_the_handle_comes_back() {
    let _serial = serial();
    let (mut a, _b) = Small::pair().unwrap();
    a.set_limit(4096);
    let big = "z".repeat(5000);
    assert_eq!(a.send(&big).unwrap_err(), Error::MessageTooLarge);
    let (_x, y) = stream_pair();
    let e = a
        .send_handle(&big, Handle::new(HandleKind::Socket, y))
        .unwrap_err();
    assert_eq!(e.error, Error::MessageTooLarge);
    assert!(e.handle.is_some(), "the handle must come back");
    a.send(&"fits").unwrap();
}

/// The limit is the largest message, also where the buffers have room
/// for more (their first 64 KiB): a longer one is refused on sending and
/// skipped on receiving, and what follows goes on.
#[test]
fn the_limit_holds_below_the_buffers_size() {
    let _serial = serial();
    let (a, b) = ipc_core::Channel::<65536, 65536>::pair().unwrap();
    let (mut a, mut b) = (Box::new(a), Box::new(b));
    a.set_limit(4096);
    b.set_limit(4096);
    let big = "z".repeat(5000);
    assert_eq!(a.send(&big).unwrap_err(), Error::MessageTooLarge);
    a.send(&"fits").unwrap();
    assert_eq!(b.recv().unwrap().as_str(), "\"fits\"");
    // From a peer that does not care: the over-long line is skipped.
    b.set_limit(ipc_core::DEFAULT_LIMIT);
    b.send(&big).unwrap();
    b.send(&"after").unwrap();
    assert_eq!(a.recv().unwrap_err(), Error::FrameTooLong);
    assert_eq!(a.recv().unwrap().as_str(), "\"after\"");
}

#[test]
fn non_socket_is_refused() {
    let _serial = serial();
    let file: OwnedFd = std::fs::File::open("/proc/self/status").unwrap().into();
    assert!(matches!(Small::new(file).unwrap_err(), Error::Io(_)));
}

#[test]
fn handle_sent_to_a_dead_peer_comes_back() {
    let _serial = serial();
    default_sigpipe();
    let before = fd_count();
    let (mut a, b) = Small::pair().unwrap();
    drop(b);
    let (x, y) = stream_pair();
    let e = a
        .send_handle(&"socket", Handle::new(HandleKind::Socket, y))
        .unwrap_err();
    assert_eq!(e.error, Error::Disconnected);
    assert!(
        e.handle.is_some(),
        "the unsent handle must come back to its owner"
    );
    drop((a, x, e));
    assert_eq!(fd_count(), before);
}

#[test]
fn unacknowledged_handle_comes_back_when_the_peer_dies() {
    let _serial = serial();
    default_sigpipe();
    let (mut ch, mut peer) = channel_and_peer();
    let (mut ours, theirs) = stream_pair();
    let ticket = ch
        .queue_handle(&"socket", Handle::new(HandleKind::Socket, theirs))
        .unwrap();
    let (_, fds) = peer.read_line();
    drop((fds, peer)); // received, never acknowledged
    let back = match ch.recv_incoming() {
        Ok(Incoming::Fate(Fate::Returned {
            ticket: t,
            handle,
            reason: Error::Disconnected,
        })) if t == ticket => handle,
        other => panic!("expected the handle back, got {other:?}"),
    };
    assert_eq!(ch.recv().unwrap_err(), Error::Disconnected);
    assert!(ch.next_fate().is_none());
    // Still the same live connection.
    UnixStream::from(back.into_fd()).write_all(b"ok").unwrap();
    let mut buf = [0u8; 2];
    ours.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ok");
}

/// A sender that never calls recv: the ACKs it reads ahead must not pile
/// up in its receive buffer (a 4 KiB buffer holds about 150 of them).
#[test]
fn acks_read_ahead_do_not_fill_a_sender_that_never_receives() {
    let _serial = serial();
    let (mut a, mut b) = Small::pair().unwrap();
    let receiver = std::thread::spawn(move || {
        for i in 0..2_000u32 {
            let mut m = b.recv().unwrap();
            assert!(m.take_handle().is_some());
            assert_eq!(m.parse::<u32>().unwrap(), i);
        }
    });
    for i in 0..2_000u32 {
        let (_x, y) = stream_pair();
        a.send_handle(&i, Handle::new(HandleKind::Socket, y))
            .unwrap();
    }
    receiver.join().unwrap();
    assert_eq!(a.handles_in_flight(), 0);
}

/// Several threads sending on one channel: `send` takes `&mut self`, so
/// sharing needs a lock and whole frames go out one at a time. Every
/// message arrives intact, each thread's in order.
#[test]
fn threads_sharing_a_channel_never_interleave_frames() {
    let _serial = serial();
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Seq<'a> {
        thread: u32,
        n: u32,
        pad: &'a str,
    }
    let (a, mut b) = Small::pair().unwrap();
    let a = std::sync::Arc::new(std::sync::Mutex::new(a));
    let pad = "p".repeat(700); // frames much larger than one write's worth
    let senders: Vec<_> = (0..4u32)
        .map(|thread| {
            let (a, pad) = (a.clone(), pad.clone());
            std::thread::spawn(move || {
                for n in 0..1_000 {
                    a.lock()
                        .unwrap()
                        .send(&Seq {
                            thread,
                            n,
                            pad: &pad,
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u32; 4];
    for _ in 0..4_000 {
        let mut m = b.recv().unwrap();
        let s: Seq = m.parse().expect("an intact frame");
        assert_eq!(
            s.n, next[s.thread as usize],
            "thread {} out of order",
            s.thread
        );
        assert_eq!(s.pad.len(), 700);
        next[s.thread as usize] += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
}

/// The non-blocking pieces an event loop or async runtime waits with:
/// `try_queue` never waits (nor grows the buffer), `try_read_ahead` reads ACKs
/// and keeps messages, `take_fate` takes one fate and leaves the others,
/// `is_written` says when a flush is done.
#[test]
fn non_blocking_pieces_for_event_loops() {
    let _serial = serial();
    let (mut ch, mut peer) = channel_and_peer();
    // Far more than the socket and the 4 KiB buffer take: queued until
    // both are full, then WouldBlock; the rest once the peer reads.
    let payload = "x".repeat(1000);
    let mut queued = 0;
    while ch.try_queue(&payload).is_ok() {
        queued += 1;
    }
    assert_eq!(ch.try_queue(&payload), Err(Error::WouldBlock));
    assert!(ch.wants_write() && !ch.is_written());
    assert_eq!(ch.try_read_ahead(), Err(Error::WouldBlock));
    let mut read = 0;
    while read < 2000 {
        assert_eq!(peer.read_text().len(), 1002);
        read += 1;
        while queued < 2000 && ch.try_queue(&payload).is_ok() {
            queued += 1;
        }
        let _ = ch.try_flush();
    }
    assert!(ch.is_written());

    // Two hand-offs; the peer answers the second's wait with a message and
    // an ACK for each.
    let tickets: Vec<_> = (0..2)
        .map(|_| {
            let (_x, y) = stream_pair();
            ch.queue_handle(&"s", Handle::new(HandleKind::Socket, y))
                .unwrap()
        })
        .collect();
    let _ = ch.try_flush();
    assert_eq!(peer.read_line().1.len(), 1); // the first handle line
    peer.write(b"\"meanwhile\"\n", &[]);
    peer.write(ACK, &[]);
    while ch.take_fate(tickets[0]).is_none() {
        match ch.try_read_ahead() {
            Ok(()) | Err(Error::WouldBlock) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let _ = ch.try_flush();
    assert_eq!(peer.read_line().1.len(), 1); // the second, once the first was ACKed
    peer.write(ACK, &[]);
    while ch.handles_in_flight() > 0 {
        let _ = ch.try_read_ahead();
    }
    assert!(ch.take_fate(tickets[0]).is_none(), "taken once");
    // The fate nobody took, and the message read ahead.
    assert!(matches!(
        ch.try_recv_incoming().unwrap(),
        Incoming::Fate(Fate::Acknowledged(t)) if t == tickets[1]
    ));
    assert!(matches!(
        ch.try_recv_incoming().unwrap(),
        Incoming::Message(m, _) if m.as_str() == "\"meanwhile\""
    ));
    assert_eq!(ch.try_recv_incoming().unwrap_err(), Error::WouldBlock);

    drop(peer);
    while ch.try_read_ahead() != Err(Error::Disconnected) {}
    assert!(!ch.is_connected());
}
