//! The two serving modes: `share-server` (with its restart) and
//! `route-sockets`.

use std::time::Instant;

use ipc_fork::{Event, Interest, Poller, Ready, Token};

use crate::cli::Serve;
use crate::common::{listener, spawn_worker, Serving, PARENT_REPLY};
use crate::restart;
use crate::router::{Router, RouterOptions};
use crate::signals::{stop_on_signal, Workers};

fn fail(what: &str, e: impl std::fmt::Display) -> i32 {
    warn!("demo: {what}: {e}");
    1
}

/// The SIGHUP pipe's token in the poller.
const HANGUP: Token = Token(0);

/// The docs' first example: parent and child accept from one server until
/// stopped. A child that dies is reported; the parent keeps serving. On
/// SIGHUP the server restarts without refusing a connection (see
/// [`crate::restart`]).
pub fn share_server(opts: &Serve) -> i32 {
    let workers = Workers::default();
    let (hangup, on_hangup) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return fail("pipe", e),
    };
    stop_on_signal(workers.clone(), Some(on_hangup));
    let (server, predecessor) = if opts.successor {
        match restart::take_over(opts.restart_timeout) {
            Ok((parent, server)) => (server, Some(parent)),
            Err(e) => return fail("take the listener over", e),
        }
    } else {
        match listener(opts.port) {
            Ok(s) => (s, None),
            Err(e) => return fail("listen", e),
        }
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
    let child_pid = child.id();
    let mut poller = match Poller::new() {
        Ok(p) => p,
        Err(e) => return fail("poller", e),
    };
    let setup = Serving::new().and_then(|mut serving| {
        serving.serve(server.try_clone()?, PARENT_REPLY);
        poller.add(child)?;
        poller.watch(&hangup, HANGUP, Interest::Readable)?;
        Ok(serving)
    });
    let serving = match setup {
        Ok(s) => s,
        Err(e) => return fail("serve", e),
    };
    say!(
        "share-server: listening on {addr}; parent pid {} and child pid {child_pid} both answer",
        std::process::id(),
    );
    if let Some(predecessor) = predecessor {
        restart::ready(predecessor);
    }
    loop {
        match poller.next(None) {
            Ok(Ready::Fd(_)) => {
                // Every SIGHUP so far asks for this one restart.
                let _ = std::io::Read::read(&mut &hangup, &mut [0; 64]);
                match restart::hand_over(&server, opts, &workers) {
                    Ok(_successor) => {
                        // Another SIGHUP while draining is the successor's
                        // business; left watched, its unread byte would wake
                        // the drain loop at once, again and again.
                        let _ = poller.unwatch(&hangup);
                        return drain(serving, poller, opts);
                    }
                    Err(e) => warn!("restart: {e}; still serving"),
                }
            }
            Ok(Ready::Child(id, event)) => {
                if report(event, "child", child_pid) {
                    poller.remove(id);
                    workers.lock().unwrap().clear();
                    say!("share-server: the parent serves alone from now on");
                }
            }
            Ok(Ready::Timeout) => {}
            Err(e) => return fail("wait", e),
        }
    }
}

/// After a successor is ready: stops accepting (the connections in hand
/// are answered), disconnects the workers so they do the same and exit,
/// and waits for them, killing those still there after the restart
/// timeout. Returns the exit code.
fn drain(serving: Serving, mut poller: Poller, opts: &Serve) -> i32 {
    serving.stop();
    let pids: Vec<_> = poller.children().map(|(id, c)| (id, c.id())).collect();
    for (id, _) in &pids {
        if let Some(child) = poller.child_mut(*id) {
            let _ = child.disconnect();
        }
    }
    let deadline = Instant::now() + opts.restart_timeout;
    while !poller.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match poller.next(Some(left)) {
            Ok(Ready::Child(id, event)) => {
                let pid = pids.iter().find(|(i, _)| *i == id).map_or(0, |p| p.1);
                if report(event, "child", pid) {
                    poller.remove(id);
                }
            }
            Ok(Ready::Fd(_)) => {}
            Ok(Ready::Timeout) | Err(_) => {
                for (_, child) in poller.children() {
                    warn!(
                        "restart: child {} did not drain in time; killed",
                        child.id()
                    );
                }
                let ids: Vec<_> = poller.children().map(|(id, _)| id).collect();
                for id in ids {
                    if let Some(mut child) = poller.remove(id) {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
            }
        }
    }
    say!("restart: drained; pid {} exits", std::process::id());
    0
}

/// Logs a child's event; whether it was the last (`Exit`).
fn report(event: Result<Event<'_>, ipc_core::Error>, name: &str, pid: u32) -> bool {
    match event {
        Ok(Event::Message(m, _)) => say!("{name} says {}", m.as_str()),
        Ok(Event::Internal(..) | Event::Fate(_)) => {}
        Ok(Event::Disconnect) => say!("{name} (pid {pid}) disconnected"),
        Ok(Event::Exit(status)) => {
            say!("{name} (pid {pid}) exited: {status}");
            return true;
        }
        Err(e) => warn!("{name}: {e}"),
    }
    false
}

/// The docs' second example, serving until stopped.
pub fn route_sockets(opts: &Serve) -> i32 {
    let workers = Workers::default();
    stop_on_signal(workers.clone(), None);
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
