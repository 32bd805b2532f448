//! ipc-fork's `Command` beyond the channel: per-stream stdio, descriptors
//! at chosen numbers, the channel moved, process groups, another user,
//! kill-on-drop and exec in place. Real processes throughout; one test at a
//! time, as some count this process's descriptors.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;

use integration_tests::{eventually, fd_count, next_report, serial, stat_field};
use ipc_fork::{Command, Event, Signal, Stdio};
use ipc_net::Server;

const CHILD: &str = env!("CARGO_BIN_EXE_test-child");

fn pipe() -> (std::fs::File, std::fs::File) {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    (r.into(), w.into())
}

fn read_all(mut from: impl Read) -> String {
    let mut s = String::new();
    from.read_to_string(&mut s).unwrap();
    s
}

/// Waits for `child`'s exit, past its disconnect.
fn exit_of(child: &mut ipc_fork::Child) -> std::process::ExitStatus {
    loop {
        match child.recv().unwrap() {
            Event::Exit(status) => return status,
            Event::Disconnect | Event::Message(..) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn each_stream_is_set_on_its_own_and_the_command_spawns_again() {
    let _serial = serial();
    let (input, mut feed) = pipe();
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "read line; echo out:$line; echo err:$line >&2"])
        .stdin(input)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Null);
    feed.write_all(b"one\ntwo\n").unwrap();
    for expected in ["out:one\n", "out:two\n"] {
        let mut child = cmd.spawn().unwrap();
        assert!(child.stderr().is_none(), "stderr went to /dev/null");
        assert!(child.stdin().is_none(), "stdin is the pipe we gave");
        assert_eq!(read_all(child.stdout().unwrap()), expected);
        assert!(exit_of(&mut child).success());
    }
}

#[test]
fn descriptors_land_at_the_numbers_given() {
    let _serial = serial();
    let before = fd_count();
    let (r5, w5) = pipe();
    let (r6, w6) = pipe();
    let mut child = Command::new("/bin/sh")
        .args(["-c", "echo five >&5; echo six >&6"])
        .fd(5, w5)
        .fd(6, w6)
        .spawn()
        .unwrap();
    assert_eq!(read_all(r5), "five\n");
    assert_eq!(read_all(r6), "six\n");
    assert!(exit_of(&mut child).success());
    drop(child);
    assert_eq!(
        fd_count(),
        before,
        "the Command's copies are closed with it"
    );
}

/// Placements that cross: each source sits at the number the other one
/// goes to. Both land where asked (the sources are moved out of the way
/// first), each with its own pipe.
#[test]
fn crossing_placements_land_where_asked() {
    use std::os::fd::AsRawFd;
    let _serial = serial();
    let (ra, wa) = pipe();
    let (rb, wb) = pipe();
    // Two neighbouring numbers well above what the process has open.
    let a = rustix::io::fcntl_dupfd_cloexec(&wa, 100).unwrap();
    let b = rustix::io::fcntl_dupfd_cloexec(&wb, a.as_raw_fd() + 1).unwrap();
    drop((wa, wb));
    let (na, nb) = (a.as_raw_fd(), b.as_raw_fd());
    // `a` goes to b's number and `b` to a's (bash: dash takes no fd
    // above 9 in a redirection).
    let script = format!("echo for-a >&{nb}; echo for-b >&{na}");
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .fd(nb, a)
        .fd(na, b)
        .spawn()
        .unwrap();
    assert_eq!(read_all(ra), "for-a\n");
    assert_eq!(read_all(rb), "for-b\n");
    assert!(exit_of(&mut child).success());
}

/// A program that cannot be started is an error from `spawn`, whatever
/// numbers the descriptors go to: std reports a failed exec through a pipe
/// made at the lowest free numbers, and a placement onto its write end hid
/// the failure (a "started" child that aborted, or wrote std's error into
/// the channel). Every number up to 48 is tried, as a placement and as the
/// channel's, so one of them is where that pipe goes.
#[test]
fn a_program_that_cannot_start_is_an_error_whatever_the_placements() {
    let _serial = serial();
    let before = fd_count();
    for n in 3..48 {
        let (_r, w) = pipe();
        let err = Command::new("/nonexistent/program")
            .channel_fd(n + 1)
            .fd(n, w)
            .spawn()
            .map(|c| c.id())
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "fd {n}: {err}");
        let err = Command::new("/nonexistent/program")
            .channel_fd(n)
            .spawn()
            .map(|c| c.id())
            .unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::NotFound,
            "channel {n}: {err}"
        );
    }
    assert_eq!(fd_count(), before);
}

