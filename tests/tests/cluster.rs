//! Node's cluster protocol with real processes: `demo cluster` (our
//! primary) running the Node docs' cluster app (`demo/node/cluster-app.js`,
//! whose only change is that the port comes from `$PORT`) and our Rust
//! `cluster-worker`, and Node's own primary (`demo/node/cluster-primary.js`)
//! running Rust workers. Ports are the kernel's (`PORT=0`: every worker
//! gets the same one, as in Node). Synchronisation is on the primary's
//! lines (`listening`, `exited`, ...), never on sleeps.

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use integration_tests::{
    fan_out, fd_count_of, fds_settle_at, have_node, http_get, number_after, signal, Running,
};
use rustix::process::Signal;

const DEMO: &str = env!("CARGO_BIN_EXE_demo-under-test");
const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/node/cluster-app.js");
const NODE_PRIMARY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../demo/node/cluster-primary.js"
);

/// `demo cluster` with `workers` workers running `cmd`, read up to its
/// first worker's `listening` line; `PORT=0` unless `env` says otherwise.
fn primary(workers: usize, policy: &str, cmd: &[&str], env: &[(&str, &str)]) -> Running {
    let mut c = Command::new(DEMO);
    c.args([
        "cluster",
        "--workers",
        &workers.to_string(),
        "--policy",
        policy,
        "--",
    ]);
    c.args(cmd).env("PORT", "0");
    for (k, v) in env {
        c.env(k, v);
    }
    Running::spawn_until(c, "listening on port", "port ")
}

/// Node's primary forking `n` workers of `kind` (`node`, `rust`, `mixed`).
fn node_primary(n: usize, policy: &str, kind: &str) -> Running {
    let mut c = Command::new("node");
    c.args([NODE_PRIMARY, &n.to_string(), policy, kind])
        .env("PORT", "0")
        .env("DEMO", DEMO);
    Running::spawn_until(c, "listening on port", "port ")
}

/// The pid in a `worker N (pid P) ...` line.
fn pid_of(line: &str) -> u32 {
    number_after(line, "(pid ")
}

/// Waits until `n` lines with `what` have been read (whatever other waits
/// read them); returns them.
fn seen(p: &mut Running, what: &str, n: usize) -> Vec<String> {
    let count = |p: &Running| -> Vec<String> {
        let lines = p.history().iter();
        lines.filter(|l| l.contains(what)).cloned().collect()
    };
    while count(p).len() < n {
        p.wait_for_line(what);
    }
    count(p)
}

/// Waits for `n` `listening` lines; returns their pids.
fn all_listening(p: &mut Running, n: usize) -> Vec<u32> {
    let lines = seen(p, "listening on port", n);
    lines.iter().map(|l| pid_of(l)).collect()
}

/// `n` GETs, 8 at a time; the bodies.
fn requests(port: u16, n: usize) -> Vec<String> {
    fan_out(n, 8, move || http_get(port).expect("a request answered"))
}

/// The `N connections dealt` counts of the disconnect lines in `rest`.
fn dealt(rest: &str) -> Vec<u32> {
    rest.lines()
        .filter(|l| l.contains("connections dealt"))
        .map(|l| number_after(l, "exitedAfterDisconnect=true, "))
        .collect()
}

/// The docs' app under `policy`: 300 requests answered, the primary's
/// descriptors back to their baseline; the primary's last lines.
fn docs_app(policy: &str) -> String {
    let mut p = primary(2, policy, &["node", APP], &[]);
    all_listening(&mut p, 2);
    let baseline = fd_count_of(p.pid());
    for body in requests(p.port, 300) {
        assert_eq!(body, "hello world\n");
    }
    fds_settle_at(p.pid(), baseline);
    let rest = p.stop();
    assert_eq!(
        rest.matches("exit status: 0 (exitedAfterDisconnect=true)")
            .count(),
        2,
        "{rest}"
    );
    assert!(rest.contains("every worker is gone"), "{rest}");
    rest
}

