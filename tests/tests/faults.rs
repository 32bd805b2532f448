//! Resource and peer faults: a receiver out of descriptors, a child killed
//! in the middle of handle transfers, and 100,000 transfers with a constant
//! descriptor count.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;

use integration_tests::{default_sigpipe, fd_count, next_report, serial};
use ipc_core::{Channel, Handle, HandleKind};
use ipc_fork::{Command, Event};
use ipc_net::Server;

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");

/// RLIMIT_NOFILE exhausted in the receiver: the kernel drops the descriptor
/// (MSG_CTRUNC), the receiver reports it and NACKs, the sender sends the
/// socket again (nested, as Node does), and once descriptors are free it
/// arrives and works.
#[test]
fn receiver_out_of_descriptors_recovers_through_retransmission() {
    let _serial = serial();
    let mut child = Command::new(CHILD).arg("rlimit").spawn().unwrap();
    assert_eq!(next_report(&mut child).what, "full");
    let server = Server::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(server.local_addr().unwrap().as_inet().unwrap()).unwrap();
    let conn = server.accept().unwrap();
    // Returns once the retransmission was acknowledged.
    child.send_handle(&"socket", conn.into_handle()).unwrap();
    let err = next_report(&mut child);
    assert_eq!(
        (err.what.as_str(), err.detail.as_str()),
        ("error", "FdsTruncated")
    );
    let served = next_report(&mut child);
    assert_eq!(
        (served.what.as_str(), served.detail.as_str()),
        ("served", "\"socket\" with a socket")
    );
    let mut line = String::new();
    BufReader::new(client).read_line(&mut line).unwrap();
    assert_eq!(line, "socket answered by child\n");
    child.disconnect().unwrap();
}

/// A child killed while handles are on their way: the parent gets errors,
/// then Disconnect and the exit status, never a hang or SIGPIPE, and every
/// descriptor it held comes back or is closed.
#[test]
fn child_killed_mid_handles() {
    let _serial = serial();
    default_sigpipe();
    let before = fd_count();
    {
        let mut child = Command::new(CHILD).arg("echo").spawn().unwrap();
        next_report(&mut child);
        let server = Server::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap().as_inet().unwrap();
        let mut clients = Vec::new();
        let mut first_failure = None;
        for i in 0..200 {
            if i == 50 {
                child.kill().unwrap();
            }
            clients.push(TcpStream::connect(addr).unwrap());
            let conn = server.accept().unwrap();
            match child.send_handle(&"socket", conn.into_handle()) {
                // SIGKILL lands asynchronously: the child may still take the
                // handle sent right after the kill, but never one after a
                // send has failed.
                Ok(()) => assert!(
                    first_failure.is_none(),
                    "send {i} succeeded after send {first_failure:?} failed"
                ),
                Err(e) => {
                    assert!(e.error.is_fatal(), "{e}");
                    first_failure.get_or_insert(i);
                    drop(e.handle); // a handle that never arrived: ours to close
                }
            }
        }
        let first = first_failure.expect("sends after the kill must fail");
        assert!((50..=52).contains(&first), "first failure at send {first}");
        loop {
            match child.recv() {
                Ok(Event::Exit(status)) => {
                    assert_eq!(status.signal(), Some(9));
                    break;
                }
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert_eq!(fd_count(), before);
}

#[test]
fn hundred_thousand_handle_transfers_keep_the_fd_count() {
    let _serial = serial();
    let (a, b) = Channel::<4096, 4096>::pair().unwrap();
    let (mut a, mut b) = (Box::new(a), Box::new(b));
    let (keep, give) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut spare = Some(Handle::new(HandleKind::Socket, give));
    let baseline = fd_count();
    for i in 0..100_000u32 {
        a.queue_handle(&i, spare.take().unwrap()).unwrap();
        let mut m = b.recv().unwrap();
        let h = m.take_handle().unwrap();
        assert_eq!(m.parse::<u32>().unwrap(), i);
        // Reads the ACK, which closes the sender's copy.
        assert!(a.try_recv().is_err());
        assert!(matches!(
            a.next_fate(),
            Some(ipc_core::Fate::Acknowledged(_))
        ));
        spare = Some(h);
        if i % 10_000 == 0 {
            assert_eq!(fd_count(), baseline, "after {i} transfers");
        }
    }
    assert_eq!(fd_count(), baseline);
    drop(keep);
}