#[test]
fn placements_on_standard_streams_or_twice_are_refused() {
    let _serial = serial();
    let (_, w) = pipe();
    let err = Command::new("/bin/true").fd(1, w).spawn().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let (_, w) = pipe();
    let err = Command::new("/bin/true")
        .channel_fd(4)
        .fd(4, w)
        .spawn()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// systemd style: a listener at 3, the channel moved to 4, and the child
/// both adopts the listener through LISTEN_FDS and talks on the channel.
#[test]
fn channel_moves_aside_for_a_listener_at_three() {
    let _serial = serial();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "[ \"$NODE_CHANNEL_FD\" = 4 ] && [ -S /proc/self/fd/4 ] || exit 9; \
                 LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec {CHILD} listen-fds"
            ),
        ])
        .stdout(Stdio::Piped)
        .channel_fd(4)
        .fd(3, OwnedFd::from(listener))
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(
        line,
        format!("listening 127.0.0.1:{port} name=web env_left=false\n")
    );
    let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    conn.write_all(b"ping").unwrap();
    assert_eq!(read_all(conn), "adopted\n");
    assert!(exit_of(&mut child).success());
}

/// A parent that blocks signals (to take them with sigwait) starts
/// children that still see them, as Node's do. std empties the mask
/// between fork and exec; `Command`'s docs and the demo's signal thread
/// rely on that, so it is checked here.
#[test]
fn children_start_with_no_signal_blocked() {
    let _serial = serial();
    // SAFETY: sigset on the stack; the mask of this test's thread only.
    let block = |how| unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    };
    block(libc::SIG_BLOCK);
    let child = Command::new("/bin/sh")
        .args(["-c", "grep SigBlk /proc/self/status"])
        .stdout(Stdio::Piped)
        .spawn();
    block(libc::SIG_UNBLOCK);
    let mut child = child.unwrap();
    assert_eq!(
        read_all(child.stdout().unwrap()),
        "SigBlk:\t0000000000000000\n"
    );
    assert!(exit_of(&mut child).success());
}

#[test]
fn a_child_in_its_own_process_group() {
    let _serial = serial();
    let mut child = Command::new(CHILD)
        .arg("echo")
        .process_group(0)
        .spawn()
        .unwrap();
    next_report(&mut child);
    let pid = child.id();
    assert_eq!(stat_field(pid, 5), pid.to_string(), "its own group leader");
    child.signal(Signal::TERM).unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&exit_of(&mut child)),
        Some(Signal::TERM.raw())
    );
}

#[test]
fn kill_on_drop_kills_and_reaps_and_the_default_does_not() {
    let _serial = serial();
    let mut keep = Command::new(CHILD).arg("echo").spawn().unwrap();
    next_report(&mut keep);
    let kept = keep.id();
    let mut gone = Command::new(CHILD)
        .arg("echo")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    next_report(&mut gone);
    let killed = gone.id();
    drop(gone);
    // Reaped: no /proc entry left at all (a zombie would keep one).
    assert!(!std::path::Path::new(&format!("/proc/{killed}")).exists());
    drop(keep);
    // The default outlives its Child; it exits once its channel closed,
    // and stays a zombie, unreaped, until someone waits for it.
    eventually("the kept child to exit", || stat_field(kept, 3) == "Z");
    rustix::process::waitpid(
        rustix::process::Pid::from_raw(kept as i32),
        rustix::process::WaitOptions::empty(),
    )
    .unwrap();
}

#[test]
fn exec_replaces_the_process_and_keeps_the_placed_descriptor() {
    let _serial = serial();
    let (r, w) = pipe();
    let mut child = Command::new(CHILD)
        .args(["exec-into", "/bin/sh", "-c", "echo pid=$$ >&7"])
        .fd(7, w)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert_eq!(read_all(r), format!("pid={pid}\n"));
    assert!(exit_of(&mut child).success());
}

/// Privilege separation: as root, bind a port below 1024, and serve it
/// from a child running as `nobody`.
#[test]
fn a_root_parent_hands_a_low_port_to_a_child_running_as_nobody() {
    let _serial = serial();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: binding a port below 1024 needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    let server = (600..1024)
        .rev()
        .find_map(|port| Server::bind((Ipv4Addr::LOCALHOST, port)).ok())
        .expect("a free port below 1024");
    let port = server.local_addr().unwrap().as_inet().unwrap().port();
    let mut child = Command::new(CHILD)
        .arg("echo")
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .unwrap();
    next_report(&mut child);
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(NOBODY.to_string().as_str())
    );
    child
        .send_handle(&"serve", server.to_handle().unwrap())
        .unwrap();
    drop(server);
    let answer = read_all(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap());
    assert_eq!(answer, "handled by child\n");
    assert_eq!(next_report(&mut child).what, "served");
    child.disconnect().unwrap();
    assert!(exit_of(&mut child).success());
}
