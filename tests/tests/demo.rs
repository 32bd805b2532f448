//! The demo, run as a user would: the self-check, both serving modes
//! answered by real TCP clients and stopped by SIGTERM, its worker driven by
//! a real Node parent, Node children driven by it, and socket activation.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;

use integration_tests::{ask, have_node, number_after, Running};

const DEMO: &str = env!("CARGO_BIN_EXE_demo-under-test");

/// `n` clients, every other one from `vip`: each must get its role's line.
fn check_routing(port: u16, vip: Ipv4Addr, n: u32) {
    for i in 0..n {
        let (from, role) = if i.is_multiple_of(2) {
            (vip, "special")
        } else {
            (Ipv4Addr::LOCALHOST, "normal")
        };
        assert_eq!(
            ask(port, from).unwrap(),
            format!("You were handled as a {role} person\n")
        );
    }
}

#[test]
fn self_check_passes() {
    let out = Command::new(DEMO).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK: every reply checked"), "{stdout}");
    assert!(stdout.contains("0 wrong"));
}

#[test]
fn share_server_answers_clients_until_sigterm() {
    let demo = Running::start(DEMO, &["share-server", "--port", "0"]);
    let port = demo.port;
    for _ in 0..100 {
        let reply = ask(port, Ipv4Addr::LOCALHOST).unwrap();
        assert!(
            reply == "handled by parent\n" || reply == "handled by child\n",
            "{reply:?}"
        );
    }
    assert!(demo.stop().contains("stopped by SIGTERM"));
}

