//! The demo's socket routing under load: 10,000 connections, 64 in flight,
//! from this process against a running `demo route-sockets`. Every reply is
//! checked, none may be missing, and the descriptor counts of the parent
//! and both workers are back to their baseline afterwards.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use integration_tests::{ask, eventually, fd_count_of, number_after, tcp_connections_of, Running};

const DEMO: &str = env!("CARGO_BIN_EXE_demo-under-test");
const CONNECTIONS: usize = 10_000;
const IN_FLIGHT: usize = 64;

/// Descriptor counts, once every answered connection is closed (the demo
/// keeps one open until its client has closed too).
fn settled_fds_of(pids: &[u32]) -> Vec<usize> {
    eventually("answered connections to close", || {
        pids.iter().all(|&p| tcp_connections_of(p) == 0)
    });
    pids.iter().map(|&p| fd_count_of(p)).collect()
}

#[test]
fn route_sockets_under_ten_thousand_connections() {
    let demo = Running::start(DEMO, &["route-sockets", "--port", "0"]);
    let port = demo.port;
    let pids = [
        demo.pid(),
        number_after(&demo.line, "'special' (pid "),
        number_after(&demo.line, "'normal' (pid "),
    ];
    // Warm up (the workers' first message), then take the baseline.
    assert_eq!(
        ask(port, Ipv4Addr::LOCALHOST).unwrap(),
        "You were handled as a normal person\n"
    );
    assert_eq!(
        ask(port, Ipv4Addr::new(127, 0, 0, 2)).unwrap(),
        "You were handled as a special person\n"
    );
    let baseline = settled_fds_of(&pids);

    let (next, right, wrong) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|s| {
        for _ in 0..IN_FLIGHT {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CONNECTIONS {
                    return;
                }
                let (from, role) = if i % 4 == 0 {
                    (Ipv4Addr::new(127, 0, 0, 2), "special")
                } else {
                    (Ipv4Addr::LOCALHOST, "normal")
                };
                match ask(port, from) {
                    Ok(r) if r == format!("You were handled as a {role} person\n") => {
                        right.fetch_add(1, Ordering::Relaxed)
                    }
                    other => {
                        eprintln!("connection {i}: {other:?}");
                        wrong.fetch_add(1, Ordering::Relaxed)
                    }
                };
            });
        }
    });
    let after = settled_fds_of(&pids);
    demo.stop();
    eprintln!(
        "load: {} right, {} wrong; fds parent/special/normal {baseline:?} -> {after:?}",
        right.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed)
    );
    assert_eq!((right.into_inner(), wrong.into_inner()), (CONNECTIONS, 0));
    assert_eq!(
        after, baseline,
        "descriptor counts of parent, special, normal"
    );
}
