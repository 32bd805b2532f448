//! `Channel::queue`: messages wait for a flush point and then leave
//! together; and the channel's blocking socket never makes a `try_` call
//! wait.

use std::time::Duration;

use integration_tests::{fd_count, serial, RawPeer};
use ipc_core::{Channel, Error};

type Small = Channel<1024, 1024>;

fn channel_and_peer() -> (Box<Small>, RawPeer) {
    integration_tests::channel_and_peer()
}

/// Reads `n` lines and checks they are `0..n` in order.
fn expect_numbers(peer: &mut RawPeer, n: u32) {
    for i in 0..n {
        assert_eq!(peer.read_text(), i.to_string());
    }
}

#[test]
fn queued_messages_wait_for_flush_then_arrive_in_order() {
    let _serial = serial();
    let (mut ch, mut peer) = channel_and_peer();
    for i in 0..20u32 {
        ch.queue(&i).unwrap();
    }
    assert!(!peer.has_data(), "queue() wrote before a flush point");
    assert!(ch.wants_write());
    ch.flush().unwrap();
    assert!(!ch.wants_write());
    expect_numbers(&mut peer, 20);
    assert!(!peer.has_data());
}

#[test]
fn a_full_buffer_writes_what_is_queued() {
    let _serial = serial();
    let (mut ch, mut peer) = channel_and_peer();
    // 300 numbers take more than the 1 KiB send buffer: queue() has to
    // write on its own, and nothing is lost or reordered.
    for i in 0..300u32 {
        ch.queue(&i).unwrap();
    }
    assert!(peer.has_data(), "the full buffer was not written");
    ch.flush().unwrap();
    expect_numbers(&mut peer, 300);
}

#[test]
fn receiving_is_a_flush_point() {
    let _serial = serial();
    let (mut a, mut b) = Small::pair().unwrap();
    a.queue(&"ping").unwrap();
    // Nothing to receive yet, but the queued message goes out first.
    assert_eq!(a.try_recv().err(), Some(Error::WouldBlock));
    assert_eq!(b.recv().unwrap().as_str(), "\"ping\"");
    b.queue(&"pong").unwrap();
    b.send(&"after").unwrap();
    assert_eq!(a.recv().unwrap().as_str(), "\"pong\"");
    assert_eq!(a.recv().unwrap().as_str(), "\"after\"");
}

#[test]
fn dropping_the_channel_writes_what_is_queued() {
    let _serial = serial();
    let before = fd_count();
    let (ch, mut peer) = channel_and_peer();
    let mut ch = ch;
    ch.queue(&"last words").unwrap();
    drop(ch);
    assert_eq!(peer.read_text(), "\"last words\"");
    drop(peer);
    assert_eq!(fd_count(), before);
}

/// The socket is left in blocking mode so that `recv` waits in one
/// `recvmsg`; every non-blocking call must still return at once.
#[test]
fn try_calls_never_wait_on_the_blocking_socket() {
    let _serial = serial();
    let (mut a, _b) = Small::pair().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let empty = a.try_recv().err();
        // Fill the socket until the kernel refuses more.
        let mut full = None;
        for i in 0..1_000_000u32 {
            match a.try_send(&i) {
                Ok(()) if !a.wants_write() => {}
                Ok(()) => {
                    full = Some(a.try_flush().err());
                    break;
                }
                Err(e) => {
                    full = Some(Some(e));
                    break;
                }
            }
        }
        let _ = tx.send((empty, full));
    });
    // A guard against a hang, not a timing assertion.
    let (empty, full) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a try_ call blocked");
    assert_eq!(empty, Some(Error::WouldBlock));
    assert_eq!(full, Some(Some(Error::WouldBlock)));
}
