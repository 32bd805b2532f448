//! share-server's zero-downtime restart, as an operator does it: SIGHUP
//! the running server, then its successor, then that one's, while clients
//! hammer the port; the second restart follows a binary upgrade in place.
//! No client may be refused or get a wrong reply, every old server must
//! drain and exit cleanly, and nothing may be left behind.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use integration_tests::{
    adopt_orphans, ask, eventually, fd_count_of, fds_settle_at, number_after, serial, Process,
    Running,
};
use rustix::process::Signal;

const DEMO: &str = env!("CARGO_BIN_EXE_demo-under-test");
const REPLIES: [&str; 2] = ["handled by parent\n", "handled by child\n"];
/// Client threads; each makes one short connection after another.
const CLIENTS: usize = 3;
/// Connections answered between two restarts, at the least.
const BETWEEN: usize = 30;

/// Clients connecting without pause until stopped, counting what they got.
struct Hammer {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<Vec<String>>>,
}

impl Hammer {
    fn start(port: u16) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let threads = (0..CLIENTS)
            .map(|_| {
                let (stop, answered) = (stop.clone(), answered.clone());
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match ask(port, Ipv4Addr::LOCALHOST) {
                            Ok(r) if REPLIES.contains(&r.as_str()) => {
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failures.push(format!("wrong reply {r:?}")),
                            Err(e) => failures.push(format!("connection failed: {e}")),
                        }
                    }
                    failures
                })
            })
            .collect();
        Hammer {
            stop,
            answered,
            threads,
        }
    }

    /// Waits until `n` more connections have been answered.
    fn wait_for(&self, n: usize) {
        let target = self.answered.load(Ordering::Relaxed) + n;
        eventually("clients are answered", || {
            self.answered.load(Ordering::Relaxed) >= target
        });
    }

    /// Lets a few more connections through, stops the clients and checks
    /// that none failed; the connections answered.
    fn finish(mut self) -> usize {
        self.wait_for(BETWEEN);
        self.stop.store(true, Ordering::Relaxed);
        let failures: Vec<String> = self
            .threads
            .drain(..)
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert!(
            failures.is_empty(),
            "{} failed: {failures:?}",
            failures.len()
        );
        self.answered.load(Ordering::Relaxed)
    }
}

/// A failing test stops its clients too.
impl Drop for Hammer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A copy of the demo for one test, to replace in place. (The tests of
/// this file run one at a time: a file being written while another test
/// forks could not be run, ETXTBSY.)
fn own_copy(name: &str) -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("restart-{name}-{}", std::process::id()));
    std::fs::copy(DEMO, &exe).unwrap();
    exe
}

/// Replaces the executable at `path` with a new copy, as a package
/// manager upgrades a binary: a new file renamed over the old one.
fn upgrade(path: &Path) {
    let new = path.with_extension("new");
    std::fs::copy(DEMO, &new).unwrap();
    std::fs::rename(&new, path).unwrap();
}

/// Replaces the executable at `path` with a shell script.
fn replace_with_script(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let new = path.with_extension("new");
    std::fs::write(&new, script).unwrap();
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&new, path).unwrap();
}

fn exe_of(pid: u32) -> String {
    let link = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    link.display().to_string()
}