#[test]
fn docs_app_round_robin_every_request_answered_by_both_workers() {
    if !have_node() {
        return;
    }
    let rest = docs_app("rr");
    let counts = dealt(&rest);
    assert_eq!(counts.len(), 2, "{rest}");
    assert_eq!(counts.iter().sum::<u32>(), 300, "{rest}");
    assert!(
        counts.iter().all(|&c| c > 0),
        "a worker got nothing: {rest}"
    );
}

#[test]
fn docs_app_policy_none_every_request_answered() {
    if have_node() {
        docs_app("none");
    }
}

#[test]
fn a_sigkilled_worker_is_replaced_and_requests_keep_succeeding() {
    if !have_node() {
        return;
    }
    let mut p = primary(2, "rr", &["node", APP], &[]);
    let pids = all_listening(&mut p, 2);
    assert_eq!(requests(p.port, 20).len(), 20);
    signal(pids[0], Signal::KILL);
    let exited = p.wait_for_line(") exited: ");
    assert_eq!(pid_of(&exited), pids[0], "{exited}");
    assert!(exited.contains("signal: 9"), "{exited}");
    // The other worker serves alone meanwhile, then with the replacement.
    for body in requests(p.port, 20) {
        assert_eq!(body, "hello world\n");
    }
    let new = pid_of(&seen(&mut p, "listening on port", 3)[2]);
    assert!(!pids.contains(&new));
    for body in requests(p.port, 100) {
        assert_eq!(body, "hello world\n");
    }
    let counts = dealt(&p.stop());
    assert_eq!(counts.len(), 2);
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
}

/// Clients in a loop until stopped: (answered, failed).
fn load(port: u16, stop: Arc<AtomicBool>) -> thread::JoinHandle<(usize, Vec<String>)> {
    thread::spawn(move || {
        let ok = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (stop, ok) = (stop.clone(), ok.clone());
                thread::spawn(move || {
                    let mut failed = Vec::new();
                    while !stop.load(Ordering::Acquire) {
                        match http_get(port) {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::AcqRel);
                            }
                            Err(e) => failed.push(e.to_string()),
                        }
                    }
                    failed
                })
            })
            .collect();
        let failed = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        (ok.load(Ordering::Acquire), failed)
    })
}

fn rolling_restart_refuses_nothing(policy: &str, cmd: &[&str]) {
    let mut p = primary(2, policy, cmd, &[]);
    let old = all_listening(&mut p, 2);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(p.port, stop.clone());
    signal(p.pid(), Signal::HUP);
    p.wait_for_line("rolling restart: done");
    for line in seen(&mut p, ") exited: ", 2) {
        assert!(old.contains(&pid_of(&line)), "{line}");
        assert!(
            line.contains("exit status: 0 (exitedAfterDisconnect=true)"),
            "{line}"
        );
    }
    stop.store(true, Ordering::Release);
    let (ok, failed) = clients.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok > 0);
    // The new workers serve.
    for body in requests(p.port, 20) {
        assert!(!body.is_empty());
    }
    p.stop();
}

#[test]
fn rolling_restart_under_load_refuses_nothing_round_robin() {
    if have_node() {
        rolling_restart_refuses_nothing("rr", &["node", APP]);
    }
}

#[test]
fn rolling_restart_under_load_refuses_nothing_policy_none() {
    if have_node() {
        rolling_restart_refuses_nothing("none", &["node", APP]);
    }
}

#[test]
fn rust_workers_under_our_primary_both_policies() {
    for policy in ["rr", "none"] {
        let mut p = primary(2, policy, &[DEMO, "cluster-worker"], &[]);
        let pids = all_listening(&mut p, 2);
        let bodies = requests(p.port, 100);
        let seen: HashSet<u32> = bodies
            .iter()
            .map(|b| number_after(b, "hello from "))
            .collect();
        assert!(
            seen.iter().all(|pid| pids.contains(pid)),
            "{seen:?} vs {pids:?}"
        );
        if policy == "rr" {
            assert_eq!(seen.len(), 2, "round-robin uses both workers");
        }
        let rest = p.stop();
        assert_eq!(
            rest.matches("exit status: 0 (exitedAfterDisconnect=true)")
                .count(),
            2,
            "{rest}"
        );
    }
}

