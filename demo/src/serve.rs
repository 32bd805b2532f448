//! The two serving modes: `share-server` and `route-sockets`.

use ipc_fork::{Child, Event};

use crate::cli::Serve;
use crate::common::{listener, spawn_worker, Serving, PARENT_REPLY};
use crate::router::{Router, RouterOptions};
use crate::signals::{stop_on_signal, Workers};

fn fail(what: &str, e: impl std::fmt::Display) -> i32 {
    warn!("demo: {what}: {e}");
    1
}

/// The docs' first example: parent and child accept from one server until
/// stopped. A child that dies is reported; the parent keeps serving.
pub fn share_server(opts: &Serve) -> i32 {
    let workers = Workers::default();
    stop_on_signal(workers.clone());
    let server = match listener(opts.port) {
        Ok(s) => s,
        Err(e) => return fail("listen", e),
    };
    let addr = server
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut child = match spawn_worker(opts.child_cmd.as_deref(), None) {
        Ok(c) => c,
        Err(e) => return fail("start the child", e),
    };
    workers.lock().unwrap().push(child.id());
    let handle = match server.to_handle() {
        Ok(h) => h,
        Err(e) => return fail("share the server", e),
    };
    if let Err(e) = child.send_handle(&"server", handle) {
        return fail("send the server", e);
    }
    say!(
        "share-server: listening on {addr}; parent pid {} and child pid {} both answer",
        std::process::id(),
        child.id()
    );
    let mut serving = match Serving::new() {
        Ok(s) => s,
        Err(e) => return fail("serve", e),
    };
    serving.serve(server, PARENT_REPLY);
    watch(child, "child");
    say!("share-server: the parent serves alone from now on");
    loop {
        std::thread::park();
    }
}

/// Reports a child's events until it is gone.
fn watch(mut child: Child, name: &str) {
    loop {
        match child.recv() {
            Ok(Event::Message(m, _)) => say!("{name} says {}", m.as_str()),
            Ok(Event::Internal(..) | Event::Fate(_)) => {}
            Ok(Event::Disconnect) => say!("{name} (pid {}) disconnected", child.id()),
            Ok(Event::Exit(status)) => {
                say!("{name} (pid {}) exited: {status}", child.id());
                return;
            }
            Err(e) if !e.is_fatal() => warn!("{name}: {e}"),
            Err(_) => return,
        }
    }
}

/// The docs' second example, serving until stopped.
pub fn route_sockets(opts: &Serve) -> i32 {
    let workers = Workers::default();
    stop_on_signal(workers.clone());
    let server = match listener(opts.port) {
        Ok(s) => s,
        Err(e) => return fail("listen", e),
    };
    let addr = server
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let options = RouterOptions {
        vip: opts.vip,
        child_cmd: opts.child_cmd.clone(),
        handoff_timeout: opts.handoff_timeout,
    };
    let mut router = match Router::new(server, options, workers) {
        Ok(r) => r,
        Err(e) => return fail("set up the router", e),
    };
    // Start the workers before saying where we listen.
    while router.pids().iter().any(Option::is_none) {
        if let Err(e) = router.run_timers(std::time::Instant::now()) {
            return fail("start the workers", e);
        }
        if router.pids().iter().any(Option::is_none) {
            std::thread::sleep(crate::common::AcceptPause::RETRY);
        }
    }
    let [normal, special] = router.pids().map(Option::unwrap_or_default);
    say!(
        "route-sockets: listening on {addr}; clients from {} go to 'special' (pid {special}), others to 'normal' (pid {normal})",
        opts.vip,
    );
    router.run()
}