#[test]
fn share_server_restarts_on_sighup_without_refusing_a_connection() {
    let _serial = serial();
    adopt_orphans();
    let exe = own_copy("chain");
    let exe_name = exe.display().to_string();
    // Generous: a hang guard for loaded machines, not a pace.
    let args = ["share-server", "--port", "0", "--restart-timeout", "120000"];
    let mut demo = Running::start(&exe_name, &args);
    let port = demo.port;
    let baseline = fd_count_of(demo.pid());
    // Killed and reaped on the way out, should the test fail.
    let mut procs = vec![
        Process::open(demo.pid()),
        Process::open(number_after(&demo.line, "child pid ")),
    ];
    let hammer = Hammer::start(port);
    for round in 1..=3 {
        hammer.wait_for(BETWEEN);
        let (server, worker) = (procs.len() - 2, procs.len() - 1);
        if round == 2 {
            upgrade(&exe);
            assert!(exe_of(procs[server].pid()).ends_with(" (deleted)"));
        }
        procs[server].signal(Signal::HUP);
        let line = demo.wait_for_line("listening on 127.0.0.1:");
        assert_eq!(number_after(&line, "127.0.0.1:"), u32::from(port), "{line}");
        let next = number_after(&line, "parent pid ");
        procs.push(Process::open(next));
        procs.push(Process::open(number_after(&line, "child pid ")));
        let ready = demo.wait_for_line("ready; draining");
        assert_eq!(number_after(&ready, "restart: successor "), next, "{ready}");
        assert_ne!(next, procs[server].pid());
        // The old server drains its worker, then exits cleanly.
        let old = procs[server].pid();
        demo.wait_for_line(&format!("restart: drained; pid {old} exits"));
        if round == 1 {
            assert!(demo.wait_exit().success());
        } else {
            assert_eq!(procs[server].wait(), Some(0), "old server {old}");
        }
        assert!(
            procs[worker].exited_within(std::time::Duration::ZERO),
            "the old worker {} is gone (reaped by its server)",
            procs[worker].pid()
        );
        // The successor runs the file now at the path: after the upgrade,
        // the new one.
        assert_eq!(exe_of(next), exe_name);
    }
    assert!(hammer.finish() >= 4 * BETWEEN);
    let reply = ask(port, Ipv4Addr::LOCALHOST).unwrap();
    assert!(REPLIES.contains(&reply.as_str()), "{reply:?}");
    let (server, worker) = (&procs[procs.len() - 2], &procs[procs.len() - 1]);
    // Three generations later, the same descriptors as the first had.
    fds_settle_at(server.pid(), baseline);
    let errors = demo.stderr_lines();
    assert!(errors.is_empty(), "{errors:?}");
    server.signal(Signal::TERM);
    demo.wait_for_line("stopped by SIGTERM");
    assert_eq!(server.wait(), Some(0));
    // Its worker goes too (orphaned, it is ours to reap).
    worker.wait();
    assert!(procs
        .iter()
        .all(|p| p.exited_within(std::time::Duration::ZERO)));
    std::fs::remove_file(&exe).unwrap();
}

/// A successor that dies at once, or never says it is ready, is killed and
/// reaped; the old server logs one line and goes on serving, refusing no
/// one, with the descriptors it had.
#[test]
fn a_failed_successor_leaves_the_old_server_serving() {
    let _serial = serial();
    adopt_orphans();
    let exe = own_copy("failing");
    let args = ["share-server", "--port", "0", "--restart-timeout", "1000"];
    let mut demo = Running::start(&exe.display().to_string(), &args);
    let baseline = fd_count_of(demo.pid());
    let server = Process::open(demo.pid());
    let worker = Process::open(number_after(&demo.line, "child pid "));
    let hammer = Hammer::start(demo.port);
    let failures = [
        ("#!/bin/sh\nexit 3\n", "exit status: 3"),
        ("#!/bin/sh\nexec sleep 600\n", "timed out"),
    ];
    let mut logged_before = 0;
    for (script, why) in failures {
        hammer.wait_for(BETWEEN);
        replace_with_script(&exe, script);
        server.signal(Signal::HUP);
        let line = demo.wait_for_line("restart: starting successor ");
        let successor = number_after(&line, "restart: starting successor ");
        let logged = format!("restart: successor {successor} failed: ");
        eventually("the failure is logged", || {
            demo.stderr_lines().iter().any(|l| l.starts_with(&logged))
        });
        let lines = demo.stderr_lines();
        let new = &lines[logged_before..];
        assert_eq!(new.len(), 1, "one line: {new:?}");
        assert!(
            new[0].contains(why) && new[0].ends_with("still serving"),
            "{new:?}"
        );
        assert!(!Path::new(&format!("/proc/{successor}")).exists(), "reaped");
        logged_before = lines.len();
    }
    hammer.finish();
    assert!(!server.exited_within(std::time::Duration::ZERO));
    assert!(!worker.exited_within(std::time::Duration::ZERO));
    // The failed restarts leaked no descriptor.
    fds_settle_at(server.pid(), baseline);
    demo.stop();
    std::fs::remove_file(&exe).unwrap();
}