#[test]
fn node_primary_with_rust_cluster_workers_serves() {
    if !have_node() {
        return;
    }
    for policy in ["rr", "none"] {
        let mut p = node_primary(2, policy, "rust");
        let pids = all_listening(&mut p, 2);
        let bodies = requests(p.port, 100);
        let seen: HashSet<u32> = bodies
            .iter()
            .map(|b| number_after(b, "hello from "))
            .collect();
        assert!(
            seen.iter().all(|pid| pids.contains(pid)),
            "{seen:?} vs {pids:?}"
        );
        if policy == "rr" {
            assert_eq!(seen.len(), 2, "Node's round-robin uses both Rust workers");
        }
        p.stop();
    }
}

/// Node and Rust workers in one pool, under Node's primary and ours (a
/// shell picks the worker by `NODE_UNIQUE_ID`).
#[test]
fn a_mixed_pool_serves_under_either_primary() {
    if !have_node() {
        return;
    }
    let script = format!(
        "if [ $((NODE_UNIQUE_ID % 2)) = 0 ]; then exec {DEMO} cluster-worker; else exec node {APP}; fi"
    );
    let ours = primary(2, "rr", &["sh", "-c", &script], &[]);
    let theirs = node_primary(2, "rr", "mixed");
    for mut p in [ours, theirs] {
        all_listening(&mut p, 2);
        let bodies = requests(p.port, 100);
        assert!(
            bodies.iter().any(|b| b == "hello world\n"),
            "no Node worker answered"
        );
        assert!(
            bodies.iter().any(|b| b.starts_with("hello from ")),
            "no Rust worker answered"
        );
        p.stop();
    }
}

