//! `demo route-sockets` as an event loop: a stopped worker, workers that
//! chat, acknowledge twice or never, a crashing worker command, and running
//! out of descriptors. Every client must be answered, the router's
//! descriptor count must come back to where it started, and a stalled or
//! starved router must not spin.

use std::net::Ipv4Addr;
use std::thread;

use integration_tests::{
    ask, cpu_ticks_of, eventually, fan_out, fd_count_of, fds_settle_at, number_after, signal,
    Running,
};
use rustix::process::Signal;

const DEMO: &str = env!("CARGO_BIN_EXE_demo-under-test");
const CHILD: &str = env!("CARGO_BIN_EXE_test-child");
const VIP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn reply(role: &str) -> String {
    format!("You were handled as a {role} person\n")
}

/// `n` clients from `from`, up to 40 at a time; returns their replies.
fn clients(port: u16, from: Ipv4Addr, n: usize) -> Vec<String> {
    fan_out(n, 40, move || ask(port, from).unwrap())
}

/// The router's descriptors settle back at `baseline`.
fn settles_at(demo: &Running, baseline: usize) {
    fds_settle_at(demo.pid(), baseline);
}

#[test]
fn a_stopped_worker_holds_up_only_its_own_clients() {
    // A long timeout: this test wants the stopped worker itself back.
    let demo = Running::start(
        DEMO,
        &[
            "route-sockets",
            "--port",
            "0",
            "--handoff-timeout",
            "600000",
        ],
    );
    let baseline = fd_count_of(demo.pid());
    let normal = number_after(&demo.line, "'normal' (pid ");
    signal(normal, Signal::STOP);
    let port = demo.port;
    let waiting = thread::spawn(move || clients(port, Ipv4Addr::LOCALHOST, 3));
    // VIP clients are answered while 'normal' is stopped.
    for _ in 0..3 {
        assert_eq!(ask(port, VIP).unwrap(), reply("special"));
    }
    assert!(
        !waiting.is_finished(),
        "normal clients answered by a stopped worker"
    );
    signal(normal, Signal::CONT);
    for r in waiting.join().unwrap() {
        assert_eq!(r, reply("normal"));
    }
    settles_at(&demo, baseline);
    assert!(!demo.stderr_lines().iter().any(|l| l.contains("replacing")));
    demo.stop();
}

#[test]
fn a_stopped_worker_is_replaced_after_the_handoff_timeout() {
    let mut demo = Running::start(
        DEMO,
        &["route-sockets", "--port", "0", "--handoff-timeout", "300"],
    );
    let baseline = fd_count_of(demo.pid());
    let normal = number_after(&demo.line, "'normal' (pid ");
    signal(normal, Signal::STOP);
    // Answered by the replacement.
    for r in clients(demo.port, Ipv4Addr::LOCALHOST, 5) {
        assert_eq!(r, reply("normal"));
    }
    demo.wait_for_line(&format!("worker normal (pid {normal}) exited"));
    eventually("the replacement is logged", || {
        demo.stderr_lines()
            .iter()
            .any(|l| l.contains(&format!("(pid {normal}) left")) && l.contains("replacing it"))
    });
    assert_eq!(ask(demo.port, VIP).unwrap(), reply("special"));
    settles_at(&demo, baseline);
    demo.stop();
}

/// Workers that misbehave on the wire, by hand: every client is answered
/// (a worker that never acknowledges may answer a client twice: it is
/// replaced, and its sockets go to the replacement), and the router keeps
/// no descriptor.
fn misbehaving(mode: &str, clients_n: usize) {
    let cmd = format!("{CHILD} raw-worker {mode}");
    let demo = Running::start(
        DEMO,
        &[
            "route-sockets",
            "--port",
            "0",
            "--handoff-timeout",
            "200",
            "--child-cmd",
            &cmd,
        ],
    );
    let baseline = fd_count_of(demo.pid());
    for from in [Ipv4Addr::LOCALHOST, VIP] {
        let role = if from == VIP { "special" } else { "normal" };
        for r in clients(demo.port, from, clients_n) {
            assert!(
                !r.is_empty() && r.lines().all(|l| format!("{l}\n") == reply(role)),
                "{mode}: {r:?}"
            );
        }
    }
    settles_at(&demo, baseline);
    demo.stop();
}

#[test]
fn chatty_workers_lose_no_client() {
    misbehaving("chatty", 1000);
}

#[test]
fn workers_that_ack_twice_lose_no_client() {
    misbehaving("ack-twice", 1000);
}

#[test]
fn workers_that_never_ack_lose_no_client() {
    misbehaving("never-ack", 4);
}

#[test]
fn a_worker_command_that_dies_at_once_is_restarted_with_back_off() {
    let mut demo = Running::start(
        DEMO,
        &["route-sockets", "--port", "0", "--child-cmd", "false"],
    );
    let start = std::time::Instant::now();
    let mut starts = 0;
    while start.elapsed() < std::time::Duration::from_secs(2) {
        if demo.wait_for_line("worker ").contains("started") {
            starts += 1;
        }
    }
    // Back-off doubles from 100 ms: about 5 starts per role in 2 s. Without
    // it, thousands.
    assert!(starts < 30, "{starts} starts in 2 s");
    demo.stop();
}

#[test]
fn out_of_descriptors_the_router_pauses_and_recovers() {
    let mut cmd = std::process::Command::new(DEMO);
    cmd.args([
        "route-sockets",
        "--port",
        "0",
        "--handoff-timeout",
        "600000",
    ]);
    let demo = Running::spawn(cmd);
    // The router alone gets few descriptors (its workers, already running,
    // keep theirs: one that ran out too would drop handles and reset its
    // clients: `faults.rs` covers a receiver out of descriptors).
    let limit = rustix::process::Rlimit {
        current: Some(24),
        maximum: Some(24),
    };
    let router = rustix::process::Pid::from_raw(demo.pid() as i32);
    rustix::process::prlimit(router, rustix::process::Resource::Nofile, limit).unwrap();
    let pid = demo.pid();
    let baseline = fd_count_of(pid);
    let normal = number_after(&demo.line, "'normal' (pid ");
    // Sockets for a stopped worker stay with the router: it runs out.
    signal(normal, Signal::STOP);
    let port = demo.port;
    let waiting = thread::spawn(move || clients(port, Ipv4Addr::LOCALHOST, 40));
    eventually("the router runs out of descriptors", || {
        demo.stderr_lines()
            .iter()
            .any(|l| l.contains("cannot accept"))
    });
    let before = cpu_ticks_of(pid);
    thread::sleep(std::time::Duration::from_secs(2));
    let used = cpu_ticks_of(pid) - before;
    // 5% of one core over 2 s is 10 ticks (of 100 per second).
    assert!(used < 10, "{used} ticks in 2 s while out of descriptors");
    assert!(demo.stderr_lines().len() < 10, "{:?}", demo.stderr_lines());
    signal(normal, Signal::CONT);
    for r in waiting.join().unwrap() {
        assert_eq!(r, reply("normal"));
    }
    assert_eq!(ask(port, VIP).unwrap(), reply("special"));
    settles_at(&demo, baseline);
    // stderr is read by another thread: the line may still be on its way.
    eventually("the end of the pause is logged", || {
        demo.stderr_lines()
            .iter()
            .any(|l| l.contains("accepting again"))
    });
    demo.stop();
}
