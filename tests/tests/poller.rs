//! `ipc_fork::Poller`: many children and the user's own descriptors in one
//! thread, events tagged with their child, exits included.

use std::collections::HashMap;
use std::time::Duration;

use integration_tests::{fd_count, serial, signal, Report};
use ipc_fork::{ChildId, Command, Event, Interest, Poller, Ready, Token};
use rustix::process::Signal;

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");

fn assert_send<T: Send>() {}

/// Runs the poller until `n` user messages came (as text, with their
/// child), or, with `n == 0`, until every child is gone; returns the
/// messages and the exit statuses seen.
#[allow(clippy::type_complexity)]
fn drive(
    poller: &mut Poller,
    n: usize,
) -> (
    Vec<(ChildId, String)>,
    Vec<(ChildId, std::process::ExitStatus)>,
) {
    let (mut messages, mut exits) = (Vec::new(), Vec::new());
    while if n == 0 {
        !poller.is_empty()
    } else {
        messages.len() < n
    } {
        match poller.next(Some(Duration::from_secs(120))).unwrap() {
            Ready::Child(id, Ok(Event::Message(msg, _))) => {
                messages.push((id, msg.as_str().to_owned()))
            }
            Ready::Child(id, Ok(Event::Exit(status))) => {
                exits.push((id, status));
                poller.remove(id).unwrap();
            }
            Ready::Child(_, Ok(_)) => {}
            Ready::Child(id, Err(e)) => panic!("{id}: {e}"),
            Ready::Fd(t) => panic!("unexpected {t:?}"),
            Ready::Timeout => panic!("nothing happened for 120 s"),
        }
    }
    (messages, exits)
}

#[test]
fn events_come_tagged_with_their_child_and_a_stopped_one_holds_up_nobody() {
    let _serial = serial();
    assert_send::<Poller>();
    let before = fd_count();
    let mut poller = Poller::new().unwrap();
    let mut pids = HashMap::new();
    for _ in 0..6 {
        let child = Command::new(CHILD).arg("echo").spawn().unwrap();
        let pid = child.id();
        pids.insert(poller.add(child).unwrap(), pid);
    }
    // Each child reports that it started.
    for (_, text) in drive(&mut poller, 6).0 {
        let mut bytes = text.into_bytes();
        let r: Report = ipc_core::json::from_slice_mut(&mut bytes).unwrap();
        assert_eq!(r.what, "started");
    }
    let ids: Vec<ChildId> = pids.keys().copied().collect();
    let stopped = ids[0];
    signal(pids[&stopped], Signal::STOP);
    for id in &ids {
        // Non-blocking: the stopped child's message just waits in its socket.
        let pid = pids[id];
        poller.child_mut(*id).unwrap().try_send(&pid).unwrap();
    }
    let echoed = drive(&mut poller, 5).0;
    for (id, text) in &echoed {
        assert_eq!(
            *text,
            pids[id].to_string(),
            "an echo tagged with the wrong child"
        );
        assert_ne!(*id, stopped);
    }
    signal(pids[&stopped], Signal::CONT);
    let last = drive(&mut poller, 1).0;
    assert_eq!(last, [(stopped, pids[&stopped].to_string())]);
    // Disconnect all: each one's exit comes, then nothing.
    for id in &ids {
        poller.child_mut(*id).unwrap().disconnect().unwrap();
    }
    let exits = drive(&mut poller, 0).1;
    assert_eq!(exits.len(), 6);
    assert!(exits.iter().all(|(_, status)| status.success()));
    drop(poller);
    assert_eq!(fd_count(), before);
}

/// Watched descriptors and timeouts come out of the same loop.
#[test]
fn watched_descriptors_and_timeouts() {
    let _serial = serial();
    let mut poller = Poller::new().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    poller
        .watch(&listener, Token(7), Interest::Readable)
        .unwrap();
    assert!(matches!(
        poller.next(Some(Duration::from_millis(10))).unwrap(),
        Ready::Timeout
    ));
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    assert!(matches!(
        poller.next(Some(Duration::from_secs(120))).unwrap(),
        Ready::Fd(Token(7))
    ));
    // Level-triggered: reported again until accepted.
    assert!(matches!(
        poller.next(Some(Duration::from_secs(120))).unwrap(),
        Ready::Fd(Token(7))
    ));
    listener.accept().unwrap();
    poller.unwatch(&listener).unwrap();
    assert!(matches!(
        poller.next(Some(Duration::from_millis(10))).unwrap(),
        Ready::Timeout
    ));
    assert!(poller
        .watch(&listener, Token(1 << 62), Interest::Readable)
        .is_err());
}

/// A child that dies is reported: its channel closes, then its exit.
#[test]
fn a_child_that_exits_is_reported_with_its_status() {
    let _serial = serial();
    let mut poller = Poller::new().unwrap();
    let id = poller
        .add(Command::new(CHILD).args(["exit", "3"]).spawn().unwrap())
        .unwrap();
    let mut seen = Vec::new();
    loop {
        match poller.next(Some(Duration::from_secs(120))).unwrap() {
            Ready::Child(got, Ok(Event::Disconnect)) => {
                assert_eq!(got, id);
                seen.push("disconnect");
            }
            Ready::Child(got, Ok(Event::Exit(status))) => {
                assert_eq!((got, status.code()), (id, Some(3)));
                seen.push("exit");
                break;
            }
            Ready::Child(_, other) => panic!("{other:?}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ["disconnect", "exit"]);
    assert!(poller.child(id).unwrap().is_finished());
    assert!(poller.remove(id).is_some());
    assert!(poller.remove(id).is_none());
}

/// The next event, within a generous guard against a poller that never
/// returns (a busy loop inside `next`).
fn next_within_guard(poller: Poller, timeout: Duration) -> (Poller, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut poller = poller;
        let got = match poller.next(Some(timeout)).unwrap() {
            Ready::Child(_, r) => format!("{:?}", r.map(|e| format!("{e:?}"))),
            other => format!("{other:?}"),
        };
        tx.send((poller, got)).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("next() with a timeout did not return")
}

/// A closed channel is readable forever: once its end has been reported it
/// must not wake the poller again, or `next` never times out (and spins)
/// while the child lives on, or stays in the poller after its exit.
#[test]
fn a_closed_channel_neither_spins_nor_hides_timeouts() {
    let _serial = serial();
    let mut poller = Poller::new().unwrap();
    // Closes its channel, then lives until its stdin closes.
    let child = Command::new("sh")
        .args(["-c", "exec 3>&-; exec cat >/dev/null"])
        .stdin(ipc_fork::Stdio::Piped)
        .spawn()
        .unwrap();
    let id = poller.add(child).unwrap();
    match poller.next(Some(Duration::from_secs(120))).unwrap() {
        Ready::Child(got, Ok(Event::Disconnect)) => assert_eq!(got, id),
        other => panic!("{other:?}"),
    }
    let (mut poller, got) = next_within_guard(poller, Duration::from_millis(100));
    assert_eq!(
        got, "Timeout",
        "while the child runs with its channel closed"
    );
    drop(poller.child_mut(id).unwrap().stdin());
    match poller.next(Some(Duration::from_secs(120))).unwrap() {
        Ready::Child(got, Ok(Event::Exit(status))) => {
            assert_eq!((got, status.success()), (id, true))
        }
        other => panic!("{other:?}"),
    }
    // Finished but not removed: nothing more to report.
    let (poller, got) = next_within_guard(poller, Duration::from_millis(100));
    assert_eq!(got, "Timeout", "after the child finished");
    assert!(poller.child(id).unwrap().is_finished());
}
