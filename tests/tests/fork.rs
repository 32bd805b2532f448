//! ipc-fork: real child processes, exit statuses, disconnects from either
//! side, crashes, and a process started without a channel.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;

use integration_tests::next_report;
use ipc_fork::{Command, Event};

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");

fn spawn(role: &str) -> ipc_fork::Child {
    Command::new(CHILD)
        .arg(role)
        .spawn()
        .expect("spawn test-child")
}

fn expect_disconnect_then_exit(child: &mut ipc_fork::Child) -> std::process::ExitStatus {
    loop {
        match child.recv().expect("event") {
            Event::Disconnect => break,
            Event::Message(m, _) => eprintln!("(late message {})", m.as_str()),
            other => panic!("expected Disconnect, got {other:?}"),
        }
    }
    match child.recv().expect("event") {
        Event::Exit(status) => status,
        other => panic!("expected Exit, got {other:?}"),
    }
}

#[test]
fn child_finds_its_channel_and_echoes() {
    let mut child = spawn("echo");
    let start = next_report(&mut child);
    // Env unset by parent(), channel fd marked close-on-exec, and the
    // channel the only socket.
    assert_eq!(start.detail, "env_left=false cloexec=true sockets=3");
    #[derive(serde::Serialize)]
    struct Nested<'a> {
        text: &'a str,
        list: (u8, &'a str),
    }
    child
        .send(&Nested {
            text: "héllo \u{2028} \"quoted\" 😀",
            list: (1, "ü"),
        })
        .unwrap();
    match child.recv().unwrap() {
        Event::Message(m, None) => assert_eq!(
            m.as_str(),
            "{\"text\":\"héllo \u{2028} \\\"quoted\\\" 😀\",\"list\":[1,\"ü\"]}"
        ),
        other => panic!("{other:?}"),
    }
    child.disconnect().unwrap();
    assert!(expect_disconnect_then_exit(&mut child).success());
    assert!(matches!(child.recv(), Err(ipc_core::Error::Disconnected)));
}

#[test]
fn exit_status_is_reported_after_disconnect() {
    let mut child = spawn("exit");
    child.send(&"ignored").ok();
    let status = expect_disconnect_then_exit(&mut child);
    assert_eq!(status.code(), Some(0));
    let mut child = Command::new(CHILD).args(["exit", "7"]).spawn().unwrap();
    assert_eq!(expect_disconnect_then_exit(&mut child).code(), Some(7));
}

#[test]
fn kill_gives_disconnect_and_a_signal_status() {
    let mut child = spawn("echo");
    next_report(&mut child);
    child.kill().unwrap();
    let status = expect_disconnect_then_exit(&mut child);
    assert_eq!(status.signal(), Some(9));
}

#[test]
fn child_side_disconnect() {
    let mut child = spawn("disconnect");
    match child.recv().unwrap() {
        Event::Message(m, None) => assert_eq!(m.as_str(), "\"bye\""),
        other => panic!("{other:?}"),
    }
    assert!(expect_disconnect_then_exit(&mut child).success());
}

#[test]
fn child_crashing_mid_message_is_a_disconnect_not_a_hang() {
    let mut child = spawn("crash-mid-message");
    let status = expect_disconnect_then_exit(&mut child);
    assert_eq!(status.signal(), Some(libc::SIGABRT));
}

#[test]
fn no_channel_is_a_clear_answer() {
    let out = std::process::Command::new(CHILD)
        .arg("no-channel")
        .env_remove("NODE_CHANNEL_FD")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "NoChannel");
}

#[test]
fn advanced_serialization_is_refused() {
    let out = std::process::Command::new(CHILD)
        .arg("no-channel")
        .env("NODE_CHANNEL_FD", "0")
        .env("NODE_CHANNEL_SERIALIZATION_MODE", "advanced")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "AdvancedSerialization"
    );
}