/// The README's client commands, as written: `curl -s --http0.9
/// 127.0.0.1:P`, and from the VIP with `--interface 127.0.0.2`.
#[test]
fn readme_curl_commands_print_the_replies() {
    if Command::new("curl").arg("--version").output().is_err() {
        // CI installs it (.ci/run): there the test must run.
        assert!(
            std::env::var_os("CI").is_none(),
            "curl is required under CI"
        );
        eprintln!("skipped: curl is not installed");
        return;
    }
    let curl = |port: u16, vip: bool| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--http0.9"]);
        if vip {
            cmd.args(["--interface", "127.0.0.2"]);
        }
        let out = cmd.arg(format!("127.0.0.1:{port}")).output().unwrap();
        assert!(out.status.success(), "curl failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let demo = Running::start(DEMO, &["share-server", "--port", "0"]);
    let reply = curl(demo.port, false);
    assert!(
        reply == "handled by parent\n" || reply == "handled by child\n",
        "{reply:?}"
    );
    demo.stop();
    let demo = Running::start(DEMO, &["route-sockets", "--port", "0"]);
    assert_eq!(
        curl(demo.port, true),
        "You were handled as a special person\n"
    );
    assert_eq!(
        curl(demo.port, false),
        "You were handled as a normal person\n"
    );
    demo.stop();
}

#[test]
fn route_sockets_sends_vip_clients_to_special() {
    let demo = Running::start(
        DEMO,
        &["route-sockets", "--port", "0", "--vip", "127.0.0.3"],
    );
    let port = demo.port;
    check_routing(port, Ipv4Addr::new(127, 0, 0, 3), 60);
    demo.stop();
}

#[test]
fn worker_driven_by_a_node_parent() {
    if !have_node() {
        return;
    }
    integration_tests::node_script_passes("drive-demo-worker.js", &[DEMO]);
}

#[test]
fn demo_parent_drives_node_children() {
    if !have_node() {
        return;
    }
    let child_js = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/node/child.js");
    let cmd = format!("node {child_js}");
    let demo = Running::start(DEMO, &["route-sockets", "--port", "0", "--child-cmd", &cmd]);
    let port = demo.port;
    check_routing(port, Ipv4Addr::new(127, 0, 0, 2), 20);
    demo.stop();
    let demo = Running::start(DEMO, &["share-server", "--port", "0", "--child-cmd", &cmd]);
    let port = demo.port;
    for _ in 0..50 {
        let reply = ask(port, Ipv4Addr::LOCALHOST).unwrap();
        assert!(
            reply == "handled by parent\n" || reply == "handled by child\n",
            "{reply:?}"
        );
    }
    demo.stop();
}

#[test]
fn share_server_under_systemd_socket_activate() {
    let Some((port, mut proc)) = integration_tests::socket_activate(&[DEMO, "share-server"]) else {
        return;
    };
    let mut reply = String::new();
    TcpStream::connect(("127.0.0.1", port))
        .unwrap()
        .read_to_string(&mut reply)
        .unwrap();
    assert!(
        reply == "handled by parent\n" || reply == "handled by child\n",
        "{reply:?}"
    );
    let mut out = BufReader::new(proc.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("using the listener passed by systemd"),
        "{first}"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&proc),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    proc.wait().unwrap();
}

fn kill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

#[test]
fn share_server_keeps_serving_when_the_child_dies() {
    let mut demo = Running::start(DEMO, &["share-server", "--port", "0"]);
    kill(number_after(&demo.line, "child pid "));
    demo.wait_for_line("the parent serves alone");
    for _ in 0..20 {
        assert_eq!(
            ask(demo.port, Ipv4Addr::LOCALHOST).unwrap(),
            "handled by parent\n"
        );
    }
    demo.stop();
}

#[test]
fn route_sockets_replaces_a_dead_worker() {
    let mut demo = Running::start(DEMO, &["route-sockets", "--port", "0"]);
    let normal = "You were handled as a normal person\n";
    assert_eq!(ask(demo.port, Ipv4Addr::LOCALHOST).unwrap(), normal);
    kill(number_after(&demo.line, "'normal' (pid "));
    // The next normal client finds the worker gone; a new one answers it.
    assert_eq!(ask(demo.port, Ipv4Addr::LOCALHOST).unwrap(), normal);
    assert!(demo.wait_for_line("worker normal").contains("is gone"));
    assert_eq!(
        ask(demo.port, Ipv4Addr::new(127, 0, 0, 2)).unwrap(),
        "You were handled as a special person\n"
    );
    demo.stop();
}

/// The benchmark harness runs and prints every figure it promises. The
/// speeds are for people, not for assertions; the allocation count is an
/// invariant: zero per steady-state message, sender and receiver.
#[test]
fn bench_quick_prints_every_figure() {
    let out = Command::new(DEMO)
        .args(["bench", "--quick"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = have_node();
    for name in [
        "throughput_small",
        "throughput_1k",
        "rtt_p50",
        "rtt_p99",
        "socket_handoff",
        "server_handoff",
        "allocs_per_msg",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{name}: "))),
            "{name} missing:\n{stdout}"
        );
        if name == "allocs_per_msg" {
            assert!(stdout.contains("allocs_per_msg: 0.000 allocs"), "{stdout}");
            continue;
        }
        if !name.ends_with("handoff") {
            assert!(
                stdout.contains(&format!("raw_{name}: ")),
                "raw_{name} missing"
            );
        }
        if node {
            assert!(
                stdout.contains(&format!("ratio_{name}: ")),
                "ratio_{name} missing"
            );
        }
    }
    // With the tokio feature (the demo's too), the async path's figures.
    if cfg!(feature = "tokio") {
        for name in ["throughput_small", "throughput_1k"] {
            for line in [format!("async_{name}: "), format!("ratio_async_{name}: ")] {
                assert!(stdout.contains(&line), "{line} missing:\n{stdout}");
            }
        }
        assert!(
            stdout.contains("async_allocs_per_msg: 0.000 allocs"),
            "{stdout}"
        );
    }
    // HTTP through `demo cluster --policy rr` and Node's primary (its
    // workers are Node's, so only with node).
    if node {
        for line in ["cluster_rr: ", "node_cluster_rr: ", "ratio_cluster_rr: "] {
            assert!(stdout.contains(line), "{line} missing:\n{stdout}");
        }
    }
}

/// `demo bench NAME` measures only that figure; an unknown name is refused
/// with the list of figures.
#[test]
fn bench_measures_only_the_figures_named() {
    let out = Command::new(DEMO)
        .args(["bench", "--quick", "server_handoff"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("server_handoff: "), "{stdout}");
    assert!(!stdout.contains("throughput"), "{stdout}");
    let out = Command::new(DEMO)
        .args(["bench", "--quick", "latency"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("throughput_small, throughput_1k"));
}

/// Out of descriptors, share-server's parent pauses accepting instead of
/// spinning (its child goes on serving), logs once, and serves again once
/// descriptors free up.
#[test]
fn share_server_out_of_descriptors_pauses_and_recovers() {
    use integration_tests::{cpu_ticks_of, eventually};
    use rustix::process::{getrlimit, prlimit, Pid, Resource, Rlimit};
    let demo = Running::start(DEMO, &["share-server", "--port", "0"]);
    let pid = Pid::from_raw(demo.pid() as i32).unwrap();
    // It inherited ours.
    let saved = getrlimit(Resource::Nofile);
    // Not one descriptor left for the parent: the limit is on descriptor
    // numbers, so it goes down to the lowest one free.
    let used: Vec<u64> = std::fs::read_dir(format!("/proc/{}/fd", demo.pid()))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let full = (0..).find(|n| !used.contains(n)).unwrap();
    prlimit(
        Some(pid),
        Resource::Nofile,
        Rlimit {
            current: Some(full),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    let port = demo.port;
    let hammer = std::thread::spawn(move || {
        (0..200)
            .map(|_| ask(port, Ipv4Addr::LOCALHOST).unwrap())
            .collect::<Vec<_>>()
    });
    eventually("the parent runs out of descriptors", || {
        demo.stderr_lines()
            .iter()
            .any(|l| l.contains("cannot accept"))
    });
    let before = cpu_ticks_of(demo.pid());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = cpu_ticks_of(demo.pid()) - before;
    assert!(used < 10, "{used} ticks in 2 s while out of descriptors");
    // An accept already waiting in the kernel had its descriptor number
    // before the limit came down: at most that one is the parent's.
    let replies = hammer.join().unwrap();
    let by_parent = replies
        .iter()
        .filter(|r| *r == "handled by parent\n")
        .count();
    assert!(
        by_parent <= 1,
        "the parent answered {by_parent} while out of descriptors"
    );
    assert!(replies
        .iter()
        .all(|r| r == "handled by child\n" || r == "handled by parent\n"));
    assert!(demo.stderr_lines().len() < 5, "{:?}", demo.stderr_lines());
    prlimit(Some(pid), Resource::Nofile, saved).unwrap();
    eventually("the parent serves again", || {
        ask(port, Ipv4Addr::LOCALHOST).unwrap() == "handled by parent\n"
    });
    // stderr is read by another thread: the line may still be on its way.
    eventually("the end of the pause is logged", || {
        demo.stderr_lines()
            .iter()
            .any(|l| l.contains("accepting again"))
    });
    demo.stop();
}
