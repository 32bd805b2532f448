//! The demo, run as a user would: the self-check, both serving modes
//! answered by real TCP clients and stopped by SIGTERM, its worker driven by
//! a real Node parent, Node children driven by it, and socket activation.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};

use integration_tests::have_node;

const DEMO: &str = env!("CARGO_BIN_EXE_demo-under-test");

/// Starts the demo and reads stdout up to the line naming the port.
#[allow(clippy::zombie_processes)] // returned to the caller, whose `stop` waits for it
fn start(args: &[&str]) -> (Reaper, BufReader<ChildStdout>, u16) {
    let mut child = Command::new(DEMO)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("demo exited before listening: {status}");
        }
        if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
            let port = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            return (Reaper(Some(child)), out, port);
        }
    }
}

fn ask(port: u16, from: Ipv4Addr) -> String {
    use rustix::net::{AddressFamily, SocketType};
    let sock = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&sock, &SocketAddr::from((from, 0))).unwrap();
    rustix::net::connect(&sock, &SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let mut reply = String::new();
    TcpStream::from(sock).read_to_string(&mut reply).unwrap();
    reply
}

/// Kills a demo that a failing test left behind, so no process outlives it.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `n` clients, every other one from `vip`: each must get its role's line.
fn check_routing(port: u16, vip: Ipv4Addr, n: u32) {
    for i in 0..n {
        let (from, role) = if i.is_multiple_of(2) {
            (vip, "special")
        } else {
            (Ipv4Addr::LOCALHOST, "normal")
        };
        assert_eq!(
            ask(port, from),
            format!("You were handled as a {role} person\n")
        );
    }
}

fn stop(mut running: Reaper, mut out: BufReader<ChildStdout>) -> String {
    let mut child = running.0.take().expect("running");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    rest
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
    let (child, out, port) = start(&["share-server", "--port", "0"]);
    for _ in 0..100 {
        let reply = ask(port, Ipv4Addr::LOCALHOST);
        assert!(
            reply == "handled by parent\n" || reply == "handled by child\n",
            "{reply:?}"
        );
    }
    assert!(stop(child, out).contains("stopped by SIGTERM"));
}

#[test]
fn route_sockets_sends_vip_clients_to_special() {
    let (child, out, port) = start(&["route-sockets", "--port", "0", "--vip", "127.0.0.3"]);
    check_routing(port, Ipv4Addr::new(127, 0, 0, 3), 60);
    stop(child, out);
}

#[test]
fn worker_driven_by_a_node_parent() {
    if !have_node() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/node/drive-demo-worker.js");
    let out = Command::new("node").args([script, DEMO]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_parent_drives_node_children() {
    if !have_node() {
        return;
    }
    let child_js = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/node/child.js");
    let cmd = format!("node {child_js}");
    let (child, out, port) = start(&["route-sockets", "--port", "0", "--child-cmd", &cmd]);
    check_routing(port, Ipv4Addr::new(127, 0, 0, 2), 20);
    stop(child, out);
    let (child, out, port) = start(&["share-server", "--port", "0", "--child-cmd", &cmd]);
    for _ in 0..50 {
        let reply = ask(port, Ipv4Addr::LOCALHOST);
        assert!(
            reply == "handled by parent\n" || reply == "handled by child\n",
            "{reply:?}"
        );
    }
    stop(child, out);
}

#[test]
fn share_server_under_systemd_socket_activate() {
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-socket-activate is not installed");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut proc = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}"), DEMO, "share-server"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reply = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut c) => {
                let mut r = String::new();
                c.read_to_string(&mut r).unwrap();
                break r;
            }
            Err(_) => std::thread::yield_now(),
        }
    };
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

/// The pid after `marker` in one of the demo's lines.
fn pid_after(line: &str, marker: &str) -> i32 {
    let rest = line
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker:?} in {line:?}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn kill(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

/// Reads the demo's output until a line contains `what`.
fn wait_for_line(out: &mut BufReader<ChildStdout>, what: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "demo ended before printing {what:?}"
        );
        if line.contains(what) {
            return line;
        }
    }
}

#[test]
fn share_server_keeps_serving_when_the_child_dies() {
    let mut child = Command::new(DEMO)
        .args(["share-server", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child = Reaper(Some(child));
    let line = wait_for_line(&mut out, "listening on 127.0.0.1:");
    let port: u16 = pid_after(&line, "127.0.0.1:").try_into().unwrap();
    kill(pid_after(&line, "child pid "));
    wait_for_line(&mut out, "the parent serves alone");
    for _ in 0..20 {
        assert_eq!(ask(port, Ipv4Addr::LOCALHOST), "handled by parent\n");
    }
    stop(child, out);
}

#[test]
fn route_sockets_replaces_a_dead_worker() {
    let mut child = Command::new(DEMO)
        .args(["route-sockets", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child = Reaper(Some(child));
    let line = wait_for_line(&mut out, "listening on 127.0.0.1:");
    let port: u16 = pid_after(&line, "127.0.0.1:").try_into().unwrap();
    assert_eq!(
        ask(port, Ipv4Addr::LOCALHOST),
        "You were handled as a normal person\n"
    );
    kill(pid_after(&line, "'normal' (pid "));
    // The next normal client finds the worker gone; a new one answers it.
    assert_eq!(
        ask(port, Ipv4Addr::LOCALHOST),
        "You were handled as a normal person\n"
    );
    assert!(wait_for_line(&mut out, "worker normal").contains("is gone"));
    assert_eq!(
        ask(port, Ipv4Addr::new(127, 0, 0, 2)),
        "You were handled as a special person\n"
    );
    stop(child, out);
}