/// A worker asking for a port another process holds gets Node's
/// `EADDRINUSE` (-98): the Node worker dies of it, as under Node's
/// primary, and is replaced; the Rust worker reports the same errno.
#[test]
fn a_taken_port_gets_eaddrinuse_and_the_others_go_on() {
    if !have_node() {
        return;
    }
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let script = format!(
        "if [ \"$NODE_UNIQUE_ID\" = 1 ]; then PORT={port} exec node {APP}; \
         elif [ \"$NODE_UNIQUE_ID\" = 2 ]; then PORT={port} exec {DEMO} cluster-worker; \
         else exec node {APP}; fi"
    );
    let mut c = Command::new(DEMO);
    c.args([
        "cluster",
        "--workers",
        "2",
        "--policy",
        "rr",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .env("PORT", "0");
    let mut p = Running::spawn_until(c, "cannot listen", "null:");
    assert_eq!(p.port, port, "{}", p.line);
    assert!(
        p.line.contains(&format!("null:{port}:4:undefined:0")),
        "{}",
        p.line
    );
    for line in seen(&mut p, "cannot listen", 2) {
        assert!(
            line.contains(&format!("null:{port}:4:undefined:0")),
            "{line}"
        );
    }
    // Both are replaced by workers on a free port, which serve.
    let good = seen(&mut p, "listening on port", 2);
    let good_port = number_after(&good[0], "port ") as u16;
    for body in requests(good_port, 20) {
        assert_eq!(body, "hello world\n");
    }
    let errors = p.stderr_lines().join("\n");
    assert!(
        errors.contains("EADDRINUSE"),
        "Node's worker error: {errors}"
    );
    assert!(
        errors.contains(&format!(
            "listen on port {port}: bind null:{port}:4:undefined:0"
        )),
        "the Rust worker's typed error: {errors}"
    );
    p.stop();
}

/// A worker that sends garbage is killed and replaced; one that dies
/// mid-handshake (after queryServer, before listening) is replaced.
#[test]
fn garbage_and_a_death_mid_handshake_are_replaced() {
    if !have_node() {
        return;
    }
    let query = r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}\n{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":0,"addressType":4,"backlog":0,"seq":1}\n"#;
    let script = format!(
        "if [ \"$NODE_UNIQUE_ID\" = 1 ]; then printf 'garbage\\n' >&3; exec sleep 60; \
         elif [ \"$NODE_UNIQUE_ID\" = 2 ]; then printf '{query}' >&3; exit 3; \
         else exec node {APP}; fi"
    );
    let mut c = Command::new(DEMO);
    c.args(["cluster", "--workers", "2", "--", "sh", "-c", &script])
        .env("PORT", "0");
    // Only the replacements (workers 3 and 4) ever listen.
    let mut p = Running::spawn_until(c, "listening on port", "port ");
    seen(&mut p, "listening on port", 2);
    let seen = p.history().join("\n");
    assert!(seen.contains("worker 1 (pid"), "{seen}");
    assert!(seen.contains("sent garbage"), "{seen}");
    assert!(seen.contains("exit status: 3"), "{seen}");
    assert!(seen.contains("worker 4 (pid"), "{seen}");
    for body in requests(p.port, 20) {
        assert_eq!(body, "hello world\n");
    }
    p.stop();
}

/// A worker that asks again for a key it serves gets the same answer, not
/// more credits: with its two `newconn`s in flight it gets no third. Worker
/// 1 is a script that asks, acknowledges each handle without ever answering
/// `accepted` (`W1 holds N`), and asks again once it holds two (`W1
/// answered again` when the primary has answered that). Worker 2, the
/// docs' app, starts only after worker 1's first answer, so worker 1's
/// credits come first. Then 8 more connections all go to the app (with two
/// more credits, worker 1 would take 2 of them and hold them).
#[test]
fn a_worker_asking_again_gets_no_more_connections_in_flight() {
    if !have_node() {
        return;
    }
    let marker = std::env::temp_dir().join(format!("cluster-asked-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let query = |seq: u32| {
        format!(
            r#"{{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":0,"addressType":4,"backlog":0,"seq":{seq}}}\n"#
        )
    };
    let online = r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}\n"#;
    let ack = r#"{"cmd":"NODE_HANDLE_ACK"}\n"#;
    let listening =
        r#"{"cmd":"NODE_CLUSTER","act":"listening","address":null,"port":%s,"addressType":4}\n"#;
    let marker_path = marker.display();
    // Worker 1 says it listens (on the port of the reply's sockname), takes
    // two connections while it is the only worker, and asks again holding
    // them; only then does worker 2 (the docs' app) start.
    let script = format!(
        "if [ \"$NODE_UNIQUE_ID\" = 1 ]; then printf '{online}{q1}' >&3; n=0; \
         while IFS= read -r line <&3; do case \"$line\" in \
         *'\"act\":\"newconn\"'*) n=$((n+1)); printf '{ack}' >&3; echo \"W1 holds $n\"; \
           if [ $n = 2 ]; then printf '{q2}' >&3; touch {marker_path}; fi;; \
         *'\"ack\":1'*) p=${{line##*\\\"port\\\":}}; printf '{listening}' \"${{p%%\\}}*}}\" >&3;; \
         *'\"ack\":2'*) echo 'W1 answered again';; \
         *'\"act\":\"disconnect\"'*) exit 0;; esac; done; \
         else while [ ! -e {marker_path} ]; do sleep 0.01; done; exec node {APP}; fi",
        q1 = query(1),
        q2 = query(2),
    );
    let mut p = primary(2, "rr", &["sh", "-c", &script], &[]);
    let port = p.port;
    let answered = Arc::new(AtomicUsize::new(0));
    let client = |answered: &Arc<AtomicUsize>| {
        let answered = answered.clone();
        thread::spawn(move || {
            // Those worker 1 holds end when the cluster stops.
            if http_get(port).is_ok_and(|b| b == "hello world\n") {
                answered.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The script's lines (the primary's first line quotes the script).
    let said = |p: &Running, what: &str| -> Vec<String> {
        let lines = p.history().iter();
        lines.filter(|l| l.starts_with(what)).cloned().collect()
    };
    let mut clients: Vec<_> = (0..2).map(|_| client(&answered)).collect();
    p.wait_for_line("W1 answered again");
    clients.extend((0..8).map(|_| client(&answered)));
    integration_tests::eventually("8 connections answered by the app", || {
        answered.load(Ordering::SeqCst) >= 8
    });
    assert_eq!(said(&p, "W1 holds "), ["W1 holds 1", "W1 holds 2"]);
    p.stop();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(answered.load(Ordering::SeqCst), 8);
    let _ = std::fs::remove_file(marker);
}

/// A Node worker that leaves on its own (`cluster.worker.disconnect()`)
/// gets the primary's ack and exits 0 with `exitedAfterDisconnect`.
#[test]
fn a_node_worker_leaving_by_itself_is_acknowledged() {
    if !have_node() {
        return;
    }
    let script = "const c=require('node:cluster');require('node:http').createServer((q,s)=>s.end('x')).listen(0,()=>c.worker.disconnect());";
    let path = std::env::temp_dir().join(format!("cluster-leaver-{}.js", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let mut c = Command::new(DEMO);
    c.args([
        "cluster",
        "--workers",
        "1",
        "--",
        "node",
        path.to_str().unwrap(),
    ]);
    // It never says `listening`: it leaves in its listen callback.
    let mut p = Running::spawn_until(c, ") exited: ", "pid ");
    assert!(
        p.line
            .contains("exit status: 0 (exitedAfterDisconnect=true)"),
        "{}",
        p.line
    );
    p.wait_for_line("left on purpose; not replaced");
    p.stop();
    let _ = std::fs::remove_file(path);
}

/// UDP in a cluster is shared whatever the policy, as in Node: every
/// worker's `dgram.bind(0)` gets the primary's one socket (`dgram.Native`),
/// so they share its port, and a datagram reaches one of them.
#[test]
fn node_dgram_workers_share_one_udp_socket() {
    if !have_node() {
        return;
    }
    let script = "const s=require('node:dgram').createSocket('udp4');\
                  s.on('message',(m,r)=>s.send('pong '+process.pid,r.port,r.address));s.bind(0);";
    let path = std::env::temp_dir().join(format!("cluster-dgram-{}.js", std::process::id()));
    std::fs::write(&path, script).unwrap();
    for policy in ["rr", "none"] {
        let mut p = primary(2, policy, &["node", path.to_str().unwrap()], &[]);
        let lines = seen(&mut p, "listening on port", 2);
        assert!(
            lines.iter().all(|l| l.contains("addressType udp4")),
            "{lines:?}"
        );
        let ports: HashSet<u32> = lines.iter().map(|l| number_after(l, "port ")).collect();
        assert_eq!(ports.len(), 1, "one shared port: {lines:?}");
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        client.send_to(b"ping", ("127.0.0.1", p.port)).unwrap();
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"pong "), "{:?}", &buf[..n]);
        p.stop();
    }
    let _ = std::fs::remove_file(path);
}

/// A Node worker calling `listen(port, host, callback)`, the common form,
/// whose `queryServer` carries `"backlog":false`: served under both
/// policies, as under Node's primary. Under round-robin, requests one at a
/// time alternate between the workers, as Node's primary deals them.
#[test]
fn node_workers_listening_on_a_host_are_served_in_turn() {
    if !have_node() {
        return;
    }
    let script = "require('node:http').createServer((q,r)=>r.end('pid '+process.pid+'\\n'))\
                  .listen(+process.env.PORT,'127.0.0.1',()=>{});";
    let path = std::env::temp_dir().join(format!("cluster-host-{}.js", std::process::id()));
    std::fs::write(&path, script).unwrap();
    for policy in ["rr", "none"] {
        let mut p = primary(2, policy, &["node", path.to_str().unwrap()], &[]);
        all_listening(&mut p, 2);
        let bodies: Vec<String> = (0..6).map(|_| http_get(p.port).unwrap()).collect();
        assert!(bodies.iter().all(|b| b.starts_with("pid ")), "{bodies:?}");
        if policy == "rr" {
            for pair in bodies.windows(2) {
                assert_ne!(
                    pair[0], pair[1],
                    "the same worker twice in a row: {bodies:?}"
                );
            }
        }
        p.stop();
    }
    let _ = std::fs::remove_file(path);
}