/// `NODE_CHANNEL_FD` and the mode are read as Node reads them, and a
/// descriptor that is not a channel is left exactly as it was: open, and
/// still inherited by this process's own children.
#[test]
fn channel_variables_are_read_as_node_reads_them() {
    use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
    let check = |fd: &str, mode: Option<&str>, stdin: std::process::Stdio| {
        let mut cmd = std::process::Command::new(CHILD);
        cmd.arg("channel-check")
            .env("NODE_CHANNEL_FD", fd)
            .env_remove("NODE_CHANNEL_SERIALIZATION_MODE")
            .stdin(stdin);
        if let Some(mode) = mode {
            cmd.env("NODE_CHANNEL_SERIALIZATION_MODE", mode);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let null = std::process::Stdio::null;
    // Empty is no channel at all; Node's parseInt reads the leading number.
    assert_eq!(check("", None, null()), "NoChannel fd0=inherit fd1=inherit");
    assert_eq!(
        check("abc", None, null()),
        "BadFd(\"abc\") fd0=inherit fd1=inherit"
    );
    // Not sockets, or not connected stream sockets: refused, left alone.
    assert_eq!(
        check("1", None, null()),
        "NotAChannel(1) fd0=inherit fd1=inherit"
    );
    let (dgram, _peer) = UnixDatagram::pair().unwrap();
    assert_eq!(
        check("0", None, OwnedFd::from(dgram).into()),
        "NotAChannel(0) fd0=inherit fd1=inherit"
    );
    let dir = std::env::temp_dir().join(format!("ipc-listen-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = UnixListener::bind(&dir).unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(
        check("0", None, OwnedFd::from(listener).into()),
        "NotAChannel(0) fd0=inherit fd1=inherit"
    );
    // A real channel, named loosely and with an empty mode, as Node takes it.
    let (theirs, _ours) = UnixStream::pair().unwrap();
    assert_eq!(
        check(" 0abc", Some(""), OwnedFd::from(theirs).into()),
        "has a channel fd0=cloexec fd1=inherit"
    );
}

/// Children started at the same time from several threads inherit their
/// own channel and no other socket: no other channel's end leaks in.
#[test]
fn concurrent_spawns_leak_no_descriptors() {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let mut child = spawn("echo");
                let start = next_report(&mut child);
                child.disconnect().unwrap();
                expect_disconnect_then_exit(&mut child);
                start.detail
            })
        })
        .collect();
    for t in threads {
        let detail = t.join().unwrap();
        assert!(detail.ends_with(" sockets=3"), "child had {detail}");
    }
}

#[test]
fn silent_child_output_comes_back_through_pipes() {
    use std::io::Read;
    let mut child = Command::new(CHILD)
        .args(["exit", "3"])
        .silent(true)
        .spawn()
        .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout()
        .expect("piped stdout")
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr()
        .expect("piped stderr")
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!((out.as_str(), err.as_str()), ("exiting 3\n", "to stderr\n"));
    assert_eq!(expect_disconnect_then_exit(&mut child).code(), Some(3));
    // Not silent: inherited, nothing to take.
    let mut child = spawn("exit");
    assert!(child.stdout().is_none());
    expect_disconnect_then_exit(&mut child);
}

/// With a timeout, a blocking `recv` gives up at it while it waits for the
/// exit of a child that closed its channel and lives on.
#[test]
fn recv_gives_up_at_its_timeout_while_waiting_for_an_exit() {
    let mut child = Command::new("sh")
        .args(["-c", "exec 3>&-; exec cat >/dev/null"])
        .stdin(ipc_fork::Stdio::Piped)
        .spawn()
        .unwrap();
    child.set_timeout(Some(std::time::Duration::from_millis(200)));
    assert!(matches!(child.recv(), Ok(Event::Disconnect)));
    assert_eq!(child.recv().unwrap_err(), ipc_core::Error::TimedOut);
    drop(child.stdin());
    child.set_timeout(Some(std::time::Duration::from_secs(120)));
    match child.recv() {
        Ok(Event::Exit(status)) => assert!(status.success()),
        other => panic!("{other:?}"),
    }
}

/// With a timeout, a blocking `recv` watches the process too: a child that
/// exits while a grandchild keeps the channel open is reported at its
/// exit, as Node reports 'exit', not once the grandchild lets go.
#[test]
fn recv_with_a_timeout_reports_an_exit_while_a_grandchild_holds_the_channel() {
    // The grandchild inherits the channel and reads the piped stdin (kept
    // at fd 4: a background job's own stdin is /dev/null) until it closes.
    let mut child = Command::new("sh")
        .args(["-c", "exec 4<&0; cat <&4 >/dev/null & exit 5"])
        .stdin(ipc_fork::Stdio::Piped)
        .spawn()
        .unwrap();
    child.set_timeout(Some(std::time::Duration::from_secs(120)));
    match child.recv() {
        Ok(Event::Exit(status)) => assert_eq!(status.code(), Some(5)),
        other => panic!("expected the exit first, got {other:?}"),
    }
    drop(child.stdin());
    assert!(matches!(child.recv(), Ok(Event::Disconnect)));
    assert_eq!(child.recv().unwrap_err(), ipc_core::Error::Disconnected);
}

/// `Command::current_exe` runs this very executable even once its file is
/// gone (it named `PATH (deleted)`, which no spawn finds).
#[test]
fn current_exe_runs_after_its_file_is_removed() {
    let copy = std::env::temp_dir().join(format!("test-child-copy-{}", std::process::id()));
    std::fs::copy(CHILD, &copy).unwrap();
    let mut child = Command::new(&copy).arg("respawn-deleted").spawn().unwrap();
    let report = next_report(&mut child);
    assert_eq!(
        (report.what.as_str(), report.detail.as_str()),
        ("respawned", "Ok(Some(7))")
    );
    assert!(!copy.exists());
    assert!(expect_disconnect_then_exit(&mut child).success());
}
